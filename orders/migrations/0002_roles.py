"""The eight roles of docs/brief.md as auth Groups, so that a fresh database already has them."""

from django.db import migrations

ROLES = ("sales", "reviewer", "dispatcher", "packer", "courier", "service", "finance", "supervisor")


def create_roles(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    for name in ROLES:
        Group.objects.get_or_create(name=name)


def remove_roles(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=ROLES).delete()


class Migration(migrations.Migration):
    dependencies = [("orders", "0001_initial"), ("auth", "0012_alter_user_first_name_max_length")]

    operations = [migrations.RunPython(create_roles, remove_roles)]
