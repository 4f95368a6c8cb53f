"""The customer-service lookup: one input (a phone in any format, an order number or a waybill)
→ the customer's whole lifecycle, every order and one merged timeline, in a fixed number of
queries however many orders the customer has."""

from __future__ import annotations

import datetime
import functools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from types import SimpleNamespace

from django.db import connection
from django.db.models import DEFERRED, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from integrations.douyin import services as douyin
from integrations.douyin.models import DouyinShop
from integrations.wechat.models import CustomerMessage, MessageStatus
from orders.events import actor_label
from orders.models import (
    AddressChangeRequest,
    AddressChangeStatus,
    AfterSalesCase,
    AfterSalesKind,
    AfterSalesStatus,
    Carrier,
    Customer,
    EventKind,
    FeedbackRequest,
    Note,
    NoteAcknowledgement,
    NoteAudience,
    Order,
    OrderEvent,
    OrderLine,
    OrderStatus,
    OrderTag,
    Shipment,
    TrackingEvent,
    TrackingState,
)
from orders.phones import normalize_mobile, normalize_order_number
from orders.selectors import instances_from_json
from orders.templatetags.cockpit import event_summary
from workflows import notifications
from workflows.frontline.answers import choice_label, order_answer
from workflows.frontline.models import Inquiry, InquiryChannel
from workflows.frontline.templatetags.frontline import day_namer
from workflows.models import ContactChannel, ContactPreference
from workflows.notifications import delivery_text, push_about

# The last four digits of a phone, as the customer says them or as a masked number shows them.
PHONE_TAIL = re.compile(r"(?:尾号|\*+)?\s*(\d{4})")
# A customer with more orders sees the newest ones; the page says so.
MAX_ORDERS = 100
# The timeline shows its newest entries at once; the older ones open in place (one <details>),
# so a long history does not make every lookup render hundreds of entries.
TIMELINE_SHOWN = 40
# These events are shown from their own rows (notes, cases, address changes carry more detail
# there) or are noise for someone answering a customer (claims, phone reveals).
EVENTS_SHOWN_FROM_ROWS = [
    EventKind.NOTE,
    EventKind.ACKNOWLEDGE,
    EventKind.AFTER_SALES,
    EventKind.ADDRESS_CHANGE,
    EventKind.CLAIM,
    EventKind.UNCLAIM,
    EventKind.PHONE_REVEAL,
]


class TimelineEntry:
    """One line of the merged timeline. Its words (actor, summary, details) are written when first
    read, by `write(row)`: a customer's entries are sorted by time and only those shown (40 at
    first) are written (issue 14). Slots: a page makes one per child row (~300)."""

    __slots__ = ("at", "order_number", "kind", "_write", "_row", "_words", "when", "iso")

    def __init__(self, at: datetime.datetime, order_number: str, kind: str, write: Callable, row: SimpleNamespace):
        self.at, self.order_number, self.kind, self._write, self._row = at, order_number, kind, write, row
        self._words: tuple[str, str, list[str]] | None = None
        # Display strings, set by dress() only for the entries a page renders.
        self.when = self.iso = ""

    @property
    def words(self) -> tuple[str, str, list[str]]:
        if self._words is None:
            self._words = self._write(self._row)
        return self._words

    @property
    def actor(self) -> str:
        return self.words[0]

    @property
    def summary(self) -> str:
        return self.words[1]

    @property
    def details(self) -> list[str]:
        return self.words[2]


@dataclass
class LookupResult:
    query: str
    found_by: str = ""  # "phone", "tail" (a Douyin order by its masked tail), "order" or "tracking"
    customer: Customer | None = None
    orders: list[Order] = field(default_factory=list)
    timeline: list[TimelineEntry] = field(default_factory=list)
    truncated: bool = False
    problem: str = ""
    contact_channel: str = ""  # notifications.contact_channel(customer)


def lookup(query: str) -> LookupResult:
    query = (query or "").strip()[:64]
    result = LookupResult(query=query)
    if not query:
        return result
    phone = normalize_mobile(query)
    if phone and connection.vendor == "postgresql":
        customer, orders = _by_phone(phone, result)
    else:
        customer = _customer(query, phone, result)
        platform_orders = _platform_orders(query, phone, result) if customer is None or phone else []
        if customer is None and platform_orders:
            customer = Customer.objects.filter(orders__pk=platform_orders[0]).first()
        if customer is not None:
            orders = _orders(customer, phone, platform_orders)
            result.contact_channel = notifications.contact_channel(customer)
    if customer is None:
        result.problem = _(
            "Nothing found for “%(query)s”. Check the digits: a mobile has 11 digits (+86, spaces and dashes are fine), "
            "an order number is as printed on the order, a waybill as printed on the label."
        ) % {"query": query}
        return result
    result.customer = customer
    result.truncated = len(orders) > MAX_ORDERS
    result.orders = orders[:MAX_ORDERS]
    repeat = sum(1 for order in result.orders if order.status != OrderStatus.CANCELLED) - 1
    result.customer.repeat_purchase_count = max(repeat, 0)
    now = timezone.now()
    for order in result.orders:
        order.answer = order_answer(
            order,
            now=now,
            shipments=order.shipment_list,
            address_changes=order.change_list,
            after_sales=order.case_list,
            with_parcels=False,
        )
    result.timeline = _timeline(result.orders)
    return result


def dress(entries: list[TimelineEntry]) -> list[TimelineEntry]:
    """Sets each entry's "when" text (relative_day's) and ISO time, once, in Python: cheaper than
    two template filters per entry."""
    name, zone = day_namer(), timezone.get_current_timezone()
    for entry in entries:
        local = timezone.localtime(entry.at, zone)  # name() finds it local already: no conversion
        entry.when, entry.iso = name(local), local.isoformat()
    return entries


def _platform_orders(query: str, phone: str | None, result: LookupResult) -> list[int]:
    """Douyin orders keep the receiver encrypted (integrations/douyin): the phone the customer
    says is matched through the platform's search index, and "尾号1234" by the masked tail."""
    if phone:
        found = douyin.orders_by_phone(phone)
        if found:
            result.found_by = "phone"
        return found
    tail = PHONE_TAIL.fullmatch(query)
    if tail is None:
        return []
    found = douyin.orders_by_tail(tail.group(1))
    if found:
        result.found_by = "tail"
    return found


def _customer(query: str, phone: str | None, result: LookupResult) -> Customer | None:
    """The customer, in one query whichever way they were found."""
    if phone:
        result.found_by = "phone"
        # A receiver's number finds the buyer who sent them the parcel.
        return Customer.objects.filter(phone=phone).first() or Customer.objects.filter(orders__receiver_phone=phone).first()
    found = Customer.objects.filter(orders__order_number=normalize_order_number(query)).first()
    if found:
        result.found_by = "order"
        return found
    found = Customer.objects.filter(orders__shipments__tracking_number=query.upper()).first()
    if found:
        result.found_by = "tracking"
    return found


@dataclass(frozen=True)
class _Relation:
    """One kind of child row the page reads: its columns (only those: each costs its conversion per
    row), how it reaches the order (directly, or through `via`'s foreign key), which rows, their
    order, and the people (user foreign keys) named in it."""

    model: type
    fields: tuple[str, ...]
    key: str = "order_id"
    via: tuple[type, str] | None = None
    where: str = ""
    order: tuple[str, ...] = ()
    people: tuple[str, ...] = ()


_EVENT_KINDS_SHOWN = ", ".join(f"'{kind.value}'" for kind in EventKind if kind not in EVENTS_SHOWN_FROM_ROWS)
RELATIONS = {
    "line_list": _Relation(
        OrderLine, ("order_id", "sku_code", "product_name", "quantity", "is_gift", "cold_chain"), order=("is_gift", "id")
    ),
    "shipment_list": _Relation(
        Shipment,
        ("id", "order_id", "carrier_code", "tracking_number", "tracking_state", "last_location", "last_event_at", "eta")
        + ("created_at", "replaced_at"),
        order=("created_at", "id"),
    ),
    "tracking": _Relation(
        TrackingEvent,
        ("shipment_id", "occurred_at", "context"),
        key="shipment_id",
        via=(Shipment, "shipment_id"),
        order=("-occurred_at",),
    ),
    "case_list": _Relation(
        AfterSalesCase,
        ("order_id", "kind", "status", "sku_code", "amount", "reason", "opened_at", "decided_at")
        + ("decided_by_department", "decision_reason"),
        people=("opened_by", "decided_by"),
    ),
    "change_list": _Relation(
        AddressChangeRequest,
        ("order_id", "status", "receiver_name", "province", "city", "district", "address", "requested_at", "resolved_at"),
        people=("requested_by", "resolved_by"),
    ),
    "open_tags": _Relation(OrderTag, ("order_id", "tag"), where="resolved_at IS NULL"),
    "note_list": _Relation(Note, ("id", "order_id", "kind", "audience", "body", "created_at"), people=("author",)),
    "acks": _Relation(
        NoteAcknowledgement, ("note_id", "acknowledged_at"), key="note_id", via=(Note, "note_id"), people=("user",)
    ),
    "feedback_open": _Relation(FeedbackRequest, ("order_id", "to_role"), where="answered_at IS NULL"),
    "event_list": _Relation(
        OrderEvent,
        ("order_id", "kind", "payload", "actor_user_id", "actor_name", "occurred_at"),
        where=f"kind IN ({_EVENT_KINDS_SHOWN})",
    ),
    "message_list": _Relation(
        CustomerMessage, ("order_id", "content", "status", "event_key", "delivery_status", "last_error", "created_at")
    ),
    "inquiry_list": _Relation(
        Inquiry, ("order_id", "channel", "question", "answer_message_id", "asked_at"), people=("recorded_by",)
    ),
}
PERSON_PARTS = ("first_name", "last_name", "username")
# Per relation, each person's name parts as the rows carry them and the name _attach makes of them.
_PEOPLE_KEYS = {
    name: [(tuple(f"{person}__{part}" for part in PERSON_PARTS), f"{person}_name") for person in relation.people]
    for name, relation in RELATIONS.items()
}
_USER = Order._meta.get_field("claimed_by").related_model
# The order's columns the page reads (the order blocks, their answers, the forms, the timeline),
# in the model's order (as Model.from_db takes them): on PostgreSQL only these are read and
# converted, the other ~30 are deferred (tests/test_page_queries.py would see one read lazily).
ORDER_FIELDS = tuple(
    field.attname
    for field in Order._meta.concrete_fields
    if field.attname
    in {"id", "order_number", "customer_id", "receiver_name", "receiver_phone", "province", "city", "district", "address"}
    | {"total_amount", "carrier_code", "requires_cold_chain", "status", "stage_entered_at", "cancel_reason", "is_held"}
    | {"hold_reason", "hold_note", "claimed_by_id", "is_rush", "rush_reason", "placed_at"}
)
# Where each of them goes in Model.from_db's values, how it is converted: from_db matches the
# names of a partial row against every field's, per row (half of the orders' conversion).
_ORDER_READERS = [
    (position, field.to_python, field.attname)
    for position, field in enumerate(Order._meta.concrete_fields)
    if field.attname in ORDER_FIELDS
]


def _orders(customer: Customer, phone: str | None, platform_orders: list[int]) -> list[Order]:
    """The customer's orders (theirs, those sent to this phone, the platform's matches), newest
    first, up to MAX_ORDERS + 1 (one more tells the page it was cut), each with its child rows
    (RELATIONS) as plain rows (SimpleNamespace, read like the models by order_answer, describe()
    and the page): 20 orders have ~300 child rows, and building them as models plus Django's
    prefetch matching was half of the page's CPU, twelve compiled queries still a third (issue 14).
    On PostgreSQL one query reads the orders, the people claiming them and every child row as
    JSON (the orders become model instances of their ORDER_FIELDS, the rest deferred; the people
    as the order card's rows do: orders/selectors.py); elsewhere (the embedded demo's SQLite) the
    ORM's orders and one values() query per relation."""
    if connection.vendor != "postgresql":
        matches = Q(customer=customer) | Q(receiver_phone=phone) if phone else Q(customer=customer)
        if platform_orders:
            matches |= Q(pk__in=platform_orders)
        orders = list(Order.objects.select_related("claimed_by").filter(matches).order_by("-placed_at", "-id")[: MAX_ORDERS + 1])
        _attach(orders, _rows_values([order.pk for order in orders]))
        return orders
    matches, params = ["customer_id = %(customer)s"], {"customer": customer.pk}
    if phone:
        matches.append("receiver_phone = %(phone)s")
        params["phone"] = phone
    if platform_orders:
        matches.append("id = ANY(%(platform)s)")
        params["platform"] = platform_orders
    with connection.cursor() as cursor:
        cursor.execute(_json_sql(" OR ".join(matches)), params)
        return _from_json(*cursor.fetchone())


def _by_phone(phone: str, result: LookupResult) -> tuple[Customer | None, list[Order]]:
    """_customer, _platform_orders, _orders and the contact channel for a phone, on PostgreSQL,
    in one query (each query costs the page ~0.4 ms of CPU, issue 14): the customer as
    _customer finds them, their orders, their contact preference, and whether a Douyin shop is
    enabled. Only then, and only if one is, the platform's search index is asked (integrations/
    douyin); its orders not found yet (their receiver is encrypted) make a second query with them."""
    result.found_by = "phone"
    params = {"phone": phone, "platform": []}
    with connection.cursor() as cursor:
        cursor.execute(_phone_sql(), params)
        orders_text, people_text, found, customer_text, channel, douyin_shops = cursor.fetchone()
        platform_orders = douyin.orders_by_phone(phone) if douyin_shops else []
        if platform_orders and set(platform_orders) - {row["id"] for row in json.loads(orders_text)}:
            params["platform"] = platform_orders
            cursor.execute(_phone_sql(), params)
            orders_text, people_text, found, customer_text, channel, _shops = cursor.fetchone()
    customers = instances_from_json(Customer, customer_text)
    if not customers:
        return None, []
    result.contact_channel = channel or ContactChannel.AUTO  # as notifications.contact_channel says
    return customers[0], _from_json(orders_text, people_text, found)


def _from_json(orders_text: str, people_text: str, found: dict | None) -> list[Order]:
    orders = []
    for row in json.loads(orders_text, parse_float=Decimal):
        values = [DEFERRED] * len(Order._meta.concrete_fields)
        for position, read, name in _ORDER_READERS:
            values[position] = read(row[name])
        orders.append(Order.from_db("default", ORDER_FIELDS, values))
    people = {user.pk: user for user in instances_from_json(_USER, people_text)}
    for order in orders:
        order._state.fields_cache["claimed_by"] = people.get(order.claimed_by_id)
    _attach(orders, _rows_json(found or {}))
    return orders


def _attach(orders: list[Order], rows: dict[str, list[dict]]) -> None:
    """Each order's child rows, from rows {relation: [row, …]} of RELATIONS."""
    children = {}
    for name, relation in RELATIONS.items():
        grouped: dict[int, list[SimpleNamespace]] = {}
        key, people = relation.key, _PEOPLE_KEYS[name]
        for row in rows[name]:
            for parts, person in people:
                first, last, username = (row.pop(part) or "" for part in parts)
                row[person] = f"{first} {last}".strip() or username
            grouped.setdefault(row[key], []).append(SimpleNamespace(**row))
        children[name] = grouped
    tracking, acks = children.pop("tracking"), children.pop("acks")
    for shipment in (row for rows in children["shipment_list"].values() for row in rows):
        shipment.event_list = tracking.get(shipment.id, [])
    for note in (row for rows in children["note_list"].values() for row in rows):
        note.ack_list = acks.get(note.id, [])
    for order in orders:
        pk = order.pk
        order.__dict__.update({name: grouped.get(pk, []) for name, grouped in children.items()})


def _rows_values(ids: list[int]) -> dict[str, list[dict]]:
    rows = {}
    for name, relation in RELATIONS.items():
        queryset = relation.model.objects.all()
        if relation.via:
            queryset = queryset.filter(**{f"{relation.via[1].removesuffix('_id')}__order_id__in": ids})
        else:
            queryset = queryset.filter(order_id__in=ids)
        if relation.where:
            queryset = queryset.extra(where=[relation.where])  # noqa: S610 — constant SQL from RELATIONS
        if relation.order:
            queryset = queryset.order_by(*relation.order)
        names = [f"{person}__{part}" for person in relation.people for part in PERSON_PARTS]
        rows[name] = list(queryset.values(*relation.fields, *names))
    return rows


def _rows_json(found: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """The JSON rows with their datetimes and decimals as Python's."""
    rows = {}
    for name, times, decimals in _CONVERTED:
        rows[name] = found.get(name) or []
        for row in rows[name]:
            for attr in times:
                if row[attr] is not None:
                    row[attr] = datetime.datetime.fromisoformat(row[attr])
            for attr in decimals:
                if row[attr] is not None:
                    row[attr] = Decimal(row[attr])
    return rows


def _field(model, name: str):
    return model._meta.get_field(name)


def _typed(relation: _Relation, kind: str) -> list[str]:
    return [attr for attr in relation.fields if _field(relation.model, attr).get_internal_type() == kind]


# Each relation's datetime and decimal fields, which _rows_json converts.
_CONVERTED = [(name, _typed(relation, "DateTimeField"), _typed(relation, "DecimalField")) for name, relation in RELATIONS.items()]


@functools.cache
def _json_sql(matches: str, customer: str = "", extra: str = "") -> str:
    """One query: the orders `matches` (SQL naming columns of the order, its values parameters)
    as a JSON array, newest first, up to MAX_ORDERS + 1; the users claiming them; {relation:
    [row, …]} for those orders, each row a json object of its fields (decimals as text, so they
    stay exact) and its people's name parts; then the `extra` columns (SQL), which, as `matches`,
    may read the `customer` CTE (SQL: "name AS (…), ")."""
    parts = []
    for name, relation in RELATIONS.items():
        table = relation.model._meta.db_table
        columns = []
        for attr in relation.fields:
            column = _field(relation.model, attr).column
            cast = "::text" if _field(relation.model, attr).get_internal_type() == "DecimalField" else ""
            columns.append(f"'{attr}', r.\"{column}\"{cast}")
        joins = ""
        for number, person in enumerate(relation.people):
            joins += f' LEFT JOIN auth_user p{number} ON p{number}.id = r."{_field(relation.model, person).column}"'
            columns += [f"'{person}__{part}', p{number}.{part}" for part in PERSON_PARTS]
        if relation.via:
            parent, column = relation.via
            joins += f' JOIN "{parent._meta.db_table}" v ON v.id = r."{column}"'
            where = "v.order_id = ANY(ARRAY(SELECT id FROM found))"
        else:
            where = "r.order_id = ANY(ARRAY(SELECT id FROM found))"
        if relation.where:
            where += f" AND r.{relation.where}"
        ordering = relation.order or relation.model._meta.ordering
        order = ", ".join(
            f'r."{_field(relation.model, field.lstrip("-")).column}"{" DESC" if field.startswith("-") else ""}'
            for field in ordering
        )
        # Names from the models and RELATIONS only, no input; the ids are a parameter.
        aggregate = f"json_agg(json_build_object({', '.join(columns)}){' ORDER BY ' + order if order else ''})"
        parts.append(f"'{name}', (SELECT {aggregate} FROM \"{table}\" r{joins} WHERE {where})")  # noqa: S608
    orders = Order._meta.db_table
    order_columns = ", ".join(f"'{name}', t.\"{_field(Order, name).column}\"" for name in ORDER_FIELDS)
    return (
        f"WITH {customer}found AS (SELECT id FROM {orders} WHERE {matches} ORDER BY placed_at DESC, id DESC LIMIT {MAX_ORDERS + 1})"  # noqa: S608
        f" SELECT (SELECT coalesce(json_agg(json_build_object({order_columns}) ORDER BY t.placed_at DESC, t.id DESC), '[]')"
        f" FROM {orders} t"
        " WHERE t.id IN (SELECT id FROM found))::text,"
        f" (SELECT coalesce(json_agg(t), '[]') FROM {_USER._meta.db_table} t"
        f" WHERE t.id IN (SELECT claimed_by_id FROM {orders} WHERE id IN (SELECT id FROM found)))::text,"
        f" json_build_object({', '.join(parts)}){extra}"
    )


@functools.cache
def _phone_sql() -> str:
    """_json_sql for a phone: the customer found as _customer finds them (by their own number,
    else as the receiver of an order, else, as lookup() does, the owner of the first platform
    order), with the customer's row, contact preference and whether any Douyin shop is enabled."""
    customers, orders = Customer._meta.db_table, Order._meta.db_table
    customer = (
        f"customer AS (SELECT coalesce((SELECT id FROM {customers} WHERE phone = %(phone)s),"  # noqa: S608
        f" (SELECT customer_id FROM {orders} WHERE receiver_phone = %(phone)s ORDER BY customer_id LIMIT 1),"
        f" (SELECT customer_id FROM {orders} WHERE id = (%(platform)s::bigint[])[1])) AS id), "
    )
    extra = (
        f", (SELECT coalesce(json_agg(t), '[]') FROM {customers} t WHERE t.id = (SELECT id FROM customer))::text,"  # noqa: S608
        f" (SELECT channel FROM {ContactPreference._meta.db_table} WHERE customer_id = (SELECT id FROM customer)),"
        f" EXISTS (SELECT 1 FROM {DouyinShop._meta.db_table} WHERE enabled)"
    )
    matches = "customer_id = (SELECT id FROM customer) OR receiver_phone = %(phone)s OR id = ANY(%(platform)s::bigint[])"
    return _json_sql(matches, customer, extra)


def _time(value: datetime.datetime) -> str:
    local = timezone.localtime(value)
    return f"{local.month:02d}-{local.day:02d} {local.hour:02d}:{local.minute:02d}"  # as %m-%d %H:%M, without strftime


def _timeline(orders: list[Order]) -> list[TimelineEntry]:
    entries: list[TimelineEntry] = []
    for order in orders:
        number = order.order_number
        for event in order.event_list:
            entries.append(TimelineEntry(event.occurred_at, number, f"event event-{event.kind}", _event_words, event))
        for note in order.note_list:
            entries.append(TimelineEntry(note.created_at, number, f"note note-{note.kind}", _note_words, note))
        for case in order.case_list:
            entries.append(TimelineEntry(case.opened_at, number, "after-sales", _case_opened_words, case))
            if case.decided_at:
                kind = f"after-sales decision-{case.status}"
                entries.append(TimelineEntry(case.decided_at, number, kind, _case_decided_words, case))
        for change in order.change_list:
            entries.append(TimelineEntry(change.requested_at, number, "address-change", _change_requested_words, change))
            if change.resolved_at:
                entries.append(TimelineEntry(change.resolved_at, number, "address-change", _change_resolved_words, change))
        for shipment in order.shipment_list:
            at = shipment.event_list[0].occurred_at if shipment.event_list else shipment.created_at
            entries.append(TimelineEntry(at, number, "shipment", _shipment_words, shipment))
        for message in order.message_list:
            entries.append(TimelineEntry(message.created_at, number, "message", _message_words, message))
        for inquiry in order.inquiry_list:
            entries.append(TimelineEntry(inquiry.asked_at, number, "inquiry", _inquiry_words, inquiry))
    entries.sort(key=lambda entry: entry.at, reverse=True)
    return entries


# Each entry's words: (actor, summary, details).


def _event_words(event: SimpleNamespace) -> tuple[str, str, list[str]]:
    return actor_label(event), event_summary(event), []


def _note_words(note: SimpleNamespace) -> tuple[str, str, list[str]]:
    acks = [_("✔ %(name)s at %(time)s") % {"name": ack.user_name, "time": _time(ack.acknowledged_at)} for ack in note.ack_list]
    summary = _("Note (%(audience)s): %(body)s") % {"audience": choice_label(NoteAudience, note.audience), "body": note.body}
    return note.author_name, summary, acks or [_("Nobody has acknowledged it yet.")]


def _case_amount(case: SimpleNamespace) -> list[str]:
    return [_("Amount: ¥%(amount)s") % {"amount": case.amount}] if case.amount else []


def _case_opened_words(case: SimpleNamespace) -> tuple[str, str, list[str]]:
    kind = choice_label(AfterSalesKind, case.kind)
    sku = f" · {case.sku_code}" if case.sku_code else ""
    summary = _("%(kind)s request opened%(sku)s: %(reason)s") % {"kind": kind, "sku": sku, "reason": case.reason}
    return case.opened_by_name, summary, _case_amount(case)


def _case_decided_words(case: SimpleNamespace) -> tuple[str, str, list[str]]:
    kind = choice_label(AfterSalesKind, case.kind)
    decision = choice_label(AfterSalesStatus, case.status)
    department = case.decided_by_department or _("customer service")
    summary = _("%(kind)s request %(decision)s by %(department)s, reason: %(reason)s") % {
        "kind": kind,
        "decision": decision,
        "department": department,
        "reason": case.decision_reason,
    }
    return case.decided_by_name, summary, [_("Customer's reason: %(reason)s") % {"reason": case.reason}, *_case_amount(case)]


def _change_requested_words(change: SimpleNamespace) -> tuple[str, str, list[str]]:
    address = f"{change.receiver_name} {change.province}{change.city}{change.district}{change.address}"
    return change.requested_by_name, _("Address change requested: %(address)s") % {"address": address}, []


def _change_resolved_words(change: SimpleNamespace) -> tuple[str, str, list[str]]:
    outcome = choice_label(AddressChangeStatus, change.status)
    return change.resolved_by_name, _("Address change %(outcome)s") % {"outcome": outcome}, []


def _shipment_words(shipment: SimpleNamespace) -> tuple[str, str, list[str]]:
    events = shipment.event_list
    state = choice_label(TrackingState, shipment.tracking_state) if shipment.tracking_state else _("awaiting tracking")
    latest = f" — {events[0].context}" if events else ""
    carrier = choice_label(Carrier, shipment.carrier_code)
    summary = f"{carrier} {shipment.tracking_number}: {state}{latest}"
    details = [f"{_time(event.occurred_at)} {event.context}" for event in events]
    if shipment.eta:
        details.insert(0, _("ETA %(eta)s") % {"eta": _time(shipment.eta)})
    return carrier, summary, details


def _message_words(message: SimpleNamespace) -> tuple[str, str, list[str]]:
    content = message.content or {}
    text = content.get("text") or "；".join(
        str(value.get("value", "")) if isinstance(value, dict) else str(value) for value in content.values() if value
    )
    summary = _("Pushed to the customer (%(state)s): %(text)s") % {
        "state": choice_label(MessageStatus, message.status),
        "text": text,
    }
    details = [_("About: %(subject)s") % {"subject": push_about(message.event_key)}]
    if message.delivery_status:
        details.append(_("Delivery: %(status)s") % {"status": delivery_text(message.delivery_status)})
    if message.last_error:
        details.append(_("Last error: %(error)s") % {"error": message.last_error})
    return _("WeChat"), summary, details


def _inquiry_words(inquiry: SimpleNamespace) -> tuple[str, str, list[str]]:
    summary = _("Customer asked (%(channel)s): %(question)s") % {
        "channel": choice_label(InquiryChannel, inquiry.channel),
        "question": inquiry.question,
    }
    details = (
        [_("Answered at once by push #%(id)s.") % {"id": inquiry.answer_message_id}]
        if inquiry.answer_message_id
        else [_("No WeChat push possible (customer has not followed the service account); answered by the agent.")]
    )
    return inquiry.recorded_by_name, summary, details
