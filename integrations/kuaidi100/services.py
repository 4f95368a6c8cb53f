"""Tracking with Kuaidi100: subscribe shipped parcels, poll the silent ones, and record what
Kuaidi100 reports (tracking events, the shipment's state, the order's tracking event).

What a report *means* (a push to the customer, a ticket, completing the order) is decided in
workflows/tracking.py, which calls tracking_ingest and reacts to the TrackingChange it returns.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from functools import partial

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from integrations import outbox
from integrations.kuaidi100 import client
from integrations.kuaidi100.models import SubscriptionState, TrackingSubscription
from orders import events
from orders.access import Actor
from orders.models import Order, OrderStatus, Shipment, TrackingEvent, TrackingState

SYSTEM = Actor.system("kuaidi100")

MAX_SUBSCRIBE_ATTEMPTS = 8
# docs/protocols.md: do not query one number more than about once per 30 minutes.
POLL_MIN_INTERVAL = datetime.timedelta(minutes=30)
# Pushes normally come every few hours; after this silence the fallback poll asks.
POLL_AFTER_SILENCE = datetime.timedelta(hours=2)


# --- Subscribing -------------------------------------------------------------------------------


def shipment_track(*, shipment: Shipment) -> TrackingSubscription:
    subscription, created = TrackingSubscription.objects.get_or_create(shipment=shipment)
    if created or subscription.state == SubscriptionState.PENDING:
        from integrations.kuaidi100.tasks import subscribe_shipment

        outbox.enqueue(subscribe_shipment, subscription.pk)
    return subscription


def callback_url(shipment: Shipment) -> str:
    # Business parameters may ride in the callback URL's query (docs/protocols.md).
    return f"{settings.PUBLIC_BASE_URL.rstrip('/')}{reverse('kuaidi100_callback')}?shipment={shipment.pk}"


def receiver_phone_for(shipment: Shipment) -> str:
    # SF codes need the recipient's phone or its last 4 digits; the last 4 are enough.
    return shipment.order.receiver_phone[-4:] if shipment.carrier_code.startswith("shunfeng") else ""


def shipment_subscribe(*, subscription_id: int) -> str:
    """Subscribe one shipment, once: the row is claimed first so two workers (or the relay and
    the original task) never both call Kuaidi100 for it. Returns what happened."""
    subscription = outbox.claim_due(
        TrackingSubscription.objects.filter(state=SubscriptionState.PENDING).select_related("shipment__order"), subscription_id
    )
    if subscription is None:
        return "not due"
    if client.mode() == "off":
        return _subscription_failed(subscription, _("Kuaidi100 is not configured (no key)."), permanent=False)
    shipment = subscription.shipment
    try:
        client.subscribe(
            carrier_code=shipment.carrier_code,
            tracking_number=shipment.tracking_number,
            callback_url=callback_url(shipment),
            phone=receiver_phone_for(shipment),
        )
    except client.Kuaidi100Error as exc:
        return _subscription_failed(subscription, str(exc), permanent=exc.permanent)
    # "already polling" (501) counts as subscribed: the pushes will come either way.
    TrackingSubscription.objects.filter(pk=subscription.pk).update(
        state=SubscriptionState.ACTIVE, subscribed_at=timezone.now(), last_error=""
    )
    return "subscribed"


def _subscription_failed(subscription: TrackingSubscription, error: str, *, permanent: bool) -> str:
    gave_up = permanent or subscription.attempts >= MAX_SUBSCRIBE_ATTEMPTS
    if not gave_up:
        TrackingSubscription.objects.filter(pk=subscription.pk).update(
            last_error=error[:300], next_attempt_at=timezone.now() + outbox.backoff(subscription.attempts, first=30, cap=3600)
        )
        return "retry"
    # Nobody watches the parcel now; workflows/tracking.py's watch scan opens the ticket for it.
    TrackingSubscription.objects.filter(pk=subscription.pk).update(state=SubscriptionState.REFUSED, last_error=error[:300])
    return "refused"


def subscriptions_relay(*, now: datetime.datetime | None = None, limit: int = 500) -> int:
    """Beat: re-enqueue subscriptions a lost task or a down broker left pending. (Rows a crash
    never created are re-derived from the shipped events by workflows/reactions.py's relay.)"""
    from integrations.kuaidi100.tasks import subscribe_shipment

    return outbox.relay(
        TrackingSubscription.objects.filter(state=SubscriptionState.PENDING),
        partial(outbox.enqueue, subscribe_shipment),
        now=now,
        limit=limit,
    )


# --- Ingesting ---------------------------------------------------------------------------------


def _location(item: client.TrackingItem) -> str:
    if item.area_name:
        return item.area_name.split(",")[-1]
    if item.context.startswith("[") and "]" in item.context:
        return item.context[1 : item.context.index("]")]
    return ""


@dataclass
class TrackingChange:
    """What one Kuaidi100 report changed, for the caller to react to (workflows/tracking.py).
    `order` and `shipment` are locked in the caller's transaction."""

    order: Order
    shipment: Shipment
    new_events: int
    state_changed: bool
    newest: client.TrackingItem | None
    # Kuaidi100 gave up on the number (push status "abort"), with its reason.
    aborted: bool = False
    abort_message: str = ""


def tracking_ingest(
    *, shipment: Shipment, result: client.TrackingResult, push_status: str = "", via: str = "push", message: str = ""
) -> TrackingChange:
    """Record what Kuaidi100 reported for a shipment: its tracking events, its state and (when
    the state changed) the order's tracking event. Decides nothing about what it means.

    Idempotent: the same push twice adds nothing (events are unique per shipment, time and
    text) and changes nothing. Out of order: an older report adds its missing events but never
    moves the shipment's state back. Call it inside the transaction that reacts to the change,
    so the facts and the reactions commit together.
    """
    now = timezone.now()
    with transaction.atomic():
        # Lock order then shipment, the order every order service takes, so a concurrent
        # transition cannot deadlock with a push.
        order = Order.objects.select_for_update().get(pk=shipment.order_id)
        shipment = Shipment.objects.select_for_update().get(pk=shipment.pk)
        known = set(shipment.events.values_list("occurred_at", "context"))
        fresh = [
            TrackingEvent(
                shipment=shipment,
                occurred_at=item.occurred_at,
                context=item.context,
                area_name=item.area_name,
                area_code=item.area_code,
                status_name=item.status_name,
            )
            for item in result.items
            if (item.occurred_at, item.context) not in known
        ]
        TrackingEvent.objects.bulk_create(fresh, ignore_conflicts=True)

        subscription_fields = {"last_push_at": now} if via == "push" else {"last_polled_at": now}
        if push_status == "shutdown":
            subscription_fields["state"] = SubscriptionState.FINISHED
        elif push_status == "abort":
            subscription_fields["state"] = SubscriptionState.ABORTED
        TrackingSubscription.objects.filter(shipment=shipment).update(**subscription_fields)

        previous_state = shipment.tracking_state
        newest = max(result.items, key=lambda item: item.occurred_at, default=None)
        changed_state = False
        reported = {(item.occurred_at, item.context) for item in result.items}
        # Newer means a later newest event, or the same moment in a report that still holds
        # everything we know (times have one-second resolution; an older report lacks events).
        is_current = newest is not None and (
            shipment.last_event_at is None
            or newest.occurred_at > shipment.last_event_at
            or (newest.occurred_at == shipment.last_event_at and known <= reported)
        )
        if is_current:
            shipment.last_event_at = newest.occurred_at
            shipment.last_location = _location(newest) or shipment.last_location
            if result.state in TrackingState.values:
                shipment.tracking_state = result.state
            shipment.eta = result.eta if result.state not in (TrackingState.SIGNED,) else None
            shipment.save(update_fields=["last_event_at", "last_location", "tracking_state", "eta"])
            changed_state = shipment.tracking_state != previous_state
        if changed_state:
            events.tracking_changed(
                order=order,
                by=SYSTEM,
                tracking_number=shipment.tracking_number,
                tracking_state=shipment.tracking_state,
                context=newest.context,
                location=shipment.last_location,
                source_time=newest.occurred_at,
            )
    return TrackingChange(
        order=order,
        shipment=shipment,
        new_events=len(fresh),
        state_changed=changed_state,
        newest=newest,
        aborted=push_status == "abort",
        abort_message=message,
    )


# --- The fallback poll -------------------------------------------------------------------------


def subscriptions_due_for_poll(*, now: datetime.datetime | None = None):
    now = now or timezone.now()
    quiet = now - POLL_AFTER_SILENCE
    return TrackingSubscription.objects.filter(
        state=SubscriptionState.ACTIVE, shipment__order__status=OrderStatus.SHIPPED
    ).filter(
        Q(last_polled_at__isnull=True) | Q(last_polled_at__lt=now - POLL_MIN_INTERVAL),
        Q(last_push_at__lt=quiet) | Q(last_push_at__isnull=True, subscribed_at__lt=quiet),
    )


@dataclass
class PollOutcome:
    outcome: str  # "polled", "polled recently" or "error <code>"
    shipment: Shipment | None = None
    result: client.TrackingResult | None = None


def shipment_poll(*, subscription_id: int) -> PollOutcome:
    """Ask Kuaidi100 directly for a shipment whose pushes stopped; the caller ingests the result.
    The claim (last_polled_at moved to now by a conditional update) keeps one number to one
    query per 30 minutes even if the task runs twice."""
    now = timezone.now()
    claimed = TrackingSubscription.objects.filter(
        Q(last_polled_at__isnull=True) | Q(last_polled_at__lt=now - POLL_MIN_INTERVAL), pk=subscription_id
    ).update(last_polled_at=now)
    if not claimed:
        return PollOutcome("polled recently")
    subscription = TrackingSubscription.objects.select_related("shipment__order").get(pk=subscription_id)
    shipment = subscription.shipment
    try:
        raw = client.query(
            carrier_code=shipment.carrier_code, tracking_number=shipment.tracking_number, phone=receiver_phone_for(shipment)
        )
    except client.Kuaidi100Error as exc:
        TrackingSubscription.objects.filter(pk=subscription_id).update(last_error=str(exc)[:300])
        return PollOutcome(f"error {exc.code}")
    return PollOutcome("polled", shipment=shipment, result=client.parse_result(raw))
