"""The supervisor's board: a fixed number of indexed queries, each section capped, whatever the
number of orders (the benchmark runs it over a million)."""

from __future__ import annotations

import datetime
import logging
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import NamedTuple

from django.core.cache import cache
from django.db import connection
from django.db.models import Count, Q
from django.utils import timezone

from orders import clock, live
from orders.models import (
    ACTIVE_STATUSES,
    ADDRESS_CHANGE_WAITING,
    Order,
    OrderStatus,
    RiskTag,
    StageRule,
)
from orders.reasons import REASONS_BY_CODE
from workflows.models import Alert, AlertKind

logger = logging.getLogger(__name__)

STAGE_COUNTS_KEY = "board:stage-counts"
STAGE_COUNTS_MAX_AGE = datetime.timedelta(seconds=5)
STAGE_COUNTS_LOCK = "board:stage-counts:counting"
# How old the counts another process is recounting may be when shown (live screens show a change
# within about two seconds anyway).
STAGE_COUNTS_STALE = datetime.timedelta(seconds=2)
# Each lane shows its most urgent cards; the stage counts say how many there are in all.
LANE_SIZE = 20
# The exception lane: fuzzy address, high-risk refund, invoice pending.
# Every reason of the catalogue (orders/reasons.py) is an exception the board shows.
BOARD_TAGS = list(RiskTag.values)


# Only what a card shows (workflows/templatetags/board_cards.py).
CARD_FIELDS = (
    "id",
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
    "claimed_by",
)


class Card(SimpleNamespace):
    """An order on one of the board's lanes: its CARD_FIELDS (claimed_by as claimed_by_id), pk,
    the operator's name and what _attach_card_details adds. Not a model instance: building 60
    of those was a millisecond of each board."""


class CardAlert(NamedTuple):
    """A card's alert: what its Acknowledge button or "acknowledged by …" line shows."""

    pk: int
    acknowledged_at: datetime.datetime | None
    acknowledged_by: str  # the person's name, "" for nobody


class BoardTag(NamedTuple):
    """An open exception on the exceptions lane: what its card shows."""

    pk: int
    order_number: str
    order_status: str
    tag: str
    opened_at: datetime.datetime
    due_at: datetime.datetime | None
    operator: str | None  # who operates the order (display name), None for nobody


class BoardTicket(NamedTuple):
    """An open ticket on the tickets lane."""

    pk: int
    order_number: str
    kind: str
    for_role: str
    summary: str
    carrier_code: str | None  # None: the ticket has no shipment
    tracking_number: str | None
    opened_at: datetime.datetime
    owner: str | None  # the owner's display name, None for nobody


class BoardAddressChange(NamedTuple):
    """A waiting address-change request on its lane."""

    pk: int
    order_number: str
    order_status: str
    province: str
    city: str
    district: str
    source: str
    status: str
    requested_by_name: str
    due_at: datetime.datetime | None


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
    # When the counts were counted: a board showing older counts than its other lanes says so
    # to its live region (workflows/views.py), which then refreshes once more.
    counted_at: datetime.datetime
    rush: list[Card]
    rush_total: int
    red: list[Card]
    holds: list[Card]
    tags: list[BoardTag]
    tickets: list[BoardTicket]
    rules: dict[str, StageRule] = field(default_factory=dict)
    exception_groups: list[ExceptionGroup] = field(default_factory=list)
    # Issue 13: waiting address-change requests, the one due first on top.
    address_changes: list[BoardAddressChange] = field(default_factory=list)
    # Issue 15: orders whose platform deadline counts now (latest ship time, after-sales
    # response), the fewest minutes left first: an order green on our clock may be red on theirs.
    platform: list[Card] = field(default_factory=list)


def board(*, filters: BoardFilters, counts_may_lag: bool = True) -> Board:
    """counts_may_lag: the stage counts may be another process's last (see _stage_count_rows),
    for a board whose live region then refreshes again; an action's answer counts itself."""
    now = timezone.now()
    rules = {rule.stage: rule for rule in StageRule.objects.all()}
    stages = [stage for stage, rule in rules.items() if rule.responsible_role == filters.role] if filters.role else None
    lanes, rush_total = _order_lanes(filters, stages, now)
    tags, tickets, address_changes, exception_groups = _lists(filters, stages, now)
    counts, counted_at = _stage_counts(now, rules, counts_may_lag)
    board = Board(
        now=now,
        counts=counts,
        counted_at=counted_at,
        rush=lanes["rush"],
        rush_total=rush_total,
        red=lanes["red"],
        holds=lanes["holds"],
        tags=tags,
        tickets=tickets,
        rules=rules,
        exception_groups=exception_groups,
        address_changes=address_changes,
        platform=lanes["platform"],
    )
    _attach_card_details([order for lane in lanes.values() for order in lane], rules, now)
    return board


LANES = ("rush", "red", "holds", "platform")


def _order_lanes(filters: BoardFilters, stages: list[str] | None, now: datetime.datetime) -> tuple[dict[str, list[Card]], int]:
    """The four order lanes, each its LANE_SIZE most urgent cards, and the number of open rush
    orders, in one hand-written statement: compiling four ORM querysets (and the rush count) was a
    third of the board's CPU (issue 14). Plain SQL that PostgreSQL and SQLite both run; every
    value is a parameter."""
    where, where_params = "", []
    if stages is not None:  # the responsible role's stages (none: the role answers for no stage)
        where += f" AND o.status IN ({', '.join(['%s'] * len(stages))})" if stages else " AND 1 = 0"
        where_params += stages
    if filters.tag:
        where += " AND EXISTS (SELECT 1 FROM orders_ordertag t WHERE t.order_id = o.id AND t.tag = %s AND t.resolved_at IS NULL)"
        where_params.append(filters.tag)
    # Sorted by the platform's deadline, each lane puts the orders with the fewest minutes to it
    # first (those without one last), then keeps its own order.
    first = "o.platform_due_at ASC NULLS LAST, " if filters.sort == SORT_PLATFORM else ""
    active = ", ".join(["%s"] * len(ACTIVE_STATUSES))
    open_rush = f"o.is_rush AND o.status IN ({active})"
    lanes = (
        # Index order_open_rush: open rush orders by expected completion, soonest first.
        (open_rush, list(ACTIVE_STATUSES), first + "o.rush_deadline, o.id"),
        # Index order_stage_due: the longest overdue first (held and finished orders have no due).
        ("o.stage_due_at <= %s", [now], first + "o.stage_due_at, o.id"),
        # Index order_held_release (partial, is_held): expected release, then id, without a sort.
        ("o.is_held", [], first + "o.hold_until ASC NULLS LAST, o.id"),
        # Index order_platform_due (partial: a platform deadline counts), fewest minutes left first.
        ("o.platform_due_at IS NOT NULL", [], "o.platform_due_at, o.id"),
    )
    fields = [Order._meta.get_field(name) for name in CARD_FIELDS]
    columns = ", ".join(f"o.{field.column}" for field in fields) + ", u.first_name, u.last_name, u.username"
    selects, params = [], []
    for number, (condition, condition_params, order_by) in enumerate(lanes):
        selects.append(
            f"SELECT * FROM (SELECT {number} AS lane, ROW_NUMBER() OVER (ORDER BY {order_by}) AS position, {columns} "  # noqa: S608 - constants above, values bound
            f"FROM orders_order o LEFT JOIN auth_user u ON u.id = o.claimed_by_id WHERE {condition}{where} "
            f"ORDER BY {order_by} LIMIT {LANE_SIZE}) lane{number}"
        )
        params += condition_params + where_params
    # A full lane hides the later deadlines: say how many open rush orders there are in all, so
    # the lane can link to the rest (the rush confirmation promises the order is on the board).
    # Counted on the index order_open_rush alone (an index-only scan).
    selects.append(
        f"SELECT {len(lanes)}, COUNT(*), {', '.join(['NULL'] * (len(fields) + 3))} FROM orders_order o WHERE {open_rush}{where}"  # noqa: S608
    )
    params += list(ACTIVE_STATUSES) + where_params
    names = [field.attname for field in fields]
    found: dict[str, list[Card]] = {lane: [] for lane in LANES}
    rush_total = 0
    with connection.cursor() as cursor:
        cursor.execute(" UNION ALL ".join(selects) + " ORDER BY 1, 2", params)
        rows = _as_the_orm_reads(cursor.fetchall(), {index: field.get_col("o") for index, field in enumerate(fields, start=2)})
    for row in rows:
        if row[0] == len(lanes):
            rush_total = row[1]
            continue
        card = Card(**dict(zip(names, row[2:], strict=False)))
        card.pk = card.id
        first_name, last_name, username = row[-3:]
        card.operator = f"{first_name} {last_name}".strip() or username if card.claimed_by_id else ""
        found[LANES[row[0]]].append(card)
    return found, rush_total


def _lists(
    filters: BoardFilters, stages: list[str] | None, now: datetime.datetime
) -> tuple[list[BoardTag], list[BoardTicket], list[BoardAddressChange], list[ExceptionGroup]]:
    """The exceptions, tickets and address-changes lanes (each its LANE_SIZE first) and the open
    exceptions per reason, in one hand-written statement: four ORM querysets (three of them with
    joined models) were a third of the board's selector CPU (issue 14). Every row has the same
    columns: section, position, id, order number, order status, six texts, two times, two
    numbers, a person's first name, last name and username. Plain SQL that PostgreSQL and SQLite
    both run; every value is a parameter."""
    tag_where, tag_params = f"t.resolved_at IS NULL AND t.tag IN ({', '.join(['%s'] * len(BOARD_TAGS))})", list(BOARD_TAGS)
    ticket_where, ticket_params = "k.closed_at IS NULL", []
    if stages is not None:  # the responsible role: its stages' exceptions, the tickets for it
        tag_where += f" AND o.status IN ({', '.join(['%s'] * len(stages))})" if stages else " AND 1 = 0"
        tag_params += stages
        ticket_where += " AND k.for_role = %s"
        ticket_params.append(filters.role)
    if filters.tag:
        tag_where += " AND t.tag = %s"
        tag_params.append(filters.tag)
        ticket_where += (
            " AND EXISTS (SELECT 1 FROM orders_ordertag x WHERE x.order_id = k.order_id AND x.tag = %s AND x.resolved_at IS NULL)"
        )
        ticket_params.append(filters.tag)
    waiting = ", ".join(["%s"] * len(ADDRESS_CHANGE_WAITING))
    now_param = connection.ops.adapt_datetimefield_value(now)
    # A subquery's bare NULL is text on PostgreSQL, which its UNION will not match with a time or a number.
    moment, number = "CAST(NULL AS TIMESTAMP)", "CAST(NULL AS INTEGER)"
    sql = (
        # Index open_tags; the oldest first.
        "SELECT * FROM (SELECT 0 AS section, ROW_NUMBER() OVER (ORDER BY t.opened_at) AS position, t.id, o.order_number, "  # noqa: S608 - constants above, values bound
        f"o.status, t.tag, NULL, NULL, NULL, NULL, NULL, t.opened_at, t.due_at, u.id, {number}, u.first_name, u.last_name, u.username "
        "FROM orders_ordertag t INNER JOIN orders_order o ON o.id = t.order_id LEFT JOIN auth_user u ON u.id = o.claimed_by_id "
        f"WHERE {tag_where} ORDER BY t.opened_at LIMIT {LANE_SIZE}) tags "
        "UNION ALL SELECT * FROM (SELECT 1, ROW_NUMBER() OVER (ORDER BY k.opened_at), k.id, o.order_number, NULL, k.kind, "
        f"k.for_role, k.summary, s.carrier_code, s.tracking_number, NULL, k.opened_at, {moment}, s.id, u.id, u.first_name, u.last_name, "
        "u.username FROM workflows_ticket k INNER JOIN orders_order o ON o.id = k.order_id "
        "LEFT JOIN orders_shipment s ON s.id = k.shipment_id LEFT JOIN auth_user u ON u.id = k.owner_id "
        f"WHERE {ticket_where} ORDER BY k.opened_at LIMIT {LANE_SIZE}) tickets "
        # Index address_change_waiting (partial: open and with the carrier), by deadline.
        "UNION ALL SELECT * FROM (SELECT 2, ROW_NUMBER() OVER (ORDER BY c.due_at, c.id), c.id, o.order_number, o.status, "
        f"c.province, c.city, c.district, c.source, c.status, c.requested_by_name, c.due_at, {moment}, {number}, {number}, NULL, NULL, NULL "
        "FROM orders_addresschangerequest c INNER JOIN orders_order o ON o.id = c.order_id "
        f"WHERE c.status IN ({waiting}) ORDER BY c.due_at, c.id LIMIT {LANE_SIZE}) changes "
        # The open exceptions grouped by reason (issue 16), under the same filters as their lane.
        "UNION ALL SELECT 3, 0, NULL, NULL, NULL, t.tag, NULL, NULL, NULL, NULL, NULL, NULL, NULL, COUNT(*), "
        "COUNT(CASE WHEN t.due_at <= %s THEN 1 END), NULL, NULL, NULL "
        f"FROM orders_ordertag t INNER JOIN orders_order o ON o.id = t.order_id WHERE {tag_where} GROUP BY t.tag "
        "ORDER BY 1, 2"
    )
    params = [*tag_params, *ticket_params, *ADDRESS_CHANGE_WAITING, now_param, *tag_params]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    moment = Order._meta.get_field("stage_due_at").get_col("t")  # any DateTimeField converts alike
    rows = _as_the_orm_reads(rows, {11: moment, 12: moment})
    tags, tickets, changes, groups = [], [], [], []
    for section, _, pk, number, status, a, b, c, d, e, f, when, due, n1, n2, first_name, last_name, username in rows:
        person = f"{first_name} {last_name}".strip() or username if username is not None else None
        if section == 0:
            tags.append(BoardTag(pk, number, status, a, when, due, person))
        elif section == 1:
            tickets.append(BoardTicket(pk, number, a, b, c, d if n1 is not None else None, e, when, person))
        elif section == 2:
            changes.append(BoardAddressChange(pk, number, status, a, b, c, d, e, f, when))
        elif a in REASONS_BY_CODE:
            reason = REASONS_BY_CODE[a]
            groups.append(ExceptionGroup(reason=a, label=RiskTag(a).label, owner=reason.owner, count=n1, overdue=n2))
    groups.sort(key=lambda group: (group.owner, -group.count, group.reason))
    return tags, tickets, changes, groups


def _stage_count_rows(now: datetime.datetime, may_lag: bool) -> tuple[dict[str, dict], datetime.datetime]:
    """The counts and when they were counted. The counts read every open order (an index-only
    scan, ~15 ms of PostgreSQL at 60,000 open orders) and every supervisor's board refreshes when
    an order changes: one count, kept in the shared cache, serves all of them until an order
    changes (orders/live.py), or at most STAGE_COUNTS_MAX_AGE for what changes with the clock
    alone (an order crossing its due time). In a busy shop orders change all the time: then one
    process recounts (STAGE_COUNTS_LOCK) while the others show the last counts, at most
    STAGE_COUNTS_STALE old; their live region refreshes again (workflows/views.py)."""
    try:
        cached = cache.get(STAGE_COUNTS_KEY)
        changed_ns = live.last_change_ns()
    except Exception:  # the cache (Redis) is down: the board still works, just without the shortcut
        logger.warning("board: the cache is unavailable; counting the open orders directly")
        cached = None
    if cached is not None and datetime.timedelta(0) <= now - cached[0] < STAGE_COUNTS_MAX_AGE:
        if changed_ns is None or changed_ns < cached[0].timestamp() * 1e9:
            return cached[1], cached[0]
        if may_lag and now - cached[0] < STAGE_COUNTS_STALE:
            try:
                counting = not cache.add(STAGE_COUNTS_LOCK, 1, timeout=STAGE_COUNTS_STALE.total_seconds())
            except Exception:  # the cache went away since: count, as above
                counting = False
            if counting:
                return cached[1], cached[0]
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
        cache.delete(STAGE_COUNTS_LOCK)
    except Exception:  # noqa: S110 - as above: counted directly, nothing to keep
        pass
    return rows, now


def _stage_counts(
    now: datetime.datetime, rules: dict[str, StageRule], may_lag: bool
) -> tuple[list[StageCount], datetime.datetime]:
    rows, counted_at = _stage_count_rows(now, may_lag)
    counts = [
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
    return counts, counted_at


def _attach_card_details(orders: list[Card], rules: dict[str, StageRule], now: datetime.datetime) -> None:
    """Open tags, the open breach alert, the responsible role and the people of that role (to
    assign) for each card, in two queries; the platform's clock from the order's own columns."""
    ids = [order.pk for order in orders]
    open_tags: dict[int, list[str]] = {}
    # The breach alerts of each card's current stage: the open one gets the Acknowledge button, an
    # acknowledged one stays on the card as "acknowledged by …", so acknowledging visibly lands.
    # The platform-deadline alerts (issue 15) too: an open one gets its own button.
    alerts: dict[int, CardAlert] = {}
    acknowledged: dict[int, CardAlert] = {}
    platform_alerts: dict[int, CardAlert] = {}
    entered = {order.pk: order.stage_entered_at for order in orders}
    for row in _card_tags_and_alerts(ids) if ids else []:
        source, order_id, kind, pk, created_at, acknowledged_at, first_name, last_name, username = row
        if source == "tag":
            open_tags.setdefault(order_id, []).append(kind)
            continue
        alert = CardAlert(pk, acknowledged_at, f"{first_name or ''} {last_name or ''}".strip() or username or "")
        if kind == AlertKind.PLATFORM_DEADLINE:
            if acknowledged_at is None:
                platform_alerts[order_id] = alert
            continue
        if entered.get(order_id) and created_at < entered[order_id]:
            continue  # an earlier stage's breach
        (alerts if acknowledged_at is None else acknowledged)[order_id] = alert
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


def _card_tags_and_alerts(ids: list[int]) -> list[tuple]:
    """The cards' open tags and their alerts (oldest first) in one hand-written statement, as
    (source, order id, tag or alert kind, alert id, created, acknowledged, who acknowledged: first
    name, last name, username); two ORM querysets cost twice its CPU."""
    # PostgreSQL: the ids as one array. Over 50 parameters, psycopg parses the statement's
    # placeholders anew on every call (its cache skips it): ~0.1 ms of each board.
    if connection.vendor == "postgresql":
        cards, card_params = "= ANY(%s)", [ids]
    else:
        cards, card_params = f"IN ({', '.join(['%s'] * len(ids))})", ids
    kinds = [AlertKind.SLA_BREACH, AlertKind.PLATFORM_DEADLINE]
    sql = (
        "SELECT 'tag', order_id, tag, NULL, NULL, NULL, NULL, NULL, NULL FROM orders_ordertag "  # noqa: S608 - values bound
        f"WHERE resolved_at IS NULL AND order_id {cards} "
        "UNION ALL SELECT 'alert', a.order_id, a.kind, a.id, a.created_at, a.acknowledged_at, u.first_name, u.last_name, u.username "
        "FROM workflows_alert a LEFT JOIN auth_user u ON u.id = a.acknowledged_by_id "
        f"WHERE a.order_id {cards} AND a.kind IN (%s, %s) ORDER BY 1, 5"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*card_params, *card_params, *kinds])
        rows = cursor.fetchall()
    alert = Alert._meta
    return _as_the_orm_reads(
        rows, {4: alert.get_field("created_at").get_col("a"), 5: alert.get_field("acknowledged_at").get_col("a")}
    )


def _as_the_orm_reads(rows: list[tuple], columns: dict) -> list:
    """Rows of hand-written SQL with the values at these positions converted as the ORM converts
    its columns' (SQLite returns a UNION's datetimes as text); on PostgreSQL nothing to do."""
    converters = [
        (index, converter, column) for index, column in columns.items() for converter in connection.ops.get_db_converters(column)
    ]
    if not converters:
        return rows
    converted = []
    for row in rows:
        row = list(row)
        for index, converter, column in converters:
            row[index] = converter(row[index], column, connection)
        converted.append(row)
    return converted


def _assignees(roles: set[str]) -> dict[str, list[tuple[int, str]]]:
    """The people a supervisor can assign, by role, as (pk, display name) (one hand-written
    statement, a row per person and role; the ORM's compile was most of its CPU): each card's
    <select> repeats them, so the names are worked out once here."""
    people: dict[str, list[tuple[int, str]]] = {}
    if not roles:
        return people
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT u.id, u.first_name, u.last_name, u.username, g.name FROM auth_user u "  # noqa: S608 - values bound
            "INNER JOIN auth_user_groups m ON m.user_id = u.id INNER JOIN auth_group g ON g.id = m.group_id "
            f"WHERE u.is_active AND g.name IN ({', '.join(['%s'] * len(roles))}) ORDER BY u.first_name, u.username",
            sorted(roles),
        )
        rows = cursor.fetchall()
    for pk, first_name, last_name, username, role in rows:
        people.setdefault(role, []).append((pk, f"{first_name} {last_name}".strip() or username))
    return people
