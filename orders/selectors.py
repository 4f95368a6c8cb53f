"""Reads: the queries behind the order list and the order card, with their joins spelled out."""

from __future__ import annotations

import base64
import datetime
from dataclasses import dataclass, field

from django.db import connection
from django.db.models import Exists, OuterRef, Prefetch, Q, QuerySet
from django.utils import timezone

from orders import clock, packing, rules
from orders.access import Actor, user_roles
from orders.models import (
    ACTIVE_STATUSES,
    AddressChangeRequest,
    AfterSalesCase,
    Carrier,
    FeedbackRequest,
    Note,
    NoteAcknowledgement,
    Order,
    OrderEvent,
    OrderLine,
    OrderSource,
    OrderStatus,
    OrderTag,
    RiskTag,
    Shipment,
    TrackingEvent,
)
from orders.phones import normalize_mobile, normalize_order_number

PAGE_SIZE = 50


@dataclass
class OrderFilters:
    """The order list's filters. The same object is read from the list's query string, stored in
    a saved view (workflows/models.py SavedView.filters, as `to_params()`), and used to select
    the orders of a bulk batch or an export, so all four always mean the same orders."""

    status: str = ""
    tag: str = ""
    rush: bool = False
    open: bool = False  # not yet completed or cancelled
    held: bool = False
    overdue: bool = False
    mine: bool = False
    query: str = ""
    carrier: str = ""
    source: str = ""
    cold: bool = False
    # "Waiting for me": orders in a stage whose next step one of the viewer's roles runs.
    todo: bool = False
    # Issue 15: the platform's deadline (latest ship time, after-sales response) is near or past.
    platform_near: bool = False
    placed_from: datetime.date | None = None
    placed_to: datetime.date | None = None

    FLAGS = ("rush", "open", "held", "overdue", "mine", "cold", "todo", "platform_near")

    @classmethod
    def from_params(cls, params) -> OrderFilters:
        """Anything unknown is ignored, never an error: a saved view outlives a renamed choice."""

        def choice(name: str, values) -> str:
            value = params.get(name, "") or ""
            return value if value in values else ""

        def day(name: str) -> datetime.date | None:
            try:
                return datetime.date.fromisoformat(params.get(name, "") or "")
            except ValueError:
                return None

        return cls(
            status=choice("status", OrderStatus.values),
            tag=choice("tag", RiskTag.values),
            carrier=choice("carrier", Carrier.values),
            source=choice("source", OrderSource.values),
            query=(params.get("q", "") or "")[:64],
            placed_from=day("from"),
            placed_to=day("to"),
            **{flag: params.get(flag) in ("1", 1, True) for flag in cls.FLAGS},
        )

    def to_params(self) -> dict[str, str]:
        params = {
            "status": self.status,
            "tag": self.tag,
            "carrier": self.carrier,
            "source": self.source,
            "q": self.query,
            "from": self.placed_from.isoformat() if self.placed_from else "",
            "to": self.placed_to.isoformat() if self.placed_to else "",
            **{flag: "1" if getattr(self, flag) else "" for flag in self.FLAGS},
        }
        return {key: value for key, value in params.items() if value}


@dataclass(slots=True)
class OrderRow:
    """One row of the order list: the columns it shows, read as plain values rather than 50 Order
    instances with their customer and operator joined (issue 14: the page's CPU is Python)."""

    pk: int
    order_number: str
    status: str
    receiver_phone: str
    total_amount: object
    placed_at: datetime.datetime
    is_rush: bool
    requires_cold_chain: bool
    is_held: bool
    platform_due_at: datetime.datetime | None
    platform_aftersales_deadline: datetime.datetime | None
    customer_name: str
    claimed_by_name: str
    open_tags: list[str] = field(default_factory=list)
    phone_display: str = ""


ROW_FIELDS = (
    "pk",
    "order_number",
    "status",
    "receiver_phone",
    "total_amount",
    "placed_at",
    "is_rush",
    "requires_cold_chain",
    "is_held",
    "platform_due_at",
    "platform_aftersales_deadline",
    "customer__name",
    "claimed_by__first_name",
    "claimed_by__last_name",
    "claimed_by__username",
)


@dataclass
class OrderPage:
    orders: list[OrderRow]
    next_cursor: str | None
    filters: OrderFilters = field(default_factory=OrderFilters)


def encode_cursor(order: Order | OrderRow) -> str:
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


def waiting_statuses(roles: frozenset[str]) -> list[str]:
    """The stages whose next forward step one of these roles runs (rules.TRANSITION_ROLES), read
    from the status machine itself; a supervisor may run every step."""
    steps = {t.name: t.source for t in Order._meta.get_field("status").get_all_transitions(Order)}
    return sorted(
        {
            steps[name]
            for name, allowed in rules.TRANSITION_ROLES.items()
            if name != "cancel" and name in steps and (roles & allowed or rules.SUPERVISOR in roles)
        }
    )


def filtered_orders(*, user, filters: OrderFilters) -> QuerySet[Order]:
    """Every order the filters select, unordered and unpaginated (the list pages it; bulk batches
    and exports walk all of it)."""
    queryset = Order.objects.all()
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
    if filters.platform_near:
        # Served by the partial index order_platform_due; "near" as orders/clock.py says.
        queryset = queryset.filter(platform_due_at__lte=timezone.now() + clock.platform_alert_window())
    if filters.mine:
        queryset = queryset.filter(claimed_by=user)
    if filters.carrier:
        queryset = queryset.filter(carrier_code=filters.carrier)
    if filters.source:
        queryset = queryset.filter(source=filters.source)
    if filters.cold:
        queryset = queryset.filter(requires_cold_chain=True)
    if filters.todo:
        queryset = queryset.filter(status__in=waiting_statuses(user_roles(user)))
    if filters.placed_from:
        queryset = queryset.filter(placed_at__gte=clock.business_day_bounds(filters.placed_from)[0])
    if filters.placed_to:
        queryset = queryset.filter(placed_at__lt=clock.business_day_bounds(filters.placed_to)[1])
    if filters.query:
        queryset = _search(queryset, filters.query)
    return queryset


def order_list(*, user, filters: OrderFilters, cursor: str = "") -> OrderPage:
    queryset = filtered_orders(user=user, filters=filters)
    position = decode_cursor(cursor) if cursor else None
    if position:
        placed_at, pk = position
        # The plain `placed_at <= …` bound lets PostgreSQL start its index scan at the cursor; the
        # OR alone (needed for ties) made it walk the index from the newest order (3 s at page
        # 10,000 of 1M orders).
        queryset = queryset.filter(placed_at__lte=placed_at).filter(
            Q(placed_at__lt=placed_at) | Q(placed_at=placed_at, pk__lt=pk)
        )
    rows = [_row(*values) for values in queryset.order_by("-placed_at", "-id").values_list(*ROW_FIELDS)[: PAGE_SIZE + 1]]
    next_cursor = encode_cursor(rows[PAGE_SIZE - 1]) if len(rows) > PAGE_SIZE else None
    orders = rows[:PAGE_SIZE]
    _attach_open_tags(orders)
    return OrderPage(orders=orders, next_cursor=next_cursor, filters=filters)


def _row(*values) -> OrderRow:
    *columns, first_name, last_name, username = values
    # User.get_full_name() or the username, as the `person` filter shows an operator.
    claimed_by = f"{first_name} {last_name}".strip() or username if username else ""  # nobody: NULLs from the join
    return OrderRow(*columns, claimed_by_name=claimed_by)


def overdue_filter() -> Q:
    """Past its stage's due time (workflows/sla.py keeps stage_due_at; held and finished orders
    have none), served by the order_stage_due index."""
    return Q(stage_due_at__lte=timezone.now())


def _attach_open_tags(orders: list[OrderRow]) -> None:
    by_order: dict[int, list[str]] = {}
    open_tags = OrderTag.objects.filter(order_id__in=[order.pk for order in orders], resolved_at__isnull=True)
    for order_id, tag in open_tags.values_list("order_id", "tag"):
        by_order.setdefault(order_id, []).append(tag)
    for order in orders:
        order.open_tags = by_order.get(order.pk, [])


def order_card(*, order_number: str) -> Order:
    """Everything the five-dimension card shows, in a fixed number of queries. Each related person
    or product is joined into its prefetch (select_related) rather than prefetched by itself: a
    query fewer each, and each ORM query costs ~1 ms of CPU to build on this machine (issue 14).
    Most orders have no tags, questions, address changes or acknowledgements: one plain-SQL query
    says which child lists hold rows (and counts the repeat purchases), and only those are
    prefetched; the others are set empty without a query."""
    with connection.cursor() as cursor:
        cursor.execute(_CARD_ROWS_SQL, [OrderStatus.CANCELLED.value, order_number])
        found = cursor.fetchone()
    if found is None:
        raise Order.DoesNotExist
    *present, repeat_purchases = found
    has = dict(zip(_CARD_CHILDREN, present, strict=True))
    prefetches = [
        Prefetch(name, queryset=queryset)
        for name, queryset in (
            ("lines", OrderLine.objects.select_related("product")),
            (
                "shipments",
                # The tracking subscription (integrations/kuaidi100) the card shows per shipment.
                Shipment.objects.select_related("subscription").prefetch_related(
                    *([Prefetch("events", queryset=TrackingEvent.objects.order_by("-occurred_at"))] if has["tracking"] else [])
                ),
            ),
            ("after_sales", AfterSalesCase.objects.select_related("decided_by")),
            ("address_changes", AddressChangeRequest.objects.all()),
            ("tags", OrderTag.objects.select_related("opened_by", "resolved_by").order_by("-opened_at")),
            (
                "notes",
                Note.objects.select_related("author").prefetch_related(
                    *(
                        [Prefetch("acknowledgements", queryset=NoteAcknowledgement.objects.select_related("user"))]
                        if has["acknowledgements"]
                        else []
                    )
                ),
            ),
            ("feedback_requests", FeedbackRequest.objects.select_related("asked_by", "to_user", "answered_by")),
            ("events", OrderEvent.objects.all()),
        )
        if has[name]
    ]
    order = (
        Order.objects.select_related("customer", "claimed_by", "hold_owner")
        .prefetch_related(*prefetches)
        .get(order_number=order_number)
    )
    for name in ("lines", "shipments", "after_sales", "address_changes", "tags", "notes", "feedback_requests", "events"):
        if not has[name]:
            _set_empty(order, name)
    if not has["tracking"]:
        for shipment in order.shipments.all():
            _set_empty(shipment, "events")
    if not has["acknowledgements"]:
        for note in order.notes.all():
            _set_empty(note, "acknowledgements")
    order.repeat_purchase_count = repeat_purchases - 1
    return order


_CARD_CHILDREN = (
    "lines",
    "shipments",
    "tracking",
    "after_sales",
    "address_changes",
    "tags",
    "notes",
    "acknowledgements",
    "feedback_requests",
    "events",
)
_CARD_ROWS_SQL = f"""
SELECT EXISTS (SELECT 1 FROM {OrderLine._meta.db_table} WHERE order_id = o.id),
       EXISTS (SELECT 1 FROM {Shipment._meta.db_table} WHERE order_id = o.id),
       EXISTS (SELECT 1 FROM {TrackingEvent._meta.db_table} e JOIN {Shipment._meta.db_table} s
               ON s.id = e.shipment_id WHERE s.order_id = o.id),
       EXISTS (SELECT 1 FROM {AfterSalesCase._meta.db_table} WHERE order_id = o.id),
       EXISTS (SELECT 1 FROM {AddressChangeRequest._meta.db_table} WHERE order_id = o.id),
       EXISTS (SELECT 1 FROM {OrderTag._meta.db_table} WHERE order_id = o.id),
       EXISTS (SELECT 1 FROM {Note._meta.db_table} WHERE order_id = o.id),
       EXISTS (SELECT 1 FROM {NoteAcknowledgement._meta.db_table} a JOIN {Note._meta.db_table} n
               ON n.id = a.note_id WHERE n.order_id = o.id),
       EXISTS (SELECT 1 FROM {FeedbackRequest._meta.db_table} WHERE order_id = o.id),
       EXISTS (SELECT 1 FROM {OrderEvent._meta.db_table} WHERE order_id = o.id),
       (SELECT count(*) FROM {Order._meta.db_table} c WHERE c.customer_id = o.customer_id AND c.status <> %s)
  FROM {Order._meta.db_table} o WHERE o.order_number = %s
"""  # noqa: S608 - table names come from the models, values are parameters


def _set_empty(instance, name: str) -> None:
    """What prefetch_related leaves for a child list without rows: the related manager's .all()
    answers from this cache, so the templates read it without a query."""
    rows = instance._meta.get_field(name).related_model.objects.none()
    rows._result_cache, rows._prefetch_done = [], True
    instance.__dict__.setdefault("_prefetched_objects_cache", {})[name] = rows


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
