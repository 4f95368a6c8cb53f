"""The ticket pages for the courier liaison and the supervisor: the open list, one ticket with
its notes, and the actions (take, note, close). htmx swaps the ticket in place; a plain POST
redirects back."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from orders import rules, services
from orders.access import Actor, role_required
from workflows import address_changes, tickets
from workflows.models import Ticket

ROLES = rules.SCREEN_ROLES["tickets"]


@require_GET
@role_required(*ROLES)
def ticket_list(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "workflows/tickets.html",
        {"open_tickets": tickets.open_tickets(), "closed_tickets": tickets.recently_closed_tickets()},
    )


def _detail_context(pk: int) -> dict:
    ticket = get_object_or_404(Ticket.objects.select_related("order", "shipment", "owner", "closed_by"), pk=pk)
    return {"ticket": ticket, "notes": ticket.notes.select_related("author").order_by("created_at")}


@require_GET
@role_required(*ROLES)
def ticket_detail(request: HttpRequest, pk: int) -> HttpResponse:
    context = _detail_context(pk)
    if request.htmx:
        return render(request, "workflows/ticket.html#ticket-detail", context)
    return render(request, "workflows/ticket.html", context)


def _take(request, ticket, actor):
    tickets.ticket_take(ticket=ticket, by=actor)
    return _("You own this ticket now.")


def _note(request, ticket, actor):
    tickets.ticket_add_note(ticket=ticket, by=actor, body=request.POST.get("body", ""))
    return _("Note added.")


def _close(request, ticket, actor):
    tickets.ticket_close(ticket=ticket, by=actor, resolution=request.POST.get("resolution", ""))
    return _("Ticket closed.")


def _carrier_answer(rerouted: bool):
    """An address-change ticket (issue 13): the courier records what the carrier's hotline said."""

    def record(request, ticket, actor):
        try:
            address_changes.address_change_courier_outcome(
                ticket=ticket, by=actor, rerouted=rerouted, reason=request.POST.get("resolution", "")
            )
        except services.OrderError as exc:
            raise tickets.TicketError(str(exc)) from exc
        return _("The carrier's answer is recorded and the customer is told.")

    return record


ACTIONS = {
    "take": _take,
    "note": _note,
    "close": _close,
    "address_rerouted": _carrier_answer(True),
    "address_failed": _carrier_answer(False),
}


@require_POST
@role_required(*ROLES)
def ticket_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    handler = ACTIONS.get(action)
    ticket = get_object_or_404(Ticket, pk=pk)
    if handler is None:
        return HttpResponse(status=404)
    error = notice = ""
    try:
        notice = handler(request, ticket, Actor.of(request.user))
    except tickets.TicketError as exc:
        error = str(exc)
    if request.htmx:
        context = _detail_context(pk) | {"error": error, "notice": notice}
        return render(request, "workflows/ticket.html#ticket-detail", context)
    (messages.error if error else messages.success)(request, error or notice)
    next_url = request.POST.get("next", "")
    if next_url and url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}):
        return redirect(next_url)
    return redirect("ticket_detail", pk=pk)
