"""Each health measure on constructed event data whose right answer is worked out by hand,
plus the empty day ("no data yet")."""

import datetime
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.utils import translation

from orders.models import AfterSalesCase, OrderEvent, OrderTag
from tests.conftest import make_order
from workflows.health.measures import (
    MEASURES,
    measure_cross_role_consistency,
    measure_exception_closure,
    measure_status_update_delay,
    measure_wrong_shipment_rate,
)
from workflows.health.models import ConsistencySample, ConsistencyTask
from workflows.models import Ticket

pytestmark = pytest.mark.django_db

SHANGHAI = ZoneInfo("Asia/Shanghai")
DAY = datetime.date(2026, 1, 19)
# "Now" for every test: the afternoon of the next day, so DAY is a finished business day.
NOW = datetime.datetime(2026, 1, 20, 15, 0, tzinfo=SHANGHAI)


@pytest.fixture(autouse=True)
def frozen_now():
    with time_machine.travel(NOW, tick=False):
        yield


def at(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime.datetime:
    return datetime.datetime(2026, 1, day, hour, minute, second, tzinfo=SHANGHAI)


def minutes(n: float) -> datetime.timedelta:
    return datetime.timedelta(minutes=n)


def event(order, occurred_at, source_time):
    return OrderEvent.objects.create(order=order, kind="import_update", occurred_at=occurred_at, source_time=source_time, actor_name="ERP")


@pytest.mark.parametrize("measure", MEASURES, ids=lambda m: m.key)
def test_every_measure_says_no_data_on_an_empty_day(measure):
    result = measure.compute(day=DAY)
    assert result.value is None
    assert result.sample_size == 0
    with translation.override("en"):
        assert measure.format(result.value) == "no data yet"
    assert measure.healthy(result.value) is None


def test_status_update_delay_median_and_p95_of_the_days_events():
    order = make_order()
    event(order, at(19, 0, 0, 0), at(19, 0, 0, 0) - minutes(1))  # the day's first instant counts
    event(order, at(19, 9), at(19, 9) - minutes(2))
    event(order, at(19, 10), at(19, 10) - minutes(5))
    event(order, at(19, 12), at(19, 12) - minutes(10))
    event(order, at(19, 23, 59, 59), at(19, 23, 59, 59) - minutes(30))
    event(order, at(18, 23, 59, 59), at(18, 23, 0))  # the day before (Shanghai time)
    event(order, at(20, 0), at(19, 23, 0))  # recorded the next day: belongs to that day
    OrderEvent.objects.create(order=order, kind="note", occurred_at=at(19, 11), actor_name="小服")  # no source time

    result = measure_status_update_delay(day=DAY)

    # delays 1, 2, 5, 10, 30 min → median 5; nearest-rank p95 = the ceil(0.95 × 5) = 5th = 30.
    assert result.value == 5
    assert result.sample_size == 5
    assert result.detail == {"median": 5, "p95": 30}


def test_status_update_delay_median_of_an_even_count_is_the_mean_of_the_middle_two():
    order = make_order()
    for delay in (2, 5, 10, 30):
        event(order, at(19, 10), at(19, 10) - minutes(delay))
    result = measure_status_update_delay(day=DAY)
    assert result.value == 7.5
    assert result.detail["p95"] == 30  # ceil(0.95 × 4) = 4th


def test_exception_closure_median_of_closed_and_the_open_ones_at_the_end_of_the_day():
    orders = [make_order() for _ in range(6)]
    OrderTag.objects.create(order=orders[0], tag="fuzzy_address", opened_at=at(19, 8), resolved_at=at(19, 9))  # 60 min
    OrderTag.objects.create(order=orders[1], tag="invoice_pending", opened_at=at(18, 22), resolved_at=at(19, 1))  # 180 min
    Ticket.objects.create(order=orders[2], kind="stalled", summary="stalled", opened_at=at(19, 10), closed_at=at(19, 10, 30))  # 30 min
    OrderTag.objects.create(order=orders[3], tag="high_risk_refund", opened_at=at(19, 20))  # open at 24:00, age 240
    Ticket.objects.create(order=orders[4], kind="problem", summary="p", opened_at=at(19, 23), closed_at=at(20, 2))  # open at 24:00, 60
    OrderTag.objects.create(order=orders[5], tag="fuzzy_address", opened_at=at(20, 1), resolved_at=at(20, 3))  # the next day only

    result = measure_exception_closure(day=DAY)

    # closed that day: 30, 60, 180 → median 60; open at midnight: 240 and 60 min old.
    assert result.value == 60
    assert result.sample_size == 3
    assert result.detail == {"median": 60, "open": 2, "oldest_open_minutes": 240}


def test_exception_closure_today_counts_open_ages_until_now():
    order = make_order()
    OrderTag.objects.create(order=order, tag="fuzzy_address", opened_at=at(20, 14))
    result = measure_exception_closure(day=datetime.date(2026, 1, 20))
    assert result.value is None  # nothing closed yet today …
    assert result.detail == {"open": 1, "oldest_open_minutes": 60}  # … but one open for an hour (now is 15:00)


def test_wrong_shipment_rate_is_wrong_or_missing_cases_opened_over_orders_shipped_that_day():
    shipped_today = [make_order(status="shipped", shipped_at=at(19, hour)) for hour in (9, 11, 14, 23)]
    earlier = make_order(status="completed", shipped_at=at(17, 10))
    AfterSalesCase.objects.create(order=earlier, kind="wrong_item", reason="发错规格", opened_at=at(19, 10))
    AfterSalesCase.objects.create(order=shipped_today[0], kind="missing_gift", reason="少发赠品", opened_at=at(19, 20))
    AfterSalesCase.objects.create(order=shipped_today[1], kind="damaged", reason="罐体凹陷", opened_at=at(19, 20))  # not a wrong shipment
    AfterSalesCase.objects.create(order=shipped_today[2], kind="wrong_item", reason="发错", opened_at=at(20, 9))  # the next day

    result = measure_wrong_shipment_rate(day=DAY)

    assert result.value == 50.0  # 2 cases ÷ 4 shipped
    assert result.sample_size == 4
    assert result.detail == {"wrong_cases": 2, "shipped": 4}


def test_wrong_shipment_rate_without_shipments_is_no_data_even_with_cases():
    order = make_order(status="completed", shipped_at=at(17, 10))
    AfterSalesCase.objects.create(order=order, kind="wrong_item", reason="发错规格", opened_at=at(19, 10))
    result = measure_wrong_shipment_rate(day=DAY)
    assert result.value is None
    assert result.detail == {"wrong_cases": 1, "shipped": 0}


def test_cross_role_consistency_counts_matching_answers_over_answers_given(people):
    first = ConsistencySample.objects.create(day=DAY, slot=1, order=make_order(status="picking"), system_state="picking")
    second = ConsistencySample.objects.create(day=DAY, slot=2, order=make_order(status="paid"), system_state="paid")
    answered = {"answered_at": at(19, 11)}
    ConsistencyTask.objects.create(sample=first, group="sales", assignee=people["sales"], answer="picking", **answered)
    ConsistencyTask.objects.create(sample=first, group="warehouse", assignee=people["packer"], answer="picking", **answered)
    ConsistencyTask.objects.create(sample=first, group="service", assignee=people["service"])  # unanswered
    ConsistencyTask.objects.create(sample=second, group="sales", assignee=people["sales"], answer="pending_review", **answered)
    ConsistencyTask.objects.create(sample=second, group="warehouse", assignee=people["packer"], answer="paid", **answered)
    ConsistencyTask.objects.create(sample=second, group="service", assignee=people["service"])  # unanswered
    other_day = ConsistencySample.objects.create(day=DAY + datetime.timedelta(days=1), slot=1, order=make_order(), system_state="pending_review")
    ConsistencyTask.objects.create(sample=other_day, group="sales", assignee=people["sales"], answer="paid", **answered)

    result = measure_cross_role_consistency(day=DAY)

    assert result.value == 75.0  # 3 matches ÷ 4 answers; the 2 unanswered are not matches and not in the base
    assert result.sample_size == 4
    assert result.detail == {"answered": 4, "matches": 3, "unanswered": 2}


def test_cross_role_consistency_with_only_unanswered_tasks_is_no_data_but_shows_them(people):
    sample = ConsistencySample.objects.create(day=DAY, slot=1, order=make_order(), system_state="pending_review")
    ConsistencyTask.objects.create(sample=sample, group="sales", assignee=people["sales"])
    result = measure_cross_role_consistency(day=DAY)
    assert result.value is None
    assert result.detail == {"answered": 0, "matches": 0, "unanswered": 1}


@pytest.mark.parametrize(
    ("key", "value", "healthy"),
    [
        ("status_update_delay", 15, True),
        ("status_update_delay", 15.01, False),
        ("cross_role_consistency", 99.5, True),
        ("cross_role_consistency", 99.49, False),
        ("exception_closure", 120, True),
        ("exception_closure", 121, False),
        ("wrong_shipment_rate", 0.9, True),
        ("wrong_shipment_rate", 1.2, False),
    ],
)
def test_targets_decide_red_or_green(key, value, healthy):
    measure = next(m for m in MEASURES if m.key == key)
    assert measure.healthy(value) is healthy
