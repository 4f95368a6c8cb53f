"""The product master import (issue 16): the ERP's 商品资料 export in the messy shapes the order
import meets (GB18030 with a title row, barcodes Excel turned into numbers, duplicates, missing
columns), every problem named in Chinese and nothing lost; the product page; and the one-step
recovery of an order import that refused unknown SKUs."""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from pathlib import Path

import pytest
from django.test import Client
from django.utils import translation
from openpyxl import Workbook

from integrations.erp import tasks
from integrations.erp.models import ImportKind, ImportRun, ImportState
from integrations.erp.products import barcode_problem, import_products
from integrations.erp.spreadsheet import UnreadableFile
from orders.models import Order, Product
from tests.conftest import make_product
from tests.erp_fixtures import fast_passwords, line, write_csv  # noqa: F401 (autouse)

pytestmark = pytest.mark.django_db

HEADER = ["商品编码", "商品名称", "国际条码", "规格", "单价", "图片", "冷链", "赠品"]
EAN = "4006381333931"  # a valid EAN-13
UPC_WITH_ZERO = "036000291452"  # a valid UPC-A that begins with 0


@pytest.fixture(autouse=True)
def chinese():
    with translation.override("zh-hans"):
        yield


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")


def product_csv(path: Path, rows: list[list], *, encoding="utf-8-sig", title=False, header=HEADER) -> Path:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    if title:
        writer.writerow(["名称：聚水潭商品资料"])
    writer.writerow(header)
    writer.writerows(rows)
    path.write_bytes(buffer.getvalue().encode(encoding))
    return path


def product_xlsx(path: Path, rows: list[list], *, title=False) -> Path:
    workbook = Workbook()
    sheet = workbook.active
    if title:
        sheet.append(["名称：聚水潭商品资料"])
    sheet.append(HEADER)
    for row in rows:
        sheet.append(row)
    workbook.save(path)
    return path


def test_gb18030_csv_with_a_title_row_imports_every_field(tmp_path):
    path = product_csv(
        tmp_path / "商品资料.csv",
        [
            ["NUK-AFZ-02", "NUK 奶嘴 2 段", EAN, "M号", "59.90", "img/nuk.jpg", "否", "否"],
            ["ICE-BAG-01", "冰袋", "0012345678905", "", "0", "", "是", "是"],
        ],
        encoding="gb18030",
        title=True,
    )
    summary = import_products(path=path)
    assert (summary.created, summary.rejected, summary.errors) == (2, 0, [])
    nuk = Product.objects.get(sku_code="NUK-AFZ-02")
    assert (nuk.name, nuk.barcode, nuk.spec, nuk.unit_price, nuk.image) == (
        "NUK 奶嘴 2 段",
        EAN,
        "M号",
        Decimal("59.90"),
        "img/nuk.jpg",
    )
    bag = Product.objects.get(sku_code="ICE-BAG-01")
    # A text barcode keeps its leading zeros; the flags are read.
    assert (bag.barcode, bag.cold_chain, bag.is_gift) == ("0012345678905", True, True)


def test_a_second_import_changes_nothing_and_a_changed_row_updates_only_its_fields(tmp_path):
    rows = [["NUK-AFZ-02", "NUK 奶嘴", EAN, "M号", "59.90", "", "否", "否"]]
    import_products(path=product_csv(tmp_path / "a.csv", rows))
    again = import_products(path=product_csv(tmp_path / "b.csv", rows))
    assert (again.created, again.updated, again.unchanged) == (0, 0, 1)
    rows[0][4] = "49.90"
    changed = import_products(path=product_csv(tmp_path / "c.csv", rows))
    assert (changed.updated, changed.changes) == (
        1,
        [{"order_number": "NUK-AFZ-02", "action": "updated", "fields": ["unit_price"]}],
    )
    assert Product.objects.get(sku_code="NUK-AFZ-02").unit_price == Decimal("49.90")


def test_a_file_without_the_flag_columns_leaves_the_flags_set_here(tmp_path):
    make_product(sku="COLD-1", cold_chain=True)
    header = ["商品编码", "商品名称", "条码"]
    summary = import_products(path=product_csv(tmp_path / "p.csv", [["COLD-1", "冷链奶", EAN]], header=header))
    product = Product.objects.get(sku_code="COLD-1")
    assert summary.updated == 1 and product.cold_chain is True and product.barcode == EAN and product.name == "冷链奶"


def test_numeric_looking_barcodes_stay_text_and_mangled_ones_are_refused(tmp_path):
    path = product_xlsx(
        tmp_path / "p.xlsx",
        [
            ["A-TEXT", "文本条码", "0012345678905", "", 10, "", "否", "否"],  # a text cell: kept as written
            ["B-INT", "数字条码", int(EAN), "", 10, "", "否", "否"],  # a whole number: its digits are exact
            ["C-ZERO", "丢了前导零", int(UPC_WITH_ZERO), "", 10, "", "否", "否"],  # 36000291452: the 0 is gone
            ["D-FLOAT", "科学计数", 6.90123456789012e15, "", 10, "", "否", "否"],  # past 15 digits: rounded
        ],
        title=True,
    )
    summary = import_products(path=path)
    assert set(Product.objects.values_list("sku_code", "barcode")) == {("A-TEXT", "0012345678905"), ("B-INT", EAN)}
    reasons = {error.order_number: error.reason for error in summary.errors}
    assert set(reasons) == {"C-ZERO", "D-FLOAT"} and summary.rejected == 2
    assert "前导零" in reasons["C-ZERO"] and "0" + UPC_WITH_ZERO[1:] in reasons["C-ZERO"]
    assert "文本" in reasons["D-FLOAT"]
    assert all(error.column == "国际条码" for error in summary.errors)


@pytest.mark.parametrize(
    ("value", "refused"),
    [("6.90123E+12", "科学计数"), ("6901234567892.0", "小数点"), ("69 0123", "只能"), ("", "为空"), (EAN, "")],
)
def test_barcode_text_shapes(value, refused):
    text, reason = barcode_problem(value)
    assert (refused in reason) if refused else reason == ""


def test_duplicates_are_counted_once_or_refused_whole_and_every_row_is_accounted_for(tmp_path):
    path = product_csv(
        tmp_path / "dup.csv",
        [
            ["SAME-1", "同一行", EAN, "", "1.00", "", "否", "否"],
            ["SAME-1", "同一行", EAN, "", "1.00", "", "否", "否"],  # an exact repeat: once, reported
            ["DIFF-1", "价格不同", "111", "", "1.00", "", "否", "否"],
            ["DIFF-1", "价格不同", "111", "", "2.00", "", "否", "否"],  # the same SKU, another price: refused
            ["BAR-1", "条码重复一", "222", "", "1.00", "", "否", "否"],
            ["BAR-2", "条码重复二", "222", "", "1.00", "", "否", "否"],  # another SKU with the same barcode
            ["", "没有编码", "333", "", "1.00", "", "否", "否"],
            ["BAD-PRICE", "价格写错", "444", "", "五元", "", "否", "否"],
            ["BAD-PRICE", "价格写错", "444", "", "5.00", "", "否", "否"],  # a good row of a bad SKU does not slip in
        ],
    )
    summary = import_products(path=path)
    assert set(Product.objects.values_list("sku_code", flat=True)) == {"SAME-1", "BAR-1"}
    assert [warning.row for warning in summary.warnings] == [3] and "完全相同" in summary.warnings[0].reason
    by_sku = {}
    for error in summary.errors:
        by_sku.setdefault(error.order_number, []).append(error)
    assert "第 4 行" in by_sku["DIFF-1"][0].reason and by_sku["DIFF-1"][0].column == "单价"
    assert "BAR-1" in by_sku["BAR-2"][0].reason
    assert by_sku[""][0].reason == "SKU 编码为空。"
    assert "不是有效金额" in by_sku["BAD-PRICE"][0].reason
    # Nothing lost: every data row is imported, counted as a repeat, or refused.
    assert summary.total_rows == 9
    assert summary.created + 1 + summary.rejected_rows == 9
    assert summary.rejected == 4  # DIFF-1, BAR-2, the row without a code, BAD-PRICE


def test_a_barcode_of_another_product_in_the_master_is_refused(tmp_path):
    other = make_product(sku="OLD-1")
    summary = import_products(path=product_csv(tmp_path / "p.csv", [["NEW-1", "新品", other.barcode, "", "", "", "", ""]]))
    assert summary.created == 0 and "OLD-1" in summary.errors[0].reason


def test_missing_columns_are_named(tmp_path):
    path = product_csv(tmp_path / "p.csv", [["NUK", "奶嘴", "59.90"]], header=["商品编码", "商品名称", "单价"])
    with pytest.raises(UnreadableFile) as raised:
        import_products(path=path)
    assert "国际条码" in str(raised.value)
    order_file = write_csv(tmp_path / "orders.csv", [line("E1", "NUK")])  # an order export is not a product file
    with pytest.raises(UnreadableFile) as raised:
        import_products(path=product_csv(tmp_path / "x.csv", [["a"]], header=["订单号", "收货人", "手机"]))
    assert "商品资料" in str(raised.value)
    assert order_file.exists()


def test_the_product_page_lists_and_imports_for_its_roles_only(tmp_path, people):
    make_product(sku="SEEN-1")
    client = Client()
    client.force_login(people["packer"])
    assert client.get("/products/").status_code in (302, 403)
    client.force_login(people["finance"])
    page = client.get("/products/").content.decode()
    assert "SEEN-1" in page and 'id="nav-products"' in page
    path = product_csv(tmp_path / "p.csv", [["NEW-9", "新品", EAN, "", "9.90", "", "否", "是"]])
    with path.open("rb") as upload:
        response = client.post("/products/import/", {"file": upload, "mode": "preview"})
    run = ImportRun.objects.get(kind=ImportKind.PRODUCTS)
    assert response["Location"].endswith(f"/erp/imports/{run.pk}/") and run.dry_run
    tasks.run_import(run.pk)
    run.refresh_from_db()
    assert (run.state, run.created_count) == (ImportState.DONE, 1) and not Product.objects.filter(sku_code="NEW-9").exists()
    client.post(f"/erp/imports/{run.pk}/confirm/")
    confirmed = ImportRun.objects.get(preview_of=run)
    assert confirmed.kind == ImportKind.PRODUCTS
    tasks.run_import(confirmed.pk)
    assert Product.objects.get(sku_code="NEW-9").is_gift is True
    assert "商品资料" in client.get(f"/erp/imports/{confirmed.pk}/").content.decode()


def test_one_step_recovery_imports_the_missing_products_and_reruns_the_refused_orders(tmp_path, people):
    known = make_product(sku="KNOWN-1")
    client = Client()
    client.force_login(people["finance"])
    orders = write_csv(tmp_path / "orders.csv", [line("R1", known.sku_code), line("R2", "NEW-A"), line("R3", "NEW-B")])
    with orders.open("rb") as upload:
        client.post("/erp/imports/", {"file": upload, "mode": "import"})
    order_run = ImportRun.objects.get(kind=ImportKind.ORDERS)
    tasks.run_import(order_run.pk)
    order_run.refresh_from_db()
    assert (order_run.created_count, order_run.rejected_count, order_run.unknown_skus) == (1, 2, ["NEW-A", "NEW-B"])
    page = client.get(f"/erp/imports/{order_run.pk}/").content.decode()
    assert 'id="recover-form"' in page and "NEW-A" in page

    # The sheet of the missing codes comes back filled in and goes through the one step.
    sheet = client.get(f"/erp/imports/{order_run.pk}/missing-products.csv").content.decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(sheet)))
    assert rows[0][:3] == ["商品编码", "商品名称", "国际条码"] and [row[0] for row in rows[1:]] == ["NEW-A", "NEW-B"]
    rows[1][1:3] = ["新品A", "111"]
    rows[2][1:3] = ["新品B", "222"]
    filled = product_csv(tmp_path / "filled.csv", rows[1:], header=rows[0])
    with filled.open("rb") as upload:
        response = client.post("/products/import/", {"file": upload, "mode": "import", "recovers": order_run.pk})
    product_run = ImportRun.objects.get(kind=ImportKind.PRODUCTS)
    assert product_run.recovers == order_run and response["Location"].endswith(f"/erp/imports/{product_run.pk}/")
    tasks.run_import(product_run.pk)
    rerun = ImportRun.objects.get(rerun_after=product_run)
    assert rerun.kind == ImportKind.ORDERS and rerun.file.name == order_run.file.name
    tasks.run_import(rerun.pk)
    rerun.refresh_from_db()
    assert (rerun.created_count, rerun.unchanged_count, rerun.rejected_count, rerun.unknown_skus) == (2, 1, 0, [])
    assert set(Order.objects.values_list("order_number", flat=True)) == {"R1", "R2", "R3"}
    product_page = client.get(f"/erp/imports/{product_run.pk}/").content.decode()
    assert 'id="rerun-link"' in product_page and 'id="recovers"' in product_page


def test_a_recovery_for_a_run_that_does_not_exist_is_not_found(tmp_path, people):
    client = Client()
    client.force_login(people["finance"])
    path = product_csv(tmp_path / "p.csv", [["X", "x", EAN, "", "", "", "", ""]])
    with path.open("rb") as upload:
        assert client.post("/products/import/", {"file": upload, "mode": "import", "recovers": "999999"}).status_code == 404
