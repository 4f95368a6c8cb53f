"""What a tracking state means has one home (workflows/notifications.py): every Kuaidi100 state
has a row, and the push's text, the front-line answer, the ticket and completing the order all
come from that row; the stall threshold is one setting read in one place."""

from __future__ import annotations

import datetime

import pytest
from django.conf import settings
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from integrations.kuaidi100.client import TrackingItem, TrackingResult
from integrations.kuaidi100.models import SubscriptionState, TrackingSubscription
from integrations.wechat import services as wechat
from integrations.wechat.models import CustomerMessage
from orders.models import Order, OrderStatus, Shipment, TrackingState
from tests.conftest import make_order
from tests.logistics_fixtures import bind_customer
from tests.test_translations import CATALOGUE, read_po
from workflows import notifications, tracking
from workflows.frontline.answers import order_answer
from workflows.models import Ticket
from workflows.notifications import TRACKING_MEANINGS

pytestmark = pytest.mark.django_db


def test_every_kuaidi100_state_has_exactly_one_row():
    assert set(TRACKING_MEANINGS) == set(TrackingState.values)


def test_every_customer_text_fits_a_wechat_thing_in_both_languages():
    catalogue = read_po(CATALOGUE)
    meanings = [*TRACKING_MEANINGS.values(), notifications.STALLED, notifications.ABORTED, notifications.SUBSCRIPTION_REFUSED]
    texts = {text for meaning in meanings for text in (meaning.text, meaning.note) if text} | {"See ETA above", "Thank you!"}
    for text in texts:
        assert len(text) <= 20, text
        assert text in catalogue, f"{text!r} has no Chinese translation"
        assert len(catalogue[text][0]) <= 20, catalogue[text][0]


def _tracked(number: str, *, state: str = "", hours_silent: float = 0) -> Shipment:
    order = make_order(status="shipped")
    bind_customer(order)
    last = timezone.now() - datetime.timedelta(hours=hours_silent)
    shipment = Shipment.objects.create(
        order=order,
        carrier_code="zhongtong",
        tracking_number=number,
        tracking_state=state,
        last_event_at=last if state else None,
        last_location="杭州市",
        created_at=last,
    )
    TrackingSubscription.objects.create(shipment=shipment, state=SubscriptionState.ACTIVE, subscribed_at=last, last_push_at=last)
    return shipment


@pytest.mark.parametrize("state", TrackingState.values)
def test_the_row_decides_the_push_the_ticket_the_completion_and_the_answer(state):
    meaning = TRACKING_MEANINGS[state]
    shipment = _tracked(f"ZT5{state.zfill(3)}")
    item = TrackingItem(
        occurred_at=timezone.now().replace(microsecond=0),
        context="[杭州市]快件状态更新",
        area_name="",
        area_code="",
        status_name="",
    )
    tracking.tracking_report_record(
        shipment=shipment,
        result=TrackingResult(
            carrier_code="zhongtong", tracking_number=shipment.tracking_number, state=state, items=[item], eta=None
        ),
    )
    order = Order.objects.get(pk=shipment.order_id)

    push = CustomerMessage.objects.filter(order=order, event_key=f"tracking:{shipment.pk}:{state}").first()
    assert (push is not None) == meaning.pushed
    with translation.override(settings.LANGUAGE_CODE):
        status_text = wechat.thing(_(meaning.text))
        content, _carries = notifications.message_content(order=order)
    assert content[wechat.FIELD_STATUS] == status_text  # what any push about this order says now
    if push is not None:
        assert push.content[wechat.FIELD_STATUS] == status_text

    ticket = Ticket.objects.filter(shipment=shipment).first()
    assert (ticket.kind if ticket else "") == meaning.ticket

    assert (order.status == OrderStatus.COMPLETED) == meaning.completes

    explanation = order_answer(order).explanation
    if meaning.explanation:
        assert _(meaning.explanation) in explanation
    else:
        assert explanation == ""


def test_the_stall_threshold_is_one_setting_for_the_scan_and_the_answer(settings):
    settings.TRACKING_STALL_HOURS = 2
    quiet = _tracked("ZT6001", state=TrackingState.IN_TRANSIT, hours_silent=3)
    recent = _tracked("ZT6002", state=TrackingState.IN_TRANSIT, hours_silent=1)
    assert tracking.shipments_stalled_scan() == 1
    assert Ticket.objects.get().shipment == quiet
    assert _(notifications.STALLED.explanation) in order_answer(quiet.order).explanation
    assert order_answer(recent.order).explanation == ""
    stalled_push = CustomerMessage.objects.get(order=quiet.order, event_key__startswith="delay:stalled:")
    with translation.override(settings.LANGUAGE_CODE):
        assert stalled_push.content[wechat.FIELD_NOTE] == _(notifications.STALLED.note)
