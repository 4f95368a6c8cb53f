"""What follows a status change, derived from the order's event log.

orders/services.py writes a STATUS OrderEvent in the same transaction as the change and, after
commit, nudges `react_to_status_event` by task name. The nudge makes reactions prompt; the relay
below makes them certain: it re-derives, from the events of the last day, every reaction that a
crash, a SIGKILL or a broker outage between the commit and the nudge left undone. Each reaction
is idempotent (the push has a unique idempotency key, the subscription one row per shipment, the
mini-program's shipping upload one row per reason), so a nudge and the relay racing each other
still produce one push, one subscription and one upload.
"""

from __future__ import annotations

import datetime

from django.conf import settings
from django.db.models import CharField, Exists, OuterRef, Q, Value
from django.db.models.functions import Cast, Concat
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from integrations.douyin import services as douyin
from integrations.kuaidi100.services import shipment_track
from integrations.sms.models import SmsMessage
from integrations.wechat.models import CustomerMessage, ShippingUpload, ShippingUploadKind
from integrations.wechat.shipping import shipping_upload_queue
from orders import events
from orders.models import EventKind, Order, OrderEvent, OrderSource, OrderStatus, Shipment
from orders.services import REACTED_STATUSES
from workflows.models import ContactChannel, ContactPreference
from workflows.notifications import ADDRESS_CHANGE_PUSH_TEXT, customer_push_order_status, push_exists

# Older misses are left alone: a shipped push a day late would confuse more than it helps.
RELAY_WINDOW = datetime.timedelta(hours=24)
SHIPPED_PUSH = "shipped"


def address_change_push_key(change_id: int) -> str:
    return f"address_change:{change_id}"


def react_to_address_change_event(event: OrderEvent) -> str:
    """An address change ended: one push to the customer with its outcome, and a platform's
    request answered on the platform (order.addressConfirm; the Douyin relay retries it)."""
    action = event.payload.get("action")
    if action not in events.ADDRESS_CHANGE_OUTCOMES or not event.payload.get("change_id"):
        return "nothing to do"
    douyin.address_answer_send(change_id=event.payload["change_id"])
    order = Order.objects.select_related("customer").get(pk=event.order_id)
    with translation.override(settings.LANGUAGE_CODE):
        reason = _(ADDRESS_CHANGE_PUSH_TEXT[action])
    customer_push_order_status(order=order, event_key=address_change_push_key(event.payload["change_id"]), reason=reason)
    return "address change pushed"


def react_to_status_event(*, event_id: int) -> str:
    event = OrderEvent.objects.filter(
        pk=event_id, kind__in=(EventKind.STATUS, EventKind.ADDRESS_CHANGE, EventKind.WAYBILL)
    ).first()
    if event is None:
        return "no such status event"
    if event.kind == EventKind.ADDRESS_CHANGE:
        return react_to_address_change_event(event)
    if event.kind == EventKind.WAYBILL:
        return react_to_waybill_event(event)
    if event.payload.get("to") not in REACTED_STATUSES:
        return "nothing to do"
    # Shipped: the carrier subscription for every parcel, the customer's push, and a platform
    # order's shipping written back to its platform (each outbox: once per waybill; for a
    # mini-program order the upload that unfreezes its payment).
    for shipment in Shipment.objects.filter(order_id=event.order_id):
        shipment_track(shipment=shipment)
    order = Order.objects.select_related("customer").get(pk=event.order_id)
    douyin.write_back_queue(order=order)
    customer_push_order_status(order=order, event_key=SHIPPED_PUSH)
    shipping_upload_queue(order=order)
    return "shipped reactions done"


def waybill_push_key(event: OrderEvent) -> str:
    return f"waybill:{event.pk}"


def react_to_waybill_event(event: OrderEvent) -> str:
    """A changed waybill (reship, carrier swap, split parcel): the new parcel's tracking
    subscription, and the customer told, with every parcel of the order."""
    shipment = Shipment.objects.filter(pk=event.payload.get("shipment_id"), order_id=event.order_id).first()
    if shipment is not None:
        shipment_track(shipment=shipment)
    order = Order.objects.select_related("customer").get(pk=event.order_id)
    if order.status == OrderStatus.SHIPPED:
        douyin.write_back_queue(order=order)
        with translation.override(settings.LANGUAGE_CODE):
            reason = _("New waybill %(number)s") % {"number": event.payload.get("tracking_number", "")}
        customer_push_order_status(order=order, event_key=waybill_push_key(event), reason=reason)
        # The mini-program takes one update of the shipping information (integrations/wechat/shipping.py).
        shipping_upload_queue(order=order, reason=waybill_push_key(event))
    return "waybill reactions done"


def missed_waybill_events(*, now: datetime.datetime | None = None) -> list[int]:
    """Waybill changes of the last day whose subscription or push is missing (few: a loop is fine)."""
    now = now or timezone.now()
    missed = []
    for event in OrderEvent.objects.filter(kind=EventKind.WAYBILL, occurred_at__gte=now - RELAY_WINDOW).select_related("order"):
        shipment_id = event.payload.get("shipment_id")
        unsubscribed = Shipment.objects.filter(pk=shipment_id, subscription__isnull=True).exists()
        unpushed = (
            event.order.status == OrderStatus.SHIPPED
            and event.order.source != OrderSource.PLATFORM
            and not push_exists(order=event.order, event_key=waybill_push_key(event))
        )
        # A mini-program order already uploaded needs its update (shipping_upload_queue decides
        # whether one is due; asking again makes nothing twice).
        update_missing = (
            event.order.source == OrderSource.MINI_PROGRAM
            and event.order.status == OrderStatus.SHIPPED
            and ShippingUpload.objects.filter(order_id=event.order_id, kind=ShippingUploadKind.UPLOAD, status="sent").exists()
            and not ShippingUpload.objects.filter(idempotency_key=f"{event.order_id}:{waybill_push_key(event)}").exists()
        )
        if unsubscribed or unpushed or update_missing:
            missed.append(event.pk)
    return missed


def _unpushed(event_key) -> Q:
    """No push under `event_key` on either channel (WeChat, SMS), and the customer has not chosen
    "no messages" (then none is missing)."""
    wechat = CustomerMessage.objects.filter(order_id=OuterRef("order_id"), event_key=event_key)
    text = SmsMessage.objects.filter(order_id=OuterRef("order_id"), event_key=event_key)
    silenced = ContactPreference.objects.filter(customer_id=OuterRef("order__customer_id"), channel=ContactChannel.NONE)
    # A platform's buyer gets no push from us (workflows/notifications.py): none is missing.
    return ~Exists(wechat) & ~Exists(text) & ~Exists(silenced) & ~Q(order__source=OrderSource.PLATFORM)


def missed_status_events(*, now: datetime.datetime | None = None):
    """Shipped events of the last day whose push or subscription is missing."""
    now = now or timezone.now()
    push_missing = _unpushed(SHIPPED_PUSH)
    subscription_missing = Exists(Shipment.objects.filter(order_id=OuterRef("order_id"), subscription__isnull=True))
    upload_missing = Q(order__source=OrderSource.MINI_PROGRAM) & ~Exists(
        ShippingUpload.objects.filter(order_id=OuterRef("order_id"), kind=ShippingUploadKind.UPLOAD)
    )
    return OrderEvent.objects.filter(
        kind=EventKind.STATUS, occurred_at__gte=now - RELAY_WINDOW, payload__to=OrderStatus.SHIPPED
    ).filter(Q(push_missing) | Q(subscription_missing) | upload_missing)


def missed_address_change_events(*, now: datetime.datetime | None = None):
    """Address-change outcomes of the last day whose push is missing."""
    now = now or timezone.now()
    events_ = OrderEvent.objects.filter(
        kind=EventKind.ADDRESS_CHANGE, occurred_at__gte=now - RELAY_WINDOW, payload__action__in=events.ADDRESS_CHANGE_OUTCOMES
    )
    return events_.filter(_unpushed(Concat(Value("address_change:"), Cast(OuterRef("payload__change_id"), CharField()))))


def reactions_relay(*, now: datetime.datetime | None = None, limit: int = 500) -> int:
    done = 0
    for event_id in missed_status_events(now=now).order_by("occurred_at").values_list("pk", flat=True)[:limit]:
        react_to_status_event(event_id=event_id)
        done += 1
    for event_id in missed_waybill_events(now=now)[:limit]:
        react_to_status_event(event_id=event_id)
        done += 1
    for event in missed_address_change_events(now=now).order_by("occurred_at")[:limit]:
        react_to_address_change_event(event)
        done += 1
    for order in Order.objects.filter(pk__in=douyin.shipped_without_write_back(since=(now or timezone.now()) - RELAY_WINDOW)):
        douyin.write_back_queue(order=order)
        done += 1
    return done
