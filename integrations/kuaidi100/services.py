"""Tracking: subscribe shipped parcels, ingest what Kuaidi100 pushes (or the fallback poll
finds), and react to what it means — customer pushes, completing signed orders, tickets for
parcels in trouble or gone silent."""

from __future__ import annotations

import datetime
import logging

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from integrations.kuaidi100 import client
from integrations.kuaidi100.models import SubscriptionState, TrackingSubscription
from orders.access import Actor
from orders import events
from orders.models import Order, OrderStatus, Shipment, TrackingEvent, TrackingState
from orders.services import OrderError, order_transition
from workflows.models import Ticket, TicketKind
from workflows.tickets import ticket_open_for_shipment

logger = logging.getLogger(__name__)
SYSTEM = Actor.system("kuaidi100")

MAX_SUBSCRIBE_ATTEMPTS = 8
# PROTOCOLS.md: do not query one number more than about once per 30 minutes.
POLL_MIN_INTERVAL = datetime.timedelta(minutes=30)
# Pushes normally come every few hours; after this silence the fallback poll asks.
POLL_AFTER_SILENCE = datetime.timedelta(hours=2)
# A shipment created this recently without a subscription row lost its signal (a crash
# between the ship commit and the receiver); older ones predate tracking and are left alone.
ORPHAN_WINDOW = datetime.timedelta(hours=1)

# The tracking changes a customer hears about (issue 5: picked up, out for delivery, signed, problem).
PUSHED_STATES = {
    TrackingState.PICKED_UP, TrackingState.OUT_FOR_DELIVERY, TrackingState.SIGNED, TrackingState.PROBLEM,
    TrackingState.RETURNED_SIGNED, TrackingState.RETURNING, TrackingState.REFUSED,
}
# The states that need a person (issue 5: state 2 problem, 4/6/14 returned or refused).
TICKET_STATES = {
    TrackingState.PROBLEM: TicketKind.PROBLEM,
    TrackingState.RETURNED_SIGNED: TicketKind.RETURNED,
    TrackingState.RETURNING: TicketKind.RETURNED,
    TrackingState.REFUSED: TicketKind.RETURNED,
}


def stall_after() -> datetime.timedelta:
    return datetime.timedelta(hours=float(settings.KUAIDI100.get("STALL_HOURS", 24)))


def _enqueue(task, pk: int) -> None:
    """Hand work to the broker without letting a broker outage fail the caller: the row is the
    record, and the relay picks it up when the broker is back."""
    try:
        task.apply_async(args=[pk], retry=False)
    except Exception:  # noqa: BLE001 - any broker error is survivable here
        logger.warning("broker unavailable; %s(%s) left to the relay", task.name, pk)


# --- Subscribing -------------------------------------------------------------------------------


def shipment_track(*, shipment: Shipment) -> TrackingSubscription:
    subscription, created = TrackingSubscription.objects.get_or_create(shipment=shipment)
    if created or subscription.state == SubscriptionState.PENDING:
        from integrations.kuaidi100.tasks import subscribe_shipment

        _enqueue(subscribe_shipment, subscription.pk)
    return subscription


def callback_url(shipment: Shipment) -> str:
    # Business parameters may ride in the callback URL's query (PROTOCOLS.md).
    return f"{settings.PUBLIC_BASE_URL.rstrip('/')}{reverse('kuaidi100_callback')}?shipment={shipment.pk}"


def receiver_phone_for(shipment: Shipment) -> str:
    # SF codes need the recipient's phone or its last 4 digits; the last 4 are enough.
    return shipment.order.receiver_phone[-4:] if shipment.carrier_code.startswith("shunfeng") else ""


def shipment_subscribe(*, subscription_id: int) -> str:
    """Subscribe one shipment, once: the row is claimed first so two workers (or the relay and
    the original task) never both call Kuaidi100 for it. Returns what happened."""
    now = timezone.now()
    with transaction.atomic():
        subscription = (
            TrackingSubscription.objects.select_for_update(skip_locked=True)
            .select_related("shipment__order")
            .filter(pk=subscription_id, state=SubscriptionState.PENDING, next_attempt_at__lte=now)
            .first()
        )
        if subscription is None:
            return "not due"
        subscription.attempts += 1
        subscription.next_attempt_at = now + datetime.timedelta(seconds=settings.INTEGRATION_CLAIM_SECONDS)
        subscription.save(update_fields=["attempts", "next_attempt_at"])
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
        backoff = datetime.timedelta(seconds=min(30 * 2 ** (subscription.attempts - 1), 3600))
        TrackingSubscription.objects.filter(pk=subscription.pk).update(last_error=error[:300], next_attempt_at=timezone.now() + backoff)
        return "retry"
    with transaction.atomic():
        TrackingSubscription.objects.filter(pk=subscription.pk).update(state=SubscriptionState.REFUSED, last_error=error[:300])
        # Without a subscription nobody watches the parcel: a person must.
        ticket_open_for_shipment(
            shipment=subscription.shipment, kind=TicketKind.ABORTED,
            summary=_("Kuaidi100 refused the tracking subscription: %(error)s") % {"error": error},
        )
    return "refused"


def subscriptions_relay(*, now: datetime.datetime | None = None, limit: int = 500) -> int:
    """Beat: re-enqueue subscriptions a lost task or a down broker left pending, and create the
    rows a crash between the ship commit and the receiver never created."""
    now = now or timezone.now()
    orphans = Shipment.objects.filter(
        order__status=OrderStatus.SHIPPED, created_at__gte=now - ORPHAN_WINDOW, subscription__isnull=True
    )
    for shipment in orphans[:limit]:
        TrackingSubscription.objects.get_or_create(shipment=shipment)
    from integrations.kuaidi100.tasks import subscribe_shipment

    due = list(
        TrackingSubscription.objects.filter(state=SubscriptionState.PENDING, next_attempt_at__lte=now)
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )
    for pk in due:
        _enqueue(subscribe_shipment, pk)
    return len(due)


# --- Ingesting ---------------------------------------------------------------------------------


def _location(item: client.TrackingItem) -> str:
    if item.area_name:
        return item.area_name.split(",")[-1]
    if item.context.startswith("[") and "]" in item.context:
        return item.context[1 : item.context.index("]")]
    return ""


def tracking_ingest(
    *, shipment: Shipment, result: client.TrackingResult, push_status: str = "", via: str = "push", message: str = ""
) -> int:
    """Record what Kuaidi100 reported for a shipment; returns how many events were new.

    Idempotent: the same push twice adds nothing (events are unique per shipment, time and
    text) and changes nothing. Out of order: an older report adds its missing events but never
    moves the shipment's state back.
    """
    now = timezone.now()
    with transaction.atomic():
        # Lock order then shipment, the order every order service takes, so a concurrent
        # transition cannot deadlock with a push.
        order = Order.objects.select_for_update().get(pk=shipment.order_id)
        shipment = Shipment.objects.select_for_update().get(pk=shipment.pk)
        known = set(shipment.events.values_list("occurred_at", "context"))
        fresh = [
            TrackingEvent(shipment=shipment, occurred_at=item.occurred_at, context=item.context, area_name=item.area_name,
                          area_code=item.area_code, status_name=item.status_name)
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
                order=order, by=SYSTEM, tracking_number=shipment.tracking_number, tracking_state=shipment.tracking_state,
                context=newest.context, location=shipment.last_location, source_time=newest.occurred_at,
            )
            _react_to_state(order, shipment, newest)
        if push_status == "abort":
            ticket_open_for_shipment(
                shipment=shipment, kind=TicketKind.ABORTED,
                summary=_("Kuaidi100 stopped tracking: %(message)s") % {"message": message or _("no records")},
            )
            _push(order, f"tracking:{shipment.pk}:abort", _("Tracking lost"))
    return len(fresh)


def _react_to_state(order: Order, shipment: Shipment, newest: client.TrackingItem) -> None:
    state = shipment.tracking_state
    if state in TICKET_STATES:
        ticket_open_for_shipment(
            shipment=shipment, kind=TICKET_STATES[state],
            summary=f"{shipment.get_tracking_state_display()}: {newest.context}",
        )
    if state in PUSHED_STATES:
        _push(order, f"tracking:{shipment.pk}:{state}", "")
    if state == TrackingState.SIGNED and order.status == OrderStatus.SHIPPED:
        try:
            order_transition(order=order, name="complete", by=SYSTEM, source_time=newest.occurred_at)
        except OrderError:
            logger.info("order %s signed but could not complete", order.order_number)


def _push(order: Order, event_key: str, reason: str) -> None:
    from integrations.wechat.services import customer_push_order_status

    customer_push_order_status(order=order, event_key=event_key, reason=reason)


# --- The fallback poll and the stalled scan ----------------------------------------------------


def subscriptions_due_for_poll(*, now: datetime.datetime | None = None):
    now = now or timezone.now()
    quiet = now - POLL_AFTER_SILENCE
    return TrackingSubscription.objects.filter(state=SubscriptionState.ACTIVE, shipment__order__status=OrderStatus.SHIPPED).filter(
        Q(last_polled_at__isnull=True) | Q(last_polled_at__lt=now - POLL_MIN_INTERVAL),
        Q(last_push_at__lt=quiet) | Q(last_push_at__isnull=True, subscribed_at__lt=quiet),
    )


def shipment_poll(*, subscription_id: int) -> str:
    """Ask Kuaidi100 directly for a shipment whose pushes stopped. The claim (last_polled_at
    moved to now by a conditional update) keeps one number to one query per 30 minutes even if
    the task runs twice."""
    now = timezone.now()
    claimed = TrackingSubscription.objects.filter(
        Q(last_polled_at__isnull=True) | Q(last_polled_at__lt=now - POLL_MIN_INTERVAL), pk=subscription_id
    ).update(last_polled_at=now)
    if not claimed:
        return "polled recently"
    subscription = TrackingSubscription.objects.select_related("shipment__order").get(pk=subscription_id)
    shipment = subscription.shipment
    try:
        raw = client.query(carrier_code=shipment.carrier_code, tracking_number=shipment.tracking_number, phone=receiver_phone_for(shipment))
    except client.Kuaidi100Error as exc:
        TrackingSubscription.objects.filter(pk=subscription_id).update(last_error=str(exc)[:300])
        return f"error {exc.code}"
    tracking_ingest(shipment=shipment, result=client.parse_result(raw), via="poll")
    return "polled"


def shipments_stalled_scan(*, now: datetime.datetime | None = None) -> int:
    """Open one ticket per tracked shipment with no new tracking event for 24 h (issue 5).
    A silence is flagged once: a ticket opened after the last event means it was seen."""
    now = now or timezone.now()
    threshold = now - stall_after()
    flagged_since_last_event = Ticket.objects.filter(shipment=OuterRef("pk")).filter(
        Q(opened_at__gt=OuterRef("last_event_at")) | Q(shipment__last_event_at__isnull=True)
    )
    stalled = (
        Shipment.objects.filter(
            order__status=OrderStatus.SHIPPED,
            subscription__state__in=[SubscriptionState.PENDING, SubscriptionState.ACTIVE],
        )
        .filter(Q(last_event_at__lt=threshold) | Q(last_event_at__isnull=True, created_at__lt=threshold))
        .filter(~Exists(flagged_since_last_event))
        .select_related("order")
    )
    opened = 0
    for shipment in stalled:
        since = timezone.localtime(shipment.last_event_at or shipment.created_at)
        _ticket, created = ticket_open_for_shipment(
            shipment=shipment, kind=TicketKind.STALLED,
            summary=_("No tracking update since %(when)s; last seen in %(location)s")
            % {"when": since.strftime("%m-%d %H:%M"), "location": shipment.last_location or "—"},
        )
        if created:
            _push(shipment.order, f"stalled:{shipment.pk}:{(shipment.last_event_at or shipment.created_at):%Y%m%d%H%M}",
                  _("Parcel delayed"))
            opened += 1
    return opened
