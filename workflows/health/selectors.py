"""Reads of the health self-check: the page's rows (today live, the 29 days before stored) and
their bar charts, drawn as plain SVG geometry the template fills in."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from django.utils.translation import gettext as _

from workflows.health.measures import MEASURES, Measure, MeasureValue, business_today, describe_detail
from workflows.health.models import ConsistencyTask, DailyMeasure

HISTORY_DAYS = 30
CHART_WIDTH = 300
CHART_HEIGHT = 60
BAR_SLOT = CHART_WIDTH / HISTORY_DAYS
BASELINE = CHART_HEIGHT - 2


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    state: str  # "good", "bad" or "none" (no data that day)
    title: str


@dataclass(frozen=True)
class Chart:
    bars: list[Bar]
    target_y: float
    label: str


@dataclass(frozen=True)
class HealthRow:
    measure: Measure
    today: MeasureValue
    value_text: str
    detail_text: str
    state: str  # "good", "bad" or "none"
    chart: Chart


def _state(measure: Measure, value: float | None) -> str:
    healthy = measure.healthy(value)
    return "none" if healthy is None else ("good" if healthy else "bad")


def measure_on(*, measure: Measure, day: datetime.date, today: datetime.date) -> MeasureValue | None:
    """Today's value is computed live; a past day's is the stored one (None when never stored)."""
    if day == today:
        return measure.compute(day=day)
    row = DailyMeasure.objects.filter(key=measure.key, day=day).first()
    return MeasureValue(row.value, row.sample_size, row.detail) if row else None


def chart(measure: Measure, values: list[tuple[datetime.date, float | None]]) -> Chart:
    """Bars from the oldest day (left) to today (right), on a scale that always shows the target.

    Lower-is-better measures start at zero; higher-is-better percentages end at 100% and start
    below the lowest value, so 99.2% and 99.9% do not draw as the same bar."""
    known = [value for _day, value in values if value is not None] + [measure.target]
    if measure.direction == "at_least" and measure.unit == "percent":
        top = 100.0
        bottom = max(0.0, min(known) - (top - min(known)) * 0.5 - 0.5)
    else:
        top, bottom = max(known) * 1.1, 0.0
    span = (top - bottom) or 1.0

    def y_of(value: float) -> float:
        return round(BASELINE - (value - bottom) / span * (BASELINE - 2), 2)

    bars = []
    for index, (day, value) in enumerate(values):
        x = round(index * BAR_SLOT + 1, 2)
        if value is None:
            bars.append(Bar(x, BASELINE - 2, BAR_SLOT - 2, 2, "none", f"{day:%m-%d}: {_('no data')}"))
            continue
        y = min(y_of(value), BASELINE - 1)  # a zero still shows as a sliver, unlike a missing day
        bars.append(
            Bar(x, y, BAR_SLOT - 2, round(BASELINE - y, 2), _state(measure, value), f"{day:%m-%d}: {measure.format(value)}")
        )
    label = _("%(measure)s, last %(days)d days; target %(target)s") % {
        "measure": measure.label,
        "days": len(values),
        "target": measure.target_text(),
    }
    return Chart(bars=bars, target_y=y_of(measure.target), label=label)


def health_rows() -> list[HealthRow]:
    today = business_today()
    first = today - datetime.timedelta(days=HISTORY_DAYS - 1)
    stored = {
        (row.key, row.day): row.value
        for row in DailyMeasure.objects.filter(day__gte=first, day__lt=today).only("key", "day", "value")
    }
    rows = []
    for measure in MEASURES:
        now_value = measure.compute(day=today)
        history = [
            (first + datetime.timedelta(days=offset), stored.get((measure.key, first + datetime.timedelta(days=offset))))
            for offset in range(HISTORY_DAYS - 1)
        ]
        history.append((today, now_value.value))
        rows.append(
            HealthRow(
                measure=measure,
                today=now_value,
                value_text=measure.format(now_value.value),
                detail_text=describe_detail(now_value.detail),
                state=_state(measure, now_value.value),
                chart=chart(measure, history),
            )
        )
    return rows


def open_status_checks(*, user) -> list[ConsistencyTask]:
    return list(
        ConsistencyTask.objects.filter(assignee=user, answered_at__isnull=True)
        .select_related("sample__order__customer")
        .prefetch_related("sample__order__lines")
        .order_by("sample__day", "sample__slot")
    )


def answered_status_checks(*, user, limit: int = 20) -> list[ConsistencyTask]:
    return list(
        ConsistencyTask.objects.filter(assignee=user, answered_at__isnull=False)
        .select_related("sample__order")
        .order_by("-answered_at")[:limit]
    )
