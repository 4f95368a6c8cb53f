"""What follows a status change, derived from the order's event log.

orders/services.py writes a STATUS OrderEvent in the same transaction as the change and, after
commit, nudges `react_to_status_event` by task name. The nudge makes reactions prompt; the relay
below makes them certain: it re-derives, from the events of the last day, every reaction that a
crash, a SIGKILL or a broker outage between the commit and the nudge left undone. Each reaction
is idempotent (the push has a unique idempotency key, the subscription one row per shipment), so
a nudge and the relay racing each other still produce one push and one subscription.
"""

from __future__ import annotations

import datetime

from django.conf import settings
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from integrations.kuaidi100.services import shipment_track
from integrations.wechat.models import CustomerMessage
from orders.models import EventKind, Order, OrderEvent, OrderStatus, Shipment
from workflows.notifications import customer_push_order_status, push_exists

# Older misses are left alone: a shipped push a day late would confuse more than it helps.
RELAY_WINDOW = datetime.timedelta(hours=24)
SHIPPED_PUSH = "shipped"


def react_to_status_event(*, event_id: int) -> str:
    event = OrderEvent.objects.filter(pk=event_id, kind__in=[EventKind.STATUS, EventKind.WAYBILL]).first()
    if event is None:
        return "no such status event"
    if event.kind == EventKind.WAYBILL:
        return react_to_waybill_event(event)
    if event.payload.get("to") != OrderStatus.SHIPPED:
        return "nothing to do"
    # Shipped: the carrier subscription for every parcel, and the customer's push.
    for shipment in Shipment.objects.filter(order_id=event.order_id):
        shipment_track(shipment=shipment)
    order = Order.objects.select_related("customer").get(pk=event.order_id)
    customer_push_order_status(order=order, event_key=SHIPPED_PUSH)
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
        with translation.override(settings.LANGUAGE_CODE):
            reason = _("New waybill %(number)s") % {"number": event.payload.get("tracking_number", "")}
        customer_push_order_status(order=order, event_key=waybill_push_key(event), reason=reason)
    return "waybill reactions done"


def missed_waybill_events(*, now: datetime.datetime | None = None) -> list[int]:
    """Waybill changes of the last day whose subscription or push is missing (few: a loop is fine)."""
    now = now or timezone.now()
    missed = []
    for event in OrderEvent.objects.filter(kind=EventKind.WAYBILL, occurred_at__gte=now - RELAY_WINDOW).select_related("order"):
        shipment_id = event.payload.get("shipment_id")
        unsubscribed = Shipment.objects.filter(pk=shipment_id, subscription__isnull=True).exists()
        unpushed = event.order.status == OrderStatus.SHIPPED and not push_exists(
            order=event.order, event_key=waybill_push_key(event)
        )
        if unsubscribed or unpushed:
            missed.append(event.pk)
    return missed


def missed_status_events(*, now: datetime.datetime | None = None):
    """Shipped events of the last day whose push or subscription is missing."""
    now = now or timezone.now()
    push_missing = ~Exists(CustomerMessage.objects.filter(order_id=OuterRef("order_id"), event_key=SHIPPED_PUSH))
    subscription_missing = Exists(Shipment.objects.filter(order_id=OuterRef("order_id"), subscription__isnull=True))
    return OrderEvent.objects.filter(
        kind=EventKind.STATUS, occurred_at__gte=now - RELAY_WINDOW, payload__to=OrderStatus.SHIPPED
    ).filter(Q(push_missing) | Q(subscription_missing))


def reactions_relay(*, now: datetime.datetime | None = None, limit: int = 500) -> int:
    done = 0
    for event_id in missed_status_events(now=now).order_by("occurred_at").values_list("pk", flat=True)[:limit]:
        react_to_status_event(event_id=event_id)
        done += 1
    for event_id in missed_waybill_events(now=now)[:limit]:
        react_to_status_event(event_id=event_id)
        done += 1
    return done
