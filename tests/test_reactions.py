"""Reactions to a status change cannot be lost or doubled: the STATUS event commits with the
change, the after-commit nudge runs the reactions promptly, and the relay re-derives any that a
crash between commit and nudge (SIGKILL, broker down) left undone."""

from __future__ import annotations

import pytest

from integrations.kuaidi100.models import TrackingSubscription
from integrations.wechat.models import CustomerMessage
from orders.access import Actor
from orders.models import EventKind, OrderEvent
from orders.services import order_ship, order_transition
from tests.conftest import make_order
from tests.logistics_fixtures import bind_customer
from workflows import reactions

pytestmark = pytest.mark.django_db


def ship(number: str):
    order = make_order(status="packed", carrier_code="zhongtong")
    bind_customer(order)
    return order_ship(order=order, by=Actor.system("WMS"), carrier_code="zhongtong", tracking_number=number)


def test_nothing_reacts_before_the_change_commits(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        order = ship("ZT9001")
    # The event is written in the change's transaction; the push and subscription are not yet.
    assert OrderEvent.objects.filter(order=order, kind=EventKind.STATUS, payload__to="shipped").count() == 1
    assert not CustomerMessage.objects.filter(order=order).exists()
    assert not TrackingSubscription.objects.filter(shipment__order=order).exists()
    # The worker's nudge and the live screens' notice (orders/live.py), both sent only after commit.
    assert sorted(callback.__qualname__.split(".")[0] for callback in callbacks) == ["_apply_transition", "orders_changed"]


def test_a_crash_between_commit_and_nudge_is_repaired_by_the_relay_once():
    order = ship("ZT9002")  # no worker received the nudge: as if the process died after commit
    assert reactions.missed_status_events().filter(order=order).count() == 1
    assert reactions.reactions_relay() == 1
    assert reactions.reactions_relay() == 0  # repaired: nothing left for the next beat
    event = OrderEvent.objects.get(order=order, kind=EventKind.STATUS, payload__to="shipped")
    reactions.react_to_status_event(event_id=event.pk)  # the late nudge arrives after all
    assert CustomerMessage.objects.filter(order=order, event_key="shipped").count() == 1
    assert TrackingSubscription.objects.filter(shipment__order=order).count() == 1


def test_other_status_changes_need_no_reaction():
    order = make_order(status="pending_review")
    order_transition(order=order, name="approve", by=Actor.system("ERP"))
    event = OrderEvent.objects.get(order=order, kind=EventKind.STATUS)
    assert reactions.react_to_status_event(event_id=event.pk) == "nothing to do"
    assert not reactions.missed_status_events().filter(order=order).exists()
