"""The stage clock: each active stage has a time limit (StageRule); every order carries the moment
its current stage is due (Order.stage_due_at), which the minute sweep (workflows/sla.py) scans.

The clock: due = stage entry + limit + time spent on hold in this stage, counted in the rule's
working hours when it has them. A hold clears the due time (the clock stops); the release adds
the held time and sets it again. A rush order's expected completion overrides when sooner.

Every path that creates an order or changes its stage (services, the rush link) calls
`clock_on_stage_entered` on the order before saving it, and the ERP import, which writes
thousands of orders without building models, calls `due_at` with the rules loaded once
(`stage_rules`), so no open order is without a clock and the arithmetic is written once. The services call the `clock_on_*` functions inside their own transaction, on the locked
order, and save the fields they return with the rest of the change.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from django.conf import settings
from django.utils import timezone

from orders.models import ACTIVE_STATUSES, Order, StageRule

# Columns named, not *: a prepared statement (beile/settings.py prepare_threshold) over * fails
# with "cached plan must not change result type" once a migration adds a column under it.
_RULE_COLUMNS = ", ".join(f'"{field.column}"' for field in StageRule._meta.concrete_fields)
RULE_SQL = f'SELECT {_RULE_COLUMNS} FROM "{StageRule._meta.db_table}" WHERE "stage" = %s'  # noqa: S608 - the model's columns


def stage_rule(stage: str) -> StageRule | None:
    """The rule for a stage; a stage without a rule (shipped, completed…) has no limit."""
    # Every transition reads one: as raw SQL it costs half the Python of the queryset (~0.35 ms).
    return next(iter(StageRule.objects.raw(RULE_SQL, [stage])), None)


def stage_rules(stages: list[str] | None = None) -> dict[str, StageRule]:
    """Every rule (of these stages) by stage, in one query: for the writers that start or refresh
    thousands of clocks at once (the ERP import, refresh_due_times)."""
    rules = StageRule.objects.all() if stages is None else StageRule.objects.filter(stage__in=stages)
    return {rule.stage: rule for rule in rules}


# --- The calendar ------------------------------------------------------------------------------


def business_day_bounds(day: datetime.date) -> tuple[datetime.datetime, datetime.datetime]:
    """[start, end) of a business day: midnight to midnight in the business time zone
    (settings.TIME_ZONE, Asia/Shanghai), whatever zone the request activated. The daily ERP
    export, its reconciliation and every health measure count "a day" with these bounds."""
    start = datetime.datetime.combine(day, datetime.time.min, tzinfo=timezone.get_default_timezone())
    return start, start + datetime.timedelta(days=1)


def business_today() -> datetime.date:
    """Today in the business time zone."""
    return timezone.localtime(timezone.now(), timezone.get_default_timezone()).date()


# --- The working-hours calendar ----------------------------------------------------------------


def _window(rule: StageRule, day: datetime.date) -> tuple[datetime.datetime, datetime.datetime]:
    """The working window that opens on `day`. A night shift (18:00–09:00: the end is not after
    the start) closes the next morning."""
    zone = timezone.get_default_timezone()
    closes_on = day if rule.work_ends > rule.work_starts else day + datetime.timedelta(days=1)
    return (
        timezone.make_aware(datetime.datetime.combine(day, rule.work_starts), zone),
        timezone.make_aware(datetime.datetime.combine(closes_on, rule.work_ends), zone),
    )


def _first_window_day(rule: StageRule, moment: datetime.datetime) -> datetime.date:
    """The first day whose window can contain `moment`: the day before for a night shift, whose
    window opened yesterday evening and is still open this morning."""
    day = _local_day(moment)
    return day - datetime.timedelta(days=1) if rule.work_ends <= rule.work_starts else day


def _local_day(moment: datetime.datetime) -> datetime.date:
    return timezone.localtime(moment, timezone.get_default_timezone()).date()


def working_seconds(rule: StageRule | None, start: datetime.datetime, end: datetime.datetime) -> float:
    """Clock time between start and end that counts against the limit."""
    if end <= start:
        return 0.0
    if rule is None or not rule.has_working_hours:
        return (end - start).total_seconds()
    total, day = 0.0, _first_window_day(rule, start)
    while True:
        opens, closes = _window(rule, day)
        if opens >= end:
            return total
        total += max(0.0, (min(closes, end) - max(opens, start)).total_seconds())
        day += datetime.timedelta(days=1)


def add_working_time(rule: StageRule, start: datetime.datetime, amount: datetime.timedelta) -> datetime.datetime:
    """The moment `amount` of counted time has passed since `start`."""
    if not rule.has_working_hours:
        return start + amount
    remaining, day = amount, _first_window_day(rule, start)
    while True:
        opens, closes = _window(rule, day)
        begin = max(opens, start)
        if begin < closes:
            if remaining <= closes - begin:
                return begin + remaining
            remaining -= closes - begin
        day += datetime.timedelta(days=1)


# --- Keeping Order.stage_due_at right ----------------------------------------------------------


def due_at(
    *,
    status: str,
    stage_entered_at: datetime.datetime,
    rule: StageRule | None,
    paused_seconds: int = 0,
    is_rush: bool = False,
    rush_deadline: datetime.datetime | None = None,
) -> datetime.datetime | None:
    """When a stage entered at `stage_entered_at` is due under `rule` (the rule of `status`), or
    None for a finished stage. The one place the clock's arithmetic is written: the functions
    below call it for one order, the ERP import for thousands with rules from stage_rules()."""
    if status not in ACTIVE_STATUSES:
        return None
    due = None
    if rule is not None:
        due = add_working_time(rule, stage_entered_at, rule.time_limit + datetime.timedelta(seconds=paused_seconds))
    # "Rush orders carry their own deadline that overrides the stage limit when it is sooner."
    if is_rush and rush_deadline and (due is None or rush_deadline < due):
        due = rush_deadline
    return due


def _due(order: Order, rule: StageRule | None) -> datetime.datetime | None:
    return due_at(
        status=order.status,
        stage_entered_at=order.stage_entered_at,
        rule=rule,
        paused_seconds=order.stage_paused_seconds,
        is_rush=order.is_rush,
        rush_deadline=order.rush_deadline,
    )


def clock_on_stage_entered(order: Order) -> list[str]:
    """A new stage is a new clock and a new possible breach."""
    order.stage_paused_seconds = 0
    order.sla_breached_at = None
    order.stage_due_at = _due(order, stage_rule(order.status))
    return ["stage_paused_seconds", "sla_breached_at", "stage_due_at"]


def clock_on_hold(order: Order) -> list[str]:
    """docs/brief.md: a hold "pauses the clock" — no due time, so the sweep cannot pick it."""
    order.stage_due_at = None
    return ["stage_due_at"]


def clock_on_release(order: Order) -> list[str]:
    """Call while order.held_at still says when the hold began."""
    rule = stage_rule(order.status)
    if order.held_at is not None:
        order.stage_paused_seconds += int(working_seconds(rule, order.held_at, timezone.now()))
    order.stage_due_at = _due(order, rule)
    return ["stage_paused_seconds", "stage_due_at"]


def clock_refresh(order: Order, rule: StageRule | None = None) -> list[str]:
    """After a rush deadline or a rule changed."""
    order.stage_due_at = None if order.is_held else _due(order, rule or stage_rule(order.status))
    return ["stage_due_at"]


def refresh_due_times(*, stage: str | None = None) -> int:
    """Recompute the due time of every open order (in one stage): after a supervisor edits a
    rule, and for demo data written in bulk."""
    stages = [stage] if stage else list(ACTIVE_STATUSES)
    rules = stage_rules(stages)
    changed = []
    orders = Order.objects.filter(status__in=stages).only(
        "pk", "status", "stage_entered_at", "stage_paused_seconds", "is_held", "is_rush", "rush_deadline", "stage_due_at"
    )
    for order in orders.iterator(chunk_size=2000):
        before = order.stage_due_at
        clock_refresh(order, rules.get(order.status))
        if order.stage_due_at != before:
            changed.append(order)
    Order.objects.bulk_update(changed, ["stage_due_at"], batch_size=2000)
    return len(changed)


# --- What the card shows -----------------------------------------------------------------------


@dataclass
class StageClock:
    elapsed: datetime.timedelta  # counted time in this stage, holds excluded
    limit: datetime.timedelta | None
    due_at: datetime.datetime | None
    overdue: bool
    paused: bool
    rush_deadline_first: bool
    responsible_role: str


def stage_clock(order: Order) -> StageClock | None:
    if order.status not in ACTIVE_STATUSES:
        return None
    now = timezone.now()
    rule = stage_rule(order.status)
    until = order.held_at if order.is_held and order.held_at else now
    elapsed = working_seconds(rule, order.stage_entered_at, until) - order.stage_paused_seconds
    due = order.stage_due_at
    return StageClock(
        elapsed=datetime.timedelta(seconds=max(0, elapsed)),
        limit=rule.time_limit if rule else None,
        due_at=due,
        overdue=order.sla_breached_at is not None or (due is not None and due <= now),
        paused=order.is_held,
        rush_deadline_first=bool(order.is_rush and due is not None and due == order.rush_deadline),
        responsible_role=rule.responsible_role if rule else "",
    )


# --- The platform's clock ----------------------------------------------------------------------
#
# A platform order (Douyin shop, WeChat mini-program) also runs on the platform's clock: its latest
# ship time and, while an after-sales case waits for our answer, its response deadline. Which
# deadline counts now is Order.platform_due_at (computed by the database, orders/models.py); this is
# what it means. The platform's deadline is a fixed moment set by the platform: a hold here pauses
# the stage clock above, never this one.

PLATFORM_OK = "ok"
PLATFORM_NEAR = "near"
PLATFORM_OVERDUE = "overdue"
PLATFORM_SHIP = "ship"
PLATFORM_AFTERSALES = "aftersales"


@dataclass
class PlatformClock:
    kind: str  # PLATFORM_SHIP (latest ship time) or PLATFORM_AFTERSALES (after-sales response)
    due_at: datetime.datetime
    minutes_left: int  # negative once the deadline has passed
    distance: datetime.timedelta  # how far the deadline is, before or after it
    state: str  # PLATFORM_OK, PLATFORM_NEAR (closer than the alert threshold), PLATFORM_OVERDUE


def platform_alert_window() -> datetime.timedelta:
    """A platform deadline closer than this is "near": shown so, and alerted (workflows/sla.py)."""
    return datetime.timedelta(minutes=settings.PLATFORM_DEADLINE_ALERT_MINUTES)


def platform_clock(order: Order, now: datetime.datetime | None = None) -> PlatformClock | None:
    """The platform deadline that counts now, or None for an order without one (not a platform
    order, or shipped with no after-sales case waiting)."""
    due = order.platform_due_at
    if due is None:
        return None
    now = now or timezone.now()
    left = due - now
    if left <= datetime.timedelta(0):
        state = PLATFORM_OVERDUE
    elif left <= platform_alert_window():
        state = PLATFORM_NEAR
    else:
        state = PLATFORM_OK
    return PlatformClock(
        kind=PLATFORM_AFTERSALES if order.platform_aftersales_deadline == due else PLATFORM_SHIP,
        due_at=due,
        # Whole minutes, rounded towards the past: "0 minutes left" is never shown for a passed deadline.
        minutes_left=int(left.total_seconds() // 60),
        distance=abs(left),
        state=state,
    )
