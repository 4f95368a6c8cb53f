"""Issue 18, the delay push before they ask: a parcel predicted late (stalled, a carrier problem,
a missed ETA, a stage breach before shipping) gives the customer one push with the reason and a
new ETA, once per cause, held during quiet hours unless urgent. Over the fake WeChat's HTTP."""

import datetime

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from integrations.kuaidi100.client import TrackingItem, TrackingResult
from integrations.kuaidi100.models import SubscriptionState, TrackingSubscription
from integrations.wechat import services as wechat
from integrations.wechat.models import CustomerMessage, MessageStatus
from orders.models import Order, Shipment, TrackingState
from tests.conftest import make_order
from tests.logistics_fixtures import bind_customer, fake_wechat  # noqa: F401 - fixture
from workflows import delays, sla, tasks, tracking

pytestmark = pytest.mark.django_db
SHANGHAI = datetime.timezone(datetime.timedelta(hours=8))
NOON = datetime.datetime(2026, 11, 24, 12, 0, tzinfo=SHANGHAI)
NIGHT = datetime.datetime(2026, 11, 24, 23, 30, tzinfo=SHANGHAI)


def parcel(number: str, *, eta: datetime.datetime | None = None, silent_hours: float = 1, state=TrackingState.IN_TRANSIT):
    order = make_order(status="shipped")
    bind_customer(order)
    last = timezone.now() - datetime.timedelta(hours=silent_hours)
    shipment = Shipment.objects.create(
        order=order,
        carrier_code="zhongtong",
        tracking_number=number,
        tracking_state=state,
        last_event_at=last,
        last_location="杭州市",
        eta=eta,
        created_at=last,
    )
    TrackingSubscription.objects.create(shipment=shipment, state=SubscriptionState.ACTIVE, subscribed_at=last, last_push_at=last)
    return shipment


@pytest.fixture
def sweep(django_capture_on_commit_callbacks, monkeypatch):
    """One SLA sweep, committed, with its delay-push task run as a worker runs it (the tests
    have no worker to receive it)."""
    monkeypatch.setattr(tasks.push_stage_delays, "apply_async", lambda args, **options: tasks.push_stage_delays(*args))

    def run():
        with django_capture_on_commit_callbacks(execute=True):
            return sla.sla_sweep()

    return run


def delay_pushes():
    return CustomerMessage.objects.filter(event_key__startswith="delay:")


def local(moment: datetime.datetime) -> str:
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M:%S")


def test_a_missed_eta_gives_one_push_with_reason_and_new_eta(fake_wechat, settings):
    settings.CUSTOMER_QUIET_HOURS = (21, 8)
    with time_machine.travel(NOON, tick=False):
        shipment = parcel("ZT9001", eta=NOON - datetime.timedelta(hours=1))
        assert delays.delays_scan() == 1
        assert delays.delays_scan() == 0  # once per cause
        [push] = delay_pushes()
        with translation.override(settings.LANGUAGE_CODE):
            assert push.content[wechat.FIELD_NOTE] == _("Later than expected")
        assert push.content[wechat.FIELD_ETA] == local(NOON + delays.slack())
        assert push.carries_location
        assert wechat.customer_message_send(message_id=push.pk) == "sent"
    [received] = fake_wechat.messages_for(shipment.order.customer.wechat_openid)
    assert received["data"][wechat.FIELD_ETA] == local(NOON + delays.slack())


def test_a_new_eta_that_is_missed_again_is_a_new_cause(settings):
    settings.CUSTOMER_QUIET_HOURS = (0, 0)
    shipment = parcel("ZT9002", eta=timezone.now() - datetime.timedelta(minutes=5))
    assert delays.missed_eta_scan() == 1
    Shipment.objects.filter(pk=shipment.pk).update(eta=timezone.now() - datetime.timedelta(minutes=1))
    assert delays.missed_eta_scan() == 1
    assert delays.missed_eta_scan() == 0
    assert delay_pushes().count() == 2


def test_a_delivered_parcel_is_not_late():
    parcel("ZT9003", eta=timezone.now() - datetime.timedelta(hours=1), state=TrackingState.SIGNED)
    assert delays.delays_scan() == 0


def test_a_stalled_parcel_gets_the_delay_push_with_a_new_eta(settings):
    settings.CUSTOMER_QUIET_HOURS = (0, 0)
    with time_machine.travel(NOON, tick=False):
        shipment = parcel("ZT9004", eta=NOON + datetime.timedelta(hours=3), silent_hours=settings.TRACKING_STALL_HOURS + 1)
        assert tracking.shipments_stalled_scan() == 1
        assert tracking.shipments_stalled_scan() == 0
    [push] = delay_pushes()
    assert push.event_key.startswith(f"delay:stalled:{shipment.pk}:")
    assert push.content[wechat.FIELD_ETA] == local(shipment.eta + delays.slack())


def test_a_stage_breach_before_shipping_tells_the_customer_with_a_new_eta(settings, sweep):
    settings.CUSTOMER_QUIET_HOURS = (0, 0)
    with time_machine.travel(NOON, tick=False):
        order = make_order(status="picking", stage_entered_at=NOON - datetime.timedelta(hours=5))
        bind_customer(order)
        Order.objects.filter(pk=order.pk).update(stage_due_at=NOON - datetime.timedelta(minutes=1))
        assert sweep().breached == 1
        [push] = delay_pushes()
        assert push.order_id == order.pk and push.event_key.startswith("delay:stage:")
        with translation.override(settings.LANGUAGE_CODE):
            assert push.content[wechat.FIELD_NOTE] == _("Preparing delayed")
        expected = delays.predicted_eta(order, now=NOON)
        assert expected > NOON + datetime.timedelta(hours=settings.CARRIER_TRANSIT_HOURS)
        assert push.content[wechat.FIELD_ETA] == local(expected)
        assert delays.delays_scan() == 0  # the scan (the relay) finds it pushed


def test_a_burst_of_breaches_is_pushed_partly_by_the_sweep_and_the_rest_by_the_scan(settings, monkeypatch, sweep):
    # A sweep stays under its second for 2,000 breaches: its task pushes only the first few.
    monkeypatch.setattr(sla, "PUSH_AT_ONCE", 2)
    settings.CUSTOMER_QUIET_HOURS = (0, 0)
    with time_machine.travel(NOON, tick=False):
        earlier = make_order(status="paid", phone="13900000000")
        bind_customer(earlier)
        Order.objects.filter(pk=earlier.pk).update(stage_due_at=NOON - datetime.timedelta(hours=1))
        assert sweep().breached == 1
        assert delays.delays_scan() == 0  # pushed by its sweep
        orders = [make_order(status="picking", phone=f"1390000000{n}") for n in range(1, 6)]
        for n, order in enumerate(orders):
            bind_customer(order)
            Order.objects.filter(pk=order.pk).update(stage_due_at=NOON - datetime.timedelta(minutes=10 - n))
        assert sweep().breached == 5
        assert set(delay_pushes().values_list("order_id", flat=True)) == {earlier.pk, orders[0].pk, orders[1].pk}
        assert delays.delays_scan() == 3  # the rest, within 30 s
    assert delay_pushes().count() == 6


@pytest.mark.parametrize("count", [7, 15])
def test_the_stage_breach_scan_is_one_query_however_many_breaches_it_already_pushed(count, settings, sweep):
    # Beat runs it every 30 s over every breach of the last 6 h (44,316 at the 1,000,000-order
    # bench): the pushes already sent are excluded in SQL, not asked for order by order.
    settings.CUSTOMER_QUIET_HOURS = (0, 0)
    with time_machine.travel(NOON, tick=False):
        orders = [make_order(status="picking", phone=f"139{n:08d}") for n in range(count)]
        for n, order in enumerate(orders):
            bind_customer(order)
            # Entries on half seconds, odd and even: the key written by Python (f"{ts:.0f}", half
            # to even) and the one built in SQL must agree, or these would be pushed again.
            entered = NOON - datetime.timedelta(hours=5, seconds=n, microseconds=500_000 if n % 3 else 0)
            Order.objects.filter(pk=order.pk).update(stage_entered_at=entered, stage_due_at=NOON - datetime.timedelta(minutes=1))
        assert sweep().breached == count
        assert delays.stage_breach_scan() == count - sla.PUSH_AT_ONCE  # the rest of the burst
        assert delay_pushes().count() == count
        with CaptureQueriesContext(connection) as queries:
            assert delays.stage_breach_scan() == 0
    assert len(queries) == 1, [query["sql"] for query in queries]


def test_quiet_hours_hold_a_delay_push_until_morning(fake_wechat, settings):
    settings.CUSTOMER_QUIET_HOURS = (21, 8)
    with time_machine.travel(NIGHT, tick=False):
        shipment = parcel("ZT9005", eta=NIGHT - datetime.timedelta(minutes=10))
        assert delays.delays_scan() == 1
        [push] = delay_pushes()
        morning = datetime.datetime(2026, 11, 25, 8, 0, tzinfo=SHANGHAI)
        assert push.next_attempt_at == morning
        assert wechat.customer_message_send(message_id=push.pk) == "not due"
        assert wechat.customer_messages_relay() == 0
    assert fake_wechat.messages_for(shipment.order.customer.wechat_openid) == []
    with time_machine.travel(datetime.datetime(2026, 11, 25, 8, 0, 5, tzinfo=SHANGHAI), tick=False):
        assert wechat.customer_messages_relay() == 1
        assert wechat.customer_message_send(message_id=push.pk) == "sent"
    assert len(fake_wechat.messages_for(shipment.order.customer.wechat_openid)) == 1


def test_an_urgent_problem_is_pushed_at_night_with_a_new_eta(fake_wechat, settings):
    settings.CUSTOMER_QUIET_HOURS = (21, 8)
    with time_machine.travel(NIGHT, tick=False):
        shipment = parcel("ZT9006")
        item = TrackingItem(occurred_at=NIGHT, context="[杭州市]快件异常", area_name="", area_code="", status_name="")
        result = TrackingResult(
            carrier_code="zhongtong", tracking_number="ZT9006", state=TrackingState.PROBLEM, items=[item], eta=None
        )
        tracking.tracking_report_record(shipment=shipment, result=result)
        push = CustomerMessage.objects.get(event_key=f"tracking:{shipment.pk}:{TrackingState.PROBLEM}")
        assert push.status == MessageStatus.PENDING and push.next_attempt_at <= NIGHT
        assert push.content[wechat.FIELD_ETA] == local(NIGHT + delays.slack())
        assert wechat.customer_message_send(message_id=push.pk) == "sent"


def test_quiet_hours_are_configurable_and_can_wrap_or_not(settings):
    from workflows.notifications import quiet_until

    settings.CUSTOMER_QUIET_HOURS = (21, 8)
    assert quiet_until(NOON) is None
    assert quiet_until(NIGHT) == datetime.datetime(2026, 11, 25, 8, 0, tzinfo=SHANGHAI)
    assert quiet_until(datetime.datetime(2026, 11, 25, 3, 0, tzinfo=SHANGHAI)) == datetime.datetime(
        2026, 11, 25, 8, 0, tzinfo=SHANGHAI
    )
    settings.CUSTOMER_QUIET_HOURS = (12, 14)
    assert quiet_until(NOON) == datetime.datetime(2026, 11, 24, 14, 0, tzinfo=SHANGHAI)
    assert quiet_until(NIGHT) is None


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_every_delay_reason_fits_a_wechat_thing(language):
    with translation.override(language):
        assert all(0 < len(_(reason)) <= 20 for reason in delays.REASONS.values())
