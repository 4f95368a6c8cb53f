"""The health page, its CSV and the orders behind each number; the nightly storage of the day's
values (idempotent, also with two beat processes at once) and the compute_measures command."""

import csv
import datetime
import io
import threading
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.conf import settings
from django.core.management import call_command
from django.db import connection

from integrations.erp.models import ReconciliationRun
from orders.models import AfterSalesCase, Order, OrderEvent
from tests.conftest import make_order, require_postgres
from workflows.health import selectors
from workflows.health.measures import MEASURES, MEASURES_BY_KEY, WRONG_SHIPMENT_CLAIM_DAYS
from workflows.health.models import DailyMeasure
from workflows.health.services import measures_store_day
from workflows.health.tasks import store_yesterdays_measures

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = datetime.datetime(2026, 1, 20, 15, 0, tzinfo=SHANGHAI)
TODAY = NOW.date()
YESTERDAY = TODAY - datetime.timedelta(days=1)


@pytest.fixture
def frozen_now():
    with time_machine.travel(NOW, tick=False):
        yield


def slow_import(hours_ago: float, delay_minutes: float):
    recorded = NOW - datetime.timedelta(hours=hours_ago)
    order = make_order()
    OrderEvent.objects.create(
        order=order,
        kind="import_update",
        occurred_at=recorded,
        source_time=recorded - datetime.timedelta(minutes=delay_minutes),
        actor_name="ERP",
    )
    return order


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["/health/", "/health/measures.csv", "/health/status_update_delay/"])
def test_health_pages_are_for_supervisors_and_finance(client, people, url):
    for role in ("sales", "reviewer", "dispatcher", "packer", "courier", "service", "finance", "supervisor", "outsider"):
        client.force_login(people[role])
        assert client.get(url).status_code == (200 if role in ("supervisor", "finance") else 403), role
    client.logout()
    assert client.get(url).status_code == 302


@pytest.mark.django_db
def test_page_shows_every_measure_with_today_live_and_stored_history(client, people, frozen_now):
    slow_import(hours_ago=2, delay_minutes=40)  # today: 40 min, over the 15 min target
    DailyMeasure.objects.create(key="status_update_delay", day=YESTERDAY, value=8.0, sample_size=100)
    client.force_login(people["supervisor"])

    page = client.get("/health/", HTTP_ACCEPT_LANGUAGE="en").content.decode()

    for measure in MEASURES:
        assert f'id="measure-{measure.key}"' in page
    assert page.count('<svg class="chart"') == len(MEASURES)
    assert 'id="measure-status_update_delay" class="measure state-bad"' in page
    assert 'id="measure-wrong_shipment_rate" class="measure state-none"' in page
    assert "<title>01-19: 8.0 min</title>" in page  # yesterday's stored value
    assert "<title>01-20: 40.0 min</title>" in page  # today's, computed live
    assert 'style="' not in page  # the CSP refuses inline styles


@pytest.mark.django_db
def test_chart_draws_good_bad_and_missing_days_against_the_target():
    measure = MEASURES_BY_KEY["status_update_delay"]
    days = [datetime.date(2026, 1, d) for d in (18, 19, 20)]
    chart = selectors.chart(measure, [(days[0], 10.0), (days[1], None), (days[2], 30.0)])
    assert [bar.state for bar in chart.bars] == ["good", "none", "bad"]
    # The scale tops at 110% of the largest value: 30 min fills the chart, 10 min a third of it.
    assert chart.bars[2].height > 2.9 * chart.bars[0].height
    assert chart.bars[2].y < chart.target_y < chart.bars[0].y


@pytest.mark.django_db
def test_csv_has_one_row_per_measure(client, people, frozen_now):
    slow_import(hours_ago=1, delay_minutes=5)
    client.force_login(people["finance"])
    response = client.get("/health/measures.csv", HTTP_ACCEPT_LANGUAGE="en")
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows[0][:4] == ["Measure", "Target", "Day", "Value"]
    assert len(rows) == 1 + len(MEASURES)
    delay = next(row for row in rows if row[0] == "Status update delay")
    assert delay[1:5] == ["≤ 15.0 min", "2026-01-20", "5.0", "1"]
    assert delay[6] == "on target"


@pytest.mark.django_db
def test_orders_behind_a_measure_link_to_their_cards(client, people, frozen_now):
    late = slow_import(hours_ago=3, delay_minutes=50)
    quick = slow_import(hours_ago=3, delay_minutes=2)
    shipped = make_order(status="shipped", shipped_at=NOW - datetime.timedelta(days=1))
    AfterSalesCase.objects.create(order=shipped, kind="wrong_item", reason="发错规格", opened_at=NOW - datetime.timedelta(days=1))
    client.force_login(people["supervisor"])

    page = client.get("/health/status_update_delay/").content.decode()
    assert page.index(late.order_number) < page.index(quick.order_number)  # worst first
    assert f'href="/orders/{late.order_number}/"' in page
    assert page.count('class="off-target"') == 1

    past = client.get(f"/health/wrong_shipment_rate/?day={YESTERDAY}").content.decode()
    assert shipped.order_number in past
    assert client.get("/health/nonsense/").status_code == 404
    assert client.get("/health/status_update_delay/?day=yesterday").status_code == 404


@pytest.mark.django_db
def test_nightly_task_stores_yesterday_once_and_a_rerun_replaces_the_values(frozen_now):
    slow_import(hours_ago=20, delay_minutes=6)  # 2026-01-19 19:00

    # Every measure for yesterday, and the wrong-shipment rate again for the six days before it.
    assert store_yesterdays_measures() == len(MEASURES) + WRONG_SHIPMENT_CLAIM_DAYS - 1
    delay = DailyMeasure.objects.get(key="status_update_delay", day=YESTERDAY)
    assert delay.value == 6

    slow_import(hours_ago=21, delay_minutes=10)
    store_yesterdays_measures()
    assert DailyMeasure.objects.filter(day=YESTERDAY).count() == len(MEASURES)
    assert DailyMeasure.objects.get(key="status_update_delay", day=YESTERDAY).value == 8  # median of 6 and 10


@pytest.mark.django_db(transaction=True)
def test_two_beat_processes_storing_the_same_day_write_one_row_per_measure():
    require_postgres()
    barrier = threading.Barrier(2)
    errors = []

    def store():
        try:
            barrier.wait()
            measures_store_day(day=YESTERDAY)
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=store) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert DailyMeasure.objects.filter(day=YESTERDAY).count() == len(MEASURES)


@pytest.mark.django_db
def test_compute_measures_command_stores_a_range_of_days(frozen_now):
    out = io.StringIO()
    call_command("compute_measures", date="2026-01-18", days=3, stdout=out)
    assert sorted(set(DailyMeasure.objects.values_list("day", flat=True))) == [
        datetime.date(2026, 1, 16),
        datetime.date(2026, 1, 17),
        datetime.date(2026, 1, 18),
    ]
    assert DailyMeasure.objects.count() == 3 * len(MEASURES)
    assert "2026-01-18: status_update_delay=—" in out.getvalue()


def test_beat_runs_the_nightly_storage_and_the_daily_sampling():
    schedule = {entry["task"]: entry["schedule"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    nightly = schedule["workflows.health.tasks.store_yesterdays_measures"]
    sampling = schedule["workflows.health.tasks.sample_status_checks"]
    assert (nightly.hour, nightly.minute) == ({0}, {20})
    assert (sampling.hour, sampling.minute) == ({10}, {0})


@pytest.mark.django_db
def test_orders_over_their_limit_lead_to_the_order_lists_overdue_view(client, people, frozen_now):
    late = make_order(status="picking")
    Order.objects.filter(pk=late.pk).update(stage_due_at=NOW - datetime.timedelta(hours=1))
    client.force_login(people["supervisor"])

    page = client.get("/health/").content.decode()
    assert 'id="measure-orders_over_limit" class="measure state-bad"' in page
    assert 'href="/orders/?overdue=1"' in page
    response = client.get("/health/orders_over_limit/")
    assert (response.status_code, response["Location"]) == (302, "/orders/?overdue=1")
    assert late.order_number in client.get(response["Location"]).content.decode()


@pytest.mark.django_db
def test_erp_only_order_numbers_are_listed_without_a_card_link(client, people, frozen_now):
    ours = make_order()
    ReconciliationRun.objects.create(
        business_date=YESTERDAY,
        ran_by="吴敏",
        erp_file_name="erp.csv",
        our_order_count=1,
        our_total_amount=Decimal("10.00"),
        our_refund_count=0,
        erp_order_count=1,
        erp_total_amount=Decimal("10.00"),
        erp_refund_count=0,
        order_count_diff_pct=Decimal("0"),
        total_amount_diff_pct=Decimal("0"),
        refund_count_diff_pct=Decimal("0"),
        consistency_rate=Decimal("0.00"),
        only_ours=[ours.order_number],
        only_erp=["ERP0001"],
    )
    client.force_login(people["finance"])
    page = client.get(f"/health/erp_consistency/?day={YESTERDAY}").content.decode()
    assert f'href="/orders/{ours.order_number}/"' in page
    assert "ERP0001" in page and 'href="/orders/ERP0001/"' not in page


@pytest.mark.django_db
def test_nightly_task_stores_the_wrong_shipment_rate_again_while_claims_arrive():
    shipped_on_the_19th = [make_order(status="shipped", shipped_at=NOW - datetime.timedelta(days=1)) for _ in range(4)]
    with time_machine.travel(datetime.datetime(2026, 1, 20, 0, 20, tzinfo=SHANGHAI), tick=False):
        store_yesterdays_measures()
    assert DailyMeasure.objects.get(key="wrong_shipment_rate", day=YESTERDAY).value == 0

    AfterSalesCase.objects.create(order=shipped_on_the_19th[0], kind="wrong_item", reason="发错规格", opened_at=NOW)
    with time_machine.travel(datetime.datetime(2026, 1, 21, 0, 20, tzinfo=SHANGHAI), tick=False):
        store_yesterdays_measures()
    assert DailyMeasure.objects.get(key="wrong_shipment_rate", day=YESTERDAY).value == 25.0  # 1 of 4, claimed a day later
    # A measure that settles with its day is not stored again.
    assert DailyMeasure.objects.get(key="status_update_delay", day=YESTERDAY).computed_at == datetime.datetime(
        2026, 1, 20, 0, 20, tzinfo=SHANGHAI
    )
