"""Dates as people say them on the phone: "today 14:03", "last Tue 10:20"; the lookup's timeline."""

import datetime
import html

from django import template
from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext as _
from django.utils.translation import pgettext_lazy

from orders.access import user_roles
from orders.privacy import mask_mobile_numbers, sees_full_phone

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
    if value is None:
        return ""
    local = timezone.localtime(value)
    today = timezone.localdate(now or timezone.now())
    day = local.date()
    this_monday = today - datetime.timedelta(days=today.weekday())
    if day == today:
        label = _("today")
    elif day == today - datetime.timedelta(days=1):
        label = _("yesterday")
    elif this_monday <= day < today:
        label = _("this %(weekday)s") % {"weekday": _weekday(day)}
    elif this_monday - datetime.timedelta(days=7) <= day < this_monday:
        label = _("last %(weekday)s") % {"weekday": _weekday(day)}
    elif day.year == today.year:
        label = local.strftime("%m-%d")
    else:
        label = local.strftime("%Y-%m-%d")
    return f"{label} {local:%H:%M}"


@register.simple_tag(takes_context=True)
def timeline_entries(context, entries) -> SafeString:
    """The lookup's timeline entries (workflows/frontline/lookup.py TimelineEntry, dressed), written
    out in Python: as template nodes, 40 entries of ~12 nodes and two `private` filters each were
    a large part of the lookup's CPU (issue 14). Every value is escaped; the summary and details
    are free text, so mobile numbers in them are masked for the roles that see masked phones
    (the `private` filter's rule, decided once here)."""
    user = context["request"].user
    shown = str if sees_full_phone(user_roles(user)) else (lambda text: mask_mobile_numbers(str(text)))
    items = []
    for entry in entries:
        actor = f'<span class="actor">{html.escape(entry.actor)}</span>' if entry.actor else ""
        head = (
            f'<time datetime="{html.escape(entry.iso)}">{html.escape(entry.when)}</time>'
            f' <span class="order-ref">{html.escape(entry.order_number)}</span> {actor}'
            f' <span class="what">{html.escape(shown(entry.summary))}</span>'
        )
        if entry.details:
            lines = "".join(f"<li>{html.escape(shown(line))}</li>" for line in entry.details)
            head = f"<details><summary>{head}</summary><ul>{lines}</ul></details>"
        items.append(f'<li class="entry {html.escape(entry.kind)}">{head}</li>\n')
    return mark_safe("".join(items))  # noqa: S308 — built above from escaped values only
