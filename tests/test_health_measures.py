"""Each health measure on constructed event data whose right answer is worked out by hand,
plus the empty day ("no data yet")."""

import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.utils import translation

from integrations.erp.models import ReconciliationRun
from integrations.wechat.models import CustomerMessage
from orders.models import AfterSalesCase, Order, OrderEvent, OrderTag
from tests.conftest import make_order
from workflows.frontline.models import Inquiry, SelfServiceQuery
from workflows.health.measures import (
    MEASURES,
    MEASURES_BY_KEY,
    behind_erp_consistency,
    behind_perceived_delay,
    behind_rush_handling,
    behind_self_service_share,
    behind_wrong_shipment_rate,
    measure_cross_role_consistency,
    measure_erp_consistency,
    measure_exception_closure,
    measure_orders_over_limit,
    measure_perceived_delay,
    measure_rush_handling,
    measure_self_service_share,
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
    return OrderEvent.objects.create(
        order=order, kind="import_update", occurred_at=occurred_at, source_time=source_time, actor_name="ERP"
    )


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
    Ticket.objects.create(
        order=orders[2], kind="stalled", summary="stalled", opened_at=at(19, 10), closed_at=at(19, 10, 30)
    )  # 30 min
    OrderTag.objects.create(order=orders[3], tag="high_risk_refund", opened_at=at(19, 20))  # open at 24:00, age 240
    Ticket.objects.create(
        order=orders[4], kind="problem", summary="p", opened_at=at(19, 23), closed_at=at(20, 2)
    )  # open at 24:00, 60
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


def test_wrong_shipment_rate_is_shipped_orders_with_an_unrejected_wrong_or_missing_claim():
    shipped_that_day = [make_order(status="shipped", shipped_at=at(19, hour)) for hour in (0, 9, 11, 14, 23)]
    Order.objects.filter(pk=shipped_that_day[4].pk).update(packed_unverified=True)  # the WMS packed it, no scans here
    earlier = make_order(status="completed", shipped_at=at(17, 10))
    make_order(status="shipped", shipped_at=at(20, 0))  # the next day: not in the base
    case = AfterSalesCase.objects.create
    # Claimed the next day, twice about the same parcel: still one wrong shipment of the 19th.
    case(order=shipped_that_day[0], kind="wrong_item", reason="发错规格", opened_at=at(20, 9))
    case(order=shipped_that_day[0], kind="missing_gift", reason="少发赠品", opened_at=at(20, 10))
    case(
        order=shipped_that_day[1], kind="missing_gift", reason="少发赠品", opened_at=at(19, 20), status="rejected"
    )  # checked: it was there
    case(order=shipped_that_day[2], kind="damaged", reason="罐体凹陷", opened_at=at(19, 20))  # not a wrong shipment
    case(order=shipped_that_day[3], kind="missing_gift", reason="少发赠品", opened_at=at(19, 22), status="approved")
    case(order=earlier, kind="wrong_item", reason="发错规格", opened_at=at(19, 10))  # shipped on the 17th: that day's

    result = measure_wrong_shipment_rate(day=DAY)

    assert result.value == 40.0  # orders 0 and 3 ÷ 5 shipped
    assert result.sample_size == 5
    assert result.detail == {"wrong_orders": 2, "shipped": 5, "packed_unverified": 1}
    behind = behind_wrong_shipment_rate(day=DAY)
    assert [row.order_number for row in behind] == [shipped_that_day[3].order_number] + [shipped_that_day[0].order_number] * 2
    assert all(row.off_target for row in behind)


def test_wrong_shipment_rate_without_shipments_is_no_data_even_with_cases():
    order = make_order(status="completed", shipped_at=at(17, 10))
    AfterSalesCase.objects.create(order=order, kind="wrong_item", reason="发错规格", opened_at=at(19, 10))
    result = measure_wrong_shipment_rate(day=DAY)
    assert result.value is None
    assert result.detail == {"wrong_orders": 0, "shipped": 0, "packed_unverified": 0}


def inquiry(order, asked_at, people):
    return Inquiry.objects.create(
        order=order, customer=order.customer, channel="phone", question="到哪了", recorded_by=people["service"], asked_at=asked_at
    )


def test_self_service_share_is_page_views_over_views_plus_recorded_inquiries(people):
    order = make_order(status="shipped")
    for moment in (at(19, 0, 0, 0), at(19, 9), at(19, 23, 59, 59)):
        SelfServiceQuery.objects.create(order=order, via="link", viewed_at=moment)
    SelfServiceQuery.objects.create(order=order, via="code", viewed_at=at(20, 0))  # the next day
    asked = inquiry(order, at(19, 10), people)
    inquiry(order, at(18, 23, 59), people)  # the day before

    result = measure_self_service_share(day=DAY)

    assert result.value == 75.0  # 3 views ÷ (3 views + 1 inquiry)
    assert result.sample_size == 4
    assert result.detail == {"self_served": 3, "assisted": 1}
    assert MEASURES_BY_KEY["self_service_share"].healthy(result.value) is True
    behind = behind_self_service_share(day=DAY)
    assert [(row.order_number, row.amount, row.off_target) for row in behind] == [(asked.order.order_number, "10:00", False)]


def push(order, sent_at, *, carries_location=True, state="sent"):
    return CustomerMessage.objects.create(
        order=order,
        recipient="openid",
        event_key="x",
        idempotency_key=f"{order.pk}-{sent_at.timestamp()}-{carries_location}-{state}",
        carries_location=carries_location,
        created_at=sent_at,
        status=state,
        sent_at=sent_at if state == "sent" else None,
    )


def test_perceived_delay_median_and_p90_of_the_waits_that_began_that_day(people):
    asked_twice, quick, slow, waiting, overnight = (make_order(status="shipped") for _ in range(5))
    inquiry(asked_twice, at(19, 10), people)
    push(asked_twice, at(19, 10, 1), carries_location=False)  # "shipped" without location does not end the wait
    push(asked_twice, at(19, 10, 3))  # 3 min
    inquiry(asked_twice, at(19, 10, 5), people)  # asked again after the answer: a new wait …
    inquiry(asked_twice, at(19, 10, 5, 10), people)  # … which this repeat belongs to
    push(asked_twice, at(19, 10, 5, 30))  # 0.5 min from 10:05
    inquiry(quick, at(19, 11), people)
    push(quick, at(19, 11, 10))  # 10 min
    inquiry(slow, at(19, 12), people)
    push(slow, at(19, 12, 1), state="pending")  # queued, not with the customer yet
    push(slow, at(19, 12, 20))  # 20 min
    inquiry(waiting, at(19, 14), people)  # never answered
    inquiry(overnight, at(18, 23, 50), people)  # began the day before
    push(overnight, at(19, 0, 5))

    result = measure_perceived_delay(day=DAY)

    # waits 0.5, 3, 10, 20 → median 6.5; nearest-rank p90 = the ceil(0.9 × 4) = 4th = 20; one unanswered.
    assert result.value == 6.5
    assert result.sample_size == 4
    assert result.detail == {"median": 6.5, "p90": 20, "unanswered": 1}
    behind = behind_perceived_delay(day=DAY)
    # Still waiting first (10 h, 14:00 to the end of the day), then the longest waits.
    assert [row.order_number for row in behind] == [
        waiting.order_number,
        slow.order_number,
        quick.order_number,
        asked_twice.order_number,
        asked_twice.order_number,
    ]
    assert [row.off_target for row in behind] == [True, True, True, True, False]  # target: within one minute


def test_rush_handling_is_the_median_from_filing_to_shipping_of_rush_orders_shipped_that_day():
    hour = make_order(status="shipped", is_rush=True, rush_reason="断顿", rush_filed_at=at(19, 8), shipped_at=at(19, 9))
    overnight = make_order(status="shipped", is_rush=True, rush_reason="出国", rush_filed_at=at(18, 22), shipped_at=at(19, 1))
    quick = make_order(status="completed", is_rush=True, rush_reason="直播", rush_filed_at=at(19, 10), shipped_at=at(19, 10, 30))
    make_order(status="shipped", is_rush=True, rush_filed_at=at(19, 20), shipped_at=at(20, 1))  # shipped the next day
    make_order(status="picking", is_rush=True, rush_filed_at=at(19, 9))  # not shipped yet
    make_order(status="shipped", shipped_at=at(19, 12))  # not a rush order

    result = measure_rush_handling(day=DAY)

    assert result.value == 60  # 30, 60, 180 min
    assert result.sample_size == 3
    assert result.detail == {"median": 60, "longest_minutes": 180}
    behind = behind_rush_handling(day=DAY)
    assert [(row.order_number, row.off_target) for row in behind] == [
        (overnight.order_number, True),
        (hour.order_number, False),
        (quick.order_number, False),  # target 1.4 h = 84 min
    ]


def test_orders_over_their_stage_limit_is_a_snapshot_of_now():
    due = {"over": NOW - minutes(60), "just due": NOW, "in time": NOW + minutes(60)}
    for stage_due_at in due.values():
        order = make_order(status="picking")
        Order.objects.filter(pk=order.pk).update(stage_due_at=stage_due_at)
    held = make_order(status="picking")
    Order.objects.filter(pk=held.pk).update(is_held=True, stage_due_at=None)  # a hold pauses the clock
    Order.objects.filter(status="completed").delete()

    today = measure_orders_over_limit(day=datetime.date(2026, 1, 20))

    assert today.value == 2  # due an hour ago and due this instant; held orders have no clock
    assert today.sample_size == 3
    assert today.detail == {"clocked": 3}
    # The nightly store (after midnight) takes the snapshot for the day that just ended …
    assert measure_orders_over_limit(day=DAY).value == 2
    # … but an earlier day's count cannot be rebuilt from the present.
    assert measure_orders_over_limit(day=DAY - datetime.timedelta(days=1)).value is None


def reconciliation(day, ran_at, rate, **lists):
    return ReconciliationRun.objects.create(
        business_date=day,
        ran_at=ran_at,
        ran_by="吴敏",
        erp_file_name="erp.csv",
        our_order_count=200,
        our_total_amount=Decimal("20000.00"),
        our_refund_count=1,
        erp_order_count=201,
        erp_total_amount=Decimal("20100.00"),
        erp_refund_count=1,
        order_count_diff_pct=Decimal("0.498"),
        total_amount_diff_pct=Decimal("0.498"),
        refund_count_diff_pct=Decimal("0"),
        consistency_rate=Decimal(rate),
        **lists,
    )


def test_erp_consistency_is_the_latest_check_of_that_business_date():
    reconciliation(DAY, at(20, 9), "97.00", only_erp=["OLD"])  # re-run after fixing the ERP side
    reconciliation(
        DAY,
        at(20, 11),
        "98.51",
        only_ours=["BL1"],
        only_erp=["ERP9"],
        amount_mismatches=[{"order_number": "BL2", "ours": "100.00", "erp": "120.00"}],
    )
    reconciliation(DAY - datetime.timedelta(days=1), at(19, 9), "100.00")

    result = measure_erp_consistency(day=DAY)

    assert result.value == 98.51
    assert result.sample_size == 200
    assert result.detail == {"erp_orders": 201, "differing": 3}
    assert MEASURES_BY_KEY["erp_consistency"].healthy(result.value) is False
    behind = behind_erp_consistency(day=DAY)
    assert [(row.order_number, row.linked, row.off_target) for row in behind] == [
        ("BL1", True, True),
        ("ERP9", False, True),
        ("BL2", True, True),  # an ERP-only number has no card here
    ]
    assert "100.00" in behind[2].amount and "120.00" in behind[2].amount


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
    other_day = ConsistencySample.objects.create(
        day=DAY + datetime.timedelta(days=1), slot=1, order=make_order(), system_state="pending_review"
    )
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
        ("self_service_share", 75, True),
        ("self_service_share", 74.99, False),
        ("perceived_delay", 1, True),
        ("perceived_delay", 1.01, False),
        ("rush_handling", 84, True),  # the seed's 1.4 h
        ("rush_handling", 85, False),
        ("orders_over_limit", 0, True),
        ("orders_over_limit", 1, False),
        ("erp_consistency", 99.5, True),
        ("erp_consistency", 99.49, False),
    ],
)
def test_targets_decide_red_or_green(key, value, healthy):
    measure = next(m for m in MEASURES if m.key == key)
    assert measure.healthy(value) is healthy


def test_a_business_day_is_counted_the_same_by_the_erp_export_and_the_measures():
    """One calendar (orders/clock.py): the day's export, the reconciliation and every measure
    count Beijing's midnight to midnight, whatever time zone a request has activated."""
    from django.utils import timezone

    from integrations.erp import exporter
    from orders import clock
    from workflows.health import measures

    assert exporter.business_day_bounds is clock.business_day_bounds and measures.business_day_bounds is clock.business_day_bounds
    start, end = clock.business_day_bounds(DAY)
    assert (start, end) == (datetime.datetime(2026, 1, 19, tzinfo=SHANGHAI), datetime.datetime(2026, 1, 20, tzinfo=SHANGHAI))
    with time_machine.travel(datetime.datetime(2026, 1, 19, 0, 30, tzinfo=SHANGHAI), tick=False):
        early = make_order(status="paid")  # 16:30 UTC the evening before
        with timezone.override("UTC"):
            assert clock.business_day_bounds(DAY) == (start, end)
            assert clock.business_today() == DAY
            assert [order.pk for order in exporter.day_orders(DAY)] == [early.pk]
            assert not exporter.day_orders(DAY - datetime.timedelta(days=1)).exists()
