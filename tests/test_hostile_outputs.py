"""Hostile values in what the cockpit writes: no spreadsheet or CSV it produces holds a formula
(orders/exports.py is the one rule), and the daily export still reads back as the same orders."""

from __future__ import annotations

import csv
import datetime
import io
import re
import zipfile

import pytest
import time_machine
from django.core.files.uploadedfile import SimpleUploadedFile

from integrations.erp import services as erp_services
from integrations.erp.exporter import write_export
from integrations.erp.importer import import_orders
from integrations.erp.models import ImportRun, ReconciliationRun
from orders.exports import FORMULA_TRIGGERS, csv_safe
from orders.models import Order
from tests.conftest import PASSWORD, ROOT, make_order, make_product
from tests.erp_fixtures import fast_passwords, line, write_csv  # noqa: F401 (autouse)
from workflows.erp_bridge import reconciliation_upload_execute
from workflows.models import Alert

pytestmark = pytest.mark.django_db

HYPERLINK = '=HYPERLINK("http://evil.example","点我领券")'
DDE = "=cmd|' /C calc'!A0"
BEIJING = datetime.timezone(datetime.timedelta(hours=8))


def sheet_xml(path) -> str:
    with zipfile.ZipFile(path) as archive:
        return "".join(archive.read(name).decode() for name in archive.namelist() if name.startswith("xl/worksheets/"))


def csv_cells(content: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(content.decode("utf-8-sig"))))


def test_the_rule_quotes_every_trigger_and_leaves_numbers_and_plain_text():
    for trigger in FORMULA_TRIGGERS:
        assert csv_safe(f"{trigger}1+1") == f"'{trigger}1+1"
    assert csv_safe("＝SUM(A1:A9)") == "'＝SUM(A1:A9)"  # full width: Excel in a Chinese locale evaluates it
    assert csv_safe("王丽") == "王丽" and csv_safe("") == ""
    assert csv_safe(-5) == -5 and csv_safe(None) is None


@time_machine.travel(datetime.datetime(2024, 5, 1, 20, 0, tzinfo=BEIJING), tick=False)
def test_daily_export_holds_no_formula_and_reads_back_as_the_same_orders(tmp_path):
    product = make_product(sku="NUK-HOSTILE-1", price="59.90")
    product.name = DDE
    product.save(update_fields=["name"])
    hostile = make_order(order_number="X0001", lines=[(product, 2)], buyer_message="@SUM(1+1)*cmd|' /C calc'!A0")
    building = make_order(order_number="X0002", buyer_message="+86 请电话联系")
    Order.objects.filter(pk=hostile.pk).update(receiver_name=HYPERLINK, address=DDE)
    Order.objects.filter(pk=building.pk).update(receiver_name="-李雷", address="-1号楼 2单元")
    out = tmp_path / "erp.xlsx"
    assert write_export(datetime.date(2024, 5, 1), out) == (2, 2)

    xml = sheet_xml(out)
    assert "<f>" not in xml and "<f " not in xml, "a cell of the export is a live formula"
    assert "evil.example" in xml  # written, as text
    # The cells that start like a formula carry Excel's quotePrefix style: editing one keeps it text.
    with zipfile.ZipFile(out) as archive:
        styles = archive.read("xl/styles.xml").decode()
    assert re.search(r'<xf [^>]*quotePrefix="1"', styles)

    summary = import_orders(path=out, dry_run=True)
    assert summary.nothing_changed and summary.unchanged == 2, summary.errors
    hostile.refresh_from_db()
    building.refresh_from_db()
    assert (hostile.receiver_name, hostile.address) == (HYPERLINK, DDE)
    assert hostile.lines.get().product_name == DDE
    assert (building.receiver_name, building.address) == ("-李雷", "-1号楼 2单元")


def test_import_error_report_quotes_values_that_excel_would_evaluate(client, people, tmp_path, settings):
    settings.MEDIA_ROOT = tmp_path / "media"
    make_product(sku="NUK-AFZ-02")
    rows = [line(DDE, "NUK-AFZ-02"), line("E1001", "NO-SUCH-SKU", name=HYPERLINK), line("+E1002", "NUK-AFZ-02")]
    path = write_csv(tmp_path / "erp.csv", rows)
    upload = SimpleUploadedFile("erp.csv", path.read_bytes(), content_type="text/csv")
    run = erp_services.import_run_start(upload=upload, user=people["finance"], dry_run=True)
    erp_services.import_run_execute(run=ImportRun.objects.get(pk=run.pk))  # the task's body
    assert ImportRun.objects.get(pk=run.pk).errors

    client.login(username="finance", password=PASSWORD)
    response = client.get(f"/erp/imports/{run.pk}/errors.csv")
    assert response.status_code == 200
    cells = [cell for row in csv_cells(response.content) for cell in row]
    assert f"'{DDE}" in cells  # the refused order number, quoted
    assert not [cell for cell in cells if cell.startswith(FORMULA_TRIGGERS)]


def test_every_csv_the_cockpit_writes_goes_through_the_one_rule():
    """The health CSV and the error report hold no trigger today only because of orders/exports.py:
    a new writer must use it too, so a plain csv.writer outside that module fails here."""
    writers = [
        f"{path.relative_to(ROOT)}:{number}"
        for folder in ("beile", "orders", "workflows", "integrations")
        for path in (ROOT / folder).rglob("*.py")
        if path != ROOT / "orders" / "exports.py"
        for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if re.search(r"csv\.(writer|DictWriter)\(", text)
    ]
    assert writers == []


def test_health_csv_still_downloads_through_the_rule(client, people):
    client.login(username="supervisor", password=PASSWORD)
    response = client.get("/health/measures.csv")
    assert response.status_code == 200
    rows = csv_cells(response.content)
    assert len(rows) > 1 and not [cell for row in rows for cell in row if cell.startswith(FORMULA_TRIGGERS)]


# --- The reconciliation of an upload runs as a task, and a broken sheet is a message ----------------


def truncated_xlsx(tmp_path) -> bytes:
    """A real .xlsx cut in half: the zip's directory is gone."""
    from openpyxl import Workbook

    workbook = Workbook()
    workbook.active.append(["订单号", "下单时间", "应付金额"])
    for n in range(200):
        workbook.active.append([f"R{n:04d}", "2024-05-01 12:00:00", "100.00"])
    path = tmp_path / "whole.xlsx"
    workbook.save(path)
    data = path.read_bytes()
    return data[: len(data) // 2]


@pytest.mark.parametrize(
    "name,content",
    [
        ("erp.xlsx", "truncated"),
        ("erp.xlsx", b"PK\x03\x04 not really a zip"),
        ("erp.csv", "订单号,下单时间\n".encode() + b"\xff\xfe\x00garbage"),
    ],
)
def test_a_broken_sheet_uploaded_for_the_sync_check_is_a_chinese_message_on_the_run_page(
    client, people, tmp_path, settings, name, content
):
    settings.MEDIA_ROOT = tmp_path / "media"
    client.raise_request_exception = False
    content = truncated_xlsx(tmp_path) if content == "truncated" else content
    client.login(username="finance", password=PASSWORD)
    upload = SimpleUploadedFile(name, content)
    response = client.post("/erp/reconciliations/", {"date": "2024-05-01", "erp_file": upload}, HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert response.status_code == 302, response.status_code
    run = ReconciliationRun.objects.get()
    assert response["Location"] == f"/erp/reconciliations/{run.pk}/"
    assert run.state == "queued" and run.file  # kept for the worker, which the web request does not wait for

    reconciliation_upload_execute(run_id=run.pk)  # the task's body, as the worker runs it
    run.refresh_from_db()
    assert run.state == "failed" and run.finished_at
    assert re.search(r"[\u4e00-\u9fff]", run.file_error), run.file_error  # in the finance clerk's words
    page = client.get(response["Location"], HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert 'id="reconciliation-error"' in page and run.file_error in page.replace("&quot;", '"').replace("&#x27;", "'")
    assert "hx-trigger" not in page  # finished: no more polling
    assert not Alert.objects.exists()


def test_the_sync_check_page_polls_while_the_worker_reads_then_shows_the_result(client, people, tmp_path, settings):
    settings.MEDIA_ROOT = tmp_path / "media"
    product = make_product(sku="NUK-AFZ-02", price="100.00")
    for n in range(3):
        make_order(order_number=f"R{n:04d}", lines=[(product, 1)], placed_at=datetime.datetime(2024, 5, 1, 12, tzinfo=BEIJING))
    rows = [line(f"R{n:04d}", "NUK-AFZ-02", price="100.00", total="100.00", placed="2024-05-01 12:00:00") for n in range(3)]
    path = write_csv(tmp_path / "erp.csv", rows)
    client.login(username="finance", password=PASSWORD)
    with path.open("rb") as handle:
        response = client.post("/erp/reconciliations/", {"date": "2024-05-01", "erp_file": handle})
    run = ReconciliationRun.objects.get()
    waiting = client.get(response["Location"]).content.decode()
    assert 'id="reconciliation-progress"' in waiting and 'hx-trigger="every 500ms"' in waiting
    home = client.get("/erp/").content.decode()
    assert "reconciliation-runs" in home and "100.00%" not in home

    reconciliation_upload_execute(run_id=run.pk)
    assert reconciliation_upload_execute(run_id=run.pk) is None  # a redelivered task does nothing
    fragment = client.get(response["Location"], HTTP_HX_REQUEST="true").content.decode()
    assert fragment.lstrip().startswith('<div id="reconciliation-result"')
    assert "100.00%" in fragment and "hx-trigger" not in fragment
    run.refresh_from_db()
    assert run.state == "done" and run.our_order_count == run.erp_order_count == 3
