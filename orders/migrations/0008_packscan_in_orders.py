"""The packing bench's scans move to the ground floor (the pack verification in orders/packing.py
reads them) without moving the table: orders takes over the model's state with
db_table = "frontline_packscan", and frontline 0002 drops it from its own state only.

Also the mark for an order an outside system (the WMS) reported packed without scan
verification here."""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("orders", "0007_event_kinds_carrier_tracking"),
        # The table itself was created there; this migration only adopts it.
        ("frontline", "0001_frontline_records"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="order",
            name="packed_unverified",
            field=models.BooleanField(default=False, verbose_name="packed without scan verification here"),
        ),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="PackScan",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("code", models.CharField(max_length=64, verbose_name="scanned code")),
                        ("outcome", models.CharField(choices=[("opened", "Order opened"), ("match", "Item verified"), ("wrong_item", "Wrong item refused"), ("over_count", "Extra item refused"), ("intercepted", "Refused: order intercepted"), ("not_packable", "Refused: order not in picking"), ("restart", "Verification restarted"), ("unknown", "Unknown code")], max_length=16, verbose_name="outcome")),
                        ("scanned_at", models.DateTimeField(default=django.utils.timezone.now)),
                        ("order", models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name="pack_scans", to="orders.order")),
                        ("product", models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name="+", to="orders.product")),
                        ("scanned_by", models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL, related_name="+", to=settings.AUTH_USER_MODEL)),
                    ],
                    options={
                        "verbose_name": "pack scan",
                        "verbose_name_plural": "pack scans",
                        "db_table": "frontline_packscan",
                        "ordering": ["-scanned_at", "-id"],
                        "indexes": [models.Index(fields=["order", "scanned_at"], name="packscan_order_time")],
                    },
                ),
            ],
            database_operations=[],
        ),
    ]
