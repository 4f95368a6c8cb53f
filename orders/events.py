"""The order timeline: one creator per event kind and one describer.

These functions are the only code that decides what an OrderEvent's payload holds, so the
describer below always knows every shape a kind can have (two writers of one kind with two
payloads once left an empty "物流渠道：" line under every tracking update). Every creator takes
the order, the actor and the facts, and returns the saved event; `save=False` returns it unsaved
for the ERP import, which inserts in bulk; the SLA sweep's creator (`sla_breaches`) writes many
orders' events at once.

Payloads hold facts (codes, ids, times), never sentences: the describer turns them into text in
the reader's language when the timeline is shown.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime
from collections.abc import Iterable, Iterator
from decimal import Decimal

from django.core.exceptions import FieldDoesNotExist
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop, pgettext

from orders import live
from orders.access import Actor
from orders.models import (
    AfterSalesKind,
    Carrier,
    EventKind,
    HoldReason,
    Note,
    NoteAudience,
    Order,
    OrderEvent,
    OrderStatus,
    RiskTag,
    Role,
    TrackingState,
)
from orders.reasons import REASONS_BY_CODE
from orders.rows import write_rows

# Every column a creator fills, in the order the bulk writers insert plain rows (the ERP import,
# the SLA sweep; orders/rows.py).
EVENT_COLUMNS = ("order_id", "kind", "occurred_at", "source_time", "actor_user_id", "actor_name", "actor_role", "payload")

# The bulk batch an event belongs to (workflows/bulk.py runs each order of a batch through the
# same service as one order, inside `in_batch`): every creator's payload then carries the batch
# id, so each order's timeline names the batch that changed it.
_batch: contextvars.ContextVar[int | None] = contextvars.ContextVar("order_event_batch", default=None)


@contextlib.contextmanager
def in_batch(batch_id: int) -> Iterator[None]:
    token = _batch.set(batch_id)
    try:
        yield
    finally:
        _batch.reset(token)


def _event(
    order: Order,
    kind: str,
    by: Actor,
    payload: dict,
    *,
    source_time: datetime.datetime | None = None,
    occurred_at: datetime.datetime | None = None,
    save: bool = True,
) -> OrderEvent:
    batch_id = _batch.get()
    if batch_id is not None:
        payload = {**payload, "batch": batch_id}
    event = OrderEvent(
        order=order,
        kind=kind,
        actor_user=by.user,
        actor_name=by.name[:64],
        actor_role=by.role,
        payload=payload,
        source_time=source_time,
        occurred_at=occurred_at or timezone.now(),
    )
    if save:
        event.save()
        # Every change to an order writes an event, so this is where screens hear of it
        # (orders/live.py); the bulk writers (save=False) tell them themselves.
        live.order_changed(order.pk)
    return event


# --- Creators, one per kind ----------------------------------------------------------------------


def created(
    *,
    order: Order,
    by: Actor,
    source: str,
    import_run: int | None = None,
    erp_status: str = "",
    amount_check: dict | None = None,
    source_time: datetime.datetime | None = None,
    occurred_at: datetime.datetime | None = None,
    save: bool = True,
) -> OrderEvent:
    """`amount_check`: the ERP import's Σ(数量 × 单价) + 运费 − 优惠 that differs from 应付金额
    ({"lines", "shipping_fee", "discount", "expected", "total_amount"}, amounts as strings)."""
    payload: dict = {"source": source}
    if import_run is not None:
        payload["import_run"] = import_run
    if erp_status:
        payload["erp_status"] = erp_status
    if amount_check:
        payload["amount_check"] = amount_check
    return _event(order, EventKind.CREATED, by, payload, source_time=source_time, occurred_at=occurred_at, save=save)


def status_changed(
    *,
    order: Order,
    by: Actor,
    transition: str,
    source: str,
    target: str,
    as_supervisor: bool,
    reason: str = "",
    released_hold: str = "",
    carrier: str = "",
    tracking_number: str = "",
    scan_verified: bool | None = None,
    source_time: datetime.datetime | None = None,
    occurred_at: datetime.datetime | None = None,
    save: bool = True,
) -> OrderEvent:
    payload: dict = {"transition": transition, "from": source, "to": target, "as_supervisor": as_supervisor}
    if reason:
        payload["reason"] = reason
    if released_hold:
        payload["released_hold"] = released_hold
    if tracking_number:
        payload["carrier"] = carrier
        payload["tracking_number"] = tracking_number
    if scan_verified is not None:
        payload["scan_verified"] = scan_verified
    return _event(order, EventKind.STATUS, by, payload, source_time=source_time, occurred_at=occurred_at, save=save)


def held(*, order: Order, by: Actor, reason: str, note: str, until: datetime.datetime | None) -> OrderEvent:
    return _event(order, EventKind.HOLD, by, {"reason": reason, "note": note, "until": until.isoformat() if until else None})


def released(*, order: Order, by: Actor, held_seconds: int) -> OrderEvent:
    return _event(order, EventKind.RELEASE, by, {"held_seconds": held_seconds})


def claimed(*, order: Order, by: Actor, took_over_from: str | None) -> OrderEvent:
    return _event(order, EventKind.CLAIM, by, {"took_over_from": took_over_from} if took_over_from else {})


def unclaimed(*, order: Order, by: Actor) -> OrderEvent:
    return _event(order, EventKind.UNCLAIM, by, {})


def assigned(*, order: Order, by: Actor, assignee_username: str, assignee_name: str, previous: str | None) -> OrderEvent:
    return _event(
        order, EventKind.ASSIGN, by, {"assignee": assignee_username, "assignee_name": assignee_name, "previous": previous}
    )


def note_added(*, order: Order, by: Actor, note: Note) -> OrderEvent:
    return _event(
        order, EventKind.NOTE, by, {"note_id": note.pk, "kind": note.kind, "audience": note.audience, "body": note.body}
    )


def note_acknowledged(*, order: Order, by: Actor, note: Note) -> OrderEvent:
    return _event(order, EventKind.ACKNOWLEDGE, by, {"note_id": note.pk, "body": note.body[:100]})


def feedback_asked(*, order: Order, by: Actor, request_id: int, to_role: str, question: str) -> OrderEvent:
    return _event(order, EventKind.FEEDBACK_ASK, by, {"request_id": request_id, "to_role": to_role, "question": question})


def feedback_answered(*, order: Order, by: Actor, request_id: int, answer: str) -> OrderEvent:
    return _event(order, EventKind.FEEDBACK_ANSWER, by, {"request_id": request_id, "answer": answer})


def tag_added(*, order: Order, by: Actor, tag: str, note: str = "") -> OrderEvent:
    """`note`: why a system opened it (the ghost check's disagreement, the gift a message promised)."""
    payload = {"tag": tag}
    if note:
        payload["note"] = note
    return _event(order, EventKind.TAG, by, payload)


def tag_resolved(*, order: Order, by: Actor, tag: str, resolution: str) -> OrderEvent:
    return _event(order, EventKind.UNTAG, by, {"tag": tag, "resolution": resolution})


def gift_added(*, order: Order, by: Actor, sku: str, name: str, quantity: int, rule: str) -> OrderEvent:
    return _event(order, EventKind.GIFT, by, {"sku": sku, "name": name, "quantity": quantity, "rule": rule})


def after_sales_opened(*, order: Order, by: Actor, case_id: int, kind: str, sku: str, reason: str, amount: Decimal) -> OrderEvent:
    payload = {"case_id": case_id, "action": "opened", "kind": kind, "sku": sku, "reason": reason, "amount": str(amount)}
    return _event(order, EventKind.AFTER_SALES, by, payload)


def after_sales_decided(
    *, order: Order, by: Actor, case_id: int, kind: str, approved: bool, reason: str, department: str
) -> OrderEvent:
    payload = {
        "case_id": case_id,
        "action": "approved" if approved else "rejected",
        "kind": kind,
        "reason": reason,
        "department": department,
    }
    return _event(order, EventKind.AFTER_SALES, by, payload)


# The actions that end a request (AddressChangeStatus outcomes): workflows/reactions.py pushes
# each to the customer.
ADDRESS_CHANGE_OUTCOMES = ("applied", "intercepted", "rerouted", "failed", "refused", "rejected")


def address_change(
    *,
    order: Order,
    by: Actor,
    change_id: int | None,
    action: str,
    before: dict | None = None,
    after: dict | None = None,
    rung: str = "",
    reason: str = "",
    source: str = "",
) -> OrderEvent:
    """action: requested / applied / rejected / with_carrier / intercepted / rerouted / failed /
    refused / reprinted (a request), corrected (fixed on the card). `before` and `after` are the
    receiver fields, so old and new address stay on the timeline."""
    payload: dict = {"change_id": change_id, "action": action}
    if before:
        payload["before"] = before
    if after:
        payload["after"] = after
    if rung:
        payload["rung"] = rung
    if reason:
        payload["reason"] = reason
    if source:
        payload["source"] = source
    return _event(order, EventKind.ADDRESS_CHANGE, by, payload)


def carrier_set(*, order: Order, by: Actor, carrier: str, previous: str) -> OrderEvent:
    return _event(order, EventKind.CARRIER, by, {"carrier": carrier, "previous": previous})


def waybill_changed(
    *, order: Order, by: Actor, change: str, carrier: str, tracking_number: str, shipment_id: int, previous: str, reason: str
) -> OrderEvent:
    payload = {
        "change": change,
        "carrier": carrier,
        "tracking_number": tracking_number,
        "shipment_id": shipment_id,
        "previous": previous,
        "reason": reason,
    }
    return _event(order, EventKind.WAYBILL, by, payload)


def tracking_changed(
    *,
    order: Order,
    by: Actor,
    tracking_number: str,
    tracking_state: str,
    context: str,
    location: str,
    source_time: datetime.datetime | None,
) -> OrderEvent:
    payload = {"tracking_number": tracking_number, "tracking_state": tracking_state, "context": context, "location": location}
    return _event(order, EventKind.TRACKING, by, payload, source_time=source_time)


def import_updated(
    *,
    order: Order,
    by: Actor,
    fields: list[str],
    before: dict,
    after: dict,
    import_run: int | None,
    source_time: datetime.datetime | None,
    amount_check: dict | None = None,
    occurred_at: datetime.datetime | None = None,
    save: bool = True,
) -> OrderEvent:
    payload = {"fields": fields, "before": before, "after": after, "import_run": import_run}
    if amount_check:  # as for `created`
        payload["amount_check"] = amount_check
    return _event(order, EventKind.IMPORT_UPDATE, by, payload, source_time=source_time, occurred_at=occurred_at, save=save)


def sync_refused(
    *, order: Order, by: Actor, action: str, event_id: str, reason: str, source_time: datetime.datetime | None
) -> OrderEvent:
    """An outside system asked for a change the guards refused: part of the order's story."""
    return _event(
        order, EventKind.SYNC_REFUSED, by, {"action": action, "event_id": event_id, "reason": reason}, source_time=source_time
    )


def phone_revealed(*, order: Order, by: Actor, field: str = "receiver_phone") -> OrderEvent:
    return _event(order, EventKind.PHONE_REVEAL, by, {"field": field})


def rush_filed(*, order: Order, by: Actor, reason: str, deadline: datetime.datetime, new_order: bool) -> OrderEvent:
    return _event(order, EventKind.RUSH, by, {"reason": reason, "deadline": deadline.isoformat(), "new_order": new_order})


def sla_breaches(*, breaches: Iterable[tuple[int, str, datetime.datetime, str, bool]], occurred_at: datetime.datetime) -> int:
    """The SLA sweep's events, many orders at once: one per (order id, stage, due time,
    responsible role, rush), written as plain rows (orders/rows.py), not a model instance each
    (2,000 breaches in one sweep). The caller tells the screens (orders/live.py)."""
    by = Actor.system()
    batch_id = _batch.get()
    rows = []
    for order_id, stage, due_at, responsible_role, rush in breaches:
        payload = {"stage": stage, "due_at": due_at.isoformat(), "responsible_role": responsible_role, "rush": rush}
        if batch_id is not None:
            payload["batch"] = batch_id
        rows.append((order_id, EventKind.SLA_BREACH.value, occurred_at, None, None, by.name, by.role, payload))
    return write_rows(OrderEvent, EVENT_COLUMNS, rows)


# --- The describer -------------------------------------------------------------------------------


def _label(choices, code: str) -> str:
    # try/except rather than `code in choices.values`, which builds the list of values on every
    # call (this runs hundreds of times on the lookup page and the board).
    try:
        return str(choices(code).label)
    except ValueError:
        return code or ""


def address_text(fields: dict) -> str:
    """A receiver in one line ("王丽 浙江省杭州市萧山区市心北路100号"): the timeline, notes, the inbox."""
    return _address(fields)


def _address(fields: dict) -> str:
    return f"{fields.get('receiver_name', '')} {fields.get('province', '')}{fields.get('city', '')}{fields.get('district', '')}{fields.get('address', '')}".strip()


def _when(iso: str | None) -> str:
    if not iso:
        return ""
    try:
        return date_format(timezone.localtime(datetime.datetime.fromisoformat(iso)), "m-d H:i")
    except ValueError:
        return iso


def _status(payload: dict) -> str:
    text = _("%(from)s → %(to)s") % {
        "from": _label(OrderStatus, payload.get("from", "")),
        "to": _label(OrderStatus, payload.get("to", "")),
    }
    if payload.get("reason"):
        text += _(" (reason: %(reason)s)") % {"reason": payload["reason"]}
    if payload.get("tracking_number"):
        text += f" · {_label(Carrier, payload.get('carrier', ''))} {payload['tracking_number']}"
    if payload.get("scan_verified") is False:
        text += _(" — packed without scan verification here")
    if payload.get("as_supervisor"):
        text += _(" — done by a supervisor on the role's behalf")
    return text


def _after_sales(payload: dict) -> str:
    actions = {"opened": _("opened"), "approved": _("approved"), "rejected": _("rejected")}
    text = _("%(kind)s request %(action)s") % {
        "kind": _label(AfterSalesKind, payload.get("kind", "")),
        "action": actions.get(payload.get("action"), ""),
    }
    if payload.get("department"):
        text += _(" by %(department)s") % {"department": payload["department"]}
    if payload.get("reason"):
        text += _(", reason: %(reason)s") % {"reason": payload["reason"]}
    return text


def _address_change(payload: dict) -> str:
    actions = {
        "requested": _("requested"),
        "applied": _("applied"),
        "rejected": _("rejected"),
        "corrected": _("corrected on the card"),
        "with_carrier": _("asked of the carrier"),
        "intercepted": _("intercepted by the carrier"),
        "rerouted": _("rerouted by the carrier"),
        "failed": _("failed"),
        "refused": _("refused"),
        "reprinted": _("waybill reprinted"),
    }
    text = _("Address change %(action)s") % {"action": actions.get(payload.get("action"), "")}
    if payload.get("reason"):
        text += _(" (%(reason)s)") % {"reason": payload["reason"]}
    if payload.get("before") and payload.get("after"):
        return text + _(": %(old)s → %(new)s") % {"old": _address(payload["before"]), "new": _address(payload["after"])}
    if payload.get("after"):
        return text + f": {_address(payload['after'])}"
    if payload.get("address"):  # requests recorded before the creators existed
        return text + f": {_address(payload)}"
    return text


def _sla_breach(payload: dict) -> str:
    stage, due = _label(OrderStatus, payload.get("stage", "")), _when(payload.get("due_at"))
    if payload.get("rush"):
        return _("Missed its expected completion time %(due)s (in %(stage)s).") % {"due": due, "stage": stage}
    if "rush" not in payload and payload.get("message"):  # breaches recorded before the creators existed
        return payload["message"]
    return _("Over its time limit in %(stage)s since %(due)s (responsible: %(role)s).") % {
        "stage": stage,
        "due": due,
        "role": _label(Role, payload.get("responsible_role", "")),
    }


def _amount_check(payload: dict) -> str:
    check = payload.get("amount_check")
    if not check:
        return ""
    return _(
        " — amount payable %(total)s does not match the lines %(lines)s + shipping %(fee)s − discount %(discount)s = %(expected)s"
    ) % {
        "total": check.get("total_amount", ""),
        "lines": check.get("lines", ""),
        "fee": check.get("shipping_fee", ""),
        "discount": check.get("discount", ""),
        "expected": check.get("expected", ""),
    }


WAYBILL_CHANGES = {
    "reship": gettext_noop("Reshipped"),
    "swap": gettext_noop("Carrier swapped"),
    "split": gettext_noop("Another parcel"),
}


def _waybill(payload: dict) -> str:
    text = _("%(change)s: %(carrier)s %(number)s") % {
        "change": _(WAYBILL_CHANGES[payload["change"]])
        if payload.get("change") in WAYBILL_CHANGES
        else payload.get("change", ""),
        "carrier": _label(Carrier, payload.get("carrier", "")),
        "number": payload.get("tracking_number", ""),
    }
    if payload.get("previous"):
        text += _(" (replaces %(number)s)") % {"number": payload["previous"]}
    if payload.get("reason"):
        text += f" — {payload['reason']}"
    return text


# The transitions, as a sentence names them ("Done: approve." on the card, a refused request from the WMS).
TRANSITION_LABELS = {
    "approve": gettext_noop("approve"),
    "start_picking": gettext_noop("start picking"),
    "pack": gettext_noop("pack"),
    "ship": gettext_noop("ship"),
    "complete": gettext_noop("complete"),
    "cancel": gettext_noop("cancel"),
}


def _fields(names: list[str]) -> str:
    labels = []
    for name in names:
        try:
            field = Order._meta.get_field(name)
        except FieldDoesNotExist:
            labels.append(name)
            continue
        # "lines" (the order's items) is a reverse relation: it has no verbose_name of its own.
        labels.append(str(getattr(field, "verbose_name", None) or _("items")))
    # The list separator is the reader's: "、" in Chinese, ", " in English.
    return pgettext("list separator", ", ").join(labels)


# The systems that act on orders (Actor.system(name)), as the timelines name them: the SLA sweep
# and reactions ("system"), the tracking integration ("kuaidi100"), the ERP import and the
# inbound status events (their source: "ERP", "WMS"), the benchmark's generator ("bench").
SYSTEM_ACTORS = {
    "system": gettext_noop("System"),
    "kuaidi100": gettext_noop("Kuaidi100"),
    "ERP": gettext_noop("ERP system"),
    "WMS": gettext_noop("Warehouse system"),
    "bench": gettext_noop("Benchmark data"),
    # Issue 16: the checks that open exceptions themselves (workflows/ghosts.py, services' gift check).
    "ghost check": gettext_noop("Ghost-order check"),
    "gift check": gettext_noop("Gift check"),
    # Issue 13: the customer asking for another address on the self-service page.
    "customer": gettext_noop("Customer (self-service page)"),
    # Issue 15: the mini-program refusing the shipping information we uploaded.
    "wechat-miniprogram": gettext_noop("WeChat mini-program"),
    # Issue 15: the Douyin shop's pushes and pulls (integrations/douyin).
    "douyin": gettext_noop("Douyin shop"),
}


def actor_label(event: OrderEvent) -> str:
    """Who did it, as a reader names them: a person's name, or the system's name in the reader's language."""
    if event.actor_user_id is None and event.actor_name in SYSTEM_ACTORS:
        return _(SYSTEM_ACTORS[event.actor_name])
    return event.actor_name


def name_label(name: str) -> str:
    """A stored actor name (a gift line's `gift_added_by`) as a reader names it: a system's in the
    reader's language, a person's as it is."""
    return _(SYSTEM_ACTORS[name]) if name in SYSTEM_ACTORS else name


def describe(event: OrderEvent) -> str:
    """What happened, in one line of the reader's language (the card's and the lookup's timeline)."""
    text = _describe(event)
    batch_id = (event.payload or {}).get("batch")
    if batch_id:
        text += _(" (bulk batch #%(batch)s)") % {"batch": batch_id}
    return text


def _describe(event: OrderEvent) -> str:
    payload = event.payload or {}
    kind = event.kind
    if kind == EventKind.STATUS:
        return _status(payload)
    if kind == EventKind.CREATED:
        return _("Order created (%(source)s)") % {"source": actor_label(event)} + _amount_check(payload)
    if kind == EventKind.HOLD:
        return _("Put on hold: %(reason)s %(note)s") % {
            "reason": _label(HoldReason, payload.get("reason", "")),
            "note": payload.get("note", ""),
        }
    if kind == EventKind.RELEASE:
        return _("Hold released")
    if kind == EventKind.CLAIM:
        if payload.get("took_over_from"):
            return _("Took over from %(name)s") % {"name": payload["took_over_from"]}
        return _("Is operating this order")
    if kind == EventKind.UNCLAIM:
        return _("Let the order go")
    if kind == EventKind.ASSIGN:
        return _("Assigned to %(name)s") % {"name": payload.get("assignee_name") or payload.get("assignee", "")}
    if kind == EventKind.NOTE:
        return _("Note for %(audience)s: %(body)s") % {
            "audience": _label(NoteAudience, payload.get("audience", "")),
            "body": payload.get("body", ""),
        }
    if kind == EventKind.ACKNOWLEDGE:
        return _("Acknowledged the note: %(body)s") % {"body": payload.get("body", "")}
    if kind == EventKind.FEEDBACK_ASK:
        return _("Asked %(role)s: %(question)s") % {
            "role": _label(Role, payload.get("to_role", "")),
            "question": payload.get("question", ""),
        }
    if kind == EventKind.FEEDBACK_ANSWER:
        return _("Answered: %(answer)s") % {"answer": payload.get("answer", "")}
    if kind in (EventKind.TAG, EventKind.UNTAG):
        text = _label(RiskTag, payload.get("tag", "")) or _label(EventKind, kind)
        reason = REASONS_BY_CODE.get(payload.get("tag", ""))
        if kind == EventKind.TAG and reason is not None:
            # Opened: whose it is (the catalogue's owner, orders/reasons.py).
            text = _("%(reason)s (owner: %(role)s)") % {"reason": text, "role": _label(Role, reason.owner)}
        if payload.get("resolution") or payload.get("note"):
            text += f": {payload.get('resolution') or payload['note']}"
        return text
    if kind == EventKind.GIFT:
        text = _("Gift added: %(name)s × %(quantity)s") % {
            "name": payload.get("name", ""),
            "quantity": payload.get("quantity", 1),
        }
        if payload.get("rule"):
            text += _(" (gift rule %(rule)s)") % {"rule": payload["rule"]}
        return text
    if kind == EventKind.AFTER_SALES:
        return _after_sales(payload)
    if kind == EventKind.ADDRESS_CHANGE:
        return _address_change(payload)
    if kind == EventKind.CARRIER:
        return _("Carrier channel: %(carrier)s") % {"carrier": _label(Carrier, payload.get("carrier", ""))}
    if kind == EventKind.WAYBILL:
        return _waybill(payload)
    if kind == EventKind.TRACKING:
        text = _label(TrackingState, payload.get("tracking_state", "")) or _label(EventKind, kind)
        if payload.get("context"):
            text += f" — {payload['context']}"
        return text
    if kind == EventKind.IMPORT_UPDATE:
        return _("Updated from %(source)s: %(fields)s") % {
            "source": actor_label(event),
            "fields": _fields(payload.get("fields", [])),
        } + _amount_check(payload)
    if kind == EventKind.SYNC_REFUSED:
        return _("%(source)s asked for %(action)s; refused: %(reason)s") % {
            "source": actor_label(event),
            "action": _(TRANSITION_LABELS[payload["action"]])
            if payload.get("action") in TRANSITION_LABELS
            else payload.get("action", ""),
            "reason": payload.get("reason", ""),
        }
    if kind == EventKind.PHONE_REVEAL:
        return _("Viewed the full phone number")
    if kind == EventKind.RUSH:
        return _("🔥 Rush: %(reason)s (expected by %(deadline)s)") % {
            "reason": payload.get("reason", ""),
            "deadline": _when(payload.get("deadline")),
        }
    if kind == EventKind.SLA_BREACH:
        return _sla_breach(payload)
    return _label(EventKind, kind)
