# The WeChat outbox row moves from workflows to the WeChat integration; its table
# (workflows_customermessage) and every row stay where they are: state only, no SQL.

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("orders", "0002_roles"),
        ("workflows", "0003_stagerule_moved_to_orders"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[
                migrations.CreateModel(
                    name="CustomerMessage",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("channel", models.CharField(default="wechat", max_length=16)),
                        ("recipient", models.CharField(help_text="The customer's openid for WeChat.", max_length=64)),
                        ("event_key", models.CharField(max_length=64)),
                        ("idempotency_key", models.CharField(max_length=64, unique=True)),
                        ("content", models.JSONField(default=dict, help_text="Template values as sent.")),
                        ("carries_location", models.BooleanField(default=False, help_text="Has location and ETA, or an exception explanation.")),
                        ("status", models.CharField(choices=[("pending", "Waiting to send"), ("sent", "Sent"), ("failed", "Failed, will retry"), ("refused", "Refused by the provider (not retried)")], default="pending", max_length=16)),
                        ("attempts", models.PositiveSmallIntegerField(default=0)),
                        ("next_attempt_at", models.DateTimeField(default=django.utils.timezone.now)),
                        ("last_error", models.CharField(blank=True, max_length=300)),
                        ("provider_message_id", models.CharField(blank=True, max_length=64)),
                        ("delivery_status", models.CharField(blank=True, max_length=64)),
                        ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                        ("sent_at", models.DateTimeField(blank=True, null=True)),
                        ("order", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="customer_messages", to="orders.order")),
                    ],
                    options={
                        "db_table": "workflows_customermessage",
                        "ordering": ["-created_at"],
                        "indexes": [models.Index(condition=models.Q(("status__in", ["pending", "failed"])), fields=["next_attempt_at"], name="outbox_due")],
                    },
                ),
            ],
        ),
    ]
