"""Stage clocks: each active stage has a time limit (StageRule); every order carries the moment
its current stage is due (Order.stage_due_at) and a minute sweep over that indexed column turns
overdue orders red and alerts the supervisor, exactly once per breach.

The clock: due = stage entry + limit + time spent on hold in this stage, counted in the rule's
working hours when it has them. A hold clears the due time (the clock stops); the release adds
the held time and sets it again. A rush order's expected completion overrides when sooner.

orders/services.py calls the `clock_on_*` functions inside its own transaction, on the locked
order, and saves the fields they return with the rest of the change.
"""

from __future__ import annotations

import datetime
import logging
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.models import User
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext as _

from orders.models import ACTIVE_STATUSES, EventKind, Order, OrderEvent, OrderStatus, Role
from workflows.models import Alert, AlertKind, StageRule

logger = logging.getLogger(__name__)

# How many breaches one sweep handles; the rest wait a minute (keeps one sweep well under 1 s).
SWEEP_BATCH = 5000
# An alert whose e-mail failed is retried by the next sweeps for this long.
EMAIL_RETRY_WINDOW = datetime.timedelta(hours=24)


def stage_rule(stage: str) -> StageRule | None:
    """The rule for a stage; a stage without a rule (shipped, completed…) has no limit."""
    return StageRule.objects.filter(stage=stage).first()


# --- The working-hours calendar ----------------------------------------------------------------


def _window(rule: StageRule, day: datetime.date) -> tuple[datetime.datetime, datetime.datetime]:
    zone = timezone.get_default_timezone()
    return (
        timezone.make_aware(datetime.datetime.combine(day, rule.work_starts), zone),
        timezone.make_aware(datetime.datetime.combine(day, rule.work_ends), zone),
    )


def _local_day(moment: datetime.datetime) -> datetime.date:
    return timezone.localtime(moment, timezone.get_default_timezone()).date()


def working_seconds(rule: StageRule | None, start: datetime.datetime, end: datetime.datetime) -> float:
    """Clock time between start and end that counts against the limit."""
    if end <= start:
        return 0.0
    if rule is None or not rule.has_working_hours:
        return (end - start).total_seconds()
    total, day = 0.0, _local_day(start)
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
    remaining, day = amount, _local_day(start)
    while True:
        opens, closes = _window(rule, day)
        begin = max(opens, start)
        if begin < closes:
            if remaining <= closes - begin:
                return begin + remaining
            remaining -= closes - begin
        day += datetime.timedelta(days=1)


# --- Keeping Order.stage_due_at right ----------------------------------------------------------


def _due(order: Order, rule: StageRule | None) -> datetime.datetime | None:
    if order.status not in ACTIVE_STATUSES:
        return None
    due = None
    if rule is not None:
        due = add_working_time(rule, order.stage_entered_at, rule.time_limit + datetime.timedelta(seconds=order.stage_paused_seconds))
    # "Rush orders carry their own deadline that overrides the stage limit when it is sooner."
    if order.is_rush and order.rush_deadline and (due is None or order.rush_deadline < due):
        due = order.rush_deadline
    return due


def clock_on_stage_entered(order: Order) -> list[str]:
    """A new stage is a new clock and a new possible breach."""
    order.stage_paused_seconds = 0
    order.sla_breached_at = None
    order.stage_due_at = _due(order, stage_rule(order.status))
    return ["stage_paused_seconds", "sla_breached_at", "stage_due_at"]


def clock_on_hold(order: Order) -> list[str]:
    """BRIEF.md: a hold "pauses the clock" — no due time, so the sweep cannot pick it."""
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
    rules = {rule.stage: rule for rule in StageRule.objects.filter(stage__in=stages)}
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


# --- The sweep ---------------------------------------------------------------------------------


@dataclass
class SweepResult:
    breached: int
    emailed: int


def breach_key(order: Order) -> str:
    """One breach per order and stage entry: re-entering a stage later is a new breach."""
    return f"sla:{order.pk}:{order.status}:{order.stage_entered_at.timestamp():.0f}"


def _breach_message(order: Order, rule: StageRule | None) -> str:
    stage = OrderStatus(order.status).label
    due = date_format(timezone.localtime(order.stage_due_at), "m-d H:i")
    if order.is_rush and order.rush_deadline == order.stage_due_at:
        return _("Rush order %(number)s missed its expected completion time %(due)s (now %(stage)s).") % {
            "number": order.order_number, "due": due, "stage": stage,
        }
    role = Role(rule.responsible_role).label if rule and rule.responsible_role in Role.values else ""
    return _("Order %(number)s is over its time limit in %(stage)s since %(due)s (responsible: %(role)s).") % {
        "number": order.order_number, "stage": stage, "due": due, "role": role,
    }


def sla_sweep(*, now: datetime.datetime | None = None) -> SweepResult:
    """Mark every order past its due time red, with one order event and one alert each."""
    now = now or timezone.now()
    rules = {rule.stage: rule for rule in StageRule.objects.all()}
    with transaction.atomic():
        # Served by the partial index order_sla_unalerted. SKIP LOCKED: an order someone is
        # moving right now is left alone (its transition resets the clock anyway) so the sweep
        # never waits on a person; the guard sla_breached_at IS NULL under the row lock makes
        # two overlapping sweeps alert once.
        due = list(
            Order.objects.select_for_update(skip_locked=True)
            .filter(stage_due_at__lte=now, sla_breached_at__isnull=True, is_held=False)
            .order_by("stage_due_at")
            .only("pk", "order_number", "status", "stage_entered_at", "stage_due_at", "is_rush", "rush_deadline")[:SWEEP_BATCH]
        )
        if due:
            Order.objects.filter(pk__in=[order.pk for order in due]).update(sla_breached_at=now)
            events, alerts = [], []
            for order in due:
                rule = rules.get(order.status)
                message = _breach_message(order, rule)
                events.append(
                    OrderEvent(
                        order=order, kind=EventKind.SLA_BREACH, occurred_at=now, actor_name="system",
                        payload={"stage": order.status, "due_at": order.stage_due_at.isoformat(), "message": message,
                                 "responsible_role": rule.responsible_role if rule else ""},
                    )
                )
                alerts.append(
                    Alert(kind=AlertKind.SLA_BREACH, for_role=rule.alert_role if rule else Role.SUPERVISOR, order=order,
                          dedupe_key=breach_key(order), message=message, created_at=now)
                )
            OrderEvent.objects.bulk_create(events)
            # The unique dedupe_key is the last line of defence against a second alert.
            Alert.objects.bulk_create(alerts, ignore_conflicts=True)
    return SweepResult(breached=len(due), emailed=send_alert_emails(now=now))


def alert_recipients(role: str) -> list[str]:
    people = User.objects.filter(is_active=True, groups__name=role).exclude(email="").values_list("email", flat=True)
    return sorted(set(people) | set(settings.ALERT_EMAILS))


def send_alert_emails(*, now: datetime.datetime) -> int:
    """One e-mail per alerted role and sweep, listing its new breaches. An alert is marked
    e-mailed in the same transaction that sent it, so a failed send is retried next minute and a
    sent one never again."""
    sent = 0
    with transaction.atomic():
        pending = list(
            Alert.objects.select_for_update(skip_locked=True)
            .filter(kind=AlertKind.SLA_BREACH, emailed_at__isnull=True, created_at__gte=now - EMAIL_RETRY_WINDOW)
            .order_by("created_at")[:SWEEP_BATCH]
        )
        by_role: dict[str, list[Alert]] = {}
        for alert in pending:
            by_role.setdefault(alert.for_role, []).append(alert)
        for role, alerts in by_role.items():
            recipients = alert_recipients(role)
            if not recipients:
                logger.warning("No e-mail address for role %s: %d SLA alerts stay in-app only", role, len(alerts))
                continue
            if len(alerts) == 1:
                subject = alerts[0].message
            else:
                subject = _("%(count)d orders are over their stage time limit") % {"count": len(alerts)}
            body = "\n".join(alert.message for alert in alerts) + "\n\n" + settings.PUBLIC_BASE_URL + "/board/"
            try:
                send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, recipients)
            except OSError:
                logger.exception("Sending %d SLA alert e-mails failed; the next sweep retries", len(alerts))
                continue
            Alert.objects.filter(pk__in=[alert.pk for alert in alerts]).update(emailed_at=now)
            sent += 1
    return sent
