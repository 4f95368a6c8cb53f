"""The order list and the order card. Every action works as an htmx request (the card is
re-rendered in place) and as a plain form POST followed by a redirect."""

from __future__ import annotations

import datetime
from collections.abc import Callable

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from orders import clock, events, privacy, rules, selectors, services
from orders.access import Actor, display_phone, public_endpoint, role_required, user_roles
from orders.models import (
    ACTIVE_STATUSES,
    AddressChangeRequest,
    AfterSalesCase,
    AfterSalesKind,
    Carrier,
    FeedbackRequest,
    HoldReason,
    Note,
    NoteAudience,
    NoteKind,
    Order,
    OrderSource,
    OrderStatus,
    Product,
    RiskTag,
    Role,
)

# Where each role starts its day: the screen it keeps open (the first match wins for a person
# with several roles; everyone else starts at the order list).
LANDING_PAGES = [("supervisor", "board"), ("packer", "pda"), ("service", "lookup"), ("finance", "erp_home")]


@require_GET
@public_endpoint("sends anonymous visitors to the login page and everyone else to their role's start page")
def home(request: HttpRequest) -> HttpResponse:
    if not request.user.is_authenticated:
        return redirect("login")
    roles = user_roles(request.user)
    return redirect(next((page for role, page in LANDING_PAGES if role in roles), "order_list"))


@require_GET
@role_required(*rules.SCREEN_ROLES["orders"])
def order_list(request: HttpRequest) -> HttpResponse:
    params = request.GET
    filters = selectors.OrderFilters.from_params(params)
    page = selectors.order_list(user=request.user, filters=filters, cursor=params.get("cursor", ""))
    roles = user_roles(request.user)
    for order in page.orders:
        order.phone_display = privacy.display_phone(roles, order.receiver_phone)
    context = {
        "page": page,
        # The enums themselves: their options are written once ({% options %}).
        "statuses": OrderStatus,
        "tags": RiskTag,
        "carriers": Carrier,
        "sources": OrderSource,
        "querystring": _querystring_without_cursor(request),
    }
    if request.htmx and params.get("cursor"):
        return render(request, "orders/list.html#order-rows", context)
    if request.htmx and request.htmx.target == "order-table":
        return render(request, "orders/list.html#order-table", context)
    return render(request, "orders/list.html", context)


def _querystring_without_cursor(request: HttpRequest) -> str:
    query = request.GET.copy()
    query.pop("cursor", None)
    return query.urlencode()


def _card_context(request: HttpRequest, order_number: str) -> dict:
    try:
        order = selectors.order_card(order_number=order_number)
    except Order.DoesNotExist as exc:
        raise Http404(_("No such order.")) from exc
    roles = user_roles(request.user)
    notes = list(order.notes.all())
    for note in notes:
        note.acknowledged_by_me = any(ack.user_id == request.user.pk for ack in note.acknowledgements.all())
    feedback = list(order.feedback_requests.all())

    def may(action: str, allowed: frozenset[str] | None = None) -> bool:
        allowed = rules.ACTION_ROLES[action] if allowed is None else allowed
        return bool(roles & allowed) or rules.SUPERVISOR in roles

    action_urls = _action_urls(order.order_number)
    transitions = selectors.transition_options(order, roles, user=request.user)
    for option in transitions:
        option["url"] = action_urls[option["name"]]
    open_tags = [tag for tag in order.tags.all() if tag.resolved_at is None]
    for tag in open_tags:
        # The fuzzy-address tag is resolved by correcting the address (the form above it).
        tag.resolvable = tag.tag != RiskTag.FUZZY_ADDRESS and may("", rules.TAG_RESOLVER_ROLES.get(tag.tag, frozenset()))
    return {
        "order": order,
        "phone_display": display_phone(request.user, order.receiver_phone),
        "customer_phone_display": display_phone(request.user, order.customer.phone),
        "phone_masked": display_phone(request.user, order.receiver_phone) != order.receiver_phone,
        "transitions": transitions,
        "action_urls": action_urls,
        "notes": notes,
        "feedback_open": [item for item in feedback if item.answered_at is None],
        "feedback_answered": [item for item in feedback if item.answered_at is not None],
        "confirmed_by": _confirmed_by(order),
        "open_tags": open_tags,
        "can_correct_address": may("correct_address") and order.status in services.CORRECTABLE_STATUSES,
        # A Douyin receiver is encrypted: the waybill's printers decrypt it on its own logged page.
        "can_decrypt_receiver": may("decrypt_receiver") and order.source == OrderSource.PLATFORM,
        "can_add_gift": may("add_gift") and order.status in services.GIFT_STATUSES,
        "gift_promise": rules.gift_promise_unmet(order),
        "fuzzy_open": any(tag.tag == RiskTag.FUZZY_ADDRESS for tag in open_tags),
        "events": list(order.events.all()),
        "my_roles": roles,
        # The enums themselves: their options are written once per language ({% options %}).
        "carriers": Carrier,
        "hold_reasons": HoldReason,
        "note_kinds": NoteKind,
        "note_audiences": NoteAudience,
        "role_choices": Role,
        "risk_tags": RiskTag,
        "after_sales_kinds": AfterSalesKind,
        # Holds and carrier changes only make sense before the parcel leaves (the services agree).
        "is_active": order.status in ACTIVE_STATUSES,
        "can_change_waybill": may("change_waybill") and order.status == OrderStatus.SHIPPED,
        "stage_clock": clock.stage_clock(order),
        # Issue 15: the platform's deadline beside our own; it does not pause on hold.
        "platform_clock": clock.platform_clock(order),
        # Issue 13: the label printed with the old address must be reprinted before shipping.
        "reprint_pending": rules.waybill_reprint_pending(order),
        "can_confirm_reprint": may("confirm_reprint"),
        "can_handle_address_change": may("resolve_address_change"),
    }


def _action_urls(order_number: str) -> dict[str, str]:
    """The address of each of the card's ~20 action forms (each used twice: action and hx-post),
    from one reverse(): 40 {% url %} tags were ~2 ms of the card's CPU (issue 14)."""
    prefix, _slot, suffix = reverse("order_action", args=[order_number, "slot"]).rpartition("slot")
    return {name: f"{prefix}{name}{suffix}" for name in ACTIONS}


def _confirmed_by(order: Order) -> list:
    """Collaboration: who has confirmed — everyone who moved the order or acknowledged a note."""
    seen: dict[str, object] = {}
    for event in order.events.all():
        if event.kind in ("status", "acknowledge") and event.actor_name not in seen:
            seen[event.actor_name] = event
    return list(seen.values())


@require_GET
@role_required(*rules.SCREEN_ROLES["orders"])
def order_card(request: HttpRequest, order_number: str) -> HttpResponse:
    context = _card_context(request, order_number)
    if request.htmx:
        return render(request, "orders/card.html#order-card", context)
    return render(request, "orders/card.html", context)


# --- Actions -----------------------------------------------------------------------------------

ActionHandler = Callable[[HttpRequest, Order, Actor, "int | None"], str]


def _parse_local_datetime(raw: str) -> datetime.datetime | None:
    if not raw:
        return None
    try:
        value = parse_datetime(raw)
    except ValueError:  # well formed but not on the calendar: 02-30, 25:00
        value = None
    if value is None:
        raise services.OrderError(_("Enter a date and time like 2026-11-24 18:00."))
    return timezone.make_aware(value) if timezone.is_naive(value) else value


def _transition(name: str) -> ActionHandler:
    def handler(request, order, actor, version):
        services.order_transition(order=order, name=name, by=actor, expected_version=version)
        return _("Done: %(action)s.") % {"action": _(events.TRANSITION_LABELS[name])}

    return handler


def _ship(request, order, actor, version):
    services.order_ship(
        order=order,
        by=actor,
        carrier_code=request.POST.get("carrier_code", ""),
        tracking_number=request.POST.get("tracking_number", ""),
        expected_version=version,
    )
    return _("Shipped.")


def _change_waybill(request, order, actor, version):
    replaces_id = request.POST.get("replaces", "")
    replaces = order.shipments.filter(pk=int(replaces_id)).first() if replaces_id.isdigit() else None
    services.order_change_waybill(
        order=order,
        by=actor,
        change=request.POST.get("change", ""),
        carrier_code=request.POST.get("carrier_code", ""),
        tracking_number=request.POST.get("tracking_number", ""),
        replaces=replaces,
        reason=request.POST.get("reason", ""),
    )
    return _("Waybill changed; the customer is told.")


def _cancel(request, order, actor, version):
    services.order_cancel(order=order, by=actor, reason=request.POST.get("reason", ""), expected_version=version)
    return _("Order cancelled.")


def _set_carrier(request, order, actor, version):
    services.order_set_carrier(order=order, by=actor, carrier_code=request.POST.get("carrier_code", ""), expected_version=version)
    return _("Carrier channel changed.")


def _hold(request, order, actor, version):
    services.order_hold(
        order=order,
        by=actor,
        reason=request.POST.get("reason", ""),
        until=_parse_local_datetime(request.POST.get("until", "")),
        note=request.POST.get("note", ""),
        expected_version=version,
    )
    return _("Order put on hold.")


def _release(request, order, actor, version):
    services.order_release(order=order, by=actor, expected_version=version)
    return _("Hold released.")


def _claim(request, order, actor, version):
    services.order_claim(order=order, by=actor, expected_version=version)
    return _("You are now operating this order.")


def _unclaim(request, order, actor, version):
    services.order_unclaim(order=order, by=actor, expected_version=version)
    return _("You let go of this order.")


def _add_note(request, order, actor, version):
    services.order_add_note(
        order=order,
        by=actor,
        body=request.POST.get("body", ""),
        kind=request.POST.get("kind", NoteKind.INFO),
        audience=request.POST.get("audience", ""),
    )
    return _("Note added.")


def _add_gift(request, order, actor, version):
    product = Product.objects.filter(sku_code=request.POST.get("sku_code", "").strip()[:40]).first()
    if product is None:
        raise services.OrderError(_("No product with this SKU code in the product master."))
    services.order_add_gift(
        order=order,
        by=actor,
        product=product,
        quantity=_int(request.POST.get("quantity") or "1"),
        rule=request.POST.get("rule", ""),
        expected_version=version,
    )
    return _("Gift added.")


def _acknowledge(request, order, actor, version):
    note = get_object_or_404(Note, pk=_int(request.POST.get("note_id")), order=order)
    services.note_acknowledge(note=note, by=actor)
    return _("Note acknowledged.")


def _ask(request, order, actor, version):
    services.feedback_request(
        order=order, by=actor, to_role=request.POST.get("to_role", ""), question=request.POST.get("question", "")
    )
    return _("Question sent.")


def _answer(request, order, actor, version):
    feedback = get_object_or_404(FeedbackRequest, pk=_int(request.POST.get("request_id")), order=order)
    services.feedback_answer(request=feedback, by=actor, answer=request.POST.get("answer", ""))
    return _("Answer recorded.")


def _tag(request, order, actor, version):
    services.order_tag_add(order=order, by=actor, tag=request.POST.get("tag", ""))
    return _("Tag added.")


def _resolve_tag(request, order, actor, version):
    services.order_tag_resolve(
        order=order, by=actor, tag=request.POST.get("tag", ""), resolution=request.POST.get("resolution", "")
    )
    return _("Tag resolved.")


def _open_case(request, order, actor, version):
    services.after_sales_open(
        order=order,
        by=actor,
        kind=request.POST.get("kind", ""),
        reason=request.POST.get("reason", ""),
        sku_code=request.POST.get("sku_code", ""),
        amount=request.POST.get("amount", ""),
    )
    return _("After-sales case opened.")


def _decide_case(request, order, actor, version):
    case = get_object_or_404(AfterSalesCase, pk=_int(request.POST.get("case_id")), order=order)
    services.after_sales_decide(
        case=case,
        by=actor,
        approve=request.POST.get("decision") == "approve",
        reason=request.POST.get("reason", ""),
        department=request.POST.get("department", ""),
    )
    return _("Decision recorded.")


def _correct_address(request, order, actor, version):
    services.order_correct_address(
        order=order, by=actor, expected_version=version, **{f: request.POST.get(f, "") for f in services.ADDRESS_FIELDS}
    )
    return _("Address corrected.")


def _request_address(request, order, actor, version):
    services.address_change_request(order=order, by=actor, **{f: request.POST.get(f, "") for f in services.ADDRESS_FIELDS})
    return _("Address change requested.")


def _resolve_address(request, order, actor, version):
    change = get_object_or_404(AddressChangeRequest, pk=_int(request.POST.get("change_id")), order=order)
    services.address_change_resolve(change=change, by=actor, apply=request.POST.get("decision") == "apply")
    return _("Address change handled.")


def _confirm_reprint(request, order, actor, version):
    services.address_change_confirm_reprint(order=order, by=actor)
    return _("Waybill reprinted")


def _int(raw: str | None) -> int:
    try:
        return int(raw or "")
    except ValueError as exc:
        raise Http404 from exc


ACTIONS: dict[str, ActionHandler] = {
    "approve": _transition("approve"),
    "start_picking": _transition("start_picking"),
    "pack": _transition("pack"),
    "complete": _transition("complete"),
    "ship": _ship,
    "waybill": _change_waybill,
    "cancel": _cancel,
    "carrier": _set_carrier,
    "hold": _hold,
    "release": _release,
    "claim": _claim,
    "unclaim": _unclaim,
    "note": _add_note,
    "acknowledge": _acknowledge,
    "add_gift": _add_gift,
    "ask": _ask,
    "answer": _answer,
    "tag": _tag,
    "resolve_tag": _resolve_tag,
    "open_case": _open_case,
    "decide_case": _decide_case,
    "correct_address": _correct_address,
    "request_address": _request_address,
    "resolve_address": _resolve_address,
    "confirm_reprint": _confirm_reprint,
}


@require_POST
@role_required(*rules.SCREEN_ROLES["orders"])
def order_action(request: HttpRequest, order_number: str, action: str) -> HttpResponse:
    handler = ACTIONS.get(action)
    if handler is None:
        raise Http404
    if action in services.TRANSITIONS_BY_NUMBER:
        # The transition service locks and reads the order by its number: no read of it here.
        order = Order(order_number=order_number)
    else:
        # Every service locks and re-reads the order itself; the handlers need only its key here.
        order = get_object_or_404(Order.objects.only("pk", "order_number"), order_number=order_number)
    version = _int(request.POST["version"]) if request.POST.get("version") else None
    actor = Actor.of(request.user)
    error = ""
    try:
        notice = handler(request, order, actor, version)
    except services.OrderError as exc:
        error, notice = str(exc), ""
    except Order.DoesNotExist as exc:
        raise Http404 from exc
    if request.htmx:
        context = _card_context(request, order_number)
        context.update({"notice": notice, "error": error})
        # 200 even when refused: htmx swaps only successful responses, and the refusal is
        # shown on the fresh card next to the action.
        return render(request, "orders/card.html#order-card", context)
    if error:
        messages.error(request, error)
    else:
        messages.success(request, notice)
    return redirect("order_card", order_number=order_number)


@require_POST
@role_required(*rules.SCREEN_ROLES["orders"])
def phone_reveal(request: HttpRequest, order_number: str) -> HttpResponse:
    order = get_object_or_404(Order, order_number=order_number)
    phone = services.phone_reveal(order=order, by=Actor.of(request.user))
    if request.htmx:
        return render(request, "orders/card.html#phone-revealed", {"phone": phone, "order": order})
    # Without htmx the card is rendered with the number shown, rather than redirecting: a redirect
    # would have to carry the number through the session or a cookie.
    context = _card_context(request, order_number)
    context.update({"phone_display": phone, "phone_masked": False})
    return render(request, "orders/card.html", context)
