# The push's link is fixed when it is queued, so the sender needs nothing from the floors above.

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("wechat", "0001_customermessage_from_workflows"),
    ]

    operations = [
        migrations.AddField(
            model_name="customermessage",
            name="link",
            field=models.CharField(blank=True, help_text="The URL the message opens.", max_length=400),
        ),
    ]
