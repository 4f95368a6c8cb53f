"""Every write to an order goes through here, following one recipe (docs/architecture.md):

transaction.atomic() → select_for_update() on the order row → version, permission and guard
checks → change → save(update_fields=…) → an OrderEvent naming the actor → side effects after
commit.

Two people acting on the same order at once: the row lock serialises them, and the version
number the second one's form was rendered with no longer matches, so the second is told who
changed the order instead of silently overwriting it (OrderConflict).
"""

from __future__ import annotations

import datetime
import functools
import logging
import re
import secrets
from decimal import Decimal, InvalidOperation

from celery import current_app
from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection, transaction
from django.db.models import Q
from django.db.models.expressions import Col
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext as _
from django_fsm import TransitionNotAllowed, can_proceed

from orders import clock, events, packing, rules
from orders.access import Actor
from orders.models import (
    ACTIVE_STATUSES,
    ADDRESS_CHANGE_WAITING,
    AddressChangeRequest,
    AddressChangeRung,
    AddressChangeSource,
    AddressChangeStatus,
    AfterSalesCase,
    AfterSalesKind,
    AfterSalesStatus,
    Carrier,
    Customer,
    EventKind,
    FeedbackRequest,
    HoldReason,
    Note,
    NoteAcknowledgement,
    NoteAudience,
    NoteKind,
    Order,
    OrderLine,
    OrderSource,
    OrderStatus,
    OrderTag,
    Product,
    RiskTag,
    Role,
    Shipment,
    StageRule,
)
from orders.phones import is_contact_number, normalize_mobile
from orders.reasons import (
    ADDRESS_CONFIRMED,
    PAYMENT_COMPLETED,
    REASONS_BY_CODE,
    RELEASE_DATE,
    RELEASE_LABELS,
    STOCK_ARRIVED,
    reason_for_erp,
)

logger = logging.getLogger(__name__)
# Named, not imported: orders is the ground floor and knows nothing of the floors above.
REACT_TASK = "workflows.react_to_status_event"
# The statuses whose entry something reacts to (workflows/reactions.py reads this set too): only
# these transitions nudge the worker; a broker round trip for the others would find nothing to do.
REACTED_STATUSES = frozenset({OrderStatus.SHIPPED})


class OrderError(Exception):
    """A refused action; the message is for the user, in their language."""


class NotAllowed(OrderError):
    pass


class TransitionBlocked(OrderError):
    def __init__(self, reasons: list[str]):
        self.reasons = reasons
        super().__init__("；".join(reasons))


class OrderConflict(OrderError):
    """Someone else changed the order since this user's screen was rendered."""


# --- The recipe's shared steps -----------------------------------------------------------------


# What the approve / start_picking / pack guards and the missing-gift check ask of every order
# (orders/rules.py _fact), read in the statement that locks it: three queries fewer per transition.
# Raw SQL because the queryset (its ~60 columns, the subqueries) costs twice the Python to compile,
# and read through a plain cursor because a raw queryset maps its columns to the model's again on
# every call. The columns are named, not o.*: a prepared statement (beile/settings.py) whose
# result grows a column after a migration would fail until the connection is renewed.
_ORDER, _LINE, _TAG, _NOTE = (model._meta.db_table for model in (Order, OrderLine, OrderTag, Note))
_ORDER_FIELDS = Order._meta.concrete_fields
LOCKED_FACTS = ("fact_has_lines", "fact_fuzzy_address", "fact_has_notes")
LOCK_WITH_FACTS_SQL = f"""SELECT {", ".join(f'o."{field.column}"' for field in _ORDER_FIELDS)},
      EXISTS (SELECT 1 FROM "{_LINE}" WHERE "order_id" = o."id") AS fact_has_lines,
      EXISTS (SELECT 1 FROM "{_TAG}" WHERE "order_id" = o."id" AND "tag" = %s AND "resolved_at" IS NULL) AS fact_fuzzy_address,
      EXISTS (SELECT 1 FROM "{_NOTE}" WHERE "order_id" = o."id") AS fact_has_notes
    FROM "{_ORDER}" o WHERE o."{{key}}" = %s"""  # noqa: S608 - table and column names from the models, values bound


@functools.cache
def _order_converters(vendor: str) -> list[tuple[int, Col, list]]:
    """The ORM's conversions of the order's columns on this database: none on PostgreSQL;
    SQLite returns dates, decimals and booleans as text or numbers. Worked out once per backend
    (~0.1 ms of Python)."""
    converters = []
    for index, field in enumerate(_ORDER_FIELDS):
        column = field.get_col(_ORDER)
        found = connection.ops.get_db_converters(column) + field.get_db_converters(connection)
        if found:
            converters.append((index, column, found))
    return converters


def _lock(order: Order, expected_version: int | None, *, facts: bool = False) -> Order:
    if facts:
        # By its key, or by its number for a caller that has not read the order (the card's POST).
        key, value = ("id", order.pk) if order.pk is not None else ("order_number", order.order_number)
        sql = LOCK_WITH_FACTS_SQL.format(key=key)
        sql += " FOR UPDATE OF o" if connection.features.has_select_for_update_of else ""
        with connection.cursor() as cursor:
            cursor.execute(sql, [RiskTag.FUZZY_ADDRESS.value, value])
            row = cursor.fetchone()
        if row is None:
            raise Order.DoesNotExist
        values = list(row[: len(_ORDER_FIELDS)])
        for index, column, converters in _order_converters(connection.vendor):
            for convert in converters:
                values[index] = convert(values[index], column, connection)
        locked = Order.from_db(connection.alias, None, values)
        locked.__dict__.update(zip(LOCKED_FACTS, row[len(_ORDER_FIELDS) :], strict=True))
    else:
        locked = Order.objects.select_for_update().get(pk=order.pk)
    if expected_version is not None and locked.version != expected_version:
        # Viewing a phone number is logged but changes nothing: name the last real change.
        last = locked.events.exclude(kind=EventKind.PHONE_REVEAL).order_by("-occurred_at", "-id").first()
        who = events.actor_label(last) if last else _("someone")
        when = date_format(timezone.localtime(last.occurred_at), "H:i:s") if last else ""
        raise OrderConflict(
            _("%(who)s changed this order at %(when)s; the card now shows the latest state. Please check and try again.")
            % {"who": who, "when": when}
        )
    return locked


def _save(order: Order, fields: list[str]) -> None:
    order.version += 1
    order.save(update_fields=[*fields, "version", "updated_at"])


def _acting_role(by: Actor, allowed: set[str]) -> str:
    """The role in which `by` may act, or NotAllowed. Systems (ERP, WMS, carrier) act as themselves."""
    if by.is_system:
        return ""
    mine = by.roles & allowed
    if mine:
        return sorted(mine)[0]
    if rules.SUPERVISOR in by.roles:
        return rules.SUPERVISOR
    raise NotAllowed(_("Your role may not do this."))


def check_may(by: Actor, action: str) -> str:
    """The role in which `by` may run `action` (rules.ACTION_ROLES), or NotAllowed: for a caller
    that must know before it asks an outside system (workflows/address_changes.py)."""
    return _acting_role(by, rules.ACTION_ROLES[action])


def _as(by: Actor, role: str) -> Actor:
    return Actor(name=by.name, role=role, user=by.user)


# --- Status transitions ------------------------------------------------------------------------


# The transitions order_transition runs; ship and cancel have their own services because they
# need more input. The card's POST hands these the order by its number, unread (orders/views.py).
TRANSITIONS_BY_NUMBER = frozenset(rules.TRANSITION_ROLES) - {"ship", "cancel"}


def order_transition(
    *,
    order: Order,
    name: str,
    by: Actor,
    expected_version: int | None = None,
    source_time: datetime.datetime | None = None,
) -> Order:
    """Run one status transition (approve, start_picking, pack, complete; ship and cancel have
    their own services because they need more input)."""
    if name not in TRANSITIONS_BY_NUMBER:
        # Shipping without a waybill or cancelling without a reason must not be possible here.
        raise NotAllowed(_("Unknown action."))
    with transaction.atomic():
        order = _lock(order, expected_version, facts=True)
        try:
            if name == "pack":
                return _pack(order, by, source_time=source_time)
            return _apply_transition(order, name, by, source_time=source_time)
        finally:
            # The facts hold for this transaction only: a caller that goes on to add a line or a
            # tag must not have the guards read them.
            for fact in LOCKED_FACTS:
                order.__dict__.pop(fact, None)


def _pack(order: Order, by: Actor, *, source_time: datetime.datetime | None) -> Order:
    """Pack verification (orders/packing.py) on every path: a person, on the card or the PDA, must
    have scanned every item and read every warehouse note; an outside system (the WMS) reports a
    parcel it packed itself, which is recorded and marked as not verified here."""
    if by.is_system:
        order.packed_unverified = True
        return _apply_transition(
            order, "pack", by, source_time=source_time, extra={"scan_verified": False}, also_changed=("packed_unverified",)
        )
    _acting_role(by, rules.TRANSITION_ROLES["pack"])  # who may pack is told before what is missing
    if can_proceed(order.pack, check_conditions=False):  # and a wrong status before any guard
        refusals = packing.pack_check(order, by).reasons
        if refusals:
            raise TransitionBlocked(refusals)
    return _apply_transition(order, "pack", by, source_time=source_time, extra={"scan_verified": True})


def _apply_transition(
    order: Order,
    name: str,
    by: Actor,
    *,
    reason: str = "",
    source_time: datetime.datetime | None = None,
    extra: dict | None = None,
    also_changed: tuple[str, ...] = (),
) -> Order:
    role = _acting_role(by, rules.TRANSITION_ROLES[name])
    source = order.status
    # The status first: a guard's reason is meaningless for an order that cannot take this step anyway.
    if not can_proceed(getattr(order, name), check_conditions=False):
        raise TransitionBlocked(
            [_("This order is %(status)s; that action is not possible now.") % {"status": order.get_status_display()}]
        )
    try:
        # The transition's FSM conditions are the guards (rules.can_*), so they run once
        # here; their reasons are only worth computing when one of them says no.
        getattr(order, name)()
    except TransitionNotAllowed:
        raise TransitionBlocked(rules.BLOCKERS[name](order)) from None
    now = timezone.now()
    order.stage_entered_at = now
    setattr(order, f"{order.status}_at", now)
    fields = ["status", "stage_entered_at", f"{order.status}_at", *also_changed, *clock.clock_on_stage_entered(order)]
    released_hold = ""
    if name == "cancel":
        order.cancel_reason = reason
        fields.append("cancel_reason")
        if order.is_held:
            # A cancelled order leaves the held list (and the auto-release scan) with its hold.
            released_hold = order.hold_reason
            _clear_hold(order)
            fields += HOLD_FIELDS
    if order.claimed_by_id is not None:
        # A new stage belongs to its own role: whoever was operating the old stage lets go.
        order.claimed_by = None
        order.claimed_at = None
        fields += ["claimed_by", "claimed_at"]
    if source_time is not None:
        order.source_updated_at = source_time
        fields.append("source_updated_at")
    _save(order, fields)
    event = events.status_changed(
        order=order,
        by=_as(by, role),
        transition=name,
        source=source,
        target=order.status,
        as_supervisor=role == rules.SUPERVISOR,
        reason=reason,
        released_hold=released_hold,
        source_time=source_time,
        **(extra or {}),
    )
    if name in ("approve", "start_picking"):
        order_flag_missing_gift(order)
    # What reacts to a status change (the customer's push, the carrier subscription) lives on a
    # higher floor (workflows/reactions.py) and reads it from this event, which commits with the
    # change: the nudge below makes it prompt, the relay there makes it certain (a crash or a
    # broker outage between commit and nudge loses nothing).
    if order.status in REACTED_STATUSES:
        transaction.on_commit(lambda: _nudge_reactions(event.pk))
    return order


def _nudge_reactions(event_id: int) -> None:
    try:
        current_app.send_task(REACT_TASK, args=[event_id], retry=False)
    except Exception:  # noqa: BLE001 - any broker error is survivable: the relay finds the event
        logger.warning("broker unavailable; status event %s left to the reactions relay", event_id)


# str.isalnum() would also accept Chinese characters; waybill numbers are ASCII.
TRACKING_NUMBER = re.compile(r"[A-Z0-9-]{1,32}")


def order_ship(
    *,
    order: Order,
    by: Actor,
    carrier_code: str,
    tracking_number: str,
    expected_version: int | None = None,
    source_time: datetime.datetime | None = None,
) -> Order:
    """Hand the parcel to a carrier: the waybill is recorded and the order moves to shipped."""
    tracking_number = (tracking_number or "").strip().upper()
    if not carrier_code or not tracking_number:
        raise TransitionBlocked([_("Shipping needs a carrier and a tracking number.")])
    if carrier_code not in Carrier.values:
        raise TransitionBlocked([_("Unknown carrier: %(code)s.") % {"code": carrier_code}])
    if not TRACKING_NUMBER.fullmatch(tracking_number):
        raise TransitionBlocked([_("A tracking number has at most 32 letters and digits.")])
    with transaction.atomic():
        order = _lock(order, expected_version)
        if Shipment.objects.filter(carrier_code=carrier_code, tracking_number=tracking_number).exclude(order=order).exists():
            raise TransitionBlocked(
                [_("Tracking number %(number)s already belongs to another order.") % {"number": tracking_number}]
            )
        # The order shows the carrier the parcel actually left with (saved with the transition);
        # set first, so the ship guards (cold chain) judge the carrier it leaves with.
        order.carrier_code = carrier_code
        order = _apply_transition(
            order,
            "ship",
            by,
            source_time=source_time,
            extra={"carrier": carrier_code, "tracking_number": tracking_number},
            also_changed=("carrier_code",),
        )
        Shipment.objects.get_or_create(
            order=order,
            carrier_code=carrier_code,
            tracking_number=tracking_number,
            defaults={"channel": carrier_code, "created_by": by.user},
        )
    return order


WAYBILL_CHANGES = ("reship", "swap", "split")


def order_change_waybill(
    *,
    order: Order,
    by: Actor,
    change: str,
    carrier_code: str,
    tracking_number: str,
    replaces: Shipment | None = None,
    reason: str = "",
) -> Shipment:
    """A shipped order's parcel changes: a reship or a carrier swap replaces a waybill, a split
    adds one. The new parcel is recorded with a WAYBILL event; after commit the reactions
    (workflows/reactions.py) subscribe its tracking and tell the customer."""
    tracking_number = (tracking_number or "").strip().upper()
    if change not in WAYBILL_CHANGES:
        raise OrderError(_("Choose reship, carrier swap or another parcel."))
    if carrier_code not in Carrier.values:
        raise OrderError(_("Unknown carrier: %(code)s.") % {"code": carrier_code})
    if not TRACKING_NUMBER.fullmatch(tracking_number):
        raise OrderError(_("A tracking number has at most 32 letters and digits."))
    with transaction.atomic():
        order = _lock(order, None)
        role = _acting_role(by, rules.ACTION_ROLES["change_waybill"])
        if order.status != OrderStatus.SHIPPED:
            raise OrderError(_("A waybill can only change while the order is shipped."))
        if Shipment.objects.filter(carrier_code=carrier_code, tracking_number=tracking_number).exists():
            raise OrderError(_("Tracking number %(number)s is already recorded.") % {"number": tracking_number})
        previous = ""
        if change != "split":
            replaced = (
                Shipment.objects.select_for_update()
                .filter(order=order, replaced_at__isnull=True, pk=getattr(replaces, "pk", None))
                .first()
            )
            if replaced is None:
                raise OrderError(_("Choose the waybill this one replaces."))
            replaced.replaced_at = timezone.now()
            replaced.save(update_fields=["replaced_at"])
            previous = replaced.tracking_number
        shipment = Shipment.objects.create(
            order=order, carrier_code=carrier_code, tracking_number=tracking_number, channel=carrier_code, created_by=by.user
        )
        event = events.waybill_changed(
            order=order,
            by=_as(by, role),
            change=change,
            carrier=carrier_code,
            tracking_number=tracking_number,
            shipment_id=shipment.pk,
            previous=previous,
            reason=(reason or "").strip()[:200],
        )
        transaction.on_commit(lambda: _nudge_reactions(event.pk))
    return shipment


def order_cancel(*, order: Order, by: Actor, reason: str, expected_version: int | None = None) -> Order:
    reason = (reason or "").strip()
    if not reason:
        raise TransitionBlocked([_("Cancelling needs a reason.")])
    with transaction.atomic():
        order = _lock(order, expected_version)
        return _apply_transition(order, "cancel", by, reason=reason)


def order_set_carrier(*, order: Order, by: Actor, carrier_code: str, expected_version: int | None = None) -> Order:
    """Choose the carrier channel (e.g. SF cold chain for cold-chain items) before shipping."""
    if carrier_code not in Carrier.values:
        raise OrderError(_("Unknown carrier: %(code)s.") % {"code": carrier_code})
    with transaction.atomic():
        order = _lock(order, expected_version)
        role = _acting_role(by, rules.ACTION_ROLES["set_carrier"])
        if order.status not in ACTIVE_STATUSES:
            raise OrderError(_("The carrier can only change before shipping."))
        previous = order.carrier_code
        order.carrier_code = carrier_code
        _save(order, ["carrier_code"])
        events.carrier_set(order=order, by=_as(by, role), carrier=carrier_code, previous=previous)
    return order


# --- Hold, claim --------------------------------------------------------------------------------


def order_hold(
    *,
    order: Order,
    by: Actor,
    reason: str,
    until: datetime.datetime | None,
    note: str = "",
    owner=None,
    expected_version: int | None = None,
) -> Order:
    if reason not in HoldReason.values:
        raise OrderError(_("Choose a hold reason."))
    if until is not None and until <= timezone.now():
        raise OrderError(_("The expected release time must be in the future."))
    with transaction.atomic():
        order = _lock(order, expected_version)
        role = _acting_role(by, rules.ACTION_ROLES["hold"])
        if order.status not in ACTIVE_STATUSES:
            raise OrderError(_("Only an order that has not shipped can be put on hold."))
        if order.is_held:
            raise OrderError(_("The order is already on hold."))
        order.is_held = True
        order.hold_reason = reason
        order.hold_note = note.strip()
        order.hold_until = until
        order.hold_owner = owner or by.user
        order.held_at = timezone.now()
        _save(order, [*HOLD_FIELDS, *clock.clock_on_hold(order)])
        events.held(order=order, by=_as(by, role), reason=reason, note=order.hold_note, until=until)
    return order


HOLD_FIELDS = ["is_held", "hold_reason", "hold_note", "hold_until", "hold_owner", "held_at"]


def _clear_hold(order: Order) -> None:
    order.is_held = False
    order.hold_reason = ""
    order.hold_note = ""
    order.hold_until = None
    order.hold_owner = None
    order.held_at = None


def order_release(*, order: Order, by: Actor, expected_version: int | None = None) -> Order:
    with transaction.atomic():
        order = _lock(order, expected_version)
        role = _acting_role(by, rules.ACTION_ROLES["hold"])
        if not order.is_held:
            raise OrderError(_("The order is not on hold."))
        held_seconds = int((timezone.now() - order.held_at).total_seconds()) if order.held_at else 0
        clock_fields = clock.clock_on_release(order)  # before the hold's start time is cleared
        _clear_hold(order)
        _save(order, [*HOLD_FIELDS, *clock_fields])
        events.released(order=order, by=_as(by, role), held_seconds=held_seconds)
    return order


def release_expired_holds(*, now: datetime.datetime | None = None) -> int:
    """Auto-release: a hold whose expected release time has passed lets go by itself."""
    now = now or timezone.now()
    released = 0
    for order in Order.objects.filter(is_held=True, hold_until__lte=now).only("pk"):
        try:
            order_release(order=order, by=Actor.system())
            released += 1
        except OrderError:
            continue  # released by a person in the meantime
    return released


def order_claim(*, order: Order, by: Actor, expected_version: int | None = None) -> Order:
    """ "Who is operating now" on the card: one person at a time; a supervisor may take over."""
    with transaction.atomic():
        order = _lock(order, expected_version)
        role = _acting_role(by, rules.ACTION_ROLES["claim"])
        if order.claimed_by_id == by.user.pk:
            return order
        if order.claimed_by_id is not None and role != rules.SUPERVISOR:
            raise OrderConflict(
                _("%(name)s has been operating this order since %(when)s.")
                % {
                    "name": order.claimed_by.get_full_name() or order.claimed_by.get_username(),
                    "when": date_format(timezone.localtime(order.claimed_at), "H:i"),
                }
            )
        previous = order.claimed_by.get_username() if order.claimed_by_id else None
        order.claimed_by = by.user
        order.claimed_at = timezone.now()
        _save(order, ["claimed_by", "claimed_at"])
        events.claimed(order=order, by=_as(by, role), took_over_from=previous)
    return order


def order_unclaim(*, order: Order, by: Actor, expected_version: int | None = None) -> Order:
    with transaction.atomic():
        order = _lock(order, expected_version)
        if order.claimed_by_id is None:
            return order
        if order.claimed_by_id != by.user.pk and rules.SUPERVISOR not in by.roles:
            raise NotAllowed(_("Only the person operating the order or a supervisor can let it go."))
        role = _acting_role(by, set(by.roles))
        order.claimed_by = None
        order.claimed_at = None
        _save(order, ["claimed_by", "claimed_at"])
        events.unclaimed(order=order, by=_as(by, role))
    return order


# --- Notes and feedback ------------------------------------------------------------------------


def order_add_note(*, order: Order, by: Actor, body: str, kind: str = NoteKind.INFO, audience: str = "") -> Note:
    body = (body or "").strip()
    if not body:
        raise OrderError(_("A note cannot be empty."))
    if len(body) > 1000:
        raise OrderError(_("A note has at most 1000 characters."))
    if kind not in NoteKind.values or audience not in NoteAudience.values:
        raise OrderError(_("Choose a note kind and audience from the list."))
    with transaction.atomic():
        order = _lock(order, None)
        role = _acting_role(by, set(by.roles)) if not by.is_system else ""
        note = Note.objects.create(order=order, author=by.user, author_role=role, kind=kind, audience=audience, body=body)
        # A new note changes what others must see, so it bumps the version like any change.
        _save(order, [])
        events.note_added(order=order, by=_as(by, role), note=note)
    return note


def note_acknowledge(*, note: Note, by: Actor) -> NoteAcknowledgement:
    with transaction.atomic():
        order = _lock(note.order, None)
        role = _acting_role(by, set(by.roles))
        ack, created = NoteAcknowledgement.objects.get_or_create(note=note, user=by.user, defaults={"role": role})
        if created:
            _save(order, [])
            events.note_acknowledged(order=order, by=_as(by, role), note=note)
    return ack


def feedback_request(*, order: Order, by: Actor, to_role: str, question: str, to_user=None) -> FeedbackRequest:
    question = (question or "").strip()
    if not question:
        raise OrderError(_("Write the question you want answered."))
    if to_role not in Role.values:
        raise OrderError(_("Choose the role to ask."))
    with transaction.atomic():
        order = _lock(order, None)
        role = _acting_role(by, set(by.roles))
        request = FeedbackRequest.objects.create(
            order=order, asked_by=by.user, asked_by_role=role, to_role=to_role, to_user=to_user, question=question
        )
        _save(order, [])
        events.feedback_asked(order=order, by=_as(by, role), request_id=request.pk, to_role=to_role, question=question)
    return request


def feedback_answer(*, request: FeedbackRequest, by: Actor, answer: str) -> FeedbackRequest:
    answer = (answer or "").strip()
    if not answer:
        raise OrderError(_("Write an answer."))
    with transaction.atomic():
        order = _lock(request.order, None)
        request = FeedbackRequest.objects.select_for_update().get(pk=request.pk)
        if request.answered_at is not None:
            raise OrderConflict(_("This question was already answered."))
        if request.to_user_id == by.user.pk:
            role = request.to_role if request.to_role in by.roles else _acting_role(by, set(by.roles))
        elif request.to_role in by.roles or rules.SUPERVISOR in by.roles:
            role = request.to_role if request.to_role in by.roles else rules.SUPERVISOR
        else:
            raise NotAllowed(_("This question is for another role."))
        request.answer = answer
        request.answered_by = by.user
        request.answered_at = timezone.now()
        request.save(update_fields=["answer", "answered_by", "answered_at"])
        _save(order, [])
        events.feedback_answered(order=order, by=_as(by, role), request_id=request.pk, answer=answer)
    return request


# --- Gifts ---------------------------------------------------------------------------------------

GIFT_CHECK = Actor.system("gift check")
GIFT_STATUSES = (OrderStatus.PENDING_REVIEW, OrderStatus.PAID, OrderStatus.PICKING)


def order_flag_missing_gift(order: Order) -> None:
    """An order approved or sent to picking whose buyer message or notes promise a gift it has no
    line for gets the "missing gift" exception now, before anyone reaches the pack bench (where
    the gift_missing guard refuses it: orders/rules.py)."""
    if not rules.gift_promise(order):  # what most orders say: one query, without loading the lines
        return
    promise = rules.gift_promise_unmet(order)
    if not promise or order.tags.filter(tag=RiskTag.MISSING_GIFT, resolved_at__isnull=True).exists():
        return
    OrderTag.objects.create(order=order, tag=RiskTag.MISSING_GIFT)
    events.tag_added(order=order, by=GIFT_CHECK, tag=RiskTag.MISSING_GIFT, note=promise[:100])


def order_add_gift(
    *, order: Order, by: Actor, product: Product, quantity: int = 1, rule: str = "", expected_version: int | None = None
) -> OrderLine:
    """Put a gift on an order before it is packed. The line records who added it (a person, or a
    system with its gift rule), and an open "missing gift" exception is closed by it."""
    rule = (rule or "").strip()[:64]
    if not 1 <= quantity <= 99:
        raise OrderError(_("A gift quantity is between 1 and 99."))
    with transaction.atomic():
        order = _lock(order, expected_version)
        role = _acting_role(by, rules.ACTION_ROLES["add_gift"]) if not by.is_system else ""
        if order.status not in GIFT_STATUSES:
            raise OrderError(
                _("This order is %(status)s; a gift can be added only before packing.") % {"status": order.get_status_display()}
            )
        line = OrderLine.objects.create(
            order=order,
            product=product,
            sku_code=product.sku_code,
            product_name=product.name,
            quantity=quantity,
            unit_price=Decimal("0.00"),
            is_gift=True,
            cold_chain=product.cold_chain,
            gift_added_by=by.name[:64],
            gift_rule=rule,
        )
        fields = []
        if product.cold_chain and not order.requires_cold_chain:
            order.requires_cold_chain = True
            fields.append("requires_cold_chain")
        _save(order, fields)
        acting = _as(by, role)
        events.gift_added(order=order, by=acting, sku=product.sku_code, name=product.name, quantity=quantity, rule=rule)
        tag = order.tags.filter(tag=RiskTag.MISSING_GIFT, resolved_at__isnull=True).first()
        if tag is not None:
            tag.resolved_at = timezone.now()
            tag.resolved_by = by.user
            tag.resolution = _("Gift added: %(name)s × %(quantity)s") % {"name": product.name, "quantity": quantity}
            tag.save(update_fields=["resolved_at", "resolved_by", "resolution"])
            events.tag_resolved(order=order, by=acting, tag=RiskTag.MISSING_GIFT, resolution=tag.resolution)
    return line


# --- Exception tags ----------------------------------------------------------------------------


def order_tag_add(
    *,
    order: Order,
    by: Actor,
    tag: str,
    note: str = "",
    release_at: datetime.datetime | None = None,
    erp_code: str = "",
) -> OrderTag:
    """Open an exception of a catalogue reason (orders/reasons.py): due after the reason's own
    time limit; several reasons may be open at once, each reason once."""
    if tag not in RiskTag.values:
        raise OrderError(_("Unknown tag."))
    with transaction.atomic():
        order = _lock(order, None)
        role = _acting_role(by, set(by.roles)) if not by.is_system else ""
        existing = order.tags.filter(tag=tag, resolved_at__isnull=True).first()
        if existing:
            return existing
        now = timezone.now()
        order_tag = OrderTag.objects.create(
            order=order,
            tag=tag,
            opened_by=by.user,
            opened_at=now,
            due_at=now + REASONS_BY_CODE[tag].time_limit,
            release_at=release_at,
            erp_code=erp_code[:64],
        )
        _save(order, [])
        events.tag_added(order=order, by=_as(by, role), tag=tag, note=note)
    return order_tag


def order_tag_resolve(*, order: Order, by: Actor, tag: str, resolution: str) -> OrderTag:
    if tag == RiskTag.FUZZY_ADDRESS:
        # A note saying "checked" would approve and ship to the fuzzy address (docs/brief.md: the
        # reviewer "fixes fuzzy addresses"): only a corrected address resolves it.
        raise OrderError(_("A fuzzy address is resolved by correcting the address on the card, not by a note."))
    resolution = (resolution or "").strip()
    if not resolution:
        raise OrderError(_("Say how the exception was resolved."))
    with transaction.atomic():
        order = _lock(order, None)
        role = _acting_role(by, rules.TAG_RESOLVER_ROLES.get(tag, frozenset())) if not by.is_system else ""
        order_tag = order.tags.filter(tag=tag, resolved_at__isnull=True).first()
        if order_tag is None:
            raise OrderConflict(_("This tag was already resolved."))
        order_tag.resolved_at = timezone.now()
        order_tag.resolved_by = by.user
        order_tag.resolution = resolution
        order_tag.save(update_fields=["resolved_at", "resolved_by", "resolution"])
        _save(order, [])
        events.tag_resolved(order=order, by=_as(by, role), tag=tag, resolution=resolution)
    return order_tag


def exception_from_erp(*, order: Order, by: Actor, system: str, code: str, release_at=None) -> OrderTag:
    """An exception an ERP reports in its own words (聚水潭 question_type, 旺店通 bad_reason) opened
    as the catalogue's reason, owner and clock; an unmapped code is refused, never guessed."""
    reason = reason_for_erp(system, code)
    if reason is None:
        raise OrderError(_("Unknown exception code %(code)s of %(system)s.") % {"code": code[:40], "system": system[:20]})
    return order_tag_add(order=order, by=by, tag=reason.code, note=code, release_at=release_at, erp_code=f"{system}:{code}")


AUTO_RELEASE = Actor.system("system")


def _released(tag: OrderTag, now: datetime.datetime) -> bool:
    order, condition = tag.order, REASONS_BY_CODE[tag.tag].release
    if condition == RELEASE_DATE:
        return tag.release_at is not None and tag.release_at <= now
    if condition == PAYMENT_COMPLETED:
        return order.total_amount > 0 and order.paid_amount >= order.total_amount
    if condition == STOCK_ARRIVED:
        held_for_stock = order.is_held and order.hold_reason == HoldReason.STOCK_SHORTAGE
        return not held_for_stock and order.events.filter(kind=EventKind.RELEASE, occurred_at__gt=tag.opened_at).exists()
    if condition == ADDRESS_CONFIRMED:
        return order.events.filter(kind=EventKind.ADDRESS_CHANGE, occurred_at__gt=tag.opened_at).exists()
    return False


def exceptions_auto_release(*, now: datetime.datetime | None = None) -> int:
    """Close the open exceptions whose reason's release condition now holds (stock arrived,
    payment completed, address confirmed, release date reached); beat runs this every minute."""
    now = now or timezone.now()
    codes = [reason.code for reason in REASONS_BY_CODE.values() if reason.release and reason.code != RiskTag.FUZZY_ADDRESS]
    released = 0
    for tag in OrderTag.objects.filter(tag__in=codes, resolved_at__isnull=True).select_related("order"):
        if not _released(tag, now):
            continue
        resolution = _("Released automatically: %(condition)s.") % {"condition": RELEASE_LABELS[REASONS_BY_CODE[tag.tag].release]}
        with transaction.atomic():
            order = _lock(tag.order, None)
            if OrderTag.objects.filter(pk=tag.pk, resolved_at__isnull=True).update(resolved_at=now, resolution=resolution):
                _save(order, [])
                events.tag_resolved(order=order, by=AUTO_RELEASE, tag=tag.tag, resolution=resolution)
                released += 1
    return released


# --- After-sales and address changes -----------------------------------------------------------


def after_sales_open(
    *, order: Order, by: Actor, kind: str, reason: str, sku_code: str = "", amount: Decimal | str = Decimal("0.00")
) -> AfterSalesCase:
    """`amount` may be what a person typed (the card's and the lookup's forms): it is read here, once."""
    reason = (reason or "").strip()
    if kind not in AfterSalesKind.values:
        raise OrderError(_("Choose the kind of after-sales case."))
    if not reason:
        raise OrderError(_("Write the customer's reason."))
    try:
        amount = Decimal(amount.strip() or "0") if isinstance(amount, str) else amount
        # Decimal("NaN") cannot even be compared with 0 (InvalidOperation).
        if not amount.is_finite():
            raise InvalidOperation
        amount = amount.quantize(Decimal("0.01"))
    except InvalidOperation as exc:
        raise OrderError(_("Enter the amount as a number, e.g. 59.90.")) from exc
    if amount < 0:
        raise OrderError(_("The amount cannot be negative."))
    with transaction.atomic():
        order = _lock(order, None)
        role = _acting_role(by, rules.ACTION_ROLES["open_after_sales"])
        if sku_code and not order.lines.filter(sku_code=sku_code).exists():
            raise OrderError(_("SKU %(sku)s is not in this order.") % {"sku": sku_code})
        case = AfterSalesCase.objects.create(
            order=order, sku_code=sku_code, kind=kind, reason=reason, amount=amount, opened_by=by.user
        )
        _save(order, [])
        events.after_sales_opened(
            order=order, by=_as(by, role), case_id=case.pk, kind=kind, sku=sku_code, reason=reason, amount=amount
        )
    return case


def after_sales_decide(*, case: AfterSalesCase, by: Actor, approve: bool, reason: str, department: str = "") -> AfterSalesCase:
    reason = (reason or "").strip()
    if not reason:
        raise OrderError(_("A decision needs a reason."))
    with transaction.atomic():
        order = _lock(case.order, None)
        case = AfterSalesCase.objects.select_for_update().get(pk=case.pk)
        role = _acting_role(
            by, rules.ACTION_ROLES["decide_refund" if case.kind == AfterSalesKind.REFUND else "decide_after_sales"]
        )
        if case.status != AfterSalesStatus.OPEN:
            raise OrderConflict(_("This case was already decided."))
        case.status = AfterSalesStatus.APPROVED if approve else AfterSalesStatus.REJECTED
        case.decision_reason = reason
        case.decided_by = by.user
        case.decided_by_department = department.strip()
        case.decided_at = timezone.now()
        case.save(update_fields=["status", "decision_reason", "decided_by", "decided_by_department", "decided_at"])
        fields: list[str] = []
        if approve and case.kind == AfterSalesKind.REFUND:
            order.refund_amount += case.amount
            fields.append("refund_amount")
        if order.platform_aftersales_deadline and not order.after_sales.filter(status=AfterSalesStatus.OPEN).exists():
            # The platform's clock is for answering an open request; with none left, no clock runs.
            order.platform_aftersales_deadline = None
            fields.append("platform_aftersales_deadline")
        _save(order, fields)
        events.after_sales_decided(
            order=order,
            by=_as(by, role),
            case_id=case.pk,
            kind=case.kind,
            approved=approve,
            reason=reason,
            department=case.decided_by_department,
        )
    return case


ADDRESS_FIELDS = ("receiver_name", "receiver_phone", "province", "city", "district", "address")


# Stages in which the address may still be corrected on the card: nothing is packed or labelled.
CORRECTABLE_STATUSES = (OrderStatus.PENDING_REVIEW, OrderStatus.PAID, OrderStatus.PICKING)


def _clean_address(address: dict, *, masked: bool = False) -> dict[str, str]:
    """`masked`: a platform's receiver (张*, 138****8000): its real phone stays encrypted with the
    platform (integrations/douyin), so only its presence and length are checked here."""
    values = {field: (address.get(field) or "").strip() for field in ADDRESS_FIELDS}
    missing = [field for field in ADDRESS_FIELDS if field != "district" and not values[field]]
    if missing:
        raise OrderError(_("Fill in the receiver, phone, province, city and address."))
    too_long = [field for field in ADDRESS_FIELDS if len(values[field]) > Order._meta.get_field(field).max_length]
    if too_long:
        field = Order._meta.get_field(too_long[0])
        raise OrderError(
            _("%(field)s has at most %(limit)d characters.") % {"field": field.verbose_name, "limit": field.max_length}
        )
    if masked:
        return values
    if not is_contact_number(values["receiver_phone"]):
        raise OrderError(_("%(phone)s is not a valid phone number.") % {"phone": values["receiver_phone"]})
    # Stored canonical, like every phone on the order, so that search by phone still finds it.
    values["receiver_phone"] = normalize_mobile(values["receiver_phone"]) or values["receiver_phone"]
    return values


def order_correct_address(*, order: Order, by: Actor, expected_version: int | None = None, **address: str) -> Order:
    """The reviewer fixes the receiver on the card before anything is packed. This is what
    resolves a fuzzy-address tag; old and new address go on the timeline. During picking the
    warehouse gets a warning note to acknowledge, so nobody packs with the old label."""
    values = _clean_address(address)
    with transaction.atomic():
        order = _lock(order, expected_version)
        role = _acting_role(by, rules.ACTION_ROLES["correct_address"])
        if order.status not in CORRECTABLE_STATUSES:
            raise OrderError(
                _("The order is %(status)s; the address can only be corrected before packing.")
                % {"status": order.get_status_display()}
            )
        before = {field: getattr(order, field) for field in ADDRESS_FIELDS}
        if before == values:
            raise OrderError(_("The address is unchanged; correct what is wrong before saving."))
        for field in ADDRESS_FIELDS:
            setattr(order, field, values[field])
        _save(order, list(ADDRESS_FIELDS))
        actor = _as(by, role)
        events.address_change(order=order, by=actor, change_id=None, action="corrected", before=before, after=values)
        fuzzy = order.tags.filter(tag=RiskTag.FUZZY_ADDRESS, resolved_at__isnull=True).first()
        if fuzzy is not None:
            fuzzy.resolved_at = timezone.now()
            fuzzy.resolved_by = by.user
            fuzzy.resolution = _("Address corrected")
            fuzzy.save(update_fields=["resolved_at", "resolved_by", "resolution"])
            events.tag_resolved(order=order, by=actor, tag=RiskTag.FUZZY_ADDRESS, resolution=fuzzy.resolution)
        if order.status == OrderStatus.PICKING:
            note = Note.objects.create(
                order=order,
                author=by.user,
                author_role=role,
                kind=NoteKind.WARNING,
                audience=NoteAudience.WAREHOUSE,
                body=_("The address was corrected during picking: pack and label for %(address)s.")
                % {"address": events.address_text(values)},
            )
            events.note_added(order=order, by=actor, note=note)
    return order


def _nudge_outcome(event_id: int) -> None:
    """An address change ended: the push to the customer lives on a higher floor
    (workflows/reactions.py), which reads the outcome from this event (the relay catches a lost nudge)."""
    transaction.on_commit(lambda: _nudge_reactions(event_id))


def address_change_request(
    *, order: Order, by: Actor, source: str = AddressChangeSource.SERVICE, **address: str
) -> AddressChangeRequest:
    """A request for the inbox: from customer service (card, lookup), from the customer on the
    self-service page (a system actor, only before shipping) or from the platform. The new
    receiver's phone must be a mainland mobile: the carrier texts it on delivery."""
    if source not in AddressChangeSource.values:
        raise OrderError(_("Unknown source of the request."))
    platform = source == AddressChangeSource.PLATFORM
    values = _clean_address(address, masked=platform)
    if not platform and normalize_mobile(values["receiver_phone"]) is None:
        raise OrderError(
            _("“%(phone)s” is not a mainland mobile number: 11 digits starting with 1, e.g. 138 0013 8000.")
            % {"phone": address.get("receiver_phone", "")}
        )
    with transaction.atomic():
        order = _lock(order, None)
        if source == AddressChangeSource.CUSTOMER:
            role = ""
        else:
            role = _acting_role(by, rules.ACTION_ROLES["request_address_change"])
        if order.status == OrderStatus.CANCELLED:
            raise OrderError(
                _("Order %(number)s is cancelled; there is no parcel to send elsewhere.") % {"number": order.order_number}
            )
        if source == AddressChangeSource.CUSTOMER and order.status not in ACTIVE_STATUSES:
            raise OrderError(_("Your parcel has already left the warehouse; please call customer service to change the address."))
        if order.address_changes.filter(status__in=ADDRESS_CHANGE_WAITING).exists():
            raise OrderConflict(_("An address change for this order is already waiting."))
        before = {field: getattr(order, field) for field in ADDRESS_FIELDS}
        if before == values:
            raise OrderError(_("The new address is the same as the current one."))
        now = timezone.now()
        change = AddressChangeRequest.objects.create(
            order=order,
            requested_by=by.user,
            requested_by_name=by.name[:64],
            source=source,
            previous=before,
            requested_at=now,
            due_at=now + datetime.timedelta(minutes=settings.ADDRESS_CHANGE_DUE_MINUTES),
            **values,
        )
        _save(order, [])
        events.address_change(
            order=order, by=_as(by, role), change_id=change.pk, action="requested", before=before, after=values, source=source
        )
    return change


def _lock_waiting(change: AddressChangeRequest, by: Actor, action: str, *, waiting=(AddressChangeStatus.OPEN,)):
    order = _lock(change.order, None)
    role = _acting_role(by, rules.ACTION_ROLES[action])
    change = AddressChangeRequest.objects.select_for_update().get(pk=change.pk)
    if change.status not in waiting:
        raise OrderConflict(_("This address change was already handled (%(status)s).") % {"status": change.get_status_display()})
    return order, role, change


def _close(change: AddressChangeRequest, by: Actor, status: str, *, rung: str = "", reason: str = "") -> None:
    change.status = status
    change.rung = rung or change.rung
    change.outcome_reason = reason[:300]
    change.resolved_by = by.user
    change.resolved_at = timezone.now()
    change.save(update_fields=["status", "rung", "outcome_reason", "resolved_by", "resolved_at"])


def address_change_apply(*, change: AddressChangeRequest, by: Actor) -> AddressChangeRequest:
    """The first two rungs. Not yet picked: the new receiver applies at once. Picking or packed:
    it applies too, and the warehouse gets a warning note the packer must acknowledge before
    packing (orders/packing.py) and a reprint flag that stops shipping until the waybill is
    reprinted (orders/rules.py, the waybill_reprint guard)."""
    with transaction.atomic():
        order, role, change = _lock_waiting(change, by, "resolve_address_change")
        if order.status not in ACTIVE_STATUSES:
            raise OrderError(
                _("The order is %(status)s; a shipped parcel's address is changed through the carrier.")
                % {"status": order.get_status_display()}
            )
        warehouse = order.status in (OrderStatus.PICKING, OrderStatus.PACKED)
        rung = AddressChangeRung.APPLY_ACKNOWLEDGE if warehouse else AddressChangeRung.APPLY
        before = {field: getattr(order, field) for field in ADDRESS_FIELDS}
        after = change.new_receiver()
        for field in ADDRESS_FIELDS:
            setattr(order, field, after[field])
        _save(order, list(ADDRESS_FIELDS))
        actor = _as(by, role)
        if warehouse:
            change.reprint_pending = True
            change.save(update_fields=["reprint_pending"])
            note = Note.objects.create(
                order=order,
                author=by.user,
                author_role=role,
                kind=NoteKind.WARNING,
                audience=NoteAudience.WAREHOUSE,
                body=_("The address changed while %(stage)s: pack and label for %(address)s, and reprint the waybill.")
                % {"stage": order.get_status_display(), "address": events.address_text(after)},
            )
            events.note_added(order=order, by=actor, note=note)
        _close(change, by, AddressChangeStatus.APPLIED, rung=rung)
        event = events.address_change(
            order=order, by=actor, change_id=change.pk, action="applied", before=before, after=after, rung=rung
        )
        _nudge_outcome(event.pk)
    return change


def address_change_refuse(
    *, change: AddressChangeRequest, by: Actor, reason: str, rung: str = "", declined: bool = False
) -> AddressChangeRequest:
    """A request that cannot be done: the parcel was delivered or signed (rung "refuse": an
    after-sales case is offered instead), or a person declines it with a reason."""
    reason = (reason or "").strip()
    if not reason:
        raise OrderError(_("Say why the address change is refused."))
    with transaction.atomic():
        order, role, change = _lock_waiting(change, by, "resolve_address_change")
        status = AddressChangeStatus.REJECTED if declined else AddressChangeStatus.REFUSED
        _close(change, by, status, rung=rung, reason=reason)
        _save(order, [])
        event = events.address_change(
            order=order,
            by=_as(by, role),
            change_id=change.pk,
            action=str(status),
            after=change.new_receiver(),
            rung=rung,
            reason=reason,
        )
        _nudge_outcome(event.pk)
    return change


def address_change_resolve(*, change: AddressChangeRequest, by: Actor, apply: bool) -> AddressChangeRequest:
    """The card's two buttons on a waiting request before shipping: apply (the ladder's first two
    rungs) or decline."""
    if apply:
        return address_change_apply(change=change, by=by)
    return address_change_refuse(change=change, by=by, reason=_("Declined by the cockpit"), declined=True)


def address_change_to_carrier(
    *, change: AddressChangeRequest, by: Actor, rung: str, shipment: Shipment, task_id: str = ""
) -> AddressChangeRequest:
    """Shipped: the request now waits for the carrier, through Kuaidi100's interception (task id
    given) or through the courier on the carrier's hotline (a ticket)."""
    if rung not in (AddressChangeRung.CARRIER_INTERCEPT, AddressChangeRung.COURIER_TICKET):
        raise OrderError(_("Unknown rung."))
    with transaction.atomic():
        order, role, change = _lock_waiting(change, by, "resolve_address_change")
        if order.status != OrderStatus.SHIPPED:
            raise OrderError(_("Only a shipped parcel is changed through the carrier."))
        change.status = AddressChangeStatus.WITH_CARRIER
        change.rung = rung
        change.carrier_code = shipment.carrier_code
        change.tracking_number = shipment.tracking_number
        change.carrier_task_id = task_id
        change.save(update_fields=["status", "rung", "carrier_code", "tracking_number", "carrier_task_id"])
        _save(order, [])
        events.address_change(
            order=order, by=_as(by, role), change_id=change.pk, action="with_carrier", after=change.new_receiver(), rung=rung
        )
    return change


CARRIER_OUTCOMES = (AddressChangeStatus.REROUTED, AddressChangeStatus.INTERCEPTED, AddressChangeStatus.FAILED)


def address_change_carrier_outcome(
    *, change: AddressChangeRequest, by: Actor, outcome: str, reason: str = ""
) -> AddressChangeRequest:
    """What the carrier did: rerouted to the new address (the order's receiver changes),
    intercepted and returning to us, or failed (with the carrier's reason). From Kuaidi100's
    signed callback (a system actor) or from the courier who called the hotline."""
    if outcome not in CARRIER_OUTCOMES:
        raise OrderError(_("Choose what the carrier did."))
    reason = (reason or "").strip()
    if outcome == AddressChangeStatus.FAILED and not reason:
        raise OrderError(_("Say why the carrier could not change the address."))
    with transaction.atomic():
        order, role, change = _lock_waiting(change, by, "record_carrier_outcome", waiting=(AddressChangeStatus.WITH_CARRIER,))
        before = {field: getattr(order, field) for field in ADDRESS_FIELDS}
        fields: list[str] = []
        if outcome == AddressChangeStatus.REROUTED:
            for field in ADDRESS_FIELDS:
                setattr(order, field, getattr(change, field))
            fields = list(ADDRESS_FIELDS)
        _save(order, fields)
        _close(change, by, outcome, reason=reason)
        event = events.address_change(
            order=order,
            by=_as(by, role),
            change_id=change.pk,
            action=str(outcome),
            before=before if fields else None,
            after=change.new_receiver(),
            rung=change.rung,
            reason=reason,
        )
        _nudge_outcome(event.pk)
    return change


def address_change_confirm_reprint(*, order: Order, by: Actor) -> Order:
    """The warehouse or the courier reprinted the waybill with the new address: shipping may go on."""
    with transaction.atomic():
        order = _lock(order, None)
        role = _acting_role(by, rules.ACTION_ROLES["confirm_reprint"])
        pending = list(order.address_changes.select_for_update().filter(reprint_pending=True))
        if not pending:
            raise OrderConflict(_("No waybill is waiting to be reprinted."))
        now = timezone.now()
        for change in pending:
            change.reprint_pending = False
            change.reprinted_by = by.user
            change.reprinted_at = now
            change.save(update_fields=["reprint_pending", "reprinted_by", "reprinted_at"])
        _save(order, [])
        events.address_change(order=order, by=_as(by, role), change_id=pending[-1].pk, action="reprinted")
    return order


# --- Personal data -----------------------------------------------------------------------------


def phone_reveal(*, order: Order, by: Actor) -> str:
    """A masked role may see the full number when it must call; every reveal is on the record."""
    role = _acting_role(by, set(by.roles))
    events.phone_revealed(order=order, by=_as(by, role))
    return order.receiver_phone


# --- The supervisor's board: assignment and stage rules ----------------------------------------


def _require_supervisor(by: Actor) -> None:
    if rules.SUPERVISOR not in by.roles:
        raise NotAllowed(_("Only a supervisor may do this."))


# A rule's limit must be a real clock: at least a minute, at most a month.
LIMIT_RANGE = (datetime.timedelta(minutes=1), datetime.timedelta(days=31))


def order_assign(*, order: Order, by: Actor, assignee: User, expected_version: int | None = None) -> Order:
    """The supervisor names who operates the order now ("who is operating" on the card)."""
    _require_supervisor(by)
    if not assignee.is_active or not assignee.groups.filter(name__in=Role.values).exists():
        raise OrderError(_("%(name)s has no role in the cockpit and cannot operate orders.") % {"name": assignee.get_username()})
    with transaction.atomic():
        locked = _lock(order, expected_version)
        if locked.status not in ACTIVE_STATUSES:
            raise OrderError(
                _("Order %(number)s is %(status)s; only open orders are assigned.")
                % {"number": locked.order_number, "status": locked.get_status_display()}
            )
        if locked.claimed_by_id == assignee.pk:
            return locked
        previous = locked.claimed_by.get_username() if locked.claimed_by_id else None
        locked.claimed_by = assignee
        locked.claimed_at = timezone.now()
        _save(locked, ["claimed_by", "claimed_at"])
        events.assigned(
            order=locked,
            by=_as(by, rules.SUPERVISOR),
            assignee_username=assignee.get_username(),
            assignee_name=assignee.get_full_name() or assignee.get_username(),
            previous=previous,
        )
    return locked


def stage_rule_update(
    *,
    rule: StageRule,
    by: Actor,
    responsible_role: str,
    time_limit: datetime.timedelta,
    alert_role: str,
    work_starts: datetime.time | None = None,
    work_ends: datetime.time | None = None,
) -> StageRule:
    """Change a stage's limit; every open order in that stage gets its due time recomputed."""
    _require_supervisor(by)
    if responsible_role not in Role.values or alert_role not in Role.values:
        raise OrderError(_("Choose the responsible and the alerted role from the list."))
    if not LIMIT_RANGE[0] <= time_limit <= LIMIT_RANGE[1]:
        raise OrderError(_("A time limit is between 1 minute and 31 days."))
    if (work_starts is None) != (work_ends is None):
        raise OrderError(_("Give both the start and the end of working hours, or neither."))
    if work_starts is not None and work_starts == work_ends:
        # An end before the start is a night shift (18:00 to 09:00 the next morning): orders/clock.py.
        raise OrderError(_("Working hours must not start and end at the same time (e.g. 09:00 to 18:00, or 18:00 to 09:00)."))
    with transaction.atomic():
        rule = StageRule.objects.select_for_update().get(pk=rule.pk)
        rule.responsible_role = responsible_role
        rule.time_limit = time_limit
        rule.alert_role = alert_role
        rule.work_starts = work_starts
        rule.work_ends = work_ends
        rule.updated_by = by.user
        rule.updated_at = timezone.now()
        rule.save()
        clock.refresh_due_times(stage=rule.stage)
    return rule


# --- Rush (the sales quick link) -----------------------------------------------------------------------------------


class RushInvalid(OrderError):
    """The rush form's mistakes, by field, all at once."""

    def __init__(self, errors: dict[str, str]):
        self.errors = errors
        super().__init__("；".join(errors.values()))


NEW_ORDER = "new"


def open_orders_of_phone(phone: str) -> list[Order]:
    """The customer's orders that can still be rushed (the rush page lists them as sales type)."""
    return list(
        Order.objects.filter(Q(customer__phone=phone) | Q(receiver_phone=phone), status__in=ACTIVE_STATUSES)
        .select_related("customer")
        .order_by("-placed_at")[:20]
    )


def rush_file(*, by: Actor, phone: str, reason: str, deadline: datetime.datetime | None, order_choice: str = "") -> Order:
    """Sales files a rush: the chosen open order of this phone (or a new order when it has none,
    or when sales choose "new order") gets the 🔥 flag, the reason and the expected completion.

    docs/brief.md: "3 required fields (customer phone, rush reason, expected completion time)"."""
    if not by.roles & rules.ACTION_ROLES["file_rush"] and rules.SUPERVISOR not in by.roles:
        raise NotAllowed(_("Only sales and supervisors file rush orders."))
    errors: dict[str, str] = {}
    mobile = normalize_mobile(phone)
    if not phone.strip():
        errors["phone"] = _("Enter the customer's mobile number.")
    elif mobile is None:
        errors["phone"] = _("“%(phone)s” is not a mainland mobile number: 11 digits starting with 1, e.g. 138 0013 8000.") % {
            "phone": phone
        }
    reason = reason.strip()
    if not reason:
        errors["reason"] = _("Say why it is urgent, e.g. “customer flies abroad tomorrow morning”.")
    elif len(reason) > 200:
        errors["reason"] = _("Keep the reason under 200 characters.")
    now = timezone.now()
    if deadline is None:
        errors["deadline"] = _("Enter the expected completion time.")
    elif deadline <= now:
        errors["deadline"] = _("%(time)s is already past; the expected completion time must be in the future.") % {
            "time": date_format(timezone.localtime(deadline), "Y-m-d H:i")
        }
    if errors:
        raise RushInvalid(errors)
    role = Role.SALES if Role.SALES in by.roles else rules.SUPERVISOR
    with transaction.atomic():
        candidates = {order.order_number: order for order in open_orders_of_phone(mobile)}
        if order_choice and order_choice != NEW_ORDER:
            if order_choice not in candidates:
                raise RushInvalid({"order": _("Order %(number)s is not an open order of this phone.") % {"number": order_choice}})
            return _rush_existing(candidates[order_choice], by, role, reason, deadline, now)
        if candidates and order_choice != NEW_ORDER:
            raise RushInvalid(
                {
                    "order": _("This phone has %(count)d open order(s): choose the one to rush, or “a new order”.")
                    % {"count": len(candidates)}
                }
            )
        return _rush_new_order(mobile, by, role, reason, deadline, now)


def _rush_existing(order: Order, by: Actor, role: str, reason: str, deadline: datetime.datetime, now: datetime.datetime) -> Order:
    order = Order.objects.select_for_update().get(pk=order.pk)
    order.is_rush = True
    order.rush_reason = reason
    order.rush_deadline = deadline
    fields = ["is_rush", "rush_reason", "rush_deadline"]
    if order.rush_filed_at is None:  # handling time runs from the first filing
        order.rush_filed_at = now
        fields.append("rush_filed_at")
    _save(order, fields + clock.clock_refresh(order))
    events.rush_filed(order=order, by=_as(by, role), reason=reason, deadline=deadline, new_order=False)
    return order


def _rush_new_order(phone: str, by: Actor, role: str, reason: str, deadline: datetime.datetime, now: datetime.datetime) -> Order:
    """A rush for a customer with no open order. The receiver is the customer's last known one;
    without any, placeholders plus an open "fuzzy address" tag, which blocks approval until the
    reviewer has the real address (orders/rules.py, the fuzzy_address guard)."""
    customer, _created = Customer.objects.get_or_create(
        phone=phone, defaults={"name": _("Customer %(last4)s") % {"last4": phone[-4:]}}
    )
    last = Order.objects.filter(Q(customer=customer) | Q(receiver_phone=phone)).order_by("-placed_at").first()
    placeholder = _("to be confirmed")
    receiver = {
        "receiver_name": last.receiver_name if last else customer.name,
        "receiver_phone": last.receiver_phone if last else phone,
        "province": last.province if last else placeholder,
        "city": last.city if last else placeholder,
        "district": last.district if last else "",
        "address": last.address if last else _("Rush order: ask the customer for the delivery address"),
    }
    order = Order(
        order_number=f"R{timezone.localtime(now):%Y%m%d%H%M%S}{secrets.randbelow(10000):04d}",
        source=OrderSource.RUSH,
        customer=customer,
        **receiver,
        is_rush=True,
        rush_reason=reason,
        rush_deadline=deadline,
        rush_filed_at=now,
        stage_entered_at=now,
        pending_review_at=now,
        placed_at=now,
        created_at=now,
    )
    clock.clock_on_stage_entered(order)
    order.save()
    events.created(order=order, by=_as(by, role), source=OrderSource.RUSH)
    events.rush_filed(order=order, by=_as(by, role), reason=reason, deadline=deadline, new_order=True)
    if last is None:
        OrderTag.objects.create(order=order, tag=RiskTag.FUZZY_ADDRESS, opened_by=by.user)
        events.tag_added(order=order, by=_as(by, role), tag=RiskTag.FUZZY_ADDRESS)
    return order


# --- Platform orders (integrations/douyin) ------------------------------------------------------


def order_create_from_platform(
    *,
    by: Actor,
    source: str,
    order_number: str,
    customer: Customer,
    receiver: dict[str, str],
    lines: list[dict],
    total_amount: Decimal,
    shipping_fee: Decimal,
    buyer_message: str,
    placed_at: datetime.datetime,
    platform_shop: str,
    platform_ship_deadline: datetime.datetime | None,
    source_time: datetime.datetime | None,
) -> Order:
    """A platform's order enters the cockpit, unpaid (paid with order_platform_paid). The
    receiver is what the platform lets us keep: masked values (张*, 138****8000), the ciphertexts
    stay with the platform's integration. `lines`: [{sku_code, product_name, quantity, unit_price}];
    a SKU the product master does not know is added to it under the platform's name."""
    now = timezone.now()
    order = Order(
        order_number=order_number[:40],
        source=source,
        customer=customer,
        **{field: (receiver.get(field) or "")[: Order._meta.get_field(field).max_length] for field in ADDRESS_FIELDS},
        total_amount=total_amount,
        shipping_fee=shipping_fee,
        buyer_message=buyer_message[:500],
        platform_order_id=order_number[:64],
        platform_shop=platform_shop[:64],
        platform_ship_deadline=platform_ship_deadline,
        stage_entered_at=now,
        pending_review_at=now,
        placed_at=placed_at,
        created_at=now,
        source_updated_at=source_time,
    )
    clock.clock_on_stage_entered(order)
    order.save()
    for line in lines:
        product = Product.objects.filter(sku_code=line["sku_code"]).first() or Product.objects.create(
            sku_code=line["sku_code"][:40],
            barcode=f"{source}:{line['sku_code']}"[:40],
            name=line["product_name"][:120],
            unit_price=line["unit_price"],
        )
        OrderLine.objects.create(
            order=order,
            product=product,
            sku_code=product.sku_code,
            product_name=line["product_name"][:120],
            quantity=line["quantity"],
            unit_price=line["unit_price"],
            cold_chain=product.cold_chain,
        )
    if order.lines.filter(cold_chain=True).exists():
        order.requires_cold_chain = True
        order.save(update_fields=["requires_cold_chain"])
    events.created(order=order, by=by, source=source, source_time=source_time)
    return order


def order_platform_update(
    *,
    order: Order,
    by: Actor,
    source_time: datetime.datetime | None,
    paid_amount: Decimal | None = None,
    ship_deadline: datetime.datetime | None = None,
    aftersales_deadline: datetime.datetime | None = None,
) -> Order:
    """What the platform says changed: the payment, its latest ship time, an after-sales request's
    response deadline. Only real changes are written (a replayed message changes nothing); the
    timeline shows before and after."""
    wanted = {
        "paid_amount": paid_amount,
        "platform_ship_deadline": ship_deadline,
        "platform_aftersales_deadline": aftersales_deadline,
    }
    with transaction.atomic():
        order = _lock(order, None)
        changed = [field for field, value in wanted.items() if value is not None and getattr(order, field) != value]
        if not changed:
            return order
        before = {field: str(getattr(order, field) or "") for field in changed}
        for field in changed:
            setattr(order, field, wanted[field])
        if source_time is not None:
            order.source_updated_at = source_time
        _save(order, [*changed, "source_updated_at"])
        events.import_updated(
            order=order,
            by=by,
            fields=changed,
            before=before,
            after={field: str(getattr(order, field)) for field in changed},
            import_run=None,
            source_time=source_time,
        )
    return order
