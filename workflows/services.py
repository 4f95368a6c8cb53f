"""Writes of the supervisor's board and the rush link: acknowledge an alert, assign an order,
edit a stage rule, file a rush. Order writes follow the recipe of orders/services.py: lock the
row, check, change, save(update_fields), an OrderEvent naming the actor."""

from __future__ import annotations

import datetime
import secrets

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext as _

from orders.access import Actor
from orders.models import ACTIVE_STATUSES, Customer, EventKind, Order, OrderEvent, OrderSource, OrderTag, RiskTag, Role
from orders.phones import normalize_mobile
from orders.services import NotAllowed, OrderConflict, OrderError
from orders import clock
from orders.models import StageRule
from workflows.models import Alert

SUPERVISOR = Role.SUPERVISOR
RUSH_ROLES = {Role.SALES, Role.SUPERVISOR}
# A rule's limit must be a real clock: at least a minute, at most a month.
LIMIT_RANGE = (datetime.timedelta(minutes=1), datetime.timedelta(days=31))


def _require_supervisor(by: Actor) -> None:
    if SUPERVISOR not in by.roles:
        raise NotAllowed(_("Only a supervisor may do this."))


def _record(order: Order, kind: str, by: Actor, role: str, payload: dict) -> None:
    OrderEvent.objects.create(order=order, kind=kind, actor_user=by.user, actor_name=by.name, actor_role=role, payload=payload)


def _save(order: Order, fields: list[str]) -> None:
    order.version += 1
    order.save(update_fields=[*fields, "version", "updated_at"])


def alert_acknowledge(*, alert: Alert, by: Actor) -> Alert:
    """The supervisor has seen the breach: it stays red but leaves the list of open alerts."""
    if SUPERVISOR not in by.roles and alert.for_role not in by.roles:
        raise NotAllowed(_("This alert is for another role."))
    with transaction.atomic():
        alert = Alert.objects.select_for_update().get(pk=alert.pk)
        if alert.acknowledged_at is not None:
            return alert
        alert.acknowledged_by = by.user
        alert.acknowledged_at = timezone.now()
        alert.save(update_fields=["acknowledged_by", "acknowledged_at"])
    return alert


def order_assign(*, order: Order, by: Actor, assignee: User, expected_version: int | None = None) -> Order:
    """The supervisor names who operates the order now ("who is operating" on the card)."""
    _require_supervisor(by)
    if not assignee.is_active or not assignee.groups.filter(name__in=Role.values).exists():
        raise OrderError(_("%(name)s has no role in the cockpit and cannot operate orders.") % {"name": assignee.get_username()})
    with transaction.atomic():
        locked = Order.objects.select_for_update().get(pk=order.pk)
        if expected_version is not None and locked.version != expected_version:
            raise OrderConflict(_("Someone changed this order meanwhile; the board now shows the latest state. Please try again."))
        if locked.status not in ACTIVE_STATUSES:
            raise OrderError(_("Order %(number)s is %(status)s; only open orders are assigned.")
                             % {"number": locked.order_number, "status": locked.get_status_display()})
        if locked.claimed_by_id == assignee.pk:
            return locked
        previous = locked.claimed_by.get_username() if locked.claimed_by_id else None
        locked.claimed_by = assignee
        locked.claimed_at = timezone.now()
        _save(locked, ["claimed_by", "claimed_at"])
        name = assignee.get_full_name() or assignee.get_username()
        _record(locked, EventKind.ASSIGN, by, SUPERVISOR,
                {"assignee": assignee.get_username(), "previous": previous, "message": _("Assigned to %(name)s") % {"name": name}})
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
    if work_starts is not None and work_starts >= work_ends:
        raise OrderError(_("Working hours must end after they start (e.g. 09:00 to 18:00)."))
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


# --- Rush -----------------------------------------------------------------------------------


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

    BRIEF.md: "3 required fields (customer phone, rush reason, expected completion time)"."""
    if not by.roles & RUSH_ROLES:
        raise NotAllowed(_("Only sales and supervisors file rush orders."))
    errors: dict[str, str] = {}
    mobile = normalize_mobile(phone)
    if not phone.strip():
        errors["phone"] = _("Enter the customer's mobile number.")
    elif mobile is None:
        errors["phone"] = _("“%(phone)s” is not a mainland mobile number: 11 digits starting with 1, e.g. 138 0013 8000.") % {"phone": phone}
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
    role = Role.SALES if Role.SALES in by.roles else SUPERVISOR
    with transaction.atomic():
        candidates = {order.order_number: order for order in open_orders_of_phone(mobile)}
        if order_choice and order_choice != NEW_ORDER:
            if order_choice not in candidates:
                raise RushInvalid({"order": _("Order %(number)s is not an open order of this phone.") % {"number": order_choice}})
            return _rush_existing(candidates[order_choice], by, role, reason, deadline, now)
        if candidates and order_choice != NEW_ORDER:
            raise RushInvalid({"order": _("This phone has %(count)d open order(s): choose the one to rush, or “a new order”.")
                               % {"count": len(candidates)}})
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
    _record(order, EventKind.RUSH, by, role, {"reason": reason, "deadline": deadline.isoformat(), "new_order": False,
                                              "message": _("🔥 Rush: %(reason)s") % {"reason": reason}})
    return order


def _rush_new_order(phone: str, by: Actor, role: str, reason: str, deadline: datetime.datetime, now: datetime.datetime) -> Order:
    """A rush for a customer with no open order. The receiver is the customer's last known one;
    without any, placeholders plus an open "fuzzy address" tag, which blocks approval until the
    reviewer has the real address (status.approve_blockers)."""
    customer, _created = Customer.objects.get_or_create(phone=phone, defaults={"name": _("Customer %(last4)s") % {"last4": phone[-4:]}})
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
        source=OrderSource.RUSH, customer=customer, **receiver,
        is_rush=True, rush_reason=reason, rush_deadline=deadline, rush_filed_at=now,
        stage_entered_at=now, pending_review_at=now, placed_at=now, created_at=now,
    )
    clock.clock_on_stage_entered(order)
    order.save()
    _record(order, EventKind.CREATED, by, role, {"source": OrderSource.RUSH})
    _record(order, EventKind.RUSH, by, role, {"reason": reason, "deadline": deadline.isoformat(), "new_order": True,
                                              "message": _("🔥 Rush: %(reason)s") % {"reason": reason}})
    if last is None:
        OrderTag.objects.create(order=order, tag=RiskTag.FUZZY_ADDRESS, opened_by=by.user)
        _record(order, EventKind.TAG, by, role, {"tag": RiskTag.FUZZY_ADDRESS})
    return order
