"""Exports of a view (issue 17): CSV streamed, .xlsx by a task; formula-safe, identifiers as
text, amounts exact, phones as the exporting person may see them; memory flat at 100,000 orders."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from decimal import Decimal

import pytest
from django.db import connection
from django.urls import reverse
from openpyxl import load_workbook

from orders.models import Customer
from tests.conftest import PASSWORD, ROOT, database_url_for_subprocess, make_order, require_postgres
from workflows import exports
from workflows.models import ExportRun, RunState


def _csv(response) -> list[list[str]]:
    body = b"".join(response.streaming_content).decode("utf-8")
    assert body.startswith("\ufeff")
    return list(csv.reader(io.StringIO(body[1:])))


@pytest.mark.django_db
def test_csv_is_streamed_formula_safe_exact_and_masked(client, people):
    hostile = make_order(status="paid", phone="13812345678", order_number="00012345678901234567")
    hostile.receiver_name = '=HYPERLINK("http://evil.example","点我领券")'
    hostile.total_amount = Decimal("1234567.89")
    hostile.save(update_fields=["receiver_name", "total_amount"])
    make_order(status="picking")
    client.login(username="packer", password=PASSWORD)
    response = client.get(reverse("export_csv") + "?status=paid")
    assert response.streaming and response["Content-Type"].startswith("text/csv")
    rows = _csv(response)
    assert rows[0][0] == "订单号" and len(rows) == 2
    row = rows[1]
    assert row[0] == "00012345678901234567"  # the identifier as typed, leading zeros and all
    assert row[4] == "'" + hostile.receiver_name  # never a formula in Excel
    assert row[5] == "138****5678"  # the packer's screen masks it, so does the packer's export
    assert row[8] == "1234567.89"
    client.login(username="service", password=PASSWORD)
    assert _csv(client.get(reverse("export_csv") + "?status=paid"))[1][5] == "13812345678"
    client.login(username="outsider", password=PASSWORD)
    assert client.get(reverse("export_csv")).status_code == 403


@pytest.mark.django_db
def test_xlsx_export_runs_as_a_task_with_progress(client, people, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    order = make_order(status="paid", order_number="00098765432109876543")
    order.receiver_name = "=cmd|' /C calc'!A0"
    order.total_amount = Decimal("0.10")
    order.save(update_fields=["receiver_name", "total_amount"])
    client.login(username="reviewer", password=PASSWORD)
    response = client.post(reverse("export_xlsx"), {"status": "paid"})
    run = ExportRun.objects.get()
    assert response["Location"] == reverse("export_run", args=[run.pk])
    assert 'id="export-bar"' in client.get(response["Location"]).content.decode()
    exports.export_execute(run_id=run.pk)
    run.refresh_from_db()
    assert (run.state, run.total, run.processed) == (RunState.DONE, 1, 1)
    assert exports.export_execute(run_id=run.pk) is None  # a redelivered task does nothing
    download = client.get(reverse("export_download", args=[run.pk]))
    sheet = load_workbook(io.BytesIO(b"".join(download.streaming_content))).active
    rows = list(sheet.iter_rows(values_only=False))
    number, name, amount = rows[1][0], rows[1][4], rows[1][8]
    assert number.value == "00098765432109876543" and number.data_type == "s" and number.number_format == "@"
    assert name.value == "=cmd|' /C calc'!A0" and name.data_type == "s"
    assert Decimal(str(amount.value)) == Decimal("0.10")
    client.login(username="finance", password=PASSWORD)
    assert client.get(reverse("export_run", args=[run.pk])).status_code == 404  # another person's file


CHILD = """
import json, os, resource, sys, time
sys.path.insert(0, {root!r})
os.environ["DJANGO_SETTINGS_MODULE"] = "beile.settings"
import django
django.setup()
from pathlib import Path
from django.contrib.auth.models import User
from orders import selectors
from workflows import exports
user = User.objects.get(username="supervisor")
filters = selectors.OrderFilters.from_params({filters!r})
baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
started, cpu = time.perf_counter(), time.process_time()
if {kind!r} == "csv":
    rows = sum(chunk.count("\\n") for chunk in exports.csv_stream(user=user, filters=filters)) - 1
else:
    rows = exports.write_xlsx(user=user, filters=filters, out=Path({out!r}))
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({{"rows": rows, "peak_mb": peak, "growth_mb": peak - baseline,
                  "seconds": time.perf_counter() - started, "cpu": time.process_time() - cpu}}))
"""


def _export_in_child(kind: str, filters: dict, out) -> dict:
    script = CHILD.format(root=str(ROOT), filters=filters, kind=kind, out=str(out))
    env = {"DATABASE_URL": database_url_for_subprocess(), "DEBUG": "1", "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.django_db(transaction=True)
def test_an_export_of_100000_orders_keeps_memory_flat(people, tmp_path):
    """10,000 and 100,000 orders exported in a child process each: the peak memory of the larger
    export is within a few megabytes of the smaller one (rows stream through, nothing is held)."""
    require_postgres()
    customer = Customer.objects.create(phone="13900000002", name="导出客户")
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO orders_order (order_number, source, customer_id, receiver_name, receiver_phone, province, city, district,
              address, total_amount, paid_amount, shipping_fee, refund_amount, carrier_code, requires_cold_chain, buyer_message,
              status, version, stage_entered_at, cancel_reason, is_held, hold_reason, hold_note, is_rush, rush_reason, placed_at,
              created_at, updated_at, stage_paused_seconds, packed_unverified)
            SELECT 'EX' || lpad(i::text, 10, '0'), CASE WHEN i <= 10000 THEN 'manual' ELSE 'erp' END, %s, '=1+1 收货人' || i,
              '139' || lpad(i::text, 8, '0'), '浙江省', '杭州市', '萧山区', '市心北路' || i || '号', 199.90 + i, 199.90 + i, 0, 0,
              'zhongtong', false, '', 'paid', 1, now(), '', false, '', '', false, '', now() - i * interval '1 second', now(), now(),
              0, false
            FROM generate_series(1, 100000) AS i
            """,
            [customer.pk],
        )
    measured = {}
    for kind in ("csv", "xlsx"):
        small = _export_in_child(kind, {"source": "manual"}, tmp_path / "small.xlsx")
        large = _export_in_child(kind, {}, tmp_path / "large.xlsx")
        assert (small["rows"], large["rows"]) == (10_000, 100_000)
        measured[kind] = (small, large)
        print(f"{kind}: 10,000 orders {small}; 100,000 orders {large}")
        # Holding the rows would cost ~1 KB an order (100 MB here); streaming costs a few MB.
        assert large["growth_mb"] < 25 and large["peak_mb"] - small["peak_mb"] < 25, measured
    sheet = load_workbook(tmp_path / "large.xlsx", read_only=True).worksheets[0]
    first = next(sheet.iter_rows(min_row=2, max_row=2, values_only=True))
    assert first[0] == "EX0000000001" and first[4] == "=1+1 收货人1"
