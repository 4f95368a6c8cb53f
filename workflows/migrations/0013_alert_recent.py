"""An index on Alert.created_at for the SLA sweep's robot + e-mail pass, which reads the alerts of
the retry window (the last day) every minute: without it, every sweep read the whole table, all
alerts ever raised. created_at is never updated, so the claim and e-mailed marks stay HOT updates
(0012)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("workflows", "0012_alert_fillfactor")]

    operations = [migrations.AddIndex(model_name="alert", index=models.Index(fields=["created_at"], name="alert_recent"))]
