"""Tickets: work for a role about one shipment (stalled, problem, returned, aborted tracking).

Writes follow the order recipe: lock the row, check who may act, change, save the named
fields. "One ticket" per shipment is a database fact (the partial unique constraint on open
tickets), so two detections racing each other end with one open ticket.
"""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from orders import live
from orders.access import Actor
from orders.models import Shipment
from workflows.alerts import alert_email_soon, alert_raise
from workflows.models import AlertKind, Ticket, TicketNote

# The courier role (logistics specialist) owns shipment tickets; a supervisor may do anything.
TICKET_ROLES = {"courier", "supervisor"}


class TicketError(Exception):
    """A refused ticket action; the message is for the user."""


def _check(by: Actor) -> None:
    if not by.is_system and not by.roles & TICKET_ROLES:
        raise TicketError(_("Only the courier liaison or a supervisor can work on tickets."))


def ticket_open_for_shipment(*, shipment: Shipment, kind: str, summary: str) -> tuple[Ticket, bool]:
    """The open ticket for this shipment, opened now if there is none. Returns (ticket, created)."""
    existing = Ticket.objects.filter(shipment=shipment, closed_at__isnull=True).first()
    if existing:
        return existing, False
    try:
        with transaction.atomic():
            ticket = Ticket.objects.create(order_id=shipment.order_id, shipment=shipment, kind=kind, summary=summary[:300])
            # A ticket is no order event, but the board, the tickets screen and the order's card show it.
            live.order_changed(ticket.order_id)
    except IntegrityError:
        return Ticket.objects.get(shipment=shipment, closed_at__isnull=True), False
    alert, _created = alert_raise(
        kind=AlertKind.TICKET,
        for_role=ticket.for_role,
        order_id=shipment.order_id,
        dedupe_key=f"ticket:{ticket.pk}",
        message=_("Shipment %(number)s: %(summary)s") % {"number": shipment.tracking_number, "summary": ticket.summary},
        link=reverse("ticket_detail", args=[ticket.pk]),
    )
    alert_email_soon(alert)
    return ticket, True


def _lock(ticket: Ticket) -> Ticket:
    return Ticket.objects.select_for_update().get(pk=ticket.pk)


def ticket_take(*, ticket: Ticket, by: Actor, owner=None) -> Ticket:
    """Become (or, as a supervisor, name) the owner of an open ticket."""
    _check(by)
    owner = owner or by.user
    if owner is not None and by.user is not None and owner != by.user and "supervisor" not in by.roles:
        raise TicketError(_("Only a supervisor can hand a ticket to someone else."))
    with transaction.atomic():
        ticket = _lock(ticket)
        if ticket.closed_at is not None:
            raise TicketError(_("This ticket is already closed."))
        ticket.owner = owner
        ticket.save(update_fields=["owner"])
        live.order_changed(ticket.order_id)
    return ticket


def ticket_add_note(*, ticket: Ticket, by: Actor, body: str) -> TicketNote:
    _check(by)
    body = (body or "").strip()
    if not body:
        raise TicketError(_("A note cannot be empty."))
    if len(body) > 1000:
        raise TicketError(_("A note has at most 1000 characters."))
    with transaction.atomic():
        ticket = _lock(ticket)
        live.order_changed(ticket.order_id)
        return TicketNote.objects.create(ticket=ticket, author=by.user, body=body)


def ticket_close(*, ticket: Ticket, by: Actor, resolution: str) -> Ticket:
    """Close with a resolution; opened_at → closed_at is the exception closure time."""
    _check(by)
    resolution = (resolution or "").strip()
    if not resolution:
        raise TicketError(_('Say how the ticket was resolved, e.g. "carrier found the parcel, delivery tomorrow".'))
    with transaction.atomic():
        ticket = _lock(ticket)
        if ticket.closed_at is not None:
            raise TicketError(_("This ticket was already closed."))
        ticket.closed_at = timezone.now()
        ticket.closed_by = by.user
        ticket.resolution = resolution[:300]
        if ticket.owner_id is None:
            ticket.owner = by.user
        ticket.save(update_fields=["closed_at", "closed_by", "resolution", "owner"])
        live.order_changed(ticket.order_id)
    return ticket


# --- Reads -------------------------------------------------------------------------------------


def open_tickets() -> QuerySet[Ticket]:
    return Ticket.objects.filter(closed_at__isnull=True).select_related("order", "shipment", "owner").order_by("opened_at")


def recently_closed_tickets(*, limit: int = 20) -> QuerySet[Ticket]:
    return (
        Ticket.objects.filter(closed_at__isnull=False)
        .select_related("order", "shipment", "owner", "closed_by")
        .order_by("-closed_at")[:limit]
    )
