"""The supervisor board's order cards (workflows/selectors.py board()), written out in Python: as
a template partial, 60 cards of ~50 nodes each were over half of the board's CPU (issue 14). The
markup is the partial's, unchanged; every value is escaped (html.escape: Django's lazy-aware
escape costs 3× more per call)."""

import datetime
import functools
import html
from urllib.parse import quote

from django import template
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.safestring import SafeString, mark_safe
from django.utils.timesince import timesince
from django.utils.translation import get_language
from django.utils.translation import gettext as _

from orders import events
from orders.access import user_roles
from orders.models import AddressChangeSource, AddressChangeStatus, Carrier, Order, OrderStatus, RiskTag, Role
from orders.privacy import private_text
from orders.templatetags.cockpit import duration, platform_clock_chip
from workflows.models import TicketKind

register = template.Library()
ALERT = "9999999999"  # an alert id no alert has, replaced by each card's own
EPOCH = datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC)


def _when(value, pattern: str) -> str:
    return format(timezone.localtime(value), pattern) if value else ""


def _address(name: str, placeholder: str = "~") -> str:
    """A URL pattern's address with `placeholder` where its argument goes: reverse() once per
    board rather than twice per card (it was a third of the cards' CPU)."""
    return reverse(name, args=[placeholder])


@functools.lru_cache(maxsize=8)
def _words(language: str) -> dict:
    """The cards' fixed words in one language, escaped: working them out on every board (four
    lanes, ~40 lazy translations each) was a sixth of the cards' CPU."""
    with translation.override(language):
        return {
            "statuses": {value: html.escape(str(label)) for value, label in OrderStatus.choices},
            "roles": {value: html.escape(str(label)) for value, label in Role.choices},
            "tags": {value: html.escape(str(label)) for value, label in RiskTag.choices},
            "hold_reasons": {value: html.escape(str(label)) for value, label in Order._meta.get_field("hold_reason").flatchoices},
            "nobody": html.escape(_("nobody operating")),
            "expected": html.escape(_("expected")),
            "release": html.escape(_("expected release")),
            "due": html.escape(_("due")),
            "acknowledge": html.escape(_("Acknowledge alert")),
            "acknowledge_platform": html.escape(_("Acknowledge platform alert")),
            "assign_to": html.escape(_("Assign to")),
            "choose": html.escape(_("Assign to…")),
            "assign_label": html.escape(_("Assign")),
        }


def _overdue_by(due: datetime.datetime, now: datetime.datetime) -> str:
    """ "overdue by 5 hours, 3 minutes", escaped. Under 28 days timesince's words depend on the
    whole minutes alone (months and years on the calendar), so those are worked out once per
    language: 20 red cards' timesince were a fifth of the cards' CPU."""
    late = now - due
    if late >= datetime.timedelta(days=28):
        return html.escape(_("overdue by %(late)s") % {"late": timesince(due, now)})
    return _overdue_minutes(get_language(), int(late.total_seconds() // 60))


@functools.lru_cache(maxsize=2048)
def _overdue_minutes(language: str, minutes: int) -> str:
    with translation.override(language):
        return html.escape(_("overdue by %(late)s") % {"late": timesince(EPOCH, EPOCH + datetime.timedelta(minutes=minutes))})


@register.simple_tag(takes_context=True)
def board_cards(context, orders, lane: str) -> SafeString:
    request = context["request"]
    filters, now = context["filters"], context["board"].now
    shown = private_text(user_roles(request.user))

    def private(text: str) -> str:
        return html.escape(shown(text))

    words = _words(get_language())
    statuses, roles, tags, hold_reasons = words["statuses"], words["roles"], words["tags"], words["hold_reasons"]
    nobody, expected, release, due = words["nobody"], words["expected"], words["release"], words["due"]
    acknowledge, acknowledge_platform = words["acknowledge"], words["acknowledge_platform"]
    assign_to, choose, assign_label = words["assign_to"], words["choose"], words["assign_label"]
    # The page's own token (the context processor's, worked out once per page): each get_token()
    # masks the secret anew.
    csrf = f'<input type="hidden" name="csrfmiddlewaretoken" value="{html.escape(str(context["csrf_token"]))}">'
    keep = (
        f'<input type="hidden" name="role" value="{html.escape(filters.role)}">'
        f'<input type="hidden" name="tag" value="{html.escape(filters.tag)}">'
        f'<input type="hidden" name="sort" value="{html.escape(filters.sort)}">'
    )
    card_url, assign_url, ack_url = _address("order_card"), _address("order_assign"), _address("alert_acknowledge", ALERT)
    options_of: dict[str, str] = {}  # a responsible role's people, the same on each of its cards
    cards = []
    for order in orders:
        number = html.escape(order.order_number)
        over = order.stage_due_at is not None and order.stage_due_at <= now
        operator = order.operator
        head = "".join(
            (
                '<span class="chip rush">🔥</span>' if order.is_rush else "",
                f'<a href="{html.escape(card_url.replace("~", quote(order.order_number, safe="")))}" class="order-link">{number}</a>',
                f'<span class="status status-{html.escape(order.status)}">{statuses.get(order.status, "")}</span>',
                f'<span class="muted">{roles.get(order.responsible_role, "")}</span>' if order.responsible_role else "",
                f"<span>👤 {html.escape(operator) or nobody}</span>",
            )
        )
        facts = []
        if order.is_rush:
            facts.append(
                f'<span class="deadline">{expected} {_when(order.rush_deadline, "%m-%d %H:%M")}</span> · {private(order.rush_reason)}'
            )
        if order.is_held:
            note = f" {private(order.hold_note)}" if order.hold_note else ""
            until = _when(order.hold_until, "%m-%d %H:%M") or "—"
            facts.append(
                f'<span class="chip held">{hold_reasons.get(order.hold_reason) or html.escape(order.hold_reason)}</span>'
                f"{note} · {release} {until}"
            )
        if over:
            late = _overdue_by(order.stage_due_at, now)
            facts.append(f'<span class="overdue">{late}</span>')
        elif order.stage_due_at:
            facts.append(f'<span class="muted">{due} {_when(order.stage_due_at, "%H:%M")}</span>')
        if order.platform_clock:
            facts.append(platform_clock_chip(order.platform_clock))
        facts.extend(f'<span class="chip risk">{tags.get(tag) or html.escape(tag)}</span>' for tag in order.open_tags)
        actions = ""
        if order.open_alert:
            ack = html.escape(ack_url.replace(ALERT, str(order.open_alert.pk)))
            actions = (
                f'<form method="post" action="{ack}" hx-post="{ack}" hx-target="#board-body" hx-swap="outerHTML" '
                f'class="inline">{csrf}{keep}<button class="ack-alert" id="ack-{order.open_alert.pk}">{acknowledge}</button></form>'
            )
        elif order.acknowledged_alert:
            alert = order.acknowledged_alert
            text = _("Alert acknowledged by %(who)s at %(when)s") % {
                "who": alert.acknowledged_by,
                "when": _when(alert.acknowledged_at, "%H:%M"),
            }
            actions = f'<span class="acked" id="acked-{alert.pk}">✔ {html.escape(text)}</span>'
        if order.open_platform_alert:
            ack = html.escape(ack_url.replace(ALERT, str(order.open_platform_alert.pk)))
            actions += (
                f'<form method="post" action="{ack}" hx-post="{ack}" hx-target="#board-body" hx-swap="outerHTML" class="inline">'
                f'{csrf}{keep}<button class="ack-alert" id="ack-{order.open_platform_alert.pk}">{acknowledge_platform}</button></form>'
            )
        assign = html.escape(assign_url.replace("~", quote(order.order_number, safe="")))
        if order.responsible_role not in options_of:
            options_of[order.responsible_role] = "".join(
                f'<option value="{pk}">{html.escape(name)}</option>' for pk, name in order.assignee_choices
            )
        options = options_of[order.responsible_role]
        cards.append(
            f'<li class="board-card{" rush" if order.is_rush else ""}{" over" if over else ""}" id="{html.escape(lane)}-{number}">'
            f'<p class="card-line">{head}</p><p class="card-line">{" ".join(facts)}</p><div class="card-actions">{actions}'
            f'<form method="post" action="{assign}" hx-post="{assign}" hx-target="#board-body" hx-swap="outerHTML" '
            f'class="inline assign">{csrf}{keep}<select name="assignee" aria-label="{assign_to}" required>'
            f'<option value="">{choose}</option>{options}</select><button>{assign_label}</button></form></div></li>\n'
        )
    return mark_safe("".join(cards))  # noqa: S308 — built above from escaped values only


@functools.lru_cache(maxsize=8)
def _list_words(language: str) -> dict:
    """The fixed words of the stage counts and of the lanes below the cards, escaped, once per
    language (as _words)."""
    with translation.override(language):
        return {
            "overdue": html.escape(_("overdue")),
            "on_hold": html.escape(_("on hold")),
            "limit": html.escape(_("limit")),
            "open_since": html.escape(_("open since")),
            "due": html.escape(_("due")),
            "Due": html.escape(_("Due")),
            "kinds": {value: html.escape(str(label)) for value, label in TicketKind.choices},
            "carriers": {value: html.escape(str(label)) for value, label in Carrier.choices},
            "change_statuses": {value: html.escape(str(label)) for value, label in AddressChangeStatus.choices},
            "sources": {value: html.escape(str(label)) for value, label in AddressChangeSource.choices},
            "no_exceptions": html.escape(_("No open exceptions.")),
            "no_tickets": html.escape(_("No open tickets.")),
            "no_changes": html.escape(_("No address change is waiting.")),
        }


def _label(labels: dict, code: str) -> str:
    """A code's escaped label, the code itself (escaped) when it has none (as get_FOO_display)."""
    return labels.get(code) or html.escape(code)


@register.simple_tag
def board_counts(board) -> SafeString:
    """The stage counts' items (the template's loop, unchanged markup)."""
    words, list_words = _words(get_language()), _list_words(get_language())
    roles, statuses = words["roles"], words["statuses"]
    overdue, on_hold, limit = list_words["overdue"], list_words["on_hold"], list_words["limit"]
    order_list = html.escape(reverse("order_list"))
    items = []
    for count in board.counts:
        stage = html.escape(count.stage)
        over = (
            f'<a class="over" href="{order_list}?status={stage}&amp;overdue=1">{count.overdue} {overdue}</a>'
            if count.overdue
            else ""
        )
        held = f'<span class="muted">{count.held} {on_hold}</span>' if count.held else ""
        rule = count.rule
        rule = (
            f'<span class="muted">{limit} {html.escape(duration(rule.time_limit))} · {_label(roles, rule.responsible_role)}</span>'
            if rule
            else ""
        )
        items.append(
            f'\n    <li class="stage-count status-{stage}" id="count-{stage}">\n'
            f'      <a href="{order_list}?status={stage}"><strong>{count.total}</strong> {_label(statuses, count.stage)}</a>\n'
            f"      {over}\n      {held}\n      {rule}\n    </li>\n    "
        )
    return mark_safe("".join(items))  # noqa: S308 — built above from escaped values only


@register.simple_tag
def board_exception_groups(board) -> SafeString:
    """The rows of the open exceptions per reason."""
    words = _words(get_language())
    rows = []
    for group in board.exception_groups:
        reason = html.escape(group.reason)
        overdue = f'<span class="overdue">{group.overdue}</span>' if group.overdue else "0"
        rows.append(
            f'<tr id="group-{reason}"><td>{_label(words["roles"], group.owner)}</td><td><a href="?tag={reason}">'
            f"{_label(words['tags'], group.reason)}</a></td><td>{group.count}</td><td>{overdue}</td></tr>"
        )
    return mark_safe("".join(rows))  # noqa: S308 — built above from escaped values only


def _order_link(card_url: str, number: str) -> str:
    return f'<a href="{html.escape(card_url.replace("~", quote(number, safe="")))}" class="order-link">{html.escape(number)}</a>'


@register.simple_tag
def board_exceptions(board) -> SafeString:
    """The exceptions lane's cards (workflows/selectors.py BoardTag)."""
    words, list_words = _words(get_language()), _list_words(get_language())
    tags, statuses, open_since, due = words["tags"], words["statuses"], list_words["open_since"], list_words["due"]
    card_url, now = _address("order_card"), board.now
    items = []
    for tag in board.tags:
        due_at = (
            f'<span class="{"overdue" if tag.due_at <= now else "muted"}">{due} {_when(tag.due_at, "%m-%d %H:%M")}</span>'
            if tag.due_at
            else ""
        )
        operator = f"<span>👤 {html.escape(tag.operator)}</span>" if tag.operator is not None else ""
        items.append(
            f'\n      <li class="board-card" id="tag-{tag.pk}">\n        {_order_link(card_url, tag.order_number)}\n'
            f'        <span class="chip risk">{_label(tags, tag.tag)}</span>\n'
            f'        <span class="status status-{html.escape(tag.order_status)}">{_label(statuses, tag.order_status)}</span>\n'
            f'        <span class="muted">{open_since} {_when(tag.opened_at, "%m-%d %H:%M")}</span>\n'
            f"        {due_at}\n        {operator}\n      </li>\n    "
        )
    return mark_safe("".join(items) or f'<li class="muted">{list_words["no_exceptions"]}</li>')  # noqa: S308 — escaped values only


@register.simple_tag(takes_context=True)
def board_tickets(context, board) -> SafeString:
    """The tickets lane's cards (workflows/selectors.py BoardTicket); the summary as this viewer
    may read it."""
    shown = private_text(user_roles(context["request"].user))
    words, list_words = _words(get_language()), _list_words(get_language())
    roles, kinds, carriers = words["roles"], list_words["kinds"], list_words["carriers"]
    card_url = _address("order_card")
    items = []
    for ticket in board.tickets:
        shipment = (
            f"<span>{_label(carriers, ticket.carrier_code)} {html.escape(ticket.tracking_number)}</span>"
            if ticket.carrier_code is not None
            else ""
        )
        owner = f" · {html.escape(ticket.owner)}" if ticket.owner is not None else ""
        summary = html.escape(shown(ticket.summary)) if ticket.summary else ""
        items.append(
            f'\n      <li class="board-card" id="ticket-{ticket.pk}">\n        {_order_link(card_url, ticket.order_number)}\n'
            f'        <span class="chip warn">{_label(kinds, ticket.kind)}</span>\n        {shipment}\n'
            f"        <span>{summary}</span>\n"
            f'        <span class="muted">{_label(roles, ticket.for_role)}{owner} · {_when(ticket.opened_at, "%m-%d %H:%M")}</span>\n'
            "      </li>\n    "
        )
    return mark_safe("".join(items) or f'<li class="muted">{list_words["no_tickets"]}</li>')  # noqa: S308 — escaped values only


@register.simple_tag
def board_address_changes(board) -> SafeString:
    """The address-changes lane's cards (workflows/selectors.py BoardAddressChange)."""
    words, list_words = _words(get_language()), _list_words(get_language())
    statuses, change_statuses, sources, due = (
        words["statuses"],
        list_words["change_statuses"],
        list_words["sources"],
        list_words["Due"],
    )
    card_url, now = _address("order_card"), board.now
    items = []
    for change in board.address_changes:
        over = " over" if change.due_at and change.due_at <= now else ""
        asked = f"{html.escape(events.name_label(change.requested_by_name))} · " if change.source != "customer" else ""
        place = html.escape(f"{change.province}{change.city}{change.district}")
        items.append(
            f'\n      <li class="board-card{over}" id="address-change-{change.pk}">\n'
            f"        {_order_link(card_url, change.order_number)}\n"
            f'        <span class="chip warn">{_label(change_statuses, change.status)}</span>\n'
            f"        <span>{_label(statuses, change.order_status)} → {place}</span>\n"
            f'        <span class="muted">{asked}{_label(sources, change.source)} · {due} {_when(change.due_at, "%H:%M")}</span>\n'
            "      </li>\n    "
        )
    return mark_safe("".join(items) or f'<li class="muted">{list_words["no_changes"]}</li>')  # noqa: S308 — escaped values only
