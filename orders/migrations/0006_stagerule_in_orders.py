# The stage clock belongs to the ground floor (orders/clock.py), so its rules move here from
# workflows. State only: the table workflows_stagerule and its rows stay as they are.

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("orders", "0005_event_kinds_merged"),
        ("workflows", "0002_stage_rules"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="StageRule",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("stage", models.CharField(max_length=20, unique=True, verbose_name="stage")),
                        ("responsible_role", models.CharField(max_length=16, verbose_name="responsible role")),
                        ("time_limit", models.DurationField(verbose_name="time limit")),
                        ("alert_role", models.CharField(default="supervisor", max_length=16, verbose_name="alerted role")),
                        ("work_starts", models.TimeField(blank=True, null=True, verbose_name="working hours start")),
                        ("work_ends", models.TimeField(blank=True, null=True, verbose_name="working hours end")),
                        ("updated_at", models.DateTimeField(default=django.utils.timezone.now)),
                        (
                            "updated_by",
                            models.ForeignKey(
                                blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name="+",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                    ],
                    options={
                        "verbose_name": "stage rule",
                        "verbose_name_plural": "stage rules",
                        "db_table": "workflows_stagerule",
                        "constraints": [
                            models.CheckConstraint(
                                condition=models.Q(
                                    models.Q(("work_starts__isnull", True), ("work_ends__isnull", True)),
                                    ("work_starts__lt", models.F("work_ends")),
                                    _connector="OR",
                                ),
                                name="stage_rule_working_hours_ordered",
                            )
                        ],
                    },
                ),
            ],
            database_operations=[],
        ),
    ]
