"""Small presentation helpers shared by every page: labels for codes, phones, durations and
the one-line summary of an order event."""

import datetime
import functools
import html
from urllib.parse import quote

from django import template
from django.db.models import Choices
from django.template.defaulttags import CsrfTokenNode
from django.urls import reverse
from django.utils import formats, numberformat, timezone
from django.utils.encoding import force_str
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import get_language
from django.utils.translation import gettext as _

from orders import clock, events
from orders.access import display_phone, user_roles
from orders.models import Carrier, OrderStatus, RiskTag, Role
from orders.privacy import private_text

register = template.Library()


def _label(choices, code: str) -> str:
    # try/except rather than `code in choices.values`, which builds the list of values on every
    # call (these filters run hundreds of times on the lookup page and the board).
    try:
        return choices(code).label
    except ValueError:
        return code


@register.filter
def role_label(code: str) -> str:
    return _label(Role, code)


@register.filter
def status_label(code: str) -> str:
    return _label(OrderStatus, code)


@register.filter
def tag_label(code: str) -> str:
    return _label(RiskTag, code)


@register.filter
def carrier_label(code: str) -> str:
    return _label(Carrier, code)


@register.filter
def display(instance, name: str) -> str:
    """`instance.get_<name>_display()` with the choices read once per field: Django's rebuilds a
    dict of every choice on each call, hashing (so translating) each label, ~0.1 ms a call; the
    card shows a dozen (issue 14). `{{ order|display:"status" }}`"""
    field = instance._meta.get_field(name)
    value = getattr(instance, field.attname)
    return force_str(_choice_labels(field).get(value, value), strings_only=True)


@functools.cache
def _choice_labels(field) -> dict:
    return dict(field.flatchoices)


@register.simple_tag(takes_context=True)
def phone(context, number: str) -> str:
    """The number as this viewer may see it (masked for the warehouse and couriers)."""
    return display_phone(context["request"].user, number)


@register.filter
def private(text, user) -> str:
    """Free text (a note, a hold note, a buyer message, a timeline line …) as this viewer may see
    it: mobile numbers typed into it masked for the roles that see masked phones, the same rule
    and shape as structured phones (orders/privacy.py). `{{ note.body|private:request.user }}`"""
    if text is None or text == "":
        return text
    text = str(text)
    # No user in the context (a page rendered without a request) sees the masked form.
    roles = user_roles(user) if hasattr(user, "is_authenticated") else frozenset()
    return private_text(roles)(text)


@register.filter
def duration(value: datetime.timedelta | None) -> str:
    if value is None:
        return "—"
    minutes = int(value.total_seconds() // 60)
    if minutes < 0:
        return "—"
    hours, minutes = divmod(minutes, 60)
    if hours >= 24:
        days, hours = divmod(hours, 24)
        return _("%(d)dd %(h)dh") % {"d": days, "h": hours}
    if hours:
        return _("%(h)dh %(m)dm") % {"h": hours, "m": minutes}
    return _("%(m)dm") % {"m": minutes}


def minute(value: datetime.datetime) -> str:
    """`f"{value:%m-%d %H:%M}"`, written without strftime, which costs 4× more: once per row of
    the list (issue 14)."""
    return "%02d-%02d %02d:%02d" % (value.month, value.day, value.hour, value.minute)  # noqa: UP031 - 2× faster than format specifiers


@register.simple_tag
def platform_clock_chip(platform_clock: clock.PlatformClock | None) -> SafeString:
    """The platform's clock (orders/clock.py platform_clock) as the card, the list rows and the
    board cards show it: one home for its words, written in Python because the list and the
    board write their rows in Python (issue 14)."""
    if platform_clock is None:
        return mark_safe("")
    if platform_clock.kind == clock.PLATFORM_AFTERSALES:
        label = _("Platform after-sales deadline")
    else:
        label = _("Platform latest ship time")
    if platform_clock.state == clock.PLATFORM_OVERDUE:
        distance = _("passed %(late)s ago") % {"late": duration(platform_clock.distance)}
    else:
        distance = _("%(left)s left") % {"left": duration(platform_clock.distance)}
    when = format(timezone.localtime(platform_clock.due_at), "%m-%d %H:%M")
    return mark_safe(  # noqa: S308 — every value escaped
        f'<span class="platform-clock platform-{html.escape(platform_clock.state)}" '
        f'data-minutes-left="{platform_clock.minutes_left}">{html.escape(label)} {when} · {html.escape(distance)}</span>'
    )


@register.filter
def event_summary(event) -> str:
    """What happened, in one line of the user's language (orders/events.py describes every kind)."""
    return events.describe(event)


@register.filter
def event_actor(event) -> str:
    """Who did it: a person's name, or the system's in the user's language (orders/events.py)."""
    return events.actor_label(event)


@register.filter
def actor_name(name: str) -> str:
    """A stored actor name (a gift line's provenance): a system's in the user's language."""
    return events.name_label(name)


@register.filter
def person(user) -> str:
    """A user's display name ("" for nobody), so templates never reach into a missing user."""
    if user is None:
        return ""
    return user.get_full_name() or user.get_username()


@register.simple_tag
def order_rows(orders) -> SafeString:
    """The order list's rows (orders/selectors.py OrderRow), written out in Python: as template
    nodes, 50 rows of ~35 nodes each were half of the list's CPU (issue 14). Every value is
    escaped (the standard library's escape: Django's lazy-aware one costs 3× more per call); the
    phone is already as this viewer may see it."""
    rush, cold, held = _("Rush"), _("Cold chain"), _("On hold")
    select = html.escape(_("Select"))
    statuses, tags = _escaped_labels(OrderStatus, get_language()), _escaped_labels(RiskTag, get_language())
    card = reverse("order_card", args=["~"])  # the card's address, each number spliced in below
    # What formats.localize and timezone.localtime look up for every value, looked up once.
    zone, language = timezone.get_current_timezone(), get_language()
    amount = functools.partial(
        numberformat.format,
        decimal_sep=formats.get_format("DECIMAL_SEPARATOR", language),
        grouping=formats.get_format("NUMBER_GROUPING", language),
        thousand_sep=formats.get_format("THOUSAND_SEPARATOR", language),
        use_l10n=True,
    )
    rows = []
    for order in orders:
        number = html.escape(order.order_number)
        flags = "".join(
            (
                f'<span class="chip rush">🔥{rush}</span>' if order.is_rush else "",
                f'<span class="chip cold">❄{cold}</span>' if order.requires_cold_chain else "",
                f'<span class="chip held">{held}</span>' if order.is_held else "",
                *(f'<span class="chip risk">{tags.get(tag) or html.escape(tag)}</span>' for tag in order.open_tags),
                platform_clock_chip(clock.platform_clock(order)) if order.platform_due_at else "",
            )
        )
        rows.append(
            f'<tr id="order-row-{number}" class="order-row{" rush" if order.is_rush else ""}">'
            f'<td><input type="checkbox" class="row-select" name="order" value="{number}" form="bulk-form" '
            f'aria-label="{select} {number}"></td>'
            f'<td><a href="{html.escape(card.replace("~", quote(order.order_number, safe="")))}">{number}</a></td>'
            f'<td><span class="status status-{html.escape(order.status)}">{statuses.get(order.status, "")}</span></td>'
            f"<td>{html.escape(order.customer_name)}</td><td>{html.escape(order.phone_display)}</td>"
            f'<td class="num">¥{amount(order.total_amount)}</td>'
            f"<td>{minute(order.placed_at.astimezone(zone))}</td>"
            f"<td>{flags}</td><td>{html.escape(order.claimed_by_name)}</td></tr>\n"
        )
    return mark_safe("".join(rows))  # noqa: S308 — built above from escaped values only


@functools.cache
def _escaped_labels(choices: type[Choices], language: str | None) -> dict[str, str]:
    """Each code's label escaped, in this language (the catalogs do not change while a process runs)."""
    return {value: html.escape(str(label)) for value, label in choices.choices}


@register.simple_tag(takes_context=True)
def card_timeline(context, order_events) -> SafeString:
    """The card's timeline entries, written out in Python: each event as template nodes was two
    date filters, the actor, its role and the summary through `private` (issue 14). Every value
    is escaped; the summary is masked as `private` masks it, the rule decided once here."""
    user = context["request"].user
    shown = private_text(user_roles(user))
    source = html.escape(_("source time"))
    items = []
    for event in order_events:
        at = timezone.localtime(event.occurred_at)
        role = f"（{html.escape(str(role_label(event.actor_role)))}）" if event.actor_role else ""
        source_time = (
            f'<span class="muted">· {source} {timezone.localtime(event.source_time):%m-%d %H:%M:%S}</span>'
            if event.source_time
            else ""
        )
        items.append(
            f'<li class="event event-{html.escape(event.kind)}"><time datetime="{at.isoformat()}">{at:%m-%d %H:%M:%S}</time>'
            f' <span class="actor">{html.escape(str(events.actor_label(event)))}{role}</span>'
            f' <span class="what">{html.escape(shown(events.describe(event)))}</span> {source_time}</li>\n'
        )
    return mark_safe("".join(items))  # noqa: S308 — built above from escaped values only


@register.simple_tag
def options(choices, selected=None) -> SafeString:
    """A <select>'s options from (value, label) choices, `selected` marked: one node instead of a
    {% for %} of three per option (the choices lists were a fifth of the order list's CPU; issue 14).
    `choices` may be a Choices enum, whose options are written once per language and selection."""
    selected = None if selected is None else str(selected)
    if isinstance(choices, type) and issubclass(choices, Choices):
        if selected not in _values(choices):
            selected = None  # nothing is marked either way; keeps the remembered texts few
        key = (choices, get_language(), selected)
        text = _ENUM_OPTIONS.get(key)
        if text is None:
            text = _ENUM_OPTIONS[key] = _options(choices.choices, selected)
        return text
    return _options(choices, selected)


_ENUM_OPTIONS: dict[tuple, SafeString] = {}


@functools.cache
def _values(choices: type[Choices]) -> frozenset[str]:
    return frozenset(str(value) for value in choices.values)


def _options(choices, selected: str | None) -> SafeString:
    return mark_safe(  # noqa: S308 — every value and label escaped
        "".join(
            f'<option value="{html.escape(str(value))}"{" selected" if str(value) == selected else ""}>{html.escape(str(label))}</option>'
            for value, label in choices
        )
    )


@register.simple_tag
def card_shipments(shipments) -> SafeString:
    """The card's parcels with their tracking, written out in Python: each parcel as template
    nodes was the card's most expensive loop (six conditions, four date filters and a loop per
    parcel; issue 14). Every value is escaped."""

    def at(value) -> str:
        return minute(timezone.localtime(value))

    parts = []
    for shipment in shipments:
        number = html.escape(str(shipment.pk))
        replaced = f" · {html.escape(_('replaced'))}" if shipment.replaced_at else ""
        muted = ' class="muted"' if shipment.replaced_at else ""
        facts = [html.escape(str(display(shipment, "tracking_state") or _("awaiting tracking")))]
        if shipment.last_location:
            facts.append(html.escape(shipment.last_location))
        if shipment.last_event_at:
            facts.append(at(shipment.last_event_at))
        if shipment.eta:
            facts.append(f"{html.escape(_('ETA'))} {at(shipment.eta)}")
        subscription = getattr(shipment, "subscription", None)  # the kuaidi100 subscription, if any
        if subscription:
            facts.append(
                f'<span class="muted" id="subscription-{number}">{html.escape(str(display(subscription, "state")))}</span>'
            )
        tracking = "".join(f"<li>{at(event.occurred_at)} {html.escape(event.context)}</li>" for event in shipment.events.all())
        parts.append(
            f'<div class="shipment" id="shipment-{number}">\n'
            f"<p><strong{muted}>"
            f"{html.escape(str(display(shipment, 'carrier_code')))} {html.escape(shipment.tracking_number)}</strong>{replaced}"
            f" · {' · '.join(facts)}</p>\n"
            f'<ol class="tracking">{tracking}</ol>\n</div>\n'
        )
    if not parts:
        return mark_safe(f'<p class="muted">{html.escape(_("Not shipped yet."))}</p>')  # noqa: S308 — escaped
    return mark_safe("".join(parts))  # noqa: S308 — built above from escaped values only


@register.simple_tag(takes_context=True)
def card_notes(context, notes, acknowledge_url: str) -> SafeString:
    """The card's notes with their acknowledgements and each one's acknowledge form, written out
    in Python as card_timeline is (issue 14). Every value is escaped; the body is masked as
    `private` masks it; the form carries the page's CSRF token as {% csrf_token %} writes it."""
    user = context["request"].user
    shown = private_text(user_roles(user))
    csrf = CsrfTokenNode().render(context)
    url = html.escape(acknowledge_url)
    acknowledge, for_ = html.escape(_("Acknowledge")), html.escape(_("for"))
    items = []
    for note in notes:
        number = html.escape(str(note.pk))
        acks = list(note.acknowledgements.all())
        role = f"（{html.escape(str(role_label(note.author_role)))}）" if note.author_role else ""
        audience = f" · {for_} {html.escape(str(display(note, 'audience')))}" if note.audience else ""
        read_by = "".join(f" · ✔ {html.escape(person(ack.user))}" for ack in acks)
        form = (
            ""
            if note.acknowledged_by_me
            else f'<form method="post" action="{url}" hx-post="{url}" hx-target="#order-card" hx-swap="outerHTML" class="inline">'
            f'{csrf}<input type="hidden" name="note_id" value="{number}"><button class="ack" id="ack-{number}">{acknowledge}</button></form>\n'
        )
        items.append(
            f'<li id="note-{number}" class="note note-{html.escape(note.kind)}{"" if acks else " unacknowledged"}">\n'
            f'<p class="note-body">{"⚠ " if note.kind == "warning" else ""}{html.escape(shown(note.body))}</p>\n'
            f'<p class="muted">{html.escape(person(note.author))}{role}'
            f" · {minute(timezone.localtime(note.created_at))} · {html.escape(str(display(note, 'kind')))}{audience}{read_by}</p>\n"
            f"{form}</li>\n"
        )
    if not items:
        return mark_safe(f'<li class="muted">{html.escape(_("No notes yet."))}</li>')  # noqa: S308 — escaped
    return mark_safe("".join(items))  # noqa: S308 — built above from escaped values only


@register.simple_tag(takes_context=True)
def card_cases(context, cases, decide_url: str) -> SafeString:
    """The card's after-sales cases with the decision form for an open one (service, finance and
    supervisors decide), written out in Python as card_timeline is (issue 14). Every value is
    escaped; free text is masked as `private` masks it; the form carries the page's CSRF token as
    {% csrf_token %} writes it."""
    roles = context.get("my_roles", frozenset())
    shown = private_text(user_roles(context["request"].user))
    decides = bool({"service", "finance", "supervisor"} & set(roles))
    url = html.escape(decide_url)
    items = []
    for case in cases:
        number = html.escape(str(case.pk))
        sku = f" · {html.escape(case.sku_code)}" if case.sku_code else ""
        amount = f" · ¥{html.escape(formats.localize(case.amount))}" if case.amount else ""
        decided = (
            f"（{html.escape(case.decided_by_department or '')} {html.escape(person(case.decided_by))}"
            f" {minute(timezone.localtime(case.decided_at))}：{html.escape(shown(case.decision_reason))}）"
            if case.decided_at
            else ""
        )
        form = ""
        if case.status == "open" and decides:
            form = (
                f'\n<form method="post" action="{url}" hx-post="{url}" hx-target="#order-card" hx-swap="outerHTML" class="inline">'
                f'{CsrfTokenNode().render(context)}<input type="hidden" name="case_id" value="{number}">'
                f'<input name="reason" required placeholder="{html.escape(_("decision reason"))}" aria-label="{html.escape(_("Decision reason"))}">'
                f'<input name="department" placeholder="{html.escape(_("department"))}" aria-label="{html.escape(_("Department"))}">'
                f'<button name="decision" value="approve">{html.escape(_("Approve"))}</button>'
                f'<button name="decision" value="reject" class="danger">{html.escape(_("Reject"))}</button></form>'
            )
        items.append(
            f'<li id="case-{number}" class="case case-{html.escape(case.status)}">{html.escape(str(display(case, "kind")))}{sku}'
            f" · {html.escape(shown(case.reason))}{amount} · <strong>{html.escape(str(display(case, 'status')))}</strong>"
            f"{decided}{form}</li>\n"
        )
    if not items:
        return mark_safe(f'<li class="muted">{html.escape(_("No after-sales cases."))}</li>')  # noqa: S308 — escaped
    return mark_safe("".join(items))  # noqa: S308 — built above from escaped values only
