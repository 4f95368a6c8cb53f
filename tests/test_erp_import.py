"""Importing ERP order exports from real files: encodings, title rows, repeated order numbers,
mangled order numbers, missing columns, empty and foreign files, re-imports and changes."""

from __future__ import annotations

import datetime
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.utils import timezone

from integrations.erp.importer import import_orders
from integrations.erp.spreadsheet import UnreadableFile
from orders.models import EventKind, Order, OrderEvent, OrderLine
from tests.conftest import make_order, make_product
from tests.erp_fixtures import fast_passwords, line, write_csv, write_xlsx  # noqa: F401 (autouse)

pytestmark = pytest.mark.django_db


@pytest.fixture
def products():
    return {sku: make_product(sku=sku, price="59.90") for sku in ("NUK-AFZ-02", "GIFT-KSJ-01", "YN-MFMF-225")}


def run_command(*args) -> tuple[int, str]:
    from io import StringIO

    out, err = StringIO(), StringIO()
    try:
        call_command("import_orders", *map(str, args), stdout=out, stderr=err)
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    return code, out.getvalue() + err.getvalue()


def two_orders() -> list[dict]:
    # E1001 has two lines (the order number repeats) and a gift; E1002 one line.
    return [
        line("E1001", "NUK-AFZ-02", quantity=2, total="119.80", name="王丽"),
        line("E1002", "YN-MFMF-225", phone="139 0013 9000", name="李娜", placed="2024-05-01 11:00:00"),
        line("E1001", "GIFT-KSJ-01", price="0", gift="是", total="119.80", name="王丽"),
    ]


def test_utf8_bom_csv_groups_lines_by_order_number(tmp_path, products):
    path = write_csv(tmp_path / "export.csv", two_orders(), encoding="utf-8-sig")
    code, output = run_command(path)
    assert code == 0, output
    assert "created=2" in output
    first = Order.objects.get(order_number="E1001")
    assert first.source == "erp" and first.status == "paid"
    assert first.total_amount == Decimal("119.80")
    assert sorted(first.lines.values_list("sku_code", "quantity", "is_gift")) == [
        ("GIFT-KSJ-01", 1, True),
        ("NUK-AFZ-02", 2, False),
    ]
    assert first.placed_at == timezone.make_aware(datetime.datetime(2024, 5, 1, 10, 20, 30))
    assert Order.objects.get(order_number="E1002").receiver_phone == "13900139000"
    created = OrderEvent.objects.get(order=first, kind=EventKind.CREATED)
    assert created.actor_name == "ERP" and created.source_time is not None


def test_gb18030_csv_with_title_row(tmp_path, products):
    path = write_csv(tmp_path / "export.csv", two_orders(), encoding="gb18030", title=True)
    assert path.read_bytes()[:2] != b"\xef\xbb"  # really not UTF-8
    summary = import_orders(path=path)
    assert (summary.created, summary.rejected) == (2, 0)
    assert Order.objects.get(order_number="E1002").receiver_name == "李娜"


def test_xlsx_with_title_row_refuses_float_order_number_and_keeps_the_rest(tmp_path, products):
    rows = two_orders() + [line(123456789012345678.0, "NUK-AFZ-02"), line(20240501001, "NUK-AFZ-02")]
    path = write_xlsx(tmp_path / "export.xlsx", rows, title=True)
    summary = import_orders(path=path)
    assert (summary.created, summary.rejected) == (3, 1)
    [error] = summary.errors
    assert error.row == 6 and error.column == "订单号"  # title row 1, header row 2, data from row 3
    assert "1.23456789012346E+17" in error.reason and "设为文本格式" in error.reason
    assert Order.objects.filter(order_number="20240501001").exists()  # an exact integer cell is fine
    assert not Order.objects.filter(order_number__startswith="12345678901234").exists()


def test_scientific_notation_order_number_is_refused_loudly(tmp_path, products):
    path = write_csv(tmp_path / "export.csv", two_orders() + [line("1.23E+17", "NUK-AFZ-02")])
    code, output = run_command(path)
    assert code == 1
    assert "row 5 [订单号] 1.23E+17" in output and "科学计数法" in output
    assert Order.objects.count() == 2  # the valid orders went in
    assert not Order.objects.filter(order_number__icontains="E+").exists()


def test_an_order_with_one_bad_line_is_refused_whole(tmp_path, products):
    rows = two_orders() + [
        line("E1003", "NUK-AFZ-02", quantity=1),
        line("E1003", "NOPE-404", quantity=1),
        line("E1004", "NUK-AFZ-02", phone="1380013800"),
        line("E1005", "NUK-AFZ-02", quantity="两个"),
        line("E1006", "NUK-AFZ-02", total="12.345"),
    ]
    path = write_csv(tmp_path / "export.csv", rows)
    summary = import_orders(path=path)
    assert (summary.created, summary.rejected) == (2, 4)
    assert not Order.objects.filter(order_number__in=["E1003", "E1004", "E1005", "E1006"]).exists()
    assert not OrderLine.objects.filter(sku_code="NUK-AFZ-02", order__order_number="E1003").exists()
    by_order = {error.order_number: error for error in summary.errors}
    assert (by_order["E1003"].row, by_order["E1003"].column) == (6, "商品编码")
    assert "NOPE-404" in by_order["E1003"].reason
    assert (by_order["E1004"].row, by_order["E1004"].column) == (7, "手机")
    assert by_order["E1005"].column == "数量"
    assert any(e.column == "应付金额" and "12.345" in e.reason for e in summary.errors if e.order_number == "E1006")


def test_rows_of_one_order_that_disagree_are_refused(tmp_path, products):
    rows = [line("E2001", "NUK-AFZ-02", address="市心北路100号"), line("E2001", "GIFT-KSJ-01", address="市心南路1号")]
    summary = import_orders(path=write_csv(tmp_path / "export.csv", rows))
    assert summary.rejected == 1
    [error] = summary.errors
    assert (error.row, error.column) == (3, "地址") and "第 2 行" in error.reason
    assert not Order.objects.exists()


def test_missing_columns_are_named(tmp_path, products):
    header = [column for column in line("E1", "X") if column not in ("手机", "商品单价")]
    path = write_csv(tmp_path / "export.csv", two_orders(), header=header)
    code, output = run_command(path)
    assert code == 2
    assert "手机" in output and "商品单价" in output
    assert not Order.objects.exists()


def test_empty_file(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    code, output = run_command(path)
    assert code == 2 and "文件是空的" in output


def test_file_that_is_not_a_spreadsheet(tmp_path):
    png = tmp_path / "photo.csv"
    png.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(200))
    code, output = run_command(png)
    assert code == 2 and "这不是表格文件" in output
    fake_xlsx = tmp_path / "archive.xlsx"
    import zipfile

    with zipfile.ZipFile(fake_xlsx, "w") as archive:
        archive.writestr("readme.txt", "hello")
    with pytest.raises(UnreadableFile, match="不是 Excel 工作簿"):
        import_orders(path=fake_xlsx)
    prose = tmp_path / "notes.csv"
    prose.write_text("hello,world\nthis is,not an export\n", encoding="utf-8")
    with pytest.raises(UnreadableFile, match="没有找到表头"):
        import_orders(path=prose)


def test_reimport_changes_nothing_and_says_so(tmp_path, products):
    path = write_csv(tmp_path / "export.csv", two_orders())
    import_orders(path=path)
    versions = dict(Order.objects.values_list("order_number", "version"))
    events = OrderEvent.objects.count()
    code, output = run_command(path)
    assert code == 0
    assert "没有变化：文件中的 2 个订单都已是最新" in output
    assert dict(Order.objects.values_list("order_number", "version")) == versions
    assert OrderEvent.objects.count() == events


def test_changed_rows_update_the_order_with_an_erp_event(tmp_path, products):
    import_orders(path=write_csv(tmp_path / "v1.csv", two_orders()))
    changed = [
        line("E1001", "NUK-AFZ-02", quantity=3, total="179.70", name="王丽", address="市心北路200号", paid="2024-05-02 09:00:00"),
        line(
            "E1001",
            "GIFT-KSJ-01",
            price="0",
            gift="是",
            total="179.70",
            name="王丽",
            address="市心北路200号",
            paid="2024-05-02 09:00:00",
        ),
        line("E1002", "YN-MFMF-225", phone="13900139000", name="李娜", placed="2024-05-01 11:00:00"),
    ]
    preview = import_orders(path=write_csv(tmp_path / "v2.csv", changed), dry_run=True)
    assert (preview.created, preview.updated, preview.unchanged) == (0, 1, 1)
    assert Order.objects.get(order_number="E1001").total_amount == Decimal("119.80")  # the preview wrote nothing
    summary = import_orders(path=write_csv(tmp_path / "v2.csv", changed))
    assert (summary.created, summary.updated, summary.unchanged) == (0, 1, 1)
    order = Order.objects.get(order_number="E1001")
    assert order.total_amount == Decimal("179.70") and order.address == "市心北路200号" and order.version == 2
    assert order.lines.get(sku_code="NUK-AFZ-02").quantity == 3
    event = OrderEvent.objects.get(order=order, kind=EventKind.IMPORT_UPDATE)
    assert event.actor_name == "ERP" and event.actor_user is None
    assert event.source_time == timezone.make_aware(datetime.datetime(2024, 5, 2, 9, 0))
    assert {"address", "total_amount", "paid_amount", "lines"} <= set(event.payload["fields"])


def test_shipped_order_keeps_its_address(tmp_path, products):
    make_order(order_number="E3001", status="shipped", lines=[(products["NUK-AFZ-02"], 1)])
    summary = import_orders(path=write_csv(tmp_path / "export.csv", [line("E3001", "NUK-AFZ-02", address="别处1号")]))
    assert summary.rejected == 1 and "地址和商品不能再修改" in summary.errors[0].reason
    assert Order.objects.get(order_number="E3001").address == "市心北路100号"


def test_new_orders_start_at_the_erp_status(tmp_path, products):
    rows = [
        line("S1", "NUK-AFZ-02", status="待审核", paid=""),
        line("S2", "NUK-AFZ-02", status="已取消"),
        line("S3", "NUK-AFZ-02", status="已发货") | {"快递单号": "ZT123456"},
    ]
    import_orders(path=write_csv(tmp_path / "export.csv", rows))
    status = dict(Order.objects.values_list("order_number", "status"))
    assert status == {"S1": "pending_review", "S2": "cancelled", "S3": "shipped"}
    assert Order.objects.get(order_number="S3").shipments.get().tracking_number == "ZT123456"
