# StageRule now lives in orders (see orders/migrations/0006_stagerule_in_orders.py); the table stays.

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("workflows", "0002_stage_rules"),
        ("orders", "0006_stagerule_in_orders"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=[migrations.DeleteModel(name="StageRule")], database_operations=[]),
    ]
