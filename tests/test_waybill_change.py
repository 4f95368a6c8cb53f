"""Issue 18, the answer follows the parcel: a changed waybill (reship, carrier swap, split parcel)
re-subscribes tracking at Kuaidi100 and tells the customer; the self-service page and the pushes
show every parcel of the order. Over the fake Kuaidi100's and the fake WeChat's HTTP."""

from urllib.parse import urlsplit

import pytest

from integrations.kuaidi100 import services as kuaidi100
from integrations.kuaidi100.models import SubscriptionState, TrackingSubscription
from integrations.wechat import services as wechat
from integrations.wechat.models import CustomerMessage
from orders.access import Actor
from orders.models import EventKind, Order, OrderEvent, Shipment
from orders.services import NotAllowed, OrderError, order_change_waybill
from tests.conftest import PASSWORD
from tests.logistics_fixtures import fake_kuaidi100, fake_wechat, shipped_order  # noqa: F401 - fixtures
from workflows import reactions
from workflows.frontline.selfservice import link_url

pytestmark = pytest.mark.django_db


def courier(people) -> Actor:
    return Actor.of(people["courier"])


def subscribe_all() -> None:
    for pk in TrackingSubscription.objects.filter(state=SubscriptionState.PENDING).values_list("pk", flat=True):
        kuaidi100.shipment_subscribe(subscription_id=pk)


def test_a_reship_resubscribes_and_tells_the_customer(client, people, fake_kuaidi100, fake_wechat, settings):
    settings.CUSTOMER_QUIET_HOURS = (0, 0)
    order = shipped_order(tracking_number="ZT7001")
    subscribe_all()
    old = Shipment.objects.get(order=order)
    assert client.login(username="courier", password=PASSWORD)
    response = client.post(
        f"/orders/{order.order_number}/waybill/",
        {
            "version": order.version,
            "change": "reship",
            "replaces": old.pk,
            "carrier_code": "shunfeng",
            "tracking_number": "sf7002",
            "reason": "lost",
        },
    )
    assert response.status_code in (200, 302)
    new = Shipment.objects.get(order=order, tracking_number="SF7002")
    old.refresh_from_db()
    assert old.replaced_at is not None and new.replaced_at is None
    event = OrderEvent.objects.get(order=order, kind=EventKind.WAYBILL)
    assert event.payload["previous"] == "ZT7001" and event.actor_role == "courier"
    # The tests have no worker for the after-commit nudge: the relay does what it would.
    assert reactions.reactions_relay() >= 1
    subscribe_all()
    assert TrackingSubscription.objects.get(shipment=new).state == SubscriptionState.ACTIVE
    assert "SF7002" in fake_kuaidi100.parcels
    push = CustomerMessage.objects.get(order=order, event_key=f"waybill:{event.pk}")
    assert wechat.customer_message_send(message_id=push.pk) == "sent"
    received = fake_wechat.messages_for(order.customer.wechat_openid)[-1]
    assert "SF7002" in received["data"][wechat.FIELD_NOTE]
    # Once: the relay again changes nothing.
    assert reactions.reactions_relay() == 0
    assert CustomerMessage.objects.filter(order=order, event_key__startswith="waybill:").count() == 1
    # The self-service page lists every parcel, the replaced one marked.
    page = client.get(urlsplit(link_url(order)).path).content.decode()
    assert "ZT7001" in page and "SF7002" in page and 'id="track-parcels"' in page


def test_a_split_parcel_adds_one_and_the_push_counts_both(people, fake_kuaidi100, fake_wechat, settings):
    settings.CUSTOMER_QUIET_HOURS = (0, 0)
    order = shipped_order(tracking_number="ZT7101")
    order_change_waybill(order=order, by=courier(people), change="split", carrier_code="zhongtong", tracking_number="ZT7102")
    reactions.reactions_relay()
    assert Shipment.objects.filter(order=order, replaced_at__isnull=True).count() == 2
    push = CustomerMessage.objects.get(order=order, event_key__startswith="waybill:")
    assert push.content[wechat.FIELD_STATUS].startswith("2")


def test_only_the_courier_changes_a_waybill_and_only_while_shipped(people, fake_kuaidi100, fake_wechat):
    order = shipped_order(tracking_number="ZT7201")
    old = Shipment.objects.get(order=order)
    service = Actor.of(people["service"])
    with pytest.raises(NotAllowed):
        order_change_waybill(
            order=order, by=service, change="reship", replaces=old, carrier_code="zhongtong", tracking_number="ZT7202"
        )
    with pytest.raises(OrderError):
        order_change_waybill(order=order, by=courier(people), change="reship", carrier_code="zhongtong", tracking_number="ZT7202")
    with pytest.raises(OrderError):
        order_change_waybill(order=order, by=courier(people), change="split", carrier_code="zhongtong", tracking_number="ZT7201")
    Order.objects.filter(pk=order.pk).update(status="completed")
    with pytest.raises(OrderError):
        order_change_waybill(order=order, by=courier(people), change="split", carrier_code="zhongtong", tracking_number="ZT7203")
    assert not OrderEvent.objects.filter(kind=EventKind.WAYBILL).exists()
