# CustomerMessage now lives in integrations/wechat (see wechat/migrations/0001); the table stays.

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("workflows", "0003_stagerule_moved_to_orders"),
        ("wechat", "0001_customermessage_from_workflows"),
        ("frontline", "0003_inquiry_answer_message_in_wechat"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=[migrations.DeleteModel(name="CustomerMessage")], database_operations=[]),
    ]
