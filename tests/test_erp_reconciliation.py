"""The ERP sync check and the daily ERP export."""

from __future__ import annotations

import datetime
from decimal import Decimal
from io import StringIO

import pytest
import time_machine
from django.core import mail
from django.core.management import call_command
from django.utils import timezone
from openpyxl import load_workbook

from integrations.erp.exporter import EXPORT_COLUMNS, daily_export_produce
from integrations.erp.importer import import_orders
from integrations.erp.models import DailyExport, ReconciliationRun
from orders.models import Order
from tests.conftest import PASSWORD, make_order, make_product
from tests.erp_fixtures import fast_passwords, line, write_csv  # noqa: F401 (autouse)
from workflows.erp_bridge import erp_sync_check, reconciliation_upload_execute
from workflows.models import Alert

pytestmark = pytest.mark.django_db
DAY = datetime.date(2024, 5, 1)


def at(hour: int, day: datetime.date = DAY) -> datetime.datetime:
    return timezone.make_aware(datetime.datetime.combine(day, datetime.time(hour)))


@pytest.fixture
def day_orders(people):
    people["finance"].email = "finance@beile.example"
    people["finance"].save()
    people["supervisor"].email = "boss@beile.example"
    people["supervisor"].save()
    product = make_product(sku="NUK-AFZ-02", price="100.00")
    orders = [make_order(order_number=f"R{n:04d}", lines=[(product, 1)], placed_at=at(9 + n % 12)) for n in range(200)]
    # Midnight in Beijing belongs to the next business day; 23:59 to this one.
    make_order(order_number="NEXTDAY", lines=[(product, 1)], placed_at=at(0, DAY + datetime.timedelta(days=1)))
    Order.objects.filter(order_number="R0000").update(refund_amount=Decimal("100.00"))
    return orders


def erp_file(tmp_path, numbers_and_amounts, refunded=("R0000",)):
    rows = [
        line(
            number,
            "NUK-AFZ-02",
            price=amount,
            total=amount,
            placed="2024-05-01 12:00:00",
            refund=amount if number in refunded else "0",
        )
        for number, amount in numbers_and_amounts
    ]
    return write_csv(tmp_path / "erp.csv", rows)


def test_exactly_half_a_percent_is_within_tolerance(tmp_path, day_orders):
    # 200 ours vs 201 ERP (one ERP-only order): 1/201 = 0.4975% on count, amount likewise.
    rows = [(f"R{n:04d}", "100.00") for n in range(200)] + [("ERPONLY", "100.00")]
    run = erp_sync_check(business_date=DAY, erp_path=erp_file(tmp_path, rows), erp_file_name="erp.csv", by="test")
    assert run.order_count_diff_pct <= Decimal("0.5") and run.total_amount_diff_pct <= Decimal("0.5")
    assert run.refund_count_diff_pct == 0
    assert not run.over_tolerance
    assert mail.outbox == [] and not Alert.objects.exists()
    assert run.only_erp == ["ERPONLY"] and run.only_ours == []
    assert run.consistency_rate == Decimal("99.50")


def test_over_tolerance_mails_finance_and_supervisors_once_per_date(tmp_path, day_orders):
    # Two amounts differ by ¥60 each and one order is missing at the ERP: amount off by 1.1%.
    rows = [(f"R{n:04d}", "100.00") for n in range(1, 200)]
    rows[0] = ("R0001", "40.00")
    rows[1] = ("R0002", "40.00")
    path = erp_file(tmp_path, rows + [("R0000", "100.00")])
    first = erp_sync_check(business_date=DAY, erp_path=path, erp_file_name="erp.csv", by="小财")
    assert first.over_tolerance and first.alerted
    assert first.total_amount_diff_pct > Decimal("0.5")
    assert [m["order_number"] for m in first.amount_mismatches] == ["R0001", "R0002"]
    assert first.amount_mismatches[0] == {"order_number": "R0001", "ours": "100.00", "erp": "40.00"}
    assert len(mail.outbox) == 1
    assert sorted(mail.outbox[0].to) == ["boss@beile.example", "finance@beile.example"]
    assert "2024-05-01" in mail.outbox[0].subject
    assert sorted(Alert.objects.values_list("for_role", flat=True)) == ["finance", "supervisor"]

    second = erp_sync_check(business_date=DAY, erp_path=path, erp_file_name="erp.csv", by="小财")
    assert second.over_tolerance and not second.alerted
    assert len(mail.outbox) == 1 and Alert.objects.count() == 2
    assert ReconciliationRun.objects.count() == 2  # every run is kept


def test_command_exit_codes_and_day_summary(tmp_path, day_orders):
    summary = tmp_path / "summary.csv"
    summary.write_text("日期,订单数,总金额,退款单数\n2024-04-30,5,500,0\n2024-05-01,200,20000.00,1\n", encoding="utf-8")
    out = StringIO()
    call_command("reconcile_erp", "--date", "2024-05-01", "--erp", str(summary), stdout=out)
    assert "within tolerance" in out.getvalue() and "consistency 100.00%" in out.getvalue()
    summary.write_text("日期,订单数,总金额,退款单数\n2024-05-01,190,19000.00,1\n", encoding="utf-8")
    with pytest.raises(SystemExit) as exit_:
        call_command("reconcile_erp", "--date", "2024-05-01", "--erp", str(summary), stdout=StringIO())
    assert exit_.value.code == 1
    run = ReconciliationRun.objects.first()
    assert run.erp_is_summary and run.erp_order_count == 190


def test_finance_runs_the_check_in_the_browser_form(client, tmp_path, day_orders):
    path = erp_file(tmp_path, [(f"R{n:04d}", "100.00") for n in range(200)])
    client.login(username="finance", password=PASSWORD)
    with path.open("rb") as handle:
        response = client.post("/erp/reconciliations/", {"date": "2024-05-01", "erp_file": handle})
    assert response.status_code == 302
    # A worker checks the file (the task's body here); the page shows the result once it is done.
    reconciliation_upload_execute(run_id=ReconciliationRun.objects.get().pk)
    page = client.get(response["Location"]).content.decode()
    assert "100.00%" in page and 'id="reconciliation-measures"' in page


@time_machine.travel(datetime.datetime(2024, 5, 1, 20, 0, tzinfo=datetime.timezone(datetime.timedelta(hours=8))), tick=False)
def test_daily_export_has_fixed_columns_exact_amounts_and_reads_back(tmp_path):
    product = make_product(sku="YN-MFMF-225", price="0.10")
    make_order(order_number="123456789012345678", lines=[(product, 3)])  # total 0.30, not 0.30000000000000004
    out = tmp_path / "erp.xlsx"
    call_command("export_erp", "--date", "2024-05-01", "--out", str(out), stdout=StringIO())
    sheet = load_workbook(out).active
    rows = list(sheet.iter_rows(values_only=True))
    assert list(rows[0]) == EXPORT_COLUMNS
    record = dict(zip(rows[0], rows[1], strict=True))
    assert record["订单号"] == "123456789012345678"  # text, not 1.23E+17
    assert str(record["应付金额"]) == "0.3" and str(record["商品单价"]) == "0.1"
    assert record["新增或变更"] == "新增"
    # The file the ERP receives is one our own import reads as "nothing changed".
    assert import_orders(path=out, dry_run=True).nothing_changed


def test_daily_export_is_kept_once_per_finished_day(people):
    make_order(order_number="K1")
    today = timezone.localdate()
    with time_machine.travel(timezone.now() + datetime.timedelta(days=1)):
        first = daily_export_produce(business_date=today)
        again = daily_export_produce(business_date=today)
    assert first.pk == again.pk and again.produced_at == first.produced_at
    assert first.order_count == 1 and DailyExport.objects.count() == 1


def test_erp_pages_are_for_finance_and_supervisors(client, people):
    assert client.get("/erp/").status_code == 302  # anonymous → login
    for role, expected in (("finance", 200), ("supervisor", 200), ("packer", 403), ("outsider", 403)):
        client.login(username=role, password=PASSWORD)
        assert client.get("/erp/").status_code == expected, role
        client.logout()
