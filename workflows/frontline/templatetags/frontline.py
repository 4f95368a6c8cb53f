"""Dates as people say them on the phone: "today 14:03", "last Tue 10:20"."""

import datetime

from django import template
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import pgettext_lazy

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
