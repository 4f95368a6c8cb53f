"""Address changes end to end (issue 13): the ladder decided by the order's stage, the Kuaidi100
interception's result callback, the courier's hotline ticket, and the inbox's reads.

The rungs themselves are services on the ground floor (orders/services.py `address_change_*`);
what needs a carrier lives here, because only this floor may call integrations/kuaidi100:

| the order is … | rung | outcome |
|---|---|---|
| pending review, paid | apply at once | applied |
| picking, packed | apply + a warehouse note to acknowledge + waybill reprint | applied |
| shipped, carrier in Kuaidi100's interceptOrder list | interception (MODIFY_ADDR) | rerouted / failed, by callback |
| shipped, other carrier (SF) | a ticket for the courier with the hotline step | rerouted / failed, by the courier |
| completed, or the parcel signed | refused, after-sales offered | refused |
"""

from __future__ import annotations

import datetime

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from integrations.kuaidi100 import client as kuaidi100
from orders import events, services
from orders.access import Actor
from orders.models import (
    ADDRESS_CHANGE_WAITING,
    AddressChangeRequest,
    AddressChangeRung,
    AddressChangeSource,
    AddressChangeStatus,
    Carrier,
    OrderStatus,
    Shipment,
    TrackingState,
)
from workflows import tickets
from workflows.alerts import alert_email_soon, alert_raise
from workflows.models import AlertKind, Ticket, TicketKind

# A parcel in these tracking states has reached someone: its address can no longer change.
DELIVERED_STATES = (TrackingState.SIGNED, TrackingState.RETURNED_SIGNED)
# The step the courier follows for carriers without interception (SF's own hotline).
CARRIER_HOTLINES = {"shunfeng": "95338", "shunfenglengyun": "95338"}
# docs/brief.md's measure table: exception closure ≤ 2 h; the address-change clock has the same target.
CLOSURE_TARGET = datetime.timedelta(hours=2)


def address_change_handle(*, change: AddressChangeRequest, by: Actor) -> AddressChangeRequest:
    """Run the rung the order's current stage calls for (the table above)."""
    change = AddressChangeRequest.objects.select_related("order").get(pk=change.pk)
    order = change.order
    if change.status != AddressChangeStatus.OPEN:
        raise services.OrderConflict(
            _("This address change was already handled (%(status)s).") % {"status": change.get_status_display()}
        )
    if order.status not in (OrderStatus.SHIPPED, OrderStatus.COMPLETED, OrderStatus.CANCELLED):
        return services.address_change_apply(change=change, by=by)
    if order.status == OrderStatus.CANCELLED:
        return services.address_change_refuse(change=change, by=by, reason=_("The order was cancelled."))
    if change.source == AddressChangeSource.PLATFORM:
        # A platform's new receiver is only masked here (its plaintext stays encrypted with the
        # platform), so no carrier can be asked to re-address the parcel: the platform is told no.
        return services.address_change_refuse(
            change=change,
            by=by,
            reason=_("The parcel has left the warehouse; a platform's address change applies only before shipping."),
        )
    shipment: Shipment | None = order.shipments.order_by("-created_at").first()
    if order.status == OrderStatus.COMPLETED or (shipment is not None and shipment.tracking_state in DELIVERED_STATES):
        return services.address_change_refuse(
            change=change,
            by=by,
            rung=AddressChangeRung.REFUSE,
            reason=_("The parcel was already delivered; we can open an after-sales case (return or exchange) instead."),
        )
    if shipment is None:
        raise services.OrderError(_("This shipped order has no waybill; enter the waybill first."))
    if kuaidi100.supports_interception(shipment.carrier_code):
        return _intercept(change, by, shipment)
    return _courier_ticket(change, by, shipment)


def _intercept(change: AddressChangeRequest, by: Actor, shipment: Shipment) -> AddressChangeRequest:
    # The permission is checked before anything leaves the building.
    services.check_may(by, "resolve_address_change")
    try:
        task_id = kuaidi100.intercept_order(
            carrier_code=shipment.carrier_code,
            tracking_number=shipment.tracking_number,
            receiver=change.new_receiver(),
            callback_url=f"{settings.PUBLIC_BASE_URL.rstrip('/')}{reverse('kuaidi100_intercept_callback')}",
            reason=_("Customer changed the delivery address"),
        )
    except kuaidi100.Kuaidi100Error as exc:
        if not exc.permanent:
            raise services.OrderError(
                _("Kuaidi100 cannot take the interception right now (%(error)s); try again in a minute.") % {"error": exc}
            ) from exc
        # The carrier said no at once (parcel signed meanwhile, …): that is the outcome.
        with transaction.atomic():
            change = services.address_change_to_carrier(
                change=change, by=by, rung=AddressChangeRung.CARRIER_INTERCEPT, shipment=shipment
            )
            return services.address_change_carrier_outcome(
                change=change, by=Actor.system("kuaidi100"), outcome=AddressChangeStatus.FAILED, reason=exc.message or str(exc)
            )
    return services.address_change_to_carrier(
        change=change, by=by, rung=AddressChangeRung.CARRIER_INTERCEPT, shipment=shipment, task_id=task_id
    )


def _courier_ticket(change: AddressChangeRequest, by: Actor, shipment: Shipment) -> AddressChangeRequest:
    hotline = CARRIER_HOTLINES.get(shipment.carrier_code, "")
    carrier = Carrier(shipment.carrier_code).label if shipment.carrier_code in Carrier.values else shipment.carrier_code
    summary = _(
        "Address change: call %(carrier)s %(hotline)s with waybill %(number)s and ask to re-address it to %(address)s; "
        "then record what the carrier said."
    ) % {
        "carrier": carrier,
        "hotline": hotline,
        "number": shipment.tracking_number,
        "address": events.address_text(change.new_receiver()),
    }
    with transaction.atomic():
        change = services.address_change_to_carrier(
            change=change, by=by, rung=AddressChangeRung.COURIER_TICKET, shipment=shipment
        )
        # Not tied to the shipment row: a stalled-parcel ticket may already be open for it
        # (one open ticket per shipment), and this is different work.
        ticket = Ticket.objects.create(order_id=change.order_id, kind=TicketKind.ADDRESS_CHANGE, summary=summary[:300])
        alert, _created = alert_raise(
            kind=AlertKind.TICKET,
            for_role=ticket.for_role,
            order_id=change.order_id,
            dedupe_key=f"ticket:{ticket.pk}",
            message=summary[:500],
            link=reverse("ticket_detail", args=[ticket.pk]),
        )
    alert_email_soon(alert)
    return change


def ticket_address_change(ticket: Ticket) -> AddressChangeRequest | None:
    """The request an address-change ticket is about (the courier records the carrier's answer)."""
    if ticket.kind != TicketKind.ADDRESS_CHANGE:
        return None
    return (
        AddressChangeRequest.objects.filter(order_id=ticket.order_id, rung=AddressChangeRung.COURIER_TICKET)
        .order_by("-requested_at", "-id")
        .first()
    )


def address_change_courier_outcome(*, ticket: Ticket, by: Actor, rerouted: bool, reason: str) -> AddressChangeRequest:
    """The courier called the hotline: record the carrier's answer and close the ticket."""
    change = ticket_address_change(ticket)
    if change is None:
        raise services.OrderError(_("This ticket is not about an address change."))
    reason = (reason or "").strip()
    with transaction.atomic():
        change = services.address_change_carrier_outcome(
            change=change, by=by, outcome=AddressChangeStatus.REROUTED if rerouted else AddressChangeStatus.FAILED, reason=reason
        )
        tickets.ticket_close(
            ticket=ticket,
            by=by,
            resolution=reason or (_("Carrier re-addressed the parcel") if rerouted else _("Carrier could not")),
        )
    return change


def intercept_result_record(*, result: kuaidi100.InterceptResult) -> AddressChangeRequest:
    """Kuaidi100's verified result: the outcome of the waiting request with this task id. A result
    for a request that already has its outcome (a replay) changes nothing: OrderConflict."""
    change = AddressChangeRequest.objects.filter(carrier_task_id=result.task_id).first()
    if change is None:
        raise LookupError(result.task_id)
    if change.status != AddressChangeStatus.WITH_CARRIER:
        raise services.OrderConflict(_("This interception result was already recorded; the repeated callback was not taken."))
    return services.address_change_carrier_outcome(
        change=change,
        by=Actor.system("kuaidi100"),
        outcome=AddressChangeStatus.REROUTED if result.success else AddressChangeStatus.FAILED,
        reason=result.message if not result.success else "",
    )


# --- Reads ---------------------------------------------------------------------------------------


def inbox_waiting() -> QuerySet[AddressChangeRequest]:
    """The inbox: every waiting request, the one due first on top."""
    return (
        AddressChangeRequest.objects.filter(status__in=ADDRESS_CHANGE_WAITING)
        .select_related("order", "requested_by")
        .order_by("due_at", "requested_at")
    )


def inbox_recent(*, limit: int = 30) -> QuerySet[AddressChangeRequest]:
    return (
        AddressChangeRequest.objects.exclude(status__in=ADDRESS_CHANGE_WAITING)
        .select_related("order", "resolved_by")
        .order_by("-resolved_at")[:limit]
    )


def is_overdue(change: AddressChangeRequest, *, now: datetime.datetime | None = None) -> bool:
    return change.is_waiting and change.due_at is not None and change.due_at < (now or timezone.now())
