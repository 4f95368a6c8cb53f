"""The supervisor's board: a fixed number of indexed queries, each section capped, whatever the
number of orders (the benchmark runs it over a million)."""

from __future__ import annotations

import datetime
import logging
from dataclasses import dataclass, field

from django.contrib.auth.models import User
from django.core.cache import cache
from django.db.models import Count, Exists, F, OuterRef, Q
from django.utils import timezone

from orders import clock, live
from orders.models import (
    ACTIVE_STATUSES,
    ADDRESS_CHANGE_WAITING,
    AddressChangeRequest,
    Order,
    OrderStatus,
    OrderTag,
    RiskTag,
    StageRule,
)
from orders.reasons import REASONS_BY_CODE
from workflows.models import Alert, AlertKind, Ticket

logger = logging.getLogger(__name__)

STAGE_COUNTS_KEY = "board:stage-counts"
STAGE_COUNTS_MAX_AGE = datetime.timedelta(seconds=5)
# Each lane shows its most urgent cards; the stage counts say how many there are in all.
LANE_SIZE = 20
# The exception lane: fuzzy address, high-risk refund, invoice pending.
# Every reason of the catalogue (orders/reasons.py) is an exception the board shows.
BOARD_TAGS = list(RiskTag.values)


CARD_FIELDS = (
    "order_number",
    "status",
    "is_rush",
    "rush_deadline",
    "rush_reason",
    "is_held",
    "hold_reason",
    "hold_note",
    "hold_until",
    "stage_entered_at",
    "stage_due_at",
    "platform_due_at",
    "platform_aftersales_deadline",
    "claimed_by__first_name",
    "claimed_by__last_name",
    "claimed_by__username",
)


@dataclass
class ExceptionGroup:
    """Open exceptions of one reason: its owner role, how many, how many past the reason's limit."""

    reason: str
    label: str
    owner: str
    count: int
    overdue: int


# How the board's lanes may be sorted: each lane's own order (rush: expected completion; red:
# longest overdue; holds: expected release), or minutes to the platform's deadline first.
SORT_PLATFORM = "platform"
SORTS = ("", SORT_PLATFORM)


@dataclass
class BoardFilters:
    role: str = ""  # the responsible role: keeps the stages that role answers for
    tag: str = ""
    sort: str = ""  # one of SORTS


@dataclass
class StageCount:
    stage: str
    label: str
    total: int
    overdue: int
    held: int
    rule: StageRule | None


@dataclass
class Board:
    now: datetime.datetime
    counts: list[StageCount]
    rush: list[Order]
    rush_total: int
    red: list[Order]
    holds: list[Order]
    tags: list[OrderTag]
    tickets: list[Ticket]
    rules: dict[str, StageRule] = field(default_factory=dict)
    exception_groups: list[ExceptionGroup] = field(default_factory=list)
    # Issue 13: waiting address-change requests, the one due first on top.
    address_changes: list[AddressChangeRequest] = field(default_factory=list)
    # Issue 15: orders whose platform deadline counts now (latest ship time, after-sales
    # response), the fewest minutes left first: an order green on our clock may be red on theirs.
    platform: list[Order] = field(default_factory=list)


def board(*, filters: BoardFilters) -> Board:
    now = timezone.now()
    rules = {rule.stage: rule for rule in StageRule.objects.all()}
    # Only what a card shows (workflows/templatetags/board_cards.py): up to 60 cards a poll, and
    # building every column of each order and its operator was most of the query's CPU.
    orders = Order.objects.select_related("claimed_by").only(*CARD_FIELDS)
    tags = OrderTag.objects.filter(resolved_at__isnull=True, tag__in=BOARD_TAGS).select_related("order", "order__claimed_by")
    tickets = Ticket.objects.filter(closed_at__isnull=True).select_related("order", "shipment", "owner")
    if filters.role:
        stages = [stage for stage, rule in rules.items() if rule.responsible_role == filters.role]
        orders = orders.filter(status__in=stages)
        tags = tags.filter(order__status__in=stages)
        tickets = tickets.filter(for_role=filters.role)
    if filters.tag:
        tagged = OrderTag.objects.filter(order=OuterRef("pk"), tag=filters.tag, resolved_at__isnull=True)
        orders = orders.filter(Exists(tagged))
        tags = tags.filter(tag=filters.tag)
        tickets = tickets.filter(
            Exists(OrderTag.objects.filter(order=OuterRef("order"), tag=filters.tag, resolved_at__isnull=True))
        )

    # Sorted by the platform's deadline, each lane puts the orders with the fewest minutes to it
    # first (those without one last), then keeps its own order.
    first = [F("platform_due_at").asc(nulls_last=True)] if filters.sort == SORT_PLATFORM else []
    # Index order_open_rush: open rush orders by expected completion, soonest first.
    open_rush = orders.filter(is_rush=True, status__in=ACTIVE_STATUSES)
    rush = list(open_rush.order_by(*first, "rush_deadline", "pk")[:LANE_SIZE])
    # A full lane hides the later deadlines: say how many open rush orders there are in all, so
    # the lane can link to the rest (the rush confirmation promises the order is on the board).
    rush_total = open_rush.count() if len(rush) == LANE_SIZE else len(rush)
    # Index order_stage_due: the longest overdue first (held and finished orders have no due).
    red = list(orders.filter(stage_due_at__lte=now).order_by(*first, "stage_due_at", "pk")[:LANE_SIZE])
    # Index order_hold_until (partial, is_held).
    holds = list(orders.filter(is_held=True).order_by(*first, F("hold_until").asc(nulls_last=True), "pk")[:LANE_SIZE])
    # Index order_platform_due (partial: a platform deadline counts), fewest minutes left first.
    platform = list(orders.filter(platform_due_at__isnull=False).order_by("platform_due_at", "pk")[:LANE_SIZE])
    board = Board(
        now=now,
        counts=_stage_counts(now, rules),
        rush=rush,
        rush_total=rush_total,
        red=red,
        holds=holds,
        tags=list(tags.order_by("opened_at")[:LANE_SIZE]),
        tickets=list(tickets.order_by("opened_at")[:LANE_SIZE]),
        rules=rules,
        exception_groups=_exception_groups(tags, now),
        # Index address_change_waiting (partial: open and with the carrier), by deadline.
        address_changes=list(
            AddressChangeRequest.objects.filter(status__in=ADDRESS_CHANGE_WAITING)
            .select_related("order")
            .order_by("due_at", "pk")[:LANE_SIZE]
        ),
        platform=platform,
    )
    _attach_card_details(rush + red + holds + platform, rules, now)
    return board


def _exception_groups(tags, now: datetime.datetime) -> list[ExceptionGroup]:
    """The open exceptions grouped by reason, ordered by owner role, most first (issue 16)."""
    rows = tags.order_by().values("tag").annotate(count=Count("pk"), overdue=Count("pk", filter=Q(due_at__lte=now)))
    groups = [
        ExceptionGroup(
            reason=row["tag"],
            label=RiskTag(row["tag"]).label,
            owner=REASONS_BY_CODE[row["tag"]].owner,
            count=row["count"],
            overdue=row["overdue"],
        )
        for row in rows
        if row["tag"] in REASONS_BY_CODE
    ]
    return sorted(groups, key=lambda group: (group.owner, -group.count, group.reason))


def _stage_count_rows(now: datetime.datetime) -> dict[str, dict]:
    """The counts read every open order (an index-only scan, ~40–70 ms at 60,000 open orders) and
    every supervisor's board refreshes when an order changes: one count, kept in the shared cache,
    serves all of them until an order changes (orders/live.py), or at most STAGE_COUNTS_MAX_AGE
    for what changes with the clock alone (an order crossing its due time)."""
    try:
        cached = cache.get(STAGE_COUNTS_KEY)
        changed_ns = live.last_change_ns()
    except Exception:  # the cache (Redis) is down: the board still works, just without the shortcut
        logger.warning("board: the cache is unavailable; counting the open orders directly")
        cached = None
    if (
        cached is not None
        and datetime.timedelta(0) <= now - cached[0] < STAGE_COUNTS_MAX_AGE
        and (changed_ns is None or changed_ns < cached[0].timestamp() * 1e9)
    ):
        return cached[1]
    rows = {
        row["status"]: row
        for row in Order.objects.filter(status__in=ACTIVE_STATUSES)
        .values("status")
        # Count("status"), not the id: every column read is in order_open_stage_clock (index-only scan).
        .annotate(
            total=Count("status"),
            overdue=Count("status", filter=Q(stage_due_at__lte=now)),
            held=Count("status", filter=Q(is_held=True)),
        )
    }
    try:
        cache.set(STAGE_COUNTS_KEY, (now, rows), timeout=STAGE_COUNTS_MAX_AGE.total_seconds())
    except Exception:  # noqa: S110 - as above: counted directly, nothing to keep
        pass
    return rows


def _stage_counts(now: datetime.datetime, rules: dict[str, StageRule]) -> list[StageCount]:
    rows = _stage_count_rows(now)
    return [
        StageCount(
            stage=stage,
            label=OrderStatus(stage).label,
            total=rows.get(stage, {}).get("total", 0),
            overdue=rows.get(stage, {}).get("overdue", 0),
            held=rows.get(stage, {}).get("held", 0),
            rule=rules.get(stage),
        )
        for stage in ACTIVE_STATUSES
    ]


def _attach_card_details(orders: list[Order], rules: dict[str, StageRule], now: datetime.datetime) -> None:
    """Open tags, the open breach alert, the responsible role and the people of that role (to
    assign) for each card, in four queries; the platform's clock from the order's own columns."""
    ids = {order.pk for order in orders}
    open_tags: dict[int, list[str]] = {}
    for order_id, tag in OrderTag.objects.filter(order_id__in=ids, resolved_at__isnull=True).values_list("order_id", "tag"):
        open_tags.setdefault(order_id, []).append(tag)
    # The breach alerts of each card's current stage: the open one gets the Acknowledge button, an
    # acknowledged one stays on the card as "acknowledged by …", so acknowledging visibly lands.
    # The platform-deadline alerts (issue 15) in the same query: an open one gets its own button.
    alerts: dict[int, Alert] = {}
    acknowledged: dict[int, Alert] = {}
    platform_alerts: dict[int, Alert] = {}
    entered = {order.pk: order.stage_entered_at for order in orders}
    for alert in (
        Alert.objects.filter(order_id__in=ids, kind__in=[AlertKind.SLA_BREACH, AlertKind.PLATFORM_DEADLINE])
        .select_related("acknowledged_by")
        .order_by("created_at")
    ):
        if alert.kind == AlertKind.PLATFORM_DEADLINE:
            if alert.acknowledged_at is None:
                platform_alerts[alert.order_id] = alert
            continue
        if entered.get(alert.order_id) and alert.created_at < entered[alert.order_id]:
            continue  # an earlier stage's breach
        (alerts if alert.acknowledged_at is None else acknowledged)[alert.order_id] = alert
    assignees = _assignees({rule.responsible_role for rule in rules.values()})
    for order in orders:
        order.open_tags = open_tags.get(order.pk, [])
        order.open_alert = alerts.get(order.pk)
        order.acknowledged_alert = None if order.open_alert else acknowledged.get(order.pk)
        rule = rules.get(order.status)
        order.responsible_role = rule.responsible_role if rule else ""
        order.assignee_choices = assignees.get(order.responsible_role, [])
        order.platform_clock = clock.platform_clock(order, now)
        # Once the platform's deadline no longer counts (shipped, case answered), its alert is moot.
        order.open_platform_alert = platform_alerts.get(order.pk) if order.platform_clock else None


def _assignees(roles: set[str]) -> dict[str, list[tuple[int, str]]]:
    """The people a supervisor can assign, by role, as (pk, display name) (one query): each card's
    <select> repeats them, so the names are worked out once here, not per card."""
    people: dict[str, list[tuple[int, str]]] = {}
    for user in (
        User.objects.filter(is_active=True, groups__name__in=roles)
        .prefetch_related("groups")
        .order_by("first_name", "username")
        .distinct()
    ):
        name = user.get_full_name() or user.get_username()
        for group in user.groups.all():
            if group.name in roles:
                people.setdefault(group.name, []).append((user.pk, name))
    return people
