"""The delay push before they ask (issue 18): when a parcel is predicted late, the customer hears
why and when it will now arrive, within a minute of our knowing, once per cause, and not at
night unless it is urgent.

The causes, and where each is detected:
- no movement beyond the carrier's usual interval — the stalled scan (workflows/tracking.py)
  calls `delay_push` with cause "stalled";
- an exception state (problem, returning, refused) — pushed at once by the tracking reaction
  (workflows/tracking.py), urgent, never held;
- a missed ETA — `missed_eta_scan` below: a parcel past its carrier's ETA and not signed;
- a stage breach before shipping — `stage_breach_scan` below, over the SLA sweep's breaches
  (workflows/sla.py marks Order.sla_breached_at).

Once per cause: each cause has its own event key (the parcel and the silence it began with, the
ETA that was missed, the stage entry that overran), and the outboxes keep one message per key.
`delays_scan` runs every 30 s, so a detection is pushed within 60 s.
"""

from __future__ import annotations

import datetime

from django.conf import settings
from django.db.models import CharField, Exists, Func, OuterRef, Value
from django.db.models.functions import Cast, Concat
from django.utils import timezone
from django.utils.translation import gettext as _

from integrations.sms.models import SmsMessage
from integrations.wechat.models import CustomerMessage
from orders.models import ACTIVE_STATUSES, Order, OrderStatus, Shipment, StageRule, TrackingState
from workflows import notifications

# Why a parcel is late, per cause (the customer's words live with the other push texts).
REASONS = notifications.DELAY_REASONS
# A breach or a missed ETA older than this is not pushed any more (a restart after a long outage).
LOOKBACK = datetime.timedelta(hours=6)


def slack() -> datetime.timedelta:
    return datetime.timedelta(hours=settings.DELAY_ETA_SLACK_HOURS)


def predicted_eta(order: Order, *, now: datetime.datetime, shipment: Shipment | None = None) -> datetime.datetime:
    """The new delivery estimate. A parcel on its way: its carrier ETA (or now, if that passed)
    plus the slack. An order still with us: the time limits of the stages left, then the
    carrier's usual transit."""
    if shipment is not None:
        return max(shipment.eta or now, now) + slack()
    remaining = ACTIVE_STATUSES[ACTIVE_STATUSES.index(order.status) + 1 :] if order.status in ACTIVE_STATUSES else []
    limits = StageRule.objects.filter(stage__in=remaining).values_list("time_limit", flat=True)
    return now + sum(limits, datetime.timedelta()) + datetime.timedelta(hours=settings.CARRIER_TRANSIT_HOURS)


def delay_event_key(cause: str, *parts: object) -> str:
    return notifications.DELAY_PREFIX + ":".join([cause, *map(str, parts)])


def delay_push(
    *, order: Order, cause: str, key: str, now: datetime.datetime, shipment: Shipment | None = None, urgent: bool = False
):
    """One push for one cause: the reason and the new ETA; held until morning at night unless urgent."""
    return notifications.customer_push_order_status(
        order=order,
        event_key=key,
        reason=_(REASONS[cause]),
        new_eta=predicted_eta(order, now=now, shipment=shipment),
        hold_at_night=not urgent,
    )


def _not_pushed(key_field: str, order_field: str):
    """No push for the key in `key_field` (an annotation) in either outbox: what
    notifications.push_exists asks of one order, for a whole query at once."""
    return ~Exists(CustomerMessage.objects.filter(order_id=OuterRef(order_field), event_key=OuterRef(key_field))) & ~Exists(
        SmsMessage.objects.filter(order_id=OuterRef(order_field), event_key=OuterRef(key_field))
    )


class _EpochSeconds(Func):
    """f"{moment.timestamp():.0f}" in SQL: whole seconds since 1970, an exact half second rounded
    to even as Python's formatting rounds it (the stage key below is written by Python)."""

    output_field = CharField()

    def as_postgresql(self, compiler, connection):
        sql, params = compiler.compile(self.source_expressions[0])
        epoch = f"extract(epoch from {sql})"
        rounded = f"CASE WHEN {epoch} - floor({epoch}) = 0.5 THEN floor({epoch}) + mod(floor({epoch}), 2) ELSE round({epoch}) END"
        return f"(({rounded})::bigint)::text", params * 5

    def as_sqlite(self, compiler, connection):
        # Stored as UTC text "YYYY-MM-DD HH:MM:SS[.ffffff]"; SQLite before 3.42 has no sub-second epoch.
        sql, params = compiler.compile(self.source_expressions[0])
        seconds, micros = f"CAST(strftime('%%s', {sql}) AS INTEGER)", f"CAST(substr({sql}, 21) AS INTEGER)"
        rounded = f"{seconds} + ({micros} > 500000) + ({micros} = 500000 AND {seconds} %% 2 = 1)"
        return f"CAST(({rounded}) AS TEXT)", params * 4


def stage_delay_key(order: Order) -> str:
    """Once per stage entry: re-entering a stage later is a new delay."""
    return delay_event_key("stage", order.pk, order.status, f"{order.stage_entered_at.timestamp():.0f}")


def missed_eta_scan(*, now: datetime.datetime | None = None) -> int:
    """Parcels past their carrier's ETA and not delivered: one push per missed ETA."""
    now = now or timezone.now()
    late = (
        Shipment.objects.filter(order__status=OrderStatus.SHIPPED, replaced_at__isnull=True, eta__lt=now, eta__gte=now - LOOKBACK)
        .exclude(tracking_state__in=[TrackingState.SIGNED, TrackingState.RETURNED_SIGNED])
        .select_related("order__customer")
    )
    pushed = 0
    for shipment in late:
        key = delay_event_key("eta", shipment.pk, f"{shipment.eta:%Y%m%d%H%M}")
        if notifications.push_exists(order=shipment.order, event_key=key):
            continue
        pushed += delay_push(order=shipment.order, cause="eta", key=key, now=now, shipment=shipment) is not None
    return pushed


def stage_breach_scan(*, now: datetime.datetime | None = None, order_ids: list[int] | None = None) -> int:
    """Orders over a stage's time limit before shipping (the SLA sweep's breaches; only `order_ids`
    when given): the customer hears their order is late before they ask, once per stage entry."""
    now = now or timezone.now()
    # One query for the orders not pushed yet (stage_delay_key, built in SQL): a scan over tens of
    # thousands of breaches already pushed costs one query, not two per order.
    key_in_sql = Concat(
        Value(notifications.DELAY_PREFIX + "stage:"),
        Cast("pk", CharField()),
        Value(":"),
        "status",
        Value(":"),
        _EpochSeconds("stage_entered_at"),
        output_field=CharField(),
    )
    breached = (
        Order.objects.filter(status__in=ACTIVE_STATUSES, sla_breached_at__isnull=False, sla_breached_at__gte=now - LOOKBACK)
        .alias(delay_key=key_in_sql)
        .filter(_not_pushed("delay_key", "pk"))
        .select_related("customer")
    )
    if order_ids is not None:
        breached = breached.filter(pk__in=order_ids)
    pushed = 0
    for order in breached:
        pushed += delay_push(order=order, cause="stage", key=stage_delay_key(order), now=now) is not None
    return pushed


def delays_scan(*, now: datetime.datetime | None = None) -> int:
    """Beat, every 30 s: the delay pushes for missed ETAs and stage breaches (stalled parcels
    are pushed by the stalled scan itself)."""
    return missed_eta_scan(now=now) + stage_breach_scan(now=now)
