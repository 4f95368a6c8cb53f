"""The SLA sweep: a minute scan over the indexed Order.stage_due_at (kept by orders/clock.py)
turns overdue orders red and alerts the responsible role, exactly once per breach; and a scan over
the indexed Order.platform_due_at alerts the supervisor of every platform deadline (latest ship
time, after-sales response) closer than settings.PLATFORM_DEADLINE_ALERT_MINUTES, once per deadline."""

from __future__ import annotations

import datetime
import logging
from dataclasses import dataclass

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from orders import clock, events, live
from orders.models import Order, OrderStatus, Role, StageRule
from orders.rows import among, write_rows
from workflows import alerts
from workflows.models import Alert, AlertKind

logger = logging.getLogger(__name__)

# How many breaches one sweep handles; the rest wait a minute (keeps one sweep well under 1 s).
SWEEP_BATCH = 5000
# The customer's delay push goes at once for this many of a sweep's new breaches, by a worker (one
# task carrying their ids: a push costs ~10 queries and 15–40 ms of CPU, which the sweep, under 1 s
# for 2,000 breaches (issue 14), does not spend inline); a burst beyond them is left to the delays
# scan (beat, every 30 s: pushed within a minute either way), which also covers a lost task.
PUSH_AT_ONCE = 5
# Where a breach e-mail points: the supervisor board, where the red lane shows it.
BOARD_LINK = "/board/"
# Where a platform-deadline alert points: the board sorted by minutes to the platform deadline.
PLATFORM_BOARD_LINK = "/board/?sort=platform"


# --- The sweep ---------------------------------------------------------------------------------


@dataclass
class SweepResult:
    breached: int
    emailed: int
    platform_alerted: int = 0


def breach_key(order_id: int, status: str, stage_entered_at: datetime.datetime) -> str:
    """One breach per order and stage entry: re-entering a stage later is a new breach."""
    return f"sla:{order_id}:{status}:{stage_entered_at.timestamp():.0f}"


class _BreachMessages:
    """The breach alert's text, with the sentences and labels translated once per sweep rather
    than once per breach (2,000 a sweep)."""

    def __init__(self, rules: dict[str, StageRule]):
        self.rush = _("Rush order %(number)s missed its expected completion time %(due)s (now %(stage)s).")
        self.late = _("Order %(number)s is over its time limit in %(stage)s since %(due)s (responsible: %(role)s).")
        self.stages = {status: str(label) for status, label in OrderStatus.choices}
        roles = {role: str(label) for role, label in Role.choices}
        self.roles = {stage: roles.get(rule.responsible_role, "") for stage, rule in rules.items()}

    def __call__(self, number: str, status: str, due_at: datetime.datetime, rush: bool) -> str:
        # strftime, not date_format("m-d H:i"): the same digits at a quarter of the cost.
        values = {"number": number, "stage": self.stages[status], "due": timezone.localtime(due_at).strftime("%m-%d %H:%M")}
        if rush:
            return self.rush % values
        return self.late % {**values, "role": self.roles.get(status, "")}


def platform_alert_key(order: Order) -> str:
    """One alert per order and platform deadline: a deadline the platform moves alerts again."""
    return f"platform:{order.pk}:{order.platform_due_at.timestamp():.0f}"


def _platform_message(order: Order, now: datetime.datetime) -> str:
    platform_clock = clock.platform_clock(order, now)
    values = {
        "number": order.order_number,
        "due": timezone.localtime(platform_clock.due_at).strftime("%m-%d %H:%M"),
        "minutes": max(platform_clock.minutes_left, 0),
        "stage": OrderStatus(order.status).label,
    }
    if platform_clock.kind == clock.PLATFORM_AFTERSALES:
        if platform_clock.state == clock.PLATFORM_OVERDUE:
            return _("Order %(number)s is past the platform's after-sales response deadline %(due)s.") % values
        return _("Order %(number)s: the platform's after-sales response deadline %(due)s is %(minutes)d minutes away.") % values
    if platform_clock.state == clock.PLATFORM_OVERDUE:
        return _("Order %(number)s is past the platform's latest ship time %(due)s (now %(stage)s).") % values
    return _("Order %(number)s: the platform's latest ship time %(due)s is %(minutes)d minutes away (now %(stage)s).") % values


def platform_deadline_scan(*, now: datetime.datetime) -> int:
    """Alert the supervisor of every platform deadline within the alert window not alerted yet.
    A hold does not matter here: the platform's clock runs on whatever we do."""
    horizon = now + clock.platform_alert_window()
    # Served by the partial index order_platform_due; probed first, as in the breach scan, so a
    # minute with nothing near opens no transaction.
    unalerted = (
        Order.objects.filter(platform_due_at__lte=horizon)
        .filter(Q(platform_alerted_due_at__isnull=True) | ~Q(platform_alerted_due_at=F("platform_due_at")))
        .order_by("platform_due_at")
    )
    if not unalerted.values_list("platform_due_at", flat=True)[:1]:
        return 0
    with transaction.atomic():
        # SKIP LOCKED as in the breach scan; the marker platform_alerted_due_at, compared under
        # the row lock, makes overlapping sweeps alert once per deadline.
        near = list(
            unalerted.select_for_update(skip_locked=True).only(
                "pk", "order_number", "status", "platform_due_at", "platform_aftersales_deadline"
            )[:SWEEP_BATCH]
        )
        if not near:
            return 0
        Order.objects.filter(among("pk", [order.pk for order in near])).update(platform_alerted_due_at=F("platform_due_at"))
        # The unique dedupe_key is the last line of defence against a second alert.
        Alert.objects.bulk_create(
            [
                Alert(
                    kind=AlertKind.PLATFORM_DEADLINE,
                    for_role=Role.SUPERVISOR,
                    order=order,
                    dedupe_key=platform_alert_key(order),
                    message=_platform_message(order, now),
                    link=PLATFORM_BOARD_LINK,
                    created_at=now,
                )
                for order in near
            ],
            ignore_conflicts=True,
        )
        # The board shows the new alert's button on these orders' cards.
        live.orders_changed(order.pk for order in near)
    return len(near)


ALERT_COLUMNS = ("kind", "for_role", "order_id", "dedupe_key", "message", "link", "created_at")


def sla_sweep(*, now: datetime.datetime | None = None) -> SweepResult:
    """Mark every order past its due time red, with one order event and one alert each."""
    now = now or timezone.now()
    # Served by the partial index order_sla_unalerted, which holds no entry past `now` when nothing
    # is due (a held order has no due time): most minutes, this probe is the sweep's only query
    # on the orders, with no transaction opened.
    unalerted = Order.objects.filter(stage_due_at__lte=now, sla_breached_at__isnull=True, is_held=False).order_by("stage_due_at")
    due = []
    if unalerted.values_list("stage_due_at", flat=True)[:1]:
        rules = {rule.stage: rule for rule in StageRule.objects.all()}
        with transaction.atomic():
            # SKIP LOCKED: an order someone is moving right now is left alone (its transition
            # resets the clock anyway) so the sweep never waits on a person; the guard
            # sla_breached_at IS NULL under the row lock makes two overlapping sweeps alert once.
            # Plain rows, not models: 2,000 of them at once.
            due = list(
                unalerted.select_for_update(skip_locked=True).values_list(
                    "pk", "order_number", "status", "stage_entered_at", "stage_due_at", "is_rush", "rush_deadline"
                )[:SWEEP_BATCH]
            )
            if due:
                _breach(due, rules, now)
    platform_alerted = platform_deadline_scan(now=now)
    # Outside the sweep's transaction: e-mailing takes no lock a person or the next sweep waits on.
    # Every alert not yet e-mailed goes (tickets' and ERP's too, when their own send failed), and
    # the role's WeCom robot hears of every new alert (batched per role): one pass over them. A
    # breach before shipping is a predicted delay the customer is told of (workflows/delays.py):
    # these breaches only (the scan's relay covers earlier ones), the first PUSH_AT_ONCE by a worker now.
    emailed = alerts.alerts_robot_and_email(now=now)
    if due:
        _push_delays_soon([row[0] for row in due[:PUSH_AT_ONCE]])
    return SweepResult(breached=len(due), emailed=emailed, platform_alerted=platform_alerted)


def _push_delays_soon(order_ids: list[int]) -> None:
    """After the breaches commit, one task pushes their delay notices; a broker outage only
    leaves them to the delays scan."""
    from workflows.tasks import push_stage_delays

    def publish():
        try:
            push_stage_delays.apply_async(args=[order_ids], retry=False)
        except Exception:  # noqa: BLE001 - any broker error; the breach rows are the record
            logger.warning("broker unavailable; delay pushes of %s left to the delays scan", order_ids)

    transaction.on_commit(publish)


def _breach(due: list[tuple], rules: dict[str, StageRule], now: datetime.datetime) -> None:
    """Mark the due orders (locked by the caller) breached, with one order event and one alert each."""
    ids = [row[0] for row in due]
    Order.objects.filter(among("pk", ids)).update(sla_breached_at=now)
    message = _BreachMessages(rules)
    breaches, breach_alerts = [], []
    # The unique dedupe_key is the last line of defence against a second alert; an order
    # whose stage entry alerted already (its clock reset without a new entry) is skipped
    # here, as the insert would refuse it. Its rows are locked, so no one adds one meanwhile.
    alerted = set(Alert.objects.filter(among("order_id", ids), kind=AlertKind.SLA_BREACH).values_list("dedupe_key", flat=True))
    for order_id, number, status, entered_at, due_at, is_rush, rush_deadline in due:
        rule = rules.get(status)
        rush = bool(is_rush and rush_deadline == due_at)
        breaches.append((order_id, status, due_at, rule.responsible_role if rule else "", rush))
        key = breach_key(order_id, status, entered_at)
        if key not in alerted:
            alerted.add(key)
            role = rule.alert_role if rule else Role.SUPERVISOR.value
            breach_alerts.append(
                (AlertKind.SLA_BREACH.value, role, order_id, key, message(number, status, due_at, rush), BOARD_LINK, now)
            )
    events.sla_breaches(breaches=breaches, occurred_at=now)
    write_rows(Alert, ALERT_COLUMNS, breach_alerts)
    live.orders_changed(ids)
