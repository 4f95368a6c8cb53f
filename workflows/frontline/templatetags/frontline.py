"""Dates as people say them on the phone: "today 14:03", "last Tue 10:20"; the lookup's timeline
and order blocks."""

import datetime
import functools
import html
import unicodedata
from collections.abc import Callable

from django import template
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe
from django.utils.text import Truncator
from django.utils.translation import get_language, pgettext_lazy
from django.utils.translation import gettext as _

from orders.access import user_roles
from orders.privacy import display_phone, private_text
from orders.templatetags.cockpit import carrier_label, person, role_label, status_label, tag_label

register = template.Library()


# Short weekday names with their own context so the Chinese catalogue can say 周二 (→ 上周二).
# Lazy, so a date translates only its own weekday (the timeline formats hundreds of dates).
WEEKDAYS = [
    pgettext_lazy("short weekday", "Mon"),
    pgettext_lazy("short weekday", "Tue"),
    pgettext_lazy("short weekday", "Wed"),
    pgettext_lazy("short weekday", "Thu"),
    pgettext_lazy("short weekday", "Fri"),
    pgettext_lazy("short weekday", "Sat"),
    pgettext_lazy("short weekday", "Sun"),
]


def _weekday(day: datetime.date) -> str:
    return str(WEEKDAYS[day.weekday()])


@register.filter
def relative_day(value: datetime.datetime | None, now: datetime.datetime | None = None) -> str:
    return day_namer(now)(value)


def day_namer(now: datetime.datetime | None = None) -> Callable[[datetime.datetime | None], str]:
    """relative_day for many dates: the time zone, today and the words for it worked out once
    (the lookup names ~80 dates a page; each relative_day asked the zone twice and translated)."""
    zone = timezone.get_current_timezone()
    today = timezone.localdate(now or timezone.now(), zone)
    yesterday = today - datetime.timedelta(days=1)
    this_monday = today - datetime.timedelta(days=today.weekday())
    last_monday = this_monday - datetime.timedelta(days=7)
    labels: dict[datetime.date, str] = {}

    def label(day: datetime.date) -> str:
        if day == today:
            return _("today")
        if day == yesterday:
            return _("yesterday")
        if this_monday <= day < today:
            return _("this %(weekday)s") % {"weekday": _weekday(day)}
        if last_monday <= day < this_monday:
            return _("last %(weekday)s") % {"weekday": _weekday(day)}
        return day.strftime("%m-%d") if day.year == today.year else day.strftime("%Y-%m-%d")

    def name(value: datetime.datetime | None) -> str:
        if value is None:
            return ""
        local = timezone.localtime(value, zone)
        day = local.date()
        if day not in labels:
            labels[day] = label(day)
        return f"{labels[day]} {local.hour:02d}:{local.minute:02d}"  # as %H:%M, without strftime

    return name


@register.simple_tag(takes_context=True)
def timeline_entries(context, entries) -> SafeString:
    """The lookup's timeline entries (workflows/frontline/lookup.py TimelineEntry, dressed), written
    out in Python: as template nodes, 40 entries of ~12 nodes and two `private` filters each were
    a large part of the lookup's CPU (issue 14). Every value is escaped but the ISO time (digits
    and separators, from datetime.isoformat); the summary and details are free text, so mobile
    numbers in them are masked for the roles that see masked phones (the `private` filter's
    rule, decided once here)."""
    user = context["request"].user
    shown = private_text(user_roles(user))
    items = []
    for entry in entries:
        actor = f'<span class="actor">{html.escape(entry.actor)}</span>' if entry.actor else ""
        head = (
            f'<time datetime="{entry.iso}">{html.escape(entry.when)}</time>'
            f' <span class="order-ref">{html.escape(entry.order_number)}</span> {actor}'
            f' <span class="what">{html.escape(shown(entry.summary))}</span>'
        )
        if entry.details:
            lines = "".join(f"<li>{html.escape(shown(line))}</li>" for line in entry.details)
            head = f"<details><summary>{head}</summary><ul>{lines}</ul></details>"
        items.append(f'<li class="entry {html.escape(entry.kind)}">{head}</li>\n')
    return mark_safe("".join(items))  # noqa: S308 — built above from escaped values only


@functools.cache
def _block_words(language: str) -> dict[str, str]:
    """The order blocks' fixed words, escaped, once per language (get_language() is the key)."""
    return {
        key: html.escape(text)
        for key, text in {
            "rush": _("Rush"),
            "cold_chain": _("Cold chain"),
            "on_hold": _("On hold"),
            "channel": _("Channel"),
            "where": _("Where is my order?"),
            "asked": _("What the customer asked"),
            "record": _("Customer asked: record and answer now"),
            "five": _("Five dimensions"),
            "customer": _("Customer"),
            "products": _("Products"),
            "gift": _("Gift"),
            "process": _("Process"),
            "since": _("since"),
            "blocked": _("Blocked because"),
            "collaboration": _("Collaboration"),
            "operating": _("Operating now"),
            "owes": _("owes feedback"),
            "risk": _("Risk"),
            "no_exceptions": _("No exceptions"),
            "actions": _("Add a note, open an after-sales case, change the address"),
            "show_forms": _("Show the forms"),
        }.items()
    }


def _short(name: str) -> str:
    """Truncator(name).chars(14): the same text, without building a Truncator (a lazy object, and
    a translated ellipsis) for the names that fit, nearly all of them."""
    return unicodedata.normalize("NFC", name) if len(name) <= 14 else Truncator(name).chars(14)


@register.simple_tag(takes_context=True)
def lookup_order_blocks(context, orders) -> SafeString:
    """The lookup's order blocks (workflows/frontline/lookup.py), written out in Python: as
    template nodes, 20 blocks of ~60 nodes each were a third of the lookup's CPU (issue 14).
    Every value is escaped; phones and free text are as this viewer may see them (orders/privacy.py),
    decided once here. The block whose forms were asked for without JavaScript (?forms=) gets the
    template's order-actions partial; the others load it when their <details> opens."""
    request = context["request"]
    roles = user_roles(request.user)
    private = private_text(roles)
    esc = html.escape
    csrf = f'<input type="hidden" name="csrfmiddlewaretoken" value="{esc(str(context.get("csrf_token", "")))}">'
    query = esc(context["result"].query)
    query_string = esc(context["query_string"])
    forms_for = context.get("forms_for")
    channel_options = context["inquiry_channel_options"]
    day = day_namer()
    words = _block_words(get_language())
    # Each code's label translated and escaped once a page, not once per order.
    status_text, carrier_text = (
        functools.cache(lambda code, label=label: esc(label(code))) for label in (status_label, carrier_label)
    )
    blocks = []
    for order in orders:
        number, code = esc(order.order_number), esc(order.status)
        status = status_text(order.status)
        tags = "".join(f'<span class="chip risk">{esc(tag_label(tag.tag))}</span>' for tag in order.open_tags)
        chips = (
            (f'<span class="chip rush">🔥{words["rush"]}</span>' if order.is_rush else "")
            + (f'<span class="chip cold">❄{words["cold_chain"]}</span>' if order.requires_cold_chain else "")
            + (f'<span class="chip held">{words["on_hold"]}</span>' if order.is_held else "")
        )
        summary_lines = "、".join(
            f"{esc(_short(line.product_name))}×{line.quantity}{'🎁' if line.is_gift else ''}" for line in order.line_list
        )
        product_lines = "".join(
            f'<span class="sku">{esc(line.sku_code)}</span> {esc(line.product_name)} × {line.quantity}'
            + (f' <span class="chip gift">🎁{words["gift"]}</span>' if line.is_gift else "")
            + (' <span class="chip cold">❄</span>' if line.cold_chain else "")
            + "<br>"
            for line in order.line_list
        )
        process = f"{status} · {words['since']} {esc(day(order.stage_entered_at))}"
        if order.is_held:
            process += f" · {words['blocked']} {esc(order.get_hold_reason_display())} {esc(private(order.hold_note or ''))}"
        if order.carrier_code:
            process += f" · {carrier_text(order.carrier_code)}"
        claimed = person(order.claimed_by) or "—"
        owes = "".join(
            f' · <span class="chip warn">{words["owes"]}: {esc(role_label(item.to_role))}</span>' for item in order.feedback_open
        )
        risk = tags or ("" if order.is_rush or order.requires_cold_chain else words["no_exceptions"])
        if order.is_rush:
            risk += f'<span class="chip rush">🔥{esc(private(order.rush_reason or ""))}</span>'
        address = esc(f"{order.province}{order.city}{order.district}{order.address}")
        if order.order_number == forms_for:
            actions = f'<details class="lookup-actions" id="actions-{number}" open>'
            forms = render_to_string(
                "frontline/lookup.html#order-actions",
                {
                    "order": order,
                    "query": context["query"],
                    **{key: context[key] for key in ("note_kinds", "note_audiences", "after_sales_kinds")},
                },
                request,
            )
        else:
            forms_url = f"{esc(order.forms_url)}?{query_string}"
            actions = (
                f'<details class="lookup-actions" id="actions-{number}"\n'
                f'               hx-get="{forms_url}" hx-trigger="toggle once" hx-target="find .action-forms" hx-swap="innerHTML">'
            )
            forms = f'<a href="{forms_url}">{words["show_forms"]}</a>'
        inquiry_url = esc(order.inquiry_url)
        blocks.append(
            f'<article class="order-block status-{code}" id="order-{number}">\n'
            f"<header>\n"
            f'<a href="{esc(order.card_url)}" class="order-number">{number}</a>\n'
            f'<span class="status status-{code}">{status}</span>\n'
            f'{chips}{tags}\n<span class="muted">{esc(day(order.placed_at))} · ¥{order.total_amount}</span>\n'
            f"</header>\n"
            f'<p class="answer" id="answer-{number}">{esc(order.answer.as_text())}</p>\n'
            f'<form method="post" action="{inquiry_url}" class="inline inquiry-form"\n'
            f'      hx-post="{inquiry_url}" hx-target="#lookup-result" hx-swap="outerHTML">\n'
            f'{csrf}<input type="hidden" name="q" value="{query}">\n'
            f'<select name="channel" aria-label="{words["channel"]}">{channel_options}</select>\n'
            f'<input name="question" placeholder="{words["where"]}" aria-label="{words["asked"]}" maxlength="300">\n'
            f'<button id="inquiry-{number}">{words["record"]}</button>\n'
            f"</form>\n"
            f'<details class="dims">\n'
            f"<summary>{words['five']}: {summary_lines}</summary>\n"
            f'<dl class="dim-grid">\n'
            f"<dt>① {words['customer']}</dt><dd>{esc(order.receiver_name)} "
            f"{esc(display_phone(roles, order.receiver_phone))} · {address}</dd>\n"
            f"<dt>② {words['products']}</dt><dd>{product_lines}</dd>\n"
            f"<dt>③ {words['process']}</dt><dd>{process}</dd>\n"
            f"<dt>④ {words['collaboration']}</dt><dd>{words['operating']}: {esc(claimed)}{owes}</dd>\n"
            f"<dt>⑤ {words['risk']}</dt><dd>{risk}</dd>\n"
            f"</dl>\n</details>\n"
            f"{actions}\n<summary>{words['actions']}</summary>\n"
            f'<div class="action-forms">{forms}</div>\n</details>\n</article>\n'
        )
    return mark_safe("".join(blocks))  # noqa: S308 — built above from escaped values only
