"""Reads: the queries behind the order list and the order card, with their joins spelled out."""

from __future__ import annotations

import base64
import datetime
import decimal
import functools
import json
from dataclasses import dataclass, field

from django.core.exceptions import EmptyResultSet, FullResultSet
from django.db import connection
from django.db.models import Exists, GeneratedField, JSONField, OuterRef, Prefetch, Q, QuerySet
from django.utils import timezone

from orders import clock, packing, rules
from orders.access import Actor, user_roles
from orders.models import (
    ACTIVE_STATUSES,
    AddressChangeRequest,
    AfterSalesCase,
    Carrier,
    Customer,
    FeedbackRequest,
    Note,
    NoteAcknowledgement,
    Order,
    OrderEvent,
    OrderLine,
    OrderSource,
    OrderStatus,
    OrderTag,
    Product,
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

        def choice(name: str, choices) -> str:
            value = params.get(name, "") or ""
            # `choices.values` builds its list on every read: read only for a value given.
            return value if value and value in choices.values else ""

        def day(name: str) -> datetime.date | None:
            try:
                return datetime.date.fromisoformat(params.get(name, "") or "")
            except ValueError:
                return None

        return cls(
            status=choice("status", OrderStatus),
            tag=choice("tag", RiskTag),
            carrier=choice("carrier", Carrier),
            source=choice("source", OrderSource),
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
    # The matching ids first, in one UNION of two index lookups: as one OR with a subquery,
    # PostgreSQL walked the list's placed_at index past every order (2.8 s at 1M orders).
    by_number = Order.objects.filter(order_number=normalize_order_number(query)).values_list("pk", flat=True)
    by_tracking = Shipment.objects.filter(tracking_number=query.upper()).values_list("order_id", flat=True)
    return queryset.filter(pk__in=list(by_number.union(by_tracking)))


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
    rows = [_row(*values) for values in _page_rows(queryset)]
    next_cursor = encode_cursor(rows[PAGE_SIZE - 1]) if len(rows) > PAGE_SIZE else None
    orders = rows[:PAGE_SIZE]
    _attach_open_tags(orders)
    return OrderPage(orders=orders, next_cursor=next_cursor, filters=filters)


# The row query's SQL and converters by the shape of its filters (its WHERE clause and joins):
# compiling the whole query per request (15 columns over two joins, ordered, sliced) was a tenth of
# the list's CPU (issue 14). Only the WHERE clause is compiled per request; it holds every
# parameter, the columns, joins, order and limit having none (checked before a shape is kept).
_PAGE_SQL: dict[tuple, tuple[str, dict]] = {}
_PAGE_SHAPES = 256  # bounds the memory should the shapes be many (each search's number of ids is one)


def _page_rows(queryset: QuerySet[Order]) -> list[tuple]:
    """The first PAGE_SIZE + 1 rows of ROW_FIELDS, newest first, as
    `queryset.order_by("-placed_at", "-id").values_list(*ROW_FIELDS)[: PAGE_SIZE + 1]` reads them."""
    query = queryset.query
    try:
        where, params = query.get_compiler(connection=connection).compile(query.where)
    except EmptyResultSet:
        return []  # as the ORM answers a filter that matches nothing (`pk__in=[]`) without a query
    except FullResultSet:
        where, params = "", []
    shape = (
        connection.vendor,
        where,
        tuple((alias, getattr(join, "join_type", None)) for alias, join in query.alias_map.items()),
    )
    kept = _PAGE_SQL.get(shape)
    if kept is None:
        page = queryset.order_by("-placed_at", "-id").values_list(*ROW_FIELDS)[: PAGE_SIZE + 1]
        compiler = page.query.get_compiler(connection=connection)
        sql, all_params = compiler.as_sql()
        if list(all_params) != list(params):
            return list(page)  # parameters outside the WHERE clause: not kept, read as it always was
        kept = (sql, compiler.get_converters([column for column, *_rest in compiler.select[: compiler.col_count]]))
        if len(_PAGE_SQL) >= _PAGE_SHAPES:
            _PAGE_SQL.clear()
        _PAGE_SQL[shape] = kept
    sql, converters = kept
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    if converters:  # SQLite's: datetimes, decimals and booleans arrive as text and numbers
        rows = [tuple(_converted(value, converters.get(index)) for index, value in enumerate(row)) for row in rows]
    return rows


def _converted(value, found):
    if found is not None:
        functions, expression = found
        for function in functions:
            value = function(value, expression, connection)
    return value


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
    if orders:
        # Plain SQL, in id order as the ORM read them: the ORM query cost a tenth of the list's CPU.
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT order_id, tag FROM {OrderTag._meta.db_table}"  # noqa: S608 - the model's table, placeholders
                f" WHERE resolved_at IS NULL AND order_id IN ({', '.join(['%s'] * len(orders))}) ORDER BY id",
                [order.pk for order in orders],
            )
            for order_id, tag in cursor.fetchall():
                by_order.setdefault(order_id, []).append(tag)
    for order in orders:
        order.open_tags = by_order.get(order.pk, [])


def order_card(*, order_number: str) -> Order:
    """Everything the five-dimension card shows, in one plain-SQL query that returns the order, its
    customer and every child list as JSON (lines, shipments and their tracking and subscriptions,
    after-sales, address changes, tags, notes and their acknowledgements, questions, events, the
    people and products they name, the repeat purchases). Each ORM query (a prefetch) cost ~1 ms of
    CPU to build on this machine (issue 14); the rows become the same model instances the ORM
    made, in the same order, cached where the related managers and descriptors look, so the card
    and its rules read them as before. SQLite (the embedded demo) has no json_agg of whole rows:
    there the ORM's prefetches read the same lists."""
    if connection.vendor != "postgresql":
        return _order_card_prefetched(order_number)
    with connection.cursor() as cursor:
        cursor.execute(_CARD_ROWS_SQL, [OrderStatus.CANCELLED.value, order_number])
        found = cursor.fetchone()
    if found is None:
        raise Order.DoesNotExist
    lists = {name: instances_from_json(model, text) for (name, model, _sql), text in zip(_CARD_LISTS, found[:-1], strict=True)}
    [order], [customer] = lists.pop("order"), lists.pop("customer")
    users = {user.pk: user for user in lists.pop("users")}
    order._state.fields_cache.update(
        customer=customer, claimed_by=users.get(order.claimed_by_id), hold_owner=users.get(order.hold_owner_id)
    )
    products = {product.pk: product for product in lists.pop("products")}
    subscriptions = {row.shipment_id: row for row in lists.pop("subscriptions")}
    tracking, acknowledgements = rows_by(lists.pop("tracking"), "shipment_id"), rows_by(lists.pop("acknowledgements"), "note_id")
    for name, children in lists.items():
        set_prefetched(order, name, children, parent="order")
    for line in lists["lines"]:
        line._state.fields_cache["product"] = products.get(line.product_id)
    for shipment in lists["shipments"]:
        shipment._state.fields_cache["subscription"] = subscriptions.get(shipment.pk)
        set_prefetched(shipment, "events", tracking.get(shipment.pk, []), parent="shipment")
    for case in lists["after_sales"]:
        case._state.fields_cache["decided_by"] = users.get(case.decided_by_id)
    for tag in lists["tags"]:
        tag._state.fields_cache.update(opened_by=users.get(tag.opened_by_id), resolved_by=users.get(tag.resolved_by_id))
    for note in lists["notes"]:
        note._state.fields_cache["author"] = users.get(note.author_id)
        for ack in acknowledgements.get(note.pk, []):
            ack._state.fields_cache["user"] = users.get(ack.user_id)
        set_prefetched(note, "acknowledgements", acknowledgements.get(note.pk, []), parent="note")
    for item in lists["feedback_requests"]:
        item._state.fields_cache.update(
            asked_by=users.get(item.asked_by_id), to_user=users.get(item.to_user_id), answered_by=users.get(item.answered_by_id)
        )
    order.repeat_purchase_count = found[-1] - 1
    return order


def _order_card_prefetched(order_number: str) -> Order:
    """The card's order with the same lists, people and products, in the same orders, through the
    ORM (a query per list)."""
    order = (
        Order.objects.select_related("customer", "claimed_by", "hold_owner")
        .prefetch_related(
            Prefetch("lines", queryset=OrderLine.objects.select_related("product").order_by("id")),
            Prefetch(
                "shipments",
                queryset=Shipment.objects.select_related("subscription")
                .order_by("id")
                .prefetch_related(Prefetch("events", queryset=TrackingEvent.objects.order_by("-occurred_at"))),
            ),
            Prefetch("after_sales", queryset=AfterSalesCase.objects.select_related("decided_by").order_by("id")),
            Prefetch("address_changes", queryset=AddressChangeRequest.objects.order_by("id")),
            Prefetch("tags", queryset=OrderTag.objects.select_related("opened_by", "resolved_by").order_by("-opened_at")),
            Prefetch(
                "notes",
                queryset=Note.objects.select_related("author").prefetch_related(
                    Prefetch("acknowledgements", queryset=NoteAcknowledgement.objects.select_related("user").order_by("id"))
                ),
            ),
            Prefetch("feedback_requests", queryset=FeedbackRequest.objects.select_related("asked_by", "to_user", "answered_by")),
            "events",
        )
        .get(order_number=order_number)
    )
    order.repeat_purchase_count = (
        Order.objects.filter(customer_id=order.customer_id).exclude(status=OrderStatus.CANCELLED).count() - 1
    )
    return order


def json_rows(model, where: str, order_by: str = "t.id") -> str:
    """PostgreSQL: the rows of `model` (aliased t) matching `where`, as one JSON array of whole
    rows (instances_from_json reads them back)."""
    return f"(SELECT coalesce(json_agg(t ORDER BY {order_by}), '[]') FROM {model._meta.db_table} t WHERE {where})::text"  # noqa: S608 - names from the models


def _card_lists() -> tuple:
    """(name, model, the SQL of its rows as a JSON array) for each list the card reads; `o` is the
    order. The orderings are the models' (or the card's own), by id where a model has none."""
    subscription = Shipment._meta.get_field("subscription").related_model  # integrations/kuaidi100
    user = Note._meta.get_field("author").related_model

    def of_order(model) -> str:
        return f"SELECT id FROM {model._meta.db_table} WHERE order_id = o.id"  # noqa: S608 - names from the models

    people = " UNION ".join(
        f"SELECT {column} FROM {model._meta.db_table} WHERE {where}"  # noqa: S608 - names from the models
        for model, columns, where in (
            (Order, ["claimed_by_id", "hold_owner_id"], "id = o.id"),
            (AfterSalesCase, ["decided_by_id"], "order_id = o.id"),
            (OrderTag, ["opened_by_id", "resolved_by_id"], "order_id = o.id"),
            (Note, ["author_id"], "order_id = o.id"),
            (NoteAcknowledgement, ["user_id"], f"note_id IN ({of_order(Note)})"),
            (FeedbackRequest, ["asked_by_id", "to_user_id", "answered_by_id"], "order_id = o.id"),
        )
        for column in columns
    )
    return (
        ("order", Order, json_rows(Order, "t.id = o.id")),
        ("customer", Customer, json_rows(Customer, "t.id = o.customer_id")),
        ("lines", OrderLine, json_rows(OrderLine, "t.order_id = o.id")),
        (
            "products",
            Product,
            json_rows(Product, f"t.id IN (SELECT product_id FROM {OrderLine._meta.db_table} WHERE order_id = o.id)"),  # noqa: S608 - names from the models
        ),
        ("shipments", Shipment, json_rows(Shipment, "t.order_id = o.id")),
        ("subscriptions", subscription, json_rows(subscription, f"t.shipment_id IN ({of_order(Shipment)})")),
        ("tracking", TrackingEvent, json_rows(TrackingEvent, f"t.shipment_id IN ({of_order(Shipment)})", "t.occurred_at DESC")),
        ("after_sales", AfterSalesCase, json_rows(AfterSalesCase, "t.order_id = o.id")),
        ("address_changes", AddressChangeRequest, json_rows(AddressChangeRequest, "t.order_id = o.id")),
        ("tags", OrderTag, json_rows(OrderTag, "t.order_id = o.id", "t.opened_at DESC")),
        ("notes", Note, json_rows(Note, "t.order_id = o.id", "t.created_at DESC, t.id DESC")),
        ("acknowledgements", NoteAcknowledgement, json_rows(NoteAcknowledgement, f"t.note_id IN ({of_order(Note)})")),
        ("feedback_requests", FeedbackRequest, json_rows(FeedbackRequest, "t.order_id = o.id", "t.asked_at DESC")),
        ("events", OrderEvent, json_rows(OrderEvent, "t.order_id = o.id", "t.occurred_at DESC, t.id DESC")),
        ("users", user, json_rows(user, f"t.id IN ({people})")),
    )


_CARD_LISTS = _card_lists()
_CARD_ROWS_SQL = (
    "SELECT "  # noqa: S608 - names from the models
    + ",\n       ".join(sql for _name, _model, sql in _CARD_LISTS)
    + f",\n       (SELECT count(*) FROM {Order._meta.db_table} c WHERE c.customer_id = o.customer_id AND c.status <> %s)"  # noqa: S608 - names from the models
    + f"\n  FROM {Order._meta.db_table} o WHERE o.order_number = %s"
)


def instances_from_json(model, text: str) -> list:
    """Model instances from a JSON array of rows, each value converted as the field reads it
    (datetimes arrive as text, a generated column as its output field; numbers are read as
    decimals so that ¥12.50 stays 12.50, and turned back into floats inside JSON fields)."""
    names, columns, readers = _readers(model)
    return [
        model.from_db("default", names, [read(row[column]) for read, column in zip(readers, columns, strict=True)])
        for row in json.loads(text, parse_float=decimal.Decimal)
    ]


@functools.cache
def _readers(model) -> tuple[list[str], list[str], list]:
    fields = model._meta.concrete_fields
    readers = [
        _floats
        if isinstance(field, JSONField)
        else (field.output_field if isinstance(field, GeneratedField) else field).to_python
        for field in fields
    ]
    return [field.attname for field in fields], [field.column for field in fields], readers


def _floats(value):
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, dict):
        return {key: _floats(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_floats(item) for item in value]
    return value


def rows_by(rows: list, attname: str) -> dict[int, list]:
    grouped: dict[int, list] = {}
    for row in rows:
        grouped.setdefault(getattr(row, attname), []).append(row)
    return grouped


def set_prefetched(instance, name: str, rows: list, parent: str = "") -> None:
    """What prefetch_related leaves behind: the related manager's .all() answers from this cache
    (a queryset of the relation holding the rows), so the templates and rules read it without a
    query; each row knows its parent as the prefetch sets it."""
    for row in rows:
        if parent:
            row._state.fields_cache[parent] = instance
    related = getattr(instance, name).all()
    related._result_cache, related._prefetch_done = rows, True
    instance.__dict__.setdefault("_prefetched_objects_cache", {})[name] = related


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
