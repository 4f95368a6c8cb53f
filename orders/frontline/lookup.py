"""The customer-service lookup: one input (a phone in any format, an order number or a waybill)
→ the customer's whole lifecycle, every order and one merged timeline, in a fixed number of
queries however many orders the customer has."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

from django.db.models import Prefetch, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from orders.frontline.answers import order_answer
from orders.frontline.models import Inquiry
from orders.models import (
    AddressChangeRequest,
    AfterSalesCase,
    Customer,
    EventKind,
    FeedbackRequest,
    Note,
    NoteAcknowledgement,
    Order,
    OrderEvent,
    OrderLine,
    OrderStatus,
    OrderTag,
    Shipment,
    TrackingEvent,
)
from orders.phones import normalize_mobile
from orders.templatetags.cockpit import event_summary
from workflows.models import CustomerMessage

# A customer with more orders sees the newest ones; the page says so.
MAX_ORDERS = 100
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


@dataclass
class TimelineEntry:
    at: datetime.datetime
    order_number: str
    kind: str
    actor: str
    summary: str
    details: list[str] = field(default_factory=list)


@dataclass
class LookupResult:
    query: str
    found_by: str = ""  # "phone", "order" or "tracking"
    customer: Customer | None = None
    orders: list[Order] = field(default_factory=list)
    timeline: list[TimelineEntry] = field(default_factory=list)
    truncated: bool = False
    problem: str = ""


def lookup(query: str) -> LookupResult:
    query = (query or "").strip()[:64]
    result = LookupResult(query=query)
    if not query:
        return result
    phone = normalize_mobile(query)
    customer_id = _customer_id(query, phone, result)
    if customer_id is None:
        result.problem = _(
            "Nothing found for “%(query)s”. Check the digits: a mobile has 11 digits (+86, spaces and dashes are fine), "
            "an order number is as printed on the order, a waybill as printed on the label."
        ) % {"query": query}
        return result
    result.customer = Customer.objects.get(pk=customer_id)
    matches = Q(customer_id=customer_id) | Q(receiver_phone=phone) if phone else Q(customer_id=customer_id)
    orders = list(_orders_with_everything().filter(matches).order_by("-placed_at", "-id")[: MAX_ORDERS + 1])
    result.truncated = len(orders) > MAX_ORDERS
    result.orders = orders[:MAX_ORDERS]
    repeat = sum(1 for order in result.orders if order.status != OrderStatus.CANCELLED) - 1
    result.customer.repeat_purchase_count = max(repeat, 0)
    now = timezone.now()
    for order in result.orders:
        order.answer = order_answer(order, now=now)
        order.open_tags = list(order.tags.all())
        order.feedback_open = [item for item in order.feedback_requests.all() if item.answered_at is None]
    result.timeline = _timeline(result.orders)
    return result


def _customer_id(query: str, phone: str | None, result: LookupResult) -> int | None:
    if phone:
        result.found_by = "phone"
        found = Customer.objects.filter(phone=phone).values_list("pk", flat=True).first()
        # A receiver's number finds the buyer who sent them the parcel.
        return found or Order.objects.filter(receiver_phone=phone).values_list("customer_id", flat=True).first()
    found = Order.objects.filter(order_number=query).values_list("customer_id", flat=True).first()
    if found:
        result.found_by = "order"
        return found
    found = Shipment.objects.filter(tracking_number=query.upper()).values_list("order__customer_id", flat=True).first()
    if found:
        result.found_by = "tracking"
    return found


def _orders_with_everything():
    return Order.objects.select_related("claimed_by", "hold_owner").prefetch_related(
        Prefetch("lines", queryset=OrderLine.objects.select_related("product").order_by("is_gift", "id")),
        Prefetch(
            "shipments",
            queryset=Shipment.objects.order_by("created_at", "id").prefetch_related(
                Prefetch("events", queryset=TrackingEvent.objects.order_by("-occurred_at"))
            ),
        ),
        Prefetch("after_sales", queryset=AfterSalesCase.objects.select_related("opened_by", "decided_by")),
        Prefetch("address_changes", queryset=AddressChangeRequest.objects.select_related("requested_by", "resolved_by")),
        Prefetch("tags", queryset=OrderTag.objects.filter(resolved_at__isnull=True)),
        Prefetch(
            "notes",
            queryset=Note.objects.select_related("author").prefetch_related(
                Prefetch("acknowledgements", queryset=NoteAcknowledgement.objects.select_related("user"))
            ),
        ),
        Prefetch("feedback_requests", queryset=FeedbackRequest.objects.select_related("to_user")),
        Prefetch("events", queryset=OrderEvent.objects.exclude(kind__in=EVENTS_SHOWN_FROM_ROWS)),
        Prefetch("customer_messages", queryset=CustomerMessage.objects.all()),
        Prefetch("inquiries", queryset=Inquiry.objects.select_related("recorded_by")),
    )


def _name(user) -> str:
    return (user.get_full_name() or user.get_username()) if user else ""


def _time(value: datetime.datetime) -> str:
    return timezone.localtime(value).strftime("%m-%d %H:%M")


def _timeline(orders: list[Order]) -> list[TimelineEntry]:
    entries: list[TimelineEntry] = []
    for order in orders:
        number = order.order_number
        for event in order.events.all():
            entries.append(TimelineEntry(event.occurred_at, number, f"event event-{event.kind}", event.actor_name, event_summary(event)))
        for note in order.notes.all():
            acks = [_("✔ %(name)s at %(time)s") % {"name": _name(ack.user), "time": _time(ack.acknowledged_at)} for ack in note.acknowledgements.all()]
            summary = _("Note (%(audience)s): %(body)s") % {"audience": note.get_audience_display(), "body": note.body}
            entries.append(TimelineEntry(note.created_at, number, f"note note-{note.kind}", _name(note.author), summary, acks or [_("Nobody has acknowledged it yet.")]))
        for case in order.after_sales.all():
            entries.extend(_case_entries(case, number))
        for change in order.address_changes.all():
            address = f"{change.receiver_name} {change.province}{change.city}{change.district}{change.address}"
            entries.append(TimelineEntry(change.requested_at, number, "address-change", _name(change.requested_by),
                                         _("Address change requested: %(address)s") % {"address": address}))
            if change.resolved_at:
                entries.append(TimelineEntry(change.resolved_at, number, "address-change", _name(change.resolved_by),
                                             _("Address change %(outcome)s") % {"outcome": change.get_status_display()}))
        for shipment in order.shipments.all():
            entries.append(_shipment_entry(shipment, number))
        for message in order.customer_messages.all():
            entries.append(_message_entry(message, number))
        for inquiry in order.inquiries.all():
            summary = _("Customer asked (%(channel)s): %(question)s") % {"channel": inquiry.get_channel_display(), "question": inquiry.question}
            detail = (
                [_("Answered at once by push #%(id)s.") % {"id": inquiry.answer_message_id}]
                if inquiry.answer_message_id
                else [_("No WeChat push possible (customer has not followed the service account); answered by the agent.")]
            )
            entries.append(TimelineEntry(inquiry.asked_at, number, "inquiry", _name(inquiry.recorded_by), summary, detail))
    entries.sort(key=lambda entry: entry.at, reverse=True)
    return entries


def _case_entries(case: AfterSalesCase, number: str) -> list[TimelineEntry]:
    kind = case.get_kind_display()
    sku = f" · {case.sku_code}" if case.sku_code else ""
    amount = [_("Amount: ¥%(amount)s") % {"amount": case.amount}] if case.amount else []
    entries = [
        TimelineEntry(case.opened_at, number, "after-sales", _name(case.opened_by),
                      _("%(kind)s request opened%(sku)s: %(reason)s") % {"kind": kind, "sku": sku, "reason": case.reason}, amount)
    ]
    if case.decided_at:
        decision = case.get_status_display()
        department = case.decided_by_department or _("customer service")
        entries.append(
            TimelineEntry(
                case.decided_at,
                number,
                f"after-sales decision-{case.status}",
                _name(case.decided_by),
                _("%(kind)s request %(decision)s by %(department)s, reason: %(reason)s")
                % {"kind": kind, "decision": decision, "department": department, "reason": case.decision_reason},
                [_("Customer's reason: %(reason)s") % {"reason": case.reason}, *amount],
            )
        )
    return entries


def _shipment_entry(shipment: Shipment, number: str) -> TimelineEntry:
    events = list(shipment.events.all())
    state = shipment.get_tracking_state_display() if shipment.tracking_state else _("awaiting tracking")
    latest = f" — {events[0].context}" if events else ""
    summary = f"{shipment.get_carrier_code_display()} {shipment.tracking_number}: {state}{latest}"
    details = [f"{_time(event.occurred_at)} {event.context}" for event in events]
    if shipment.eta:
        details.insert(0, _("ETA %(eta)s") % {"eta": _time(shipment.eta)})
    at = events[0].occurred_at if events else shipment.created_at
    return TimelineEntry(at, number, "shipment", shipment.get_carrier_code_display(), summary, details)


def _message_entry(message: CustomerMessage, number: str) -> TimelineEntry:
    content = message.content or {}
    text = content.get("text") or "；".join(
        str(value.get("value", "")) if isinstance(value, dict) else str(value) for value in content.values() if value
    )
    summary = _("Pushed to the customer (%(state)s): %(text)s") % {"state": message.get_status_display(), "text": text}
    details = [_("Event: %(key)s") % {"key": message.event_key}]
    if message.delivery_status:
        details.append(_("Delivery: %(status)s") % {"status": message.delivery_status})
    if message.last_error:
        details.append(_("Last error: %(error)s") % {"error": message.last_error})
    return TimelineEntry(message.created_at, number, "message", _("WeChat"), summary, details)

