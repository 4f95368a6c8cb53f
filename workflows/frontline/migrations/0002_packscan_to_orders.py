"""PackScan now belongs to orders (orders 0008 adopts the table frontline_packscan): drop it from
this app's state only, so the table and its rows stay."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("frontline", "0001_frontline_records"),
        ("orders", "0008_packscan_in_orders"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="PackScan")],
            database_operations=[],
        ),
    ]
