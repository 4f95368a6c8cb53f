"""Every write to an order goes through here, following one recipe (CONVENTIONS.md):

transaction.atomic() → select_for_update() on the order row → version, permission and guard
checks → change → save(update_fields=…) → an OrderEvent naming the actor → side effects after
commit.

Two people acting on the same order at once: the row lock serialises them, and the version
number the second one's form was rendered with no longer matches, so the second is told who
changed the order instead of silently overwriting it (OrderConflict).
"""

from __future__ import annotations

import datetime
import re
from decimal import Decimal

from django.db import transaction
from django.dispatch import Signal
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext as _
from django_fsm import TransitionNotAllowed, can_proceed

from orders import rules
from orders.access import Actor
from orders.models import (
    ACTIVE_STATUSES,
    AddressChangeRequest,
    AddressChangeStatus,
    AfterSalesCase,
    AfterSalesKind,
    AfterSalesStatus,
    Carrier,
    EventKind,
    FeedbackRequest,
    HoldReason,
    Note,
    NoteAcknowledgement,
    NoteAudience,
    NoteKind,
    Order,
    OrderEvent,
    OrderTag,
    RiskTag,
    Role,
    Shipment,
)
from orders.phones import is_contact_number, normalize_mobile
from orders import clock, events

# Sent after the transaction that changed an order's status has committed, so receivers (the
# Kuaidi100 subscription, customer pushes) never see a status that was rolled back.
status_changed = Signal()  # kwargs: order_id, transition, source, target, actor_name


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


def _lock(order: Order, expected_version: int | None) -> Order:
    locked = Order.objects.select_for_update().get(pk=order.pk)
    if expected_version is not None and locked.version != expected_version:
        # Viewing a phone number is logged but changes nothing: name the last real change.
        last = locked.events.exclude(kind=EventKind.PHONE_REVEAL).order_by("-occurred_at", "-id").first()
        who = last.actor_name if last else _("someone")
        when = date_format(timezone.localtime(last.occurred_at), "H:i:s") if last else ""
        raise OrderConflict(
            _("%(who)s changed this order at %(when)s; the card now shows the latest state. Please check and try again.")
            % {"who": who, "when": when}
        )
    return locked


def _record(
    order: Order, kind: str, by: Actor, payload: dict | None = None, source_time: datetime.datetime | None = None
) -> OrderEvent:
    return OrderEvent.objects.create(
        order=order,
        kind=kind,
        actor_user=by.user,
        actor_name=by.name,
        actor_role=by.role,
        payload=payload or {},
        source_time=source_time,
    )


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


def _as(by: Actor, role: str) -> Actor:
    return Actor(name=by.name, role=role, user=by.user)


# --- Status transitions ------------------------------------------------------------------------


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
    if name not in rules.TRANSITION_ROLES or name in ("ship", "cancel"):
        # Shipping without a waybill or cancelling without a reason must not be possible here.
        raise NotAllowed(_("Unknown action."))
    with transaction.atomic():
        order = _lock(order, expected_version)
        return _apply_transition(order, name, by, source_time=source_time)


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
    payload = {"transition": name, "from": source, "to": order.status, "as_supervisor": role == rules.SUPERVISOR}
    if reason:
        payload["reason"] = reason
    if released_hold:
        payload["released_hold"] = released_hold
    payload.update(extra or {})
    _record(order, EventKind.STATUS, _as(by, role), payload, source_time)
    order_id, target = order.pk, order.status
    transaction.on_commit(
        lambda: status_changed.send(
            sender=Order, order_id=order_id, transition=name, source=source, target=target, actor_name=by.name
        )
    )
    return order


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
            raise TransitionBlocked([_("Tracking number %(number)s already belongs to another order.") % {"number": tracking_number}])
        if carrier_code != rules.COLD_CHAIN_CARRIER and order.lines.filter(cold_chain=True).exists():
            # The packing guard's rule holds at the dock too: the parcel must not leave with another carrier.
            raise TransitionBlocked(
                [_("This order has cold-chain items: it must ship with SF cold chain (%(code)s).") % {"code": rules.COLD_CHAIN_CARRIER}]
            )
        # The order shows the carrier the parcel actually left with (saved with the transition).
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
        role = _acting_role(by, {"reviewer", "dispatcher", "packer", "courier"})
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
        role = _acting_role(by, {"reviewer", "dispatcher", "packer", "courier", "service"})
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
        _record(
            order,
            EventKind.HOLD,
            _as(by, role),
            {"reason": reason, "note": order.hold_note, "until": until.isoformat() if until else None},
        )
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
        role = _acting_role(by, {"reviewer", "dispatcher", "packer", "courier", "service"})
        if not order.is_held:
            raise OrderError(_("The order is not on hold."))
        held_seconds = int((timezone.now() - order.held_at).total_seconds()) if order.held_at else 0
        clock_fields = clock.clock_on_release(order)  # before the hold's start time is cleared
        _clear_hold(order)
        _save(order, [*HOLD_FIELDS, *clock_fields])
        _record(order, EventKind.RELEASE, _as(by, role), {"held_seconds": held_seconds})
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
    """"Who is operating now" on the card: one person at a time; a supervisor may take over."""
    with transaction.atomic():
        order = _lock(order, expected_version)
        role = _acting_role(by, {"reviewer", "dispatcher", "packer", "courier", "service", "sales", "finance"})
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
        _record(order, EventKind.CLAIM, _as(by, role), {"took_over_from": previous} if previous else {})
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
        _record(order, EventKind.UNCLAIM, _as(by, role))
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
        _record(order, EventKind.NOTE, _as(by, role), {"note_id": note.pk, "kind": kind, "audience": audience, "body": body})
    return note


def note_acknowledge(*, note: Note, by: Actor) -> NoteAcknowledgement:
    with transaction.atomic():
        order = _lock(note.order, None)
        role = _acting_role(by, set(by.roles))
        ack, created = NoteAcknowledgement.objects.get_or_create(note=note, user=by.user, defaults={"role": role})
        if created:
            _save(order, [])
            _record(order, EventKind.ACKNOWLEDGE, _as(by, role), {"note_id": note.pk, "body": note.body[:100]})
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
        _record(order, EventKind.FEEDBACK_ASK, _as(by, role), {"request_id": request.pk, "to_role": to_role, "question": question})
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
        _record(order, EventKind.FEEDBACK_ANSWER, _as(by, role), {"request_id": request.pk, "answer": answer})
    return request


# --- Exception tags ----------------------------------------------------------------------------


def order_tag_add(*, order: Order, by: Actor, tag: str) -> OrderTag:
    if tag not in RiskTag.values:
        raise OrderError(_("Unknown tag."))
    with transaction.atomic():
        order = _lock(order, None)
        role = _acting_role(by, set(by.roles)) if not by.is_system else ""
        existing = order.tags.filter(tag=tag, resolved_at__isnull=True).first()
        if existing:
            return existing
        order_tag = OrderTag.objects.create(order=order, tag=tag, opened_by=by.user)
        _save(order, [])
        _record(order, EventKind.TAG, _as(by, role), {"tag": tag})
    return order_tag


def order_tag_resolve(*, order: Order, by: Actor, tag: str, resolution: str) -> OrderTag:
    resolution = (resolution or "").strip()
    if not resolution:
        raise OrderError(_("Say how the exception was resolved."))
    with transaction.atomic():
        order = _lock(order, None)
        role = _acting_role(by, set(by.roles)) if not by.is_system else ""
        order_tag = order.tags.filter(tag=tag, resolved_at__isnull=True).first()
        if order_tag is None:
            raise OrderConflict(_("This tag was already resolved."))
        order_tag.resolved_at = timezone.now()
        order_tag.resolved_by = by.user
        order_tag.resolution = resolution
        order_tag.save(update_fields=["resolved_at", "resolved_by", "resolution"])
        _save(order, [])
        _record(order, EventKind.UNTAG, _as(by, role), {"tag": tag, "resolution": resolution})
    return order_tag


# --- After-sales and address changes -----------------------------------------------------------


def after_sales_open(
    *, order: Order, by: Actor, kind: str, reason: str, sku_code: str = "", amount: Decimal = Decimal("0.00")
) -> AfterSalesCase:
    reason = (reason or "").strip()
    if kind not in AfterSalesKind.values:
        raise OrderError(_("Choose the kind of after-sales case."))
    if not reason:
        raise OrderError(_("Write the customer's reason."))
    if amount < 0:
        raise OrderError(_("The amount cannot be negative."))
    with transaction.atomic():
        order = _lock(order, None)
        role = _acting_role(by, {"service", "sales"})
        if sku_code and not order.lines.filter(sku_code=sku_code).exists():
            raise OrderError(_("SKU %(sku)s is not in this order.") % {"sku": sku_code})
        case = AfterSalesCase.objects.create(order=order, sku_code=sku_code, kind=kind, reason=reason, amount=amount, opened_by=by.user)
        _save(order, [])
        _record(
            order,
            EventKind.AFTER_SALES,
            _as(by, role),
            {"case_id": case.pk, "action": "opened", "kind": kind, "sku": sku_code, "reason": reason, "amount": str(amount)},
        )
    return case


def after_sales_decide(*, case: AfterSalesCase, by: Actor, approve: bool, reason: str, department: str = "") -> AfterSalesCase:
    reason = (reason or "").strip()
    if not reason:
        raise OrderError(_("A decision needs a reason."))
    with transaction.atomic():
        order = _lock(case.order, None)
        role = _acting_role(by, {"service", "finance"})
        case = AfterSalesCase.objects.select_for_update().get(pk=case.pk)
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
        _save(order, fields)
        _record(
            order,
            EventKind.AFTER_SALES,
            _as(by, role),
            {
                "case_id": case.pk,
                "action": "approved" if approve else "rejected",
                "kind": case.kind,
                "reason": reason,
                "department": case.decided_by_department,
            },
        )
    return case


ADDRESS_FIELDS = ("receiver_name", "receiver_phone", "province", "city", "district", "address")


def address_change_request(*, order: Order, by: Actor, **address: str) -> AddressChangeRequest:
    values = {field: (address.get(field) or "").strip() for field in ADDRESS_FIELDS}
    missing = [field for field in ADDRESS_FIELDS if field != "district" and not values[field]]
    if missing:
        raise OrderError(_("Fill in the receiver, phone, province, city and address."))
    if not is_contact_number(values["receiver_phone"]):
        raise OrderError(_("%(phone)s is not a valid phone number.") % {"phone": values["receiver_phone"]})
    # Stored canonical, like every phone on the order, so that search by phone still finds it.
    values["receiver_phone"] = normalize_mobile(values["receiver_phone"]) or values["receiver_phone"]
    with transaction.atomic():
        order = _lock(order, None)
        role = _acting_role(by, {"service", "sales", "reviewer"})
        if order.status not in ACTIVE_STATUSES:
            raise OrderError(_("The order has left the warehouse; the address can no longer change."))
        if order.address_changes.filter(status=AddressChangeStatus.OPEN).exists():
            raise OrderConflict(_("An address change for this order is already waiting."))
        change = AddressChangeRequest.objects.create(order=order, requested_by=by.user, **values)
        _save(order, [])
        _record(order, EventKind.ADDRESS_CHANGE, _as(by, role), {"change_id": change.pk, "action": "requested", **values})
    return change


def address_change_resolve(*, change: AddressChangeRequest, by: Actor, apply: bool) -> AddressChangeRequest:
    with transaction.atomic():
        order = _lock(change.order, None)
        role = _acting_role(by, {"reviewer", "service", "dispatcher", "packer"})
        change = AddressChangeRequest.objects.select_for_update().get(pk=change.pk)
        if change.status != AddressChangeStatus.OPEN:
            raise OrderConflict(_("This address change was already handled."))
        if apply and order.status not in ACTIVE_STATUSES:
            raise OrderError(_("The order has left the warehouse; the address can no longer change."))
        change.status = AddressChangeStatus.APPLIED if apply else AddressChangeStatus.REJECTED
        change.resolved_by = by.user
        change.resolved_at = timezone.now()
        change.save(update_fields=["status", "resolved_by", "resolved_at"])
        fields: list[str] = []
        if apply:
            for field in ADDRESS_FIELDS:
                setattr(order, field, getattr(change, field))
            fields = list(ADDRESS_FIELDS)
        _save(order, fields)
        _record(order, EventKind.ADDRESS_CHANGE, _as(by, role), {"change_id": change.pk, "action": "applied" if apply else "rejected"})
    return change


# --- Personal data -----------------------------------------------------------------------------


def phone_reveal(*, order: Order, by: Actor) -> str:
    """A masked role may see the full number when it must call; every reveal is on the record."""
    role = _acting_role(by, set(by.roles))
    _record(order, EventKind.PHONE_REVEAL, _as(by, role), {"field": "receiver_phone"})
    return order.receiver_phone
