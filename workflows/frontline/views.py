"""Front-line pages: the customer-service lookup, the PDA packing station and the customer's
self-service status page. Every htmx action also works as a plain form POST + redirect."""

from __future__ import annotations

import functools
from urllib.parse import quote, urlencode

from django.contrib import messages
from django.core import signing
from django.db.models import Prefetch
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import get_script_prefix, get_urlconf, reverse
from django.utils.html import format_html_join
from django.utils.http import RFC3986_SUBDELIMS
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from integrations.sms.services import message_exists as sms_message_exists
from orders import rules, services
from orders.access import Actor, client_ip, public_endpoint, role_required
from orders.models import (
    ACTIVE_STATUSES,
    AddressChangeSource,
    AfterSalesKind,
    Note,
    NoteAudience,
    NoteKind,
    Order,
    OrderLine,
    PackScan,
)
from orders.phones import ORDER_NUMBER_MAX_LENGTH, normalize_last_four, normalize_order_number
from orders.privacy import mask_phone
from workflows import notifications
from workflows.frontline import lookup as lookup_selectors
from workflows.frontline import packing, selfservice
from workflows.frontline.answers import order_answer
from workflows.frontline.models import InquiryChannel, SelfServiceVia
from workflows.frontline.services import inquiry_record
from workflows.models import ContactChannel

LOOKUP_ROLES = rules.SCREEN_ROLES["lookup"]
PDA_ROLES = rules.SCREEN_ROLES["pda"]


# --- Customer-service lookup -------------------------------------------------------------------


def _translated(choices) -> list[tuple[str, str]]:
    # Translated once here, not once per order block that repeats the <select>.
    return [(value, str(label)) for value, label in choices.choices]


def _form_choices() -> dict:
    return {
        "note_kinds": _translated(NoteKind),
        "note_audiences": _translated(NoteAudience),
        "after_sales_kinds": _translated(AfterSalesKind),
    }


@functools.lru_cache(maxsize=64)
def _reversed(urlconf, prefix: str, name: str, args: tuple[str, ...]) -> str:
    return reverse(name, urlconf=urlconf, args=args)


def _url(name: str, *args: str) -> str:
    """reverse(), once per process for each address: keyed, as url_once is, by what reverse()
    reads besides the name and arguments (the URL patterns do not change while a process runs)."""
    return _reversed(get_urlconf(), get_script_prefix(), name, args)


def _order_urls(orders) -> None:
    """Each order block's three links, from one reverse() per URL name instead of a {% url %} per
    block and link (~70 URL resolutions a page)."""
    card, inquiry, forms = (
        _url("order_card", "NUMBER"),
        _url("lookup_action", "NUMBER", "inquiry"),
        _url("lookup_forms", "NUMBER"),
    )
    for order in orders:
        # Quoted as reverse() quotes a path argument.
        order.url_number = number = quote(order.order_number, safe=RFC3986_SUBDELIMS + "/~:@")
        order.card_url, order.inquiry_url, order.forms_url = (url.replace("NUMBER", number) for url in (card, inquiry, forms))


def _lookup_context(query: str, *, forms_for: str = "", whole_timeline: bool = False) -> dict:
    result = lookup_selectors.lookup(query)
    _order_urls(result.orders)
    shown = result.timeline if whole_timeline else result.timeline[: lookup_selectors.TIMELINE_SHOWN]
    return {
        "result": result,
        "timeline_shown": lookup_selectors.dress(shown),
        "timeline_older_count": len(result.timeline) - len(shown),
        "query": result.query,
        "query_string": urlencode({"q": result.query}),
        "forms_for": forms_for,
        # The note / after-sales forms are in the page only for the block whose forms were asked for.
        **(_form_choices() if forms_for else {}),
        # The same <option>s in every order block's inquiry form: rendered once.
        "inquiry_channel_options": format_html_join("", '<option value="{}">{}</option>', _translated(InquiryChannel)),
        **_contact_context(result),
    }


def _contact_context(result) -> dict:
    """How the customer wants to hear from us, and the form to change it (posted with their newest order)."""
    if not result.customer or not result.orders:
        return {}
    return {
        "contact_channel": result.contact_channel,
        "contact_choices": ContactChannel.choices,
        "contact_url": _url("lookup_action", "NUMBER", "contact").replace("NUMBER", result.orders[0].url_number),
    }


@require_GET
@role_required(*LOOKUP_ROLES)
def lookup(request: HttpRequest) -> HttpResponse:
    if request.htmx and request.htmx.target == "timeline-older-entries":
        older = lookup_selectors.lookup(request.GET.get("q", "")).timeline[lookup_selectors.TIMELINE_SHOWN :]
        return render(request, "frontline/lookup.html#timeline-entries", {"entries": lookup_selectors.dress(older)})
    context = _lookup_context(
        request.GET.get("q", ""), forms_for=request.GET.get("forms", ""), whole_timeline=request.GET.get("timeline") == "all"
    )
    if request.htmx and request.htmx.target == "lookup-result":
        return render(request, "frontline/lookup.html#lookup-result", context)
    return render(request, "frontline/lookup.html", context)


@require_GET
@role_required(*LOOKUP_ROLES)
def lookup_forms(request: HttpRequest, order_number: str) -> HttpResponse:
    """One order's note / after-sales / address forms, loaded when its block's details open;
    without JavaScript, the lookup page again with that order's forms open."""
    query = request.GET.get("q") or order_number
    order = get_object_or_404(
        Order.objects.prefetch_related(
            Prefetch("lines", queryset=OrderLine.objects.order_by("is_gift", "id"), to_attr="line_list")
        ),
        order_number=order_number,
    )
    if not request.htmx:
        return redirect(reverse("lookup") + "?" + urlencode({"q": query, "forms": order_number}) + f"#order-{order_number}")
    return render(request, "frontline/lookup.html#order-actions", {"order": order, "query": query, **_form_choices()})


def _note(request, order, actor):
    services.order_add_note(
        order=order,
        by=actor,
        body=request.POST.get("body", ""),
        kind=request.POST.get("kind", NoteKind.INFO),
        audience=request.POST.get("audience", ""),
    )
    return _("Note added to %(order)s.") % {"order": order.order_number}


def _open_case(request, order, actor):
    services.after_sales_open(
        order=order,
        by=actor,
        kind=request.POST.get("kind", ""),
        reason=request.POST.get("reason", ""),
        sku_code=request.POST.get("sku_code", ""),
        amount=request.POST.get("amount", ""),
    )
    return _("After-sales case opened on %(order)s.") % {"order": order.order_number}


def _request_address(request, order, actor):
    services.address_change_request(
        order=order, by=actor, **{name: request.POST.get(name, "") for name in services.ADDRESS_FIELDS}
    )
    if order.status in ("packed",):
        return _(
            "Address change requested: %(order)s is already packed, so it is intercepted and will not ship until the change is applied."
        ) % {"order": order.order_number}
    return _("Address change requested on %(order)s; packing waits until it is applied.") % {"order": order.order_number}


def _inquiry(request, order, actor):
    inquiry = inquiry_record(
        order=order, by=actor, channel=request.POST.get("channel", ""), question=request.POST.get("question", "")
    )
    answer = order_answer(order).as_text()
    if inquiry.answer_message_id:
        return _("Inquiry recorded; the customer was sent: %(answer)s") % {"answer": answer}
    if sms_message_exists(order=order, event_key=f"inquiry:{inquiry.pk}"):
        return _("Inquiry recorded; the customer was sent by SMS: %(answer)s") % {"answer": answer}
    return _("Inquiry recorded. The customer has no WeChat push; tell them: %(answer)s") % {"answer": answer}


def _contact(request, order, actor):
    channel = request.POST.get("channel", "")
    if channel not in ContactChannel.values:
        raise services.OrderError(_("Choose how the customer wants to hear from us."))
    preference = notifications.contact_channel_set(customer=order.customer, channel=channel, by=actor.user)
    return _("The customer now hears from us by: %(channel)s") % {"channel": preference.get_channel_display()}


LOOKUP_ACTIONS = {
    "note": _note,
    "open_case": _open_case,
    "request_address": _request_address,
    "inquiry": _inquiry,
    "contact": _contact,
}


@require_POST
@role_required(*LOOKUP_ROLES)
def lookup_action(request: HttpRequest, order_number: str, action: str) -> HttpResponse:
    handler = LOOKUP_ACTIONS.get(action)
    if handler is None:
        raise Http404
    order = get_object_or_404(Order.objects.select_related("customer"), order_number=order_number)
    query = request.POST.get("q") or order_number
    try:
        notice, error = handler(request, order, Actor.of(request.user)), ""
    except services.OrderError as exc:
        notice, error = "", str(exc)
    if request.htmx:
        context = _lookup_context(query)
        context.update({"notice": notice, "error": error, "acted_on": order_number})
        return render(request, "frontline/lookup.html#lookup-result", context)
    if error:
        messages.error(request, error)
    else:
        messages.success(request, notice)
    return redirect(reverse("lookup") + "?" + urlencode({"q": query}) + f"#order-{order_number}")


# --- PDA packing station -----------------------------------------------------------------------


def _station(
    request: HttpRequest, order: Order | None, *, last_scan: PackScan | None = None, error: str = "", notice: str = ""
) -> HttpResponse:
    context = {"order": order, "error": error, "notice": notice, "last_scan": last_scan}
    if order is not None:
        order.phone_masked = mask_phone(order.receiver_phone)
        context["state"] = packing.packing_state(order=order, user=request.user, last_scan=last_scan)
        # Issue 13: an address changed once picking began; the label must be reprinted before shipping.
        context["reprint_pending"] = rules.waybill_reprint_pending(order)
    if last_scan is not None:
        context["scan_message"] = packing.scan_message(last_scan)
        context["scan_refused"] = last_scan.outcome in packing.REFUSED
    template = "frontline/pda.html#station" if request.htmx else "frontline/pda.html"
    return render(request, template, context)


@require_GET
@role_required(*PDA_ROLES)
def pda(request: HttpRequest, order_number: str = "") -> HttpResponse:
    order = packing.station_order(number=order_number) if order_number else None
    if order_number and order is None:
        raise Http404
    return _station(request, order)


@require_POST
@role_required(*PDA_ROLES)
def pda_scan(request: HttpRequest) -> HttpResponse:
    current = request.POST.get("order", "")
    try:
        order, scan = packing.pack_scan(code=request.POST.get("code", ""), by=Actor.of(request.user), current=current)
    except services.OrderError as exc:
        return _pda_reply(request, packing.station_order(number=current) if current else None, error=str(exc))
    if request.htmx:
        return _station(request, order, last_scan=scan)
    (messages.error if scan.outcome in packing.REFUSED else messages.success)(request, packing.scan_message(scan))
    return redirect("pda_order", order_number=order.order_number) if order else redirect("pda")


def _pda_reply(request: HttpRequest, order: Order | None, *, error: str = "", notice: str = "") -> HttpResponse:
    if request.htmx:
        return _station(request, order, error=error, notice=notice)
    if error:
        messages.error(request, error)
    else:
        messages.success(request, notice)
    return redirect("pda_order", order_number=order.order_number) if order else redirect("pda")


@require_POST
@role_required(*PDA_ROLES)
def pda_acknowledge(request: HttpRequest, order_number: str) -> HttpResponse:
    order = get_object_or_404(Order, order_number=order_number)
    raw = request.POST.get("note_id", "")
    note_id = int(raw) if raw.isascii() and raw.isdigit() else 0  # "abc", "1.5", "９": no note (404)
    note = get_object_or_404(Note, pk=note_id, order=order)
    try:
        services.note_acknowledge(note=note, by=Actor.of(request.user))
    except services.OrderError as exc:
        return _pda_reply(request, order, error=str(exc))
    return _pda_reply(request, order, notice=_("Note acknowledged."))


@require_POST
@role_required(*PDA_ROLES)
def pda_reprint(request: HttpRequest, order_number: str) -> HttpResponse:
    """The packer reprinted the waybill with the new address (orders/rules.py, the waybill_reprint guard)."""
    order = get_object_or_404(Order, order_number=order_number)
    try:
        services.address_change_confirm_reprint(order=order, by=Actor.of(request.user))
    except services.OrderError as exc:
        return _pda_reply(request, order, error=str(exc))
    return _pda_reply(request, order, notice=_("Waybill reprinted"))


@require_POST
@role_required(*PDA_ROLES)
def pda_restart(request: HttpRequest, order_number: str) -> HttpResponse:
    order = get_object_or_404(Order, order_number=order_number)
    packing.packing_restart(order=order, by=Actor.of(request.user))
    return _pda_reply(request, order, notice=_("Verification restarted: scan every item again."))


@require_POST
@role_required(*PDA_ROLES)
def pda_pack(request: HttpRequest, order_number: str) -> HttpResponse:
    order = get_object_or_404(Order, order_number=order_number)
    try:
        order = packing.packing_finish(order=order, by=Actor.of(request.user))
    except services.OrderError as exc:
        return _pda_reply(request, order, error=str(exc))
    return _pda_reply(request, order, notice=_("Packed: %(order)s. Scan the next order.") % {"order": order.order_number})


# --- Customer self-service ---------------------------------------------------------------------


def _client_address(request: HttpRequest) -> str:
    # The address as seen through TRUSTED_PROXY_COUNT proxies (one rule with login throttling):
    # behind a proxy REMOTE_ADDR is the proxy's, shared by every customer.
    return (client_ip(request) or "unknown")[:64]


def _track_page(request: HttpRequest, order: Order, via: str) -> HttpResponse:
    selfservice.self_service_query_record(order=order, via=via)
    return render(request, "frontline/track.html", _track_context(order))


def _track_context(order: Order) -> dict:
    order = (
        Order.objects.select_related("customer")
        .prefetch_related("shipments__events", "address_changes", "after_sales")
        .get(pk=order.pk)
    )
    shipments = list(order.shipments.all())
    context = {
        "order": order,
        "answer": order_answer(order),
        "tracking_events": list(shipments[-1].events.all())[:10] if shipments else [],
        "receiver_masked": (order.receiver_name[:1] + "*" * max(len(order.receiver_name) - 1, 1)),
        "phone_masked": mask_phone(order.receiver_phone),
        "address_masked": f"{order.province}{order.city}{order.district} ****",
        # Issue 13: before shipping the customer may ask for another address; the signed token
        # (the same as the push's link) is the proof on the form's POST.
        "address_change_token": selfservice.link_token(order) if order.status in ACTIVE_STATUSES else "",
    }
    return context


@require_POST
@public_endpoint("The customer's address-change request from the self-service page; the signed order token is the access check.")
def track_address_change(request: HttpRequest) -> HttpResponse:
    try:
        order_number = selfservice.order_number_from_token(request.POST.get("token", "")[:500])
    except signing.BadSignature:
        return render(
            request,
            "frontline/track.html",
            {
                "form_only": True,
                "error": _("This link is not valid. Enter your order number and the last 4 digits of your phone."),
            },
            status=400,
        )
    order = get_object_or_404(Order, order_number=order_number)
    fields = ("receiver_name", "receiver_phone", "province", "city", "district", "address")
    try:
        services.address_change_request(
            order=order,
            by=Actor.system("customer"),
            source=AddressChangeSource.CUSTOMER,
            **{field: request.POST.get(field, "")[:200] for field in fields},
        )
    except services.OrderError as exc:
        return render(
            request,
            "frontline/track.html",
            {**_track_context(order), "address_change_error": str(exc)},
            status=400,
        )
    return render(
        request,
        "frontline/track.html",
        {
            **_track_context(order),
            "address_change_notice": _(
                "Your request is in; customer service will handle it and you will get a WeChat message with the outcome."
            ),
        },
    )


@require_http_methods(["GET", "POST"])
@public_endpoint(
    "The customer's self-service status page, opened from the WeChat menu; order number + last 4 digits, rate-limited."
)
def track(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        return render(request, "frontline/track.html", {"form_only": True})
    # A customer types on a phone: full-width digits and letters, lower case, spaces around.
    # Cut before normalising so a megabyte of text costs nothing.
    order_number = normalize_order_number(request.POST.get("order_number", "")[:200])
    last4 = normalize_last_four(request.POST.get("last4", "")[:50])
    address = _client_address(request)
    problem = selfservice.code_problem(order_number=order_number, last4=last4)
    # A malformed number is counted against the address only: it names no order.
    counted_number = "" if problem else order_number
    context = {"form_only": True, "order_number": order_number[:ORDER_NUMBER_MAX_LENGTH]}
    if selfservice.too_many_failures(address=address, order_number=counted_number):
        context["error"] = _("Too many wrong attempts. For your security, please wait 15 minutes or contact customer service.")
        return render(request, "frontline/track.html", context, status=429)
    order = None if problem else selfservice.order_for_code(order_number, last4)
    if order is None:
        # Every refused attempt counts; "no such order" and "wrong digits" read the same.
        selfservice.record_failure(address=address, order_number=counted_number)
        context["error"] = problem or _(
            "The order number and the last 4 digits of the phone do not match. Check the order number on your order confirmation."
        )
        return render(request, "frontline/track.html", context, status=400)
    return _track_page(request, order, SelfServiceVia.CODE)


@require_GET
@public_endpoint("The signed link inside each WeChat push; the signature and its expiry are the access check.")
def track_link(request: HttpRequest, token: str) -> HttpResponse:
    # The signature is checked first: a valid link is its own proof and opens the page whatever
    # other clients have failed. Only a bad signature is counted, against this address alone.
    try:
        order_number = selfservice.order_number_from_token(token)
    except signing.SignatureExpired:
        return render(
            request,
            "frontline/track.html",
            {
                "form_only": True,
                "error": _("This link has expired. Enter your order number and the last 4 digits of your phone instead."),
            },
            status=410,
        )
    except signing.BadSignature:
        address = _client_address(request)
        if selfservice.too_many_failures(address=address):
            return render(
                request,
                "frontline/track.html",
                {"form_only": True, "error": _("Too many wrong attempts. Please wait 15 minutes.")},
                status=429,
            )
        selfservice.record_failure(address=address)
        return render(
            request,
            "frontline/track.html",
            {
                "form_only": True,
                "error": _("This link is not valid. Enter your order number and the last 4 digits of your phone."),
            },
            status=400,
        )
    order = get_object_or_404(Order, order_number=order_number)
    return _track_page(request, order, SelfServiceVia.LINK)
