"""The ghost-order check (issue 16): an order "shipped" in one system while the parcel is still in
the sorting area in reality. No one system holds the whole truth, so this cross-checks the
signals each one has:

- shipped here, or in the ERP/WMS (an ERP import of a 已发货 order, or a ship status event, both
  make the order shipped here too);
- the carrier's first scan: Kuaidi100's 揽收 (tracking state 1, picked up), or any tracking
  state or tracking line at all, since every later state implies the pickup;
- the ERP/WMS saying shipped while the order is not shipped here (its ship event was refused by
  a guard: an interception, a hold), kept on the timeline as a refused sync event;
- the platform's shipped flag: there is no platform intake yet; when it arrives, it is one more
  `_reason` case here.

When two signals disagree for longer than settings.GHOST_ORDER_WINDOW, the order gets the
"ghost order" exception tag (orders/rules.py: the dispatcher or the courier resolves it), with
the disagreement as the tag's note on the timeline. The same check releases the tag itself once
the signals agree (the pickup scan arrived, the order shipped or was cancelled here). Beat runs
it every 15 minutes; the health page counts the ghost orders opened per day
(workflows/health/measures.py).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from orders import services
from orders.access import Actor
from orders.models import EventKind, Order, OrderEvent, OrderStatus, OrderTag, RiskTag, Shipment, TrackingEvent

CHECK = Actor.system("ghost check")
# Orders shipped longer ago than this are no longer checked (a parcel lost for a week is a
# ticket's matter, workflows/tracking.py), which keeps each run to the last days' orders.
LOOKBACK = datetime.timedelta(days=7)
NOT_SHIPPED_HERE = (OrderStatus.PENDING_REVIEW, OrderStatus.PAID, OrderStatus.PICKING, OrderStatus.PACKED)


@dataclass
class GhostCheck:
    opened: int = 0
    released: int = 0


def _scanned():
    """A shipment of the order that the carrier has seen: a tracking state or a tracking line."""
    return Shipment.objects.filter(order=OuterRef("pk")).filter(
        ~Q(tracking_state="") | Exists(TrackingEvent.objects.filter(shipment=OuterRef("pk")))
    )


def _outside_ship_refused(since: datetime.datetime, until: datetime.datetime):
    return OrderEvent.objects.filter(
        order=OuterRef("pk"),
        kind=EventKind.SYNC_REFUSED,
        payload__action="ship",
        occurred_at__gte=since,
        occurred_at__lte=until,
    )


def _hours(delta: datetime.timedelta) -> int:
    return max(int(delta.total_seconds() // 3600), 0)


def ghost_reason(order: Order, *, now: datetime.datetime | None = None) -> str | None:
    """Why the systems disagree about this order beyond the window, or None when they agree (or
    have not disagreed for long enough yet)."""
    now = now or timezone.now()
    window = settings.GHOST_ORDER_WINDOW
    if order.status == OrderStatus.SHIPPED and order.shipped_at and order.shipped_at <= now - window:
        if not order.shipments.exists():
            return _("Shipped %(hours)d h ago, but there is no waybill: the carrier cannot have picked it up.") % {
                "hours": _hours(now - order.shipped_at)
            }
        if not Order.objects.filter(pk=order.pk).filter(Exists(_scanned())).exists():
            return _("Shipped %(hours)d h ago, and the carrier has no pickup scan (揽收) for it yet.") % {
                "hours": _hours(now - order.shipped_at)
            }
    if order.status in NOT_SHIPPED_HERE:
        refused = (
            OrderEvent.objects.filter(
                order=order, kind=EventKind.SYNC_REFUSED, payload__action="ship", occurred_at__lte=now - window
            )
            .order_by("-occurred_at")
            .first()
        )
        if refused is not None:
            return _("%(system)s reported it shipped %(hours)d h ago; here it is still %(status)s.") % {
                "system": refused.actor_name,
                "hours": _hours(now - refused.occurred_at),
                "status": order.get_status_display(),
            }
    return None


def _candidates(now: datetime.datetime):
    """Orders a disagreement may have lasted past the window for, without an open ghost tag."""
    window = settings.GHOST_ORDER_WINDOW
    cutoff, horizon = now - window, now - window - LOOKBACK
    open_ghost = OrderTag.objects.filter(order=OuterRef("pk"), tag=RiskTag.GHOST_ORDER, resolved_at__isnull=True)
    shipped_unseen = Q(status=OrderStatus.SHIPPED, shipped_at__lte=cutoff, shipped_at__gte=horizon) & ~Q(Exists(_scanned()))
    reported_elsewhere = Q(status__in=NOT_SHIPPED_HERE) & Q(Exists(_outside_ship_refused(horizon, cutoff)))
    return Order.objects.filter(shipped_unseen | reported_elsewhere).exclude(Exists(open_ghost))


def ghost_check(*, now: datetime.datetime | None = None) -> GhostCheck:
    """Open a ghost tag where the signals disagree beyond the window; release the ones where they
    agree again. Idempotent: an order has one open ghost tag at most (services.order_tag_add)."""
    now = now or timezone.now()
    result = GhostCheck()
    for order in _candidates(now).iterator(chunk_size=500):
        reason = ghost_reason(order, now=now)
        if reason:
            services.order_tag_add(order=order, by=CHECK, tag=RiskTag.GHOST_ORDER, note=reason)
            result.opened += 1
    # Only the tags this check opened (no person): a ghost someone reported stays theirs to close.
    mine = OrderTag.objects.filter(tag=RiskTag.GHOST_ORDER, resolved_at__isnull=True, opened_by__isnull=True)
    for tag in mine.select_related("order"):
        if ghost_reason(tag.order, now=now) is None:
            services.order_tag_resolve(
                order=tag.order,
                by=CHECK,
                tag=RiskTag.GHOST_ORDER,
                resolution=_("The systems agree again (checked automatically)."),
            )
            result.released += 1
    return result
