# Inquiry.answer_message follows CustomerMessage to the WeChat integration. The column and its
# foreign key already point at workflows_customermessage, the table the model keeps: state only.

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("frontline", "0002_packscan_to_orders"),
        ("wechat", "0001_customermessage_from_workflows"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[
                migrations.AlterField(
                    model_name="inquiry",
                    name="answer_message",
                    field=models.ForeignKey(
                        blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name="+", to="wechat.customermessage"
                    ),
                ),
            ],
        ),
    ]
