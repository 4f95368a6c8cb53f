"""What tracking news sets off: Kuaidi100's pushes and polls are recorded by
integrations/kuaidi100 (tracking events, the shipment's state, the order's tracking event) and
reacted to here, in the same transaction, from the one table of what each state means
(workflows/notifications.py): a push to the customer, a ticket for the courier role, completing
a signed order. The minute watch scan turns silence into the same reactions: a stalled parcel,
a refused subscription.
"""

from __future__ import annotations

import datetime
import logging

from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from integrations.kuaidi100 import callback
from integrations.kuaidi100 import client as kuaidi100_client
from integrations.kuaidi100 import services as kuaidi100
from integrations.kuaidi100.models import SubscriptionState
from orders.access import public_endpoint
from orders.models import OrderStatus, Shipment, TrackingState
from orders.services import OrderError, order_transition
from workflows import delays, notifications
from workflows.models import Ticket
from workflows.notifications import TRACKING_MEANINGS
from workflows.tickets import ticket_open_for_shipment

logger = logging.getLogger(__name__)


# --- Recording a report and reacting to it -------------------------------------------------------


def tracking_report_record(
    *, shipment: Shipment, result: kuaidi100_client.TrackingResult, push_status: str = "", via: str = "push", message: str = ""
) -> kuaidi100.TrackingChange:
    """Record one Kuaidi100 report and react to what it changed, atomically: a crash leaves
    either both or neither, and Kuaidi100 pushes again when we did not acknowledge. Idempotent,
    so a repeated push changes nothing and reacts to nothing new."""
    with transaction.atomic():
        change = kuaidi100.tracking_ingest(shipment=shipment, result=result, push_status=push_status, via=via, message=message)
        if change.state_changed:
            _react_to_state(change)
        if change.aborted:
            _react_to_abort(change)
    return change


def _react_to_state(change: kuaidi100.TrackingChange) -> None:
    order, shipment, newest = change.order, change.shipment, change.newest
    meaning = TRACKING_MEANINGS.get(shipment.tracking_state)
    if meaning is None:
        return
    if meaning.ticket:
        ticket_open_for_shipment(
            shipment=shipment, kind=meaning.ticket, summary=f"{shipment.get_tracking_state_display()}: {newest.context}"
        )
    if meaning.pushed:
        # A carrier-reported problem is a predicted delay too: the push carries a new ETA. It is
        # urgent, so never held for the night.
        new_eta = (
            delays.predicted_eta(order, now=timezone.now(), shipment=shipment)
            if shipment.tracking_state == TrackingState.PROBLEM
            else None
        )
        notifications.customer_push_order_status(
            order=order, event_key=f"tracking:{shipment.pk}:{shipment.tracking_state}", new_eta=new_eta
        )
    if meaning.completes and order.status == OrderStatus.SHIPPED:
        try:
            order_transition(order=order, name="complete", by=kuaidi100.SYSTEM, source_time=newest.occurred_at)
        except OrderError:
            logger.info("order %s signed but could not complete", order.order_number)


def _react_to_abort(change: kuaidi100.TrackingChange) -> None:
    meaning = notifications.ABORTED
    ticket_open_for_shipment(
        shipment=change.shipment,
        kind=meaning.ticket,
        summary=_("Kuaidi100 stopped tracking: %(message)s") % {"message": change.abort_message or _("no records")},
    )
    notifications.customer_push_order_status(
        order=change.order, event_key=f"tracking:{change.shipment.pk}:abort", reason=_(meaning.note)
    )


@csrf_exempt
@require_POST
@public_endpoint("Kuaidi100 pushes tracking here; authenticated by the MD5(param + salt) signature")
def kuaidi100_callback(request: HttpRequest) -> JsonResponse:
    """Kuaidi100's push: verified and read by integrations/kuaidi100/callback.py, recorded and
    reacted to here, acknowledged only once both committed."""
    try:
        push = callback.push_read(request)
    except callback.PushRefused as refused:
        return callback.refusal(refused)
    if push.shipment is not None:
        tracking_report_record(
            shipment=push.shipment, result=push.result, push_status=push.status, via="push", message=push.message
        )
    # Not ours (or deleted): acknowledged all the same, or Kuaidi100 keeps pushing a parcel we cannot use.
    return callback.acknowledgement()


def shipment_poll(*, subscription_id: int) -> str:
    """The fallback poll of one silent shipment: Kuaidi100 is asked (at most once per 30
    minutes per number), and what it says is recorded and reacted to like a push."""
    polled = kuaidi100.shipment_poll(subscription_id=subscription_id)
    if polled.result is not None:
        tracking_report_record(shipment=polled.shipment, result=polled.result, via="poll")
    return polled.outcome


# --- The watch scan: what silence means ------------------------------------------------------------


def shipments_stalled_scan(*, now: datetime.datetime | None = None) -> int:
    """Open one ticket per tracked shipment with no new tracking event for the stall threshold
    (issue 5), and tell the customer. A silence is flagged once: a ticket opened after the last
    event means it was seen."""
    now = now or timezone.now()
    threshold = now - notifications.stall_after()
    flagged_since_last_event = Ticket.objects.filter(shipment=OuterRef("pk")).filter(
        Q(opened_at__gt=OuterRef("last_event_at")) | Q(shipment__last_event_at__isnull=True)
    )
    stalled = (
        Shipment.objects.filter(
            order__status=OrderStatus.SHIPPED,
            replaced_at__isnull=True,
            subscription__state__in=[SubscriptionState.PENDING, SubscriptionState.ACTIVE],
        )
        .filter(Q(last_event_at__lt=threshold) | Q(last_event_at__isnull=True, created_at__lt=threshold))
        .filter(~Exists(flagged_since_last_event))
        .select_related("order__customer")
    )
    meaning = notifications.STALLED
    opened = 0
    for shipment in stalled:
        since = timezone.localtime(shipment.last_event_at or shipment.created_at)
        with transaction.atomic():
            _ticket, created = ticket_open_for_shipment(
                shipment=shipment,
                kind=meaning.ticket,
                summary=_("No tracking update for %(hours)s h, since %(when)s; last seen in %(location)s")
                % {
                    "hours": f"{notifications.stall_after().total_seconds() / 3600:g}",
                    "when": since.strftime("%m-%d %H:%M"),
                    "location": shipment.last_location or "—",
                },
            )
            if created:
                # The delay push (workflows/delays.py): why, and the new ETA; held at night.
                event_key = delays.delay_event_key(
                    "stalled", shipment.pk, f"{(shipment.last_event_at or shipment.created_at):%Y%m%d%H%M}"
                )
                delays.delay_push(order=shipment.order, cause="stalled", key=event_key, now=now, shipment=shipment)
                opened += 1
    return opened


def refused_subscriptions_scan() -> int:
    """A shipment whose Kuaidi100 subscription was refused is watched by nobody: a person must.
    One ABORTED ticket each, unless someone already works an open ticket on it."""
    meaning = notifications.SUBSCRIPTION_REFUSED
    unattended = (
        Shipment.objects.filter(order__status=OrderStatus.SHIPPED, subscription__state=SubscriptionState.REFUSED)
        .filter(
            ~Exists(Ticket.objects.filter(shipment=OuterRef("pk")).filter(Q(closed_at__isnull=True) | Q(kind=meaning.ticket)))
        )
        .select_related("subscription")
    )
    opened = 0
    for shipment in unattended:
        _ticket, created = ticket_open_for_shipment(
            shipment=shipment,
            kind=meaning.ticket,
            summary=_("Kuaidi100 refused the tracking subscription: %(error)s") % {"error": shipment.subscription.last_error},
        )
        opened += created
    return opened


def shipments_watch_scan(*, now: datetime.datetime | None = None) -> int:
    """Beat, every minute: the tickets silence calls for. Returns how many were opened."""
    return shipments_stalled_scan(now=now) + refused_subscriptions_scan()
