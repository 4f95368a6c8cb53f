"""Reads: the queries behind the order list and the order card, with their joins spelled out."""

from __future__ import annotations

import base64
import datetime
from dataclasses import dataclass, field

from django.db.models import Exists, OuterRef, Prefetch, Q, QuerySet
from django.utils import timezone

from orders import packing, rules
from orders.access import Actor
from orders.models import (
    ACTIVE_STATUSES,
    FeedbackRequest,
    Note,
    Order,
    OrderStatus,
    OrderTag,
    Shipment,
    TrackingEvent,
)
from orders.phones import normalize_mobile, normalize_order_number

PAGE_SIZE = 50


@dataclass
class OrderFilters:
    status: str = ""
    tag: str = ""
    rush: bool = False
    open: bool = False  # not yet completed or cancelled
    held: bool = False
    overdue: bool = False
    mine: bool = False
    query: str = ""


@dataclass
class OrderPage:
    orders: list[Order]
    next_cursor: str | None
    filters: OrderFilters = field(default_factory=OrderFilters)


def encode_cursor(order: Order) -> str:
    raw = f"{order.placed_at.isoformat()}|{order.pk}"
    return base64.urlsafe_b64encode(raw.encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime.datetime, int] | None:
    try:
        placed, pk = base64.urlsafe_b64decode(cursor.encode()).decode().split("|")
        return datetime.datetime.fromisoformat(placed), int(pk)
    except (ValueError, UnicodeDecodeError):
        return None


def _search(queryset: QuerySet[Order], query: str) -> QuerySet[Order]:
    """One box: an order number, a phone in any format, or a tracking number (exact matches,
    each served by a unique or plain index)."""
    query = query.strip()
    phone = normalize_mobile(query)
    if phone:
        return queryset.filter(Q(customer__phone=phone) | Q(receiver_phone=phone))
    tracking = Shipment.objects.filter(tracking_number=query.upper()).values("order_id")
    return queryset.filter(Q(order_number=normalize_order_number(query)) | Q(pk__in=tracking))


def order_list(*, user, filters: OrderFilters, cursor: str = "") -> OrderPage:
    queryset = Order.objects.select_related("customer", "claimed_by")
    if filters.status:
        queryset = queryset.filter(status=filters.status)
    if filters.tag:
        queryset = queryset.filter(
            Exists(OrderTag.objects.filter(order=OuterRef("pk"), tag=filters.tag, resolved_at__isnull=True))
        )
    if filters.rush:
        queryset = queryset.filter(is_rush=True)
    if filters.open:
        queryset = queryset.filter(status__in=ACTIVE_STATUSES)
    if filters.held:
        queryset = queryset.filter(is_held=True)
    if filters.overdue:
        queryset = queryset.filter(overdue_filter())
    if filters.mine:
        queryset = queryset.filter(claimed_by=user)
    if filters.query:
        queryset = _search(queryset, filters.query)
    position = decode_cursor(cursor) if cursor else None
    if position:
        placed_at, pk = position
        # The plain `placed_at <= …` bound lets PostgreSQL start its index scan at the cursor; the
        # OR alone (needed for ties) made it walk the index from the newest order (3 s at page
        # 10,000 of 1M orders).
        queryset = queryset.filter(placed_at__lte=placed_at).filter(
            Q(placed_at__lt=placed_at) | Q(placed_at=placed_at, pk__lt=pk)
        )
    rows = list(queryset.order_by("-placed_at", "-id")[: PAGE_SIZE + 1])
    next_cursor = encode_cursor(rows[PAGE_SIZE - 1]) if len(rows) > PAGE_SIZE else None
    orders = rows[:PAGE_SIZE]
    _attach_open_tags(orders)
    return OrderPage(orders=orders, next_cursor=next_cursor, filters=filters)


def overdue_filter() -> Q:
    """Past its stage's due time (workflows/sla.py keeps stage_due_at; held and finished orders
    have none), served by the order_stage_due index."""
    return Q(stage_due_at__lte=timezone.now())


def _attach_open_tags(orders: list[Order]) -> None:
    by_order: dict[int, list[str]] = {}
    for order_id, tag in OrderTag.objects.filter(order__in=orders, resolved_at__isnull=True).values_list("order_id", "tag"):
        by_order.setdefault(order_id, []).append(tag)
    for order in orders:
        order.open_tags = by_order.get(order.pk, [])


def order_card(*, order_number: str) -> Order:
    """Everything the five-dimension card shows, in a fixed number of queries."""
    order = (
        Order.objects.select_related("customer", "claimed_by", "hold_owner")
        .prefetch_related(
            "lines__product",
            Prefetch(
                "shipments",
                queryset=Shipment.objects.prefetch_related(
                    Prefetch("events", queryset=TrackingEvent.objects.order_by("-occurred_at"))
                ),
            ),
            "after_sales__decided_by",
            "address_changes",
            Prefetch("tags", queryset=OrderTag.objects.select_related("opened_by", "resolved_by").order_by("-opened_at")),
            Prefetch("notes", queryset=Note.objects.select_related("author").prefetch_related("acknowledgements__user")),
            Prefetch("feedback_requests", queryset=FeedbackRequest.objects.select_related("asked_by", "to_user", "answered_by")),
            "events",
        )
        .get(order_number=order_number)
    )
    order.repeat_purchase_count = (
        Order.objects.filter(customer_id=order.customer_id).exclude(status=OrderStatus.CANCELLED).count() - 1
    )
    return order


def transition_options(order: Order, roles: frozenset[str], *, user) -> list[dict]:
    """The transitions this order can take from its status that this user's roles may run,
    each with the reasons it is blocked now (shown next to the disabled button). Packing also
    needs the pack verification (orders/packing.py): the same refusals the service gives, and
    `verify_at_station` when the missing part is the scanning or the notes, which the PDA does."""
    from_here = {t.name for t in order.get_all_status_transitions() if t.source == order.status}
    options = []
    for name in rules.TRANSITION_ORDER:
        if name not in from_here:
            continue
        if not roles & rules.TRANSITION_ROLES[name] and rules.SUPERVISOR not in roles:
            continue
        if name == "pack":
            check = packing.pack_check(order, Actor.of(user))
            options.append({"name": name, "blockers": check.reasons, "verify_at_station": bool(check.verification)})
            continue
        options.append({"name": name, "blockers": rules.BLOCKERS[name](order)})
    return options
