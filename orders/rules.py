"""Every rule of the order domain, once: the role matrix (who may do what, and which screens
each role works on) and the guards that block a status transition.

Each guard returns the reasons (in the user's language) why a transition cannot run now. The
FSM conditions on Order call the same functions, so the card's disabled-button message and the
check in the service can never disagree. The services (orders/services.py) check the role
matrix; views declare their screen's roles from SCREEN_ROLES, and the navigation is drawn from
it, so a role set is never written a second time.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.utils.translation import gettext as _

from orders.reasons import REASONS

if TYPE_CHECKING:
    from orders.models import AddressChangeRequest, Order

# Kuaidi100's code for SF cold chain (docs/protocols.md). docs/brief.md: "an order with a cold-chain item
# must use the SF cold chain channel or it cannot go to packing".
COLD_CHAIN_CARRIER = "shunfenglengyun"

# --- The role matrix ---------------------------------------------------------------------------

# The eight roles of docs/brief.md (orders.models.Role gives their names); each is an auth Group.
ALL_ROLES = ("sales", "reviewer", "dispatcher", "packer", "courier", "service", "finance", "supervisor")
SUPERVISOR = "supervisor"
# docs/brief.md: phone numbers are masked for roles that don't need them (the warehouse and carriers).
MASKED_PHONE_ROLES = frozenset({"dispatcher", "packer", "courier"})
WAREHOUSE_ROLES = frozenset({"dispatcher", "packer"})

# Which role runs which transition (docs/brief.md: each node is bound to an operator role; courier,
# service or the system completes; a supervisor may do any of them, recorded as such).
TRANSITION_ROLES: dict[str, frozenset[str]] = {
    "approve": frozenset({"reviewer"}),
    "start_picking": frozenset({"dispatcher"}),
    "pack": frozenset({"packer"}),
    "ship": frozenset({"courier"}),
    "complete": frozenset({"courier", "service"}),
    "cancel": frozenset({"service"}),
}

# Who may do the other order actions (a supervisor may always act in their place). The service
# of the same name checks it; the card shows an action only to these roles.
ACTION_ROLES: dict[str, frozenset[str]] = {
    # The courier "hands to carriers, enters waybills" (docs/brief.md), so also changes them.
    "change_waybill": frozenset({"courier"}),
    "set_carrier": frozenset({"reviewer", "dispatcher", "packer", "courier"}),
    "hold": frozenset({"reviewer", "dispatcher", "packer", "courier", "service"}),
    "claim": frozenset({"reviewer", "dispatcher", "packer", "courier", "service", "sales", "finance"}),
    # The reviewer "reviews new orders, fixes fuzzy addresses" (docs/brief.md).
    "correct_address": frozenset({"reviewer"}),
    "request_address_change": frozenset({"service", "sales", "reviewer"}),
    # Applying a change is a decision about the order, not warehouse work: the warehouse is told
    # (the request intercepts packing) but does not decide.
    "resolve_address_change": frozenset({"reviewer", "service"}),
    # The waybill printed with the old address was reprinted (the picking/packed rung).
    "confirm_reprint": frozenset({"dispatcher", "packer", "courier"}),
    # The courier records what the carrier's hotline said (the rung for carriers without interception).
    "record_carrier_outcome": frozenset({"courier"}),
    "open_after_sales": frozenset({"service", "sales"}),
    # Finance decides money (refunds); customer service decides every case.
    "decide_after_sales": frozenset({"service"}),
    "decide_refund": frozenset({"service", "finance"}),
    "file_rush": frozenset({"sales"}),
    # Putting a gift on an order before it is packed (the line records who, and which rule).
    "add_gift": frozenset({"service", "sales", "reviewer"}),
    # Issue 15: a Douyin receiver is decrypted through the platform only to print the waybill,
    # by the roles that print and hand over parcels; every decrypt is logged.
    "decrypt_receiver": frozenset({"dispatcher", "courier"}),
    "assign": frozenset(),
    "edit_stage_rules": frozenset(),
}

# Who resolves each exception reason: the role that can actually remove the cause (the catalogue,
# orders/reasons.py, says it once per reason; a fuzzy address is resolved only by correcting it).
TAG_RESOLVER_ROLES: dict[str, frozenset[str]] = {reason.code: reason.resolvers for reason in REASONS}

# The screens each role works on (views use @role_required(*SCREEN_ROLES[...]); the navigation
# in templates/base.html is drawn from this table).
SCREEN_ROLES: dict[str, tuple[str, ...]] = {
    "orders": ALL_ROLES,
    "health": ("supervisor", "finance"),
    "status_check": ("sales", "dispatcher", "packer", "service"),
    "erp": ("finance", "supervisor"),
    # The product master and its import (issue 16): finance keeps prices, the supervisor the rest.
    "products": ("supervisor", "finance"),
    "lookup": ("service", "supervisor", "sales"),
    "pda": ("packer", "supervisor"),
    "tickets": ("courier", "supervisor"),
    "board": ("supervisor",),
    "rush": ("sales", "supervisor"),
    # Issue 13: one inbox of address-change requests.
    "address_changes": ("reviewer", "service", "supervisor"),
}


def screens_of(roles: frozenset[str]) -> frozenset[str]:
    return frozenset(screen for screen, allowed in SCREEN_ROLES.items() if roles & set(allowed))


TRANSITION_ORDER = ["approve", "start_picking", "pack", "ship", "complete", "cancel"]


# Facts the transition service reads in the statement that locks the order (orders/services.py
# LOCKED_FACTS), a query saved per guard on every transition. An order read anywhere else (the
# card, the PDA) has no such attribute, and the guard asks the database itself.
def _fact(order: Order, name: str, ask: Callable[[], bool]) -> bool:
    known = getattr(order, name, None)
    return ask() if known is None else bool(known)  # SQLite answers EXISTS with 0 or 1


def _hold_blocker(order: Order) -> list[str]:
    if order.is_held:
        return [_("The order is on hold (%(reason)s); release it first.") % {"reason": order.get_hold_reason_display()}]
    return []


@dataclass(frozen=True)
class Interception:
    """What stops the parcel before it leaves: an open refund request, an open address change."""

    refund: bool
    address_change: AddressChangeRequest | None

    def __bool__(self) -> bool:
        return self.refund or self.address_change is not None


def interception(order: Order) -> Interception:
    """The one decision "is this order intercepted" (docs/brief.md: an open refund or address change
    stops the parcel); the card, the service and the PDA's STOP screen all read it.

    The guards read the order's rows through .all(), so a page that prefetched them (the card,
    the PDA station) asks them once, however many guards read them (issue 14); an order has a
    handful of such rows, so reading them all costs no more than an exists() when not prefetched."""
    open_changes = [change for change in order.address_changes.all() if change.status == "open"]
    return Interception(
        refund=any(case.kind == "refund" and case.status == "open" for case in order.after_sales.all()),
        address_change=max(open_changes, key=lambda change: (change.requested_at, change.pk), default=None),
    )


def _interception_blockers(order: Order) -> list[str]:
    stopped = interception(order)
    reasons = []
    if stopped.refund:
        reasons.append(_("An open refund request intercepts this order; decide the refund first."))
    if stopped.address_change is not None:
        reasons.append(_("An open address change intercepts this order; apply or reject it first."))
    return reasons


def waybill_reprint_pending(order: Order) -> bool:
    """Issue 13: an address changed while picking or packed leaves a label with the old address."""
    return any(change.reprint_pending for change in order.address_changes.all())


def _waybill_reprint_blocker(order: Order) -> list[str]:
    """The parcel leaves only after the waybill was reprinted with the new address."""
    if waybill_reprint_pending(order):
        return [_("The address changed after picking began: reprint the waybill with the new address before shipping.")]
    return []


def _no_items_blocker(order: Order) -> list[str]:
    """Issue 11: "no items → no approve / pack". A rush order filed for a new phone starts empty
    (¥0.00); its items arrive with the ERP import."""
    # The fact read with the transition's lock, else the order's lines (prefetched by a page).
    if not _fact(order, "fact_has_lines", lambda: bool(order.lines.all())):
        return [_("This order has no items yet; add its items first (e.g. through the ERP import).")]
    return []


def _fuzzy_address_blocker(order: Order) -> list[str]:
    if _fact(
        order,
        "fact_fuzzy_address",
        lambda: any(tag.tag == "fuzzy_address" and tag.resolved_at is None for tag in order.tags.all()),
    ):
        return [_("The address is tagged as fuzzy; correct it and resolve the tag before approving.")]
    return []


def _carrier_label(code: str) -> str:
    from orders.models import Carrier  # orders.models reads this module's guards

    return Carrier(code).label if code in Carrier.values else code or "—"


def _cold_chain_blocker(order: Order) -> list[str]:
    """docs/brief.md: an order with a cold-chain item must use SF cold chain or it cannot go to packing;
    the same holds at the dock (order_ship sets the carrier it ships with before this runs)."""
    # Read through .all(): the card has the lines prefetched already.
    if any(line.cold_chain for line in order.lines.all()) and order.carrier_code != COLD_CHAIN_CARRIER:
        return [
            _(
                "This order has cold-chain items: it must use the %(channel)s channel, not %(carrier)s; change its carrier before packing."
            )
            % {"channel": _carrier_label(COLD_CHAIN_CARRIER), "carrier": _carrier_label(order.carrier_code)}
        ]
    return []


# A buyer message or a note that promises a gift (issue 16): 赠品 / 赠送 / 附赠, "送个小礼物",
# "记得送冰袋", "买二送一". "送" alone is not a promise: 送货上门, 请送到门卫, 配送 are delivery words.
GIFT_PROMISE = re.compile(
    r"赠品|赠送|附赠|加赠|送(?:个|一个|一份|份|点|些|的)?(?:小礼物|礼物|礼品|赠品|样品|小样|试用装|试吃)"
    r"|(?:记得|别忘了?|还要|再|要)送(?![到货达至去回])|[买满].{0,8}送(?![到货达至去回])"
)
# "不要赠品", "不用送": the buyer declines.
GIFT_DECLINED = re.compile(r"(?:不要|不需要|无需|不用|别|勿)(?:赠品|赠送|送)")


def gift_promise(order: Order) -> str:
    """The buyer message or note that promises a gift, "" when none does."""
    # Most orders have no note: with the fact read with the lock, no query for them; a page's
    # prefetched notes are read, not queried again.
    if getattr(order, "fact_has_notes", True):
        notes = sorted(order.notes.all(), key=lambda note: (note.created_at, note.pk), reverse=True)  # newest first
    else:
        notes = []
    for text in (order.buyer_message, *(note.body for note in notes)):
        if text and GIFT_PROMISE.search(text) and not GIFT_DECLINED.search(text):
            return text
    return ""


def gift_promise_unmet(order: Order) -> str:
    """The promise of a gift the order has no gift line for, "" when kept (or decided: a resolved
    "missing gift" exception says why none is due)."""
    if any(line.is_gift for line in order.lines.all()):
        return ""
    promise = gift_promise(order)
    if promise and any(tag.tag == "missing_gift" and tag.resolved_at is not None for tag in order.tags.all()):
        return ""
    return promise


def _gift_missing_blocker(order: Order) -> list[str]:
    promise = gift_promise_unmet(order)
    if promise:
        return [
            _(
                "A gift is promised (“%(promise)s”) but the order has no gift line: add the gift, or resolve the "
                "“missing gift” exception saying why none is due."
            )
            % {"promise": promise[:40]}
        ]
    return []


# Every guard of the status machine, by name: the transitions it guards and its reasons. The
# transitions' FSM conditions, the card's disabled buttons and the services all read this one
# table; tests/test_rule_paths.py generates a case per guard and entry path from it. (Packing by
# a person has two more checks, scans and notes: orders/packing.py pack_check.)
GUARDS: dict[str, tuple[tuple[str, ...], Callable[[Order], list[str]]]] = {
    "hold": (("approve", "start_picking", "pack", "ship"), _hold_blocker),
    "no_items": (("approve", "start_picking", "pack"), _no_items_blocker),
    "fuzzy_address": (("approve",), _fuzzy_address_blocker),
    "cold_chain": (("pack", "ship"), _cold_chain_blocker),
    "interception": (("pack", "ship"), _interception_blockers),
    "gift_missing": (("pack",), _gift_missing_blocker),
    "waybill_reprint": (("ship",), _waybill_reprint_blocker),
}


def _blockers_of(transition: str) -> Callable[[Order], list[str]]:
    guards = [guard for transitions, guard in GUARDS.values() if transition in transitions]

    def blockers(order: Order) -> list[str]:
        return [reason for guard in guards for reason in guard(order)]

    return blockers


BLOCKERS = {name: _blockers_of(name) for name in TRANSITION_ORDER}


def can_approve(order: Order) -> bool:
    return not BLOCKERS["approve"](order)


def can_start_picking(order: Order) -> bool:
    return not BLOCKERS["start_picking"](order)


def can_pack(order: Order) -> bool:
    return not BLOCKERS["pack"](order)


def can_ship(order: Order) -> bool:
    return not BLOCKERS["ship"](order)
