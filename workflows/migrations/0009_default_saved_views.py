"""The shared views each role starts with. The names are data (people rename and add their own),
so they are written in Chinese here; the filters are orders/selectors.py OrderFilters params,
copied so that this migration does not change when the code does."""

from django.db import migrations

WAITING = {"todo": "1"}
OVERDUE = {"overdue": "1"}
DEFAULT_VIEWS = [
    ("reviewer", "待我处理", WAITING),
    ("reviewer", "地址模糊", {"tag": "fuzzy_address", "status": "pending_review"}),
    ("reviewer", "今日超时", OVERDUE),
    ("dispatcher", "待我处理", WAITING),
    ("dispatcher", "冷链待打包", {"cold": "1", "status": "picking"}),
    ("dispatcher", "今日超时", OVERDUE),
    ("packer", "待我处理", WAITING),
    ("packer", "冷链待打包", {"cold": "1", "status": "picking"}),
    ("courier", "待我处理", WAITING),
    ("courier", "今日超时", OVERDUE),
    ("service", "挂起中", {"held": "1"}),
    ("service", "高风险退单", {"tag": "high_risk_refund"}),
    ("sales", "🔥加急", {"rush": "1"}),
    ("finance", "发票待开", {"tag": "invoice_pending"}),
    ("supervisor", "今日超时", OVERDUE),
    ("supervisor", "🔥加急", {"rush": "1"}),
    ("supervisor", "挂起中", {"held": "1"}),
    ("supervisor", "冷链待打包", {"cold": "1", "status": "picking"}),
]


def create_default_views(apps, schema_editor):
    SavedView = apps.get_model("workflows", "SavedView")
    for position, (role, name, filters) in enumerate(DEFAULT_VIEWS):
        SavedView.objects.get_or_create(
            owner=None, shared_with_role=role, name=name, defaults={"filters": filters, "position": position}
        )


def remove_default_views(apps, schema_editor):
    SavedView = apps.get_model("workflows", "SavedView")
    for role, name, _filters in DEFAULT_VIEWS:
        SavedView.objects.filter(owner=None, shared_with_role=role, name=name).delete()


class Migration(migrations.Migration):
    dependencies = [("workflows", "0008_bulk_views_exports")]
    operations = [migrations.RunPython(create_default_views, remove_default_views)]
