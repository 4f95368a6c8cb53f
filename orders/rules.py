"""The status machine's rules: who may run each transition, and the guards that block it.

Each guard returns the reasons (in the user's language) why a transition cannot run now. The
FSM conditions on Order call the same functions, so the card's disabled-button message and the
check in the service can never disagree.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.utils.translation import gettext as _

if TYPE_CHECKING:
    from orders.models import Order

# Kuaidi100's code for SF cold chain (PROTOCOLS.md). BRIEF.md: "an order with a cold-chain item
# must use the SF cold chain channel or it cannot go to packing".
COLD_CHAIN_CARRIER = "shunfenglengyun"

# Which role runs which transition (issue: "reviewer approves; dispatcher starts picking; packer
# packs; courier ships; courier, service or the system completes; service or supervisor
# cancels; a supervisor may do any of them").
TRANSITION_ROLES: dict[str, set[str]] = {
    "approve": {"reviewer"},
    "start_picking": {"dispatcher"},
    "pack": {"packer"},
    "ship": {"courier"},
    "complete": {"courier", "service"},
    "cancel": {"service"},
}
SUPERVISOR = "supervisor"
TRANSITION_ORDER = ["approve", "start_picking", "pack", "ship", "complete", "cancel"]


def _hold_blocker(order: Order) -> list[str]:
    if order.is_held:
        return [_("The order is on hold (%(reason)s); release it first.") % {"reason": order.get_hold_reason_display()}]
    return []


def _interception_blockers(order: Order) -> list[str]:
    """An open refund or address change stops the parcel before it leaves (interception)."""
    reasons = []
    if order.after_sales.filter(kind="refund", status="open").exists():
        reasons.append(_("An open refund request intercepts this order; decide the refund first."))
    if order.address_changes.filter(status="open").exists():
        reasons.append(_("An open address change intercepts this order; apply or reject it first."))
    return reasons


def approve_blockers(order: Order) -> list[str]:
    reasons = _hold_blocker(order)
    if order.tags.filter(tag="fuzzy_address", resolved_at__isnull=True).exists():
        reasons.append(_("The address is tagged as fuzzy; correct it and resolve the tag before approving."))
    return reasons


def start_picking_blockers(order: Order) -> list[str]:
    return _hold_blocker(order)


def pack_blockers(order: Order) -> list[str]:
    reasons = _hold_blocker(order)
    if order.lines.filter(cold_chain=True).exists() and order.carrier_code != COLD_CHAIN_CARRIER:
        reasons.append(
            _("This order has cold-chain items: it must use the SF cold chain channel (%(code)s) before packing.")
            % {"code": COLD_CHAIN_CARRIER}
        )
    unacknowledged = unacknowledged_warehouse_warnings(order)
    if unacknowledged:
        reasons.append(
            _("%(count)d warehouse warning note(s) not yet acknowledged: %(body)s")
            % {"count": len(unacknowledged), "body": unacknowledged[0].body[:60]}
        )
    reasons += _interception_blockers(order)
    return reasons


def ship_blockers(order: Order) -> list[str]:
    return _hold_blocker(order) + _interception_blockers(order)


def no_blockers(order: Order) -> list[str]:
    return []


BLOCKERS = {
    "approve": approve_blockers,
    "start_picking": start_picking_blockers,
    "pack": pack_blockers,
    "ship": ship_blockers,
    "complete": no_blockers,
    "cancel": no_blockers,
}


def unacknowledged_warehouse_warnings(order: Order) -> list:
    """Warning notes for the warehouse that no dispatcher or packer has acknowledged yet."""
    return list(
        order.notes.filter(kind="warning", audience="warehouse")
        .exclude(acknowledgements__role__in=["dispatcher", "packer"])
        .order_by("-created_at")
    )


def can_approve(order: Order) -> bool:
    return not approve_blockers(order)


def can_start_picking(order: Order) -> bool:
    return not start_picking_blockers(order)


def can_pack(order: Order) -> bool:
    return not pack_blockers(order)


def can_ship(order: Order) -> bool:
    return not ship_blockers(order)
