"""The PDA packing station: open an order by scanning its number or waybill, verify every item
(gifts included) by barcode, acknowledge every warehouse note, then pack.

Every scan is a PackScan row, refusals included, so "who scanned what when" is on the record.
The rules (what counts as verified, which notes must be read, whether the order is intercepted)
live in orders/packing.py and orders/rules.py; this module is the station around them.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction
from django.db.models import Prefetch, prefetch_related_objects
from django.utils.translation import gettext as _

from orders import packing as verification
from orders import rules, services
from orders.access import Actor
from orders.models import (
    Note,
    NoteAcknowledgement,
    Order,
    OrderLine,
    OrderStatus,
    PackScan,
    Product,
    ScanOutcome,
    Shipment,
)
from orders.packing import PackLine
from orders.phones import normalize_order_number

REFUSED = {ScanOutcome.WRONG_ITEM, ScanOutcome.OVER_COUNT, ScanOutcome.INTERCEPTED, ScanOutcome.UNKNOWN, ScanOutcome.NOT_PACKABLE}


@dataclass
class PackingState:
    order: Order
    lines: list[PackLine]
    notes: list[Note]  # newest first, each with .acknowledged_by_me and .needs_ack
    interceptions: list[str]  # the STOP screen's wording for rules.interception(order)
    refusals: list[str]  # orders.packing.pack_check for this person: what the card would say too
    guards: list[str]  # the order-state part of refusals (orders/rules.py GUARDS), shown on opening
    last_scan: PackScan | None = None

    @property
    def has_gift(self) -> bool:
        return any(line.is_gift for line in self.lines)

    @property
    def has_cold_chain(self) -> bool:
        return any(line.cold_chain for line in self.lines)

    @property
    def missing(self) -> list[PackLine]:
        return [line for line in self.lines if not line.done]

    @property
    def unacknowledged(self) -> list[Note]:
        return [note for note in self.notes if note.needs_ack and not note.acknowledged_by_me]

    @property
    def packable_status(self) -> bool:
        return self.order.status == OrderStatus.PICKING

    @property
    def status_line(self) -> str:
        """For an order not in picking: said plainly, not as a refusal (a just-packed order shows
        here as packed, not as an error)."""
        if self.order.status == OrderStatus.PACKED:
            return _("Packed. Scan the next order.")
        return _("This order is %(status)s; only an order in picking can be packed.") % {
            "status": self.order.get_status_display()
        }

    @property
    def opening_guards(self) -> list[str]:
        """What stops this order whatever is scanned (cold chain on the wrong carrier, a hold, no
        items), told as soon as it is opened; an interception has its own STOP screen."""
        if not self.packable_status:
            return []
        return [reason for reason in self.guards if reason not in self.interception_reasons]

    @property
    def interception_reasons(self) -> list[str]:
        return rules.GUARDS["interception"][1](self.order)

    @property
    def station_blockers(self) -> list[str]:
        """Why the station will not pack yet: the same check the service makes."""
        if not self.packable_status:
            return [self.status_line]
        return self.refusals

    @property
    def verification_blockers(self) -> list[str]:
        """The scanning still to do (the guards are shown at the top when the order opens)."""
        return [reason for reason in self.refusals if reason not in self.guards]


def order_for_code(code: str) -> Order | None:
    """An order by its number, else by a waybill (tracking number) on it."""
    order = Order.objects.filter(order_number=normalize_order_number(code)).first()
    if order is None:
        shipment = Shipment.objects.select_related("order").filter(tracking_number=code.upper()).first()
        order = shipment.order if shipment else None
    return order


def stop_wording(order: Order) -> list[str]:
    """The STOP screen: rules.interception decides; the bench is told what to do with the goods."""
    stopped = rules.interception(order)
    reasons = []
    if stopped.refund:
        reasons.append(_("STOP: the customer asked for a refund. Do not pack; put the goods aside and tell the supervisor."))
    change = stopped.address_change
    if change is not None:
        reasons.append(
            _("STOP: the delivery address is being changed to %(address)s. Do not pack or label until it is applied.")
            % {"address": f"{change.province}{change.city}{change.district}{change.address}"}
        )
    return reasons


# What the station and the rules it reads (orders/packing.py, orders/rules.py GUARDS) need of an
# order, loaded once per request: each guard then reads them from memory (issue 14). Not the tags:
# the pack guards read them only for a gift promised but missing, which the station rarely sees.
STATION_ROWS = (
    Prefetch("lines", queryset=OrderLine.objects.select_related("product")),
    "after_sales",
    "address_changes",
    Prefetch(
        "notes",
        queryset=Note.objects.select_related("author")
        .prefetch_related(Prefetch("acknowledgements", queryset=NoteAcknowledgement.objects.select_related("user")))
        .order_by("-created_at", "-id"),
    ),
)


def packing_state(*, order: Order, user, last_scan: PackScan | None = None) -> PackingState:
    prefetch_related_objects([order], *STATION_ROWS)
    lines = verification.pack_lines(order)
    notes = list(order.notes.all())
    for note in notes:
        note.acknowledged_by_me = any(ack.user_id == user.pk for ack in note.acknowledgements.all())
        note.needs_ack = verification.needs_acknowledgement(note)
    check = verification.pack_check(order, Actor.of(user), lines=lines)
    return PackingState(
        order=order,
        lines=lines,
        notes=notes,
        interceptions=stop_wording(order),
        refusals=check.reasons,
        guards=check.guards,
        last_scan=last_scan,
    )


def pack_scan(*, code: str, by: Actor, current: Order | None) -> tuple[Order | None, PackScan]:
    """One scan at the bench. With an order open, a barcode of one of its items counts that item;
    an order number or waybill opens that order; anything else is refused as a wrong item."""
    code = (code or "").strip()[:64]
    if not code:
        raise services.OrderError(_("Nothing was scanned; scan the order, waybill or item barcode."))
    with transaction.atomic():
        if current is not None:
            # The row lock serialises two scans of the same order (two PDAs, a double trigger),
            # so the count check below cannot be passed twice for the last item.
            current = Order.objects.select_for_update().get(pk=current.pk)
            prefetch_related_objects([current], *STATION_ROWS)
            line = next((line for line in current.lines.all() if line.product.barcode == code), None)
            if line is not None:
                return current, _item_scan(current, line.product, code, by)
        target = order_for_code(code)
        if target is not None:
            return target, PackScan.objects.create(order=target, code=code, outcome=ScanOutcome.OPENED, scanned_by=by.user)
        if current is None:
            return None, PackScan.objects.create(order=None, code=code, outcome=ScanOutcome.UNKNOWN, scanned_by=by.user)
        product = Product.objects.filter(barcode=code).first()
        return current, PackScan.objects.create(
            order=current, code=code, outcome=ScanOutcome.WRONG_ITEM, product=product, scanned_by=by.user
        )


def _item_scan(order: Order, product: Product, code: str, by: Actor) -> PackScan:
    outcome = verification.item_scan_outcome(order, product)
    return PackScan.objects.create(order=order, code=code, outcome=outcome, product=product, scanned_by=by.user)


def packing_restart(*, order: Order, by: Actor) -> PackScan:
    """Start verifying again (the parcel was unpacked): earlier item scans stop counting."""
    return PackScan.objects.create(order=order, code="", outcome=ScanOutcome.RESTART, scanned_by=by.user)


def packing_finish(*, order: Order, by: Actor) -> Order:
    """Pack: the service checks the status guards and the pack verification (orders/packing.py),
    the same check the order card's Pack button goes through."""
    return services.order_transition(order=order, name="pack", by=by)


def scan_message(scan: PackScan) -> str:
    product = scan.product.name if scan.product else scan.code
    messages = {
        ScanOutcome.OPENED: _("Opened order %(order)s."),
        ScanOutcome.MATCH: _("OK: %(product)s."),
        ScanOutcome.WRONG_ITEM: _("WRONG ITEM: %(product)s is not in order %(order)s. Take it out."),
        ScanOutcome.OVER_COUNT: _("TOO MANY: %(product)s is already fully scanned. Take the extra one out."),
        ScanOutcome.INTERCEPTED: _("STOP: this order is intercepted; do not pack it."),
        ScanOutcome.NOT_PACKABLE: _("This order is not in picking; there is nothing to verify."),
        ScanOutcome.RESTART: _("Verification restarted: scan every item again."),
        ScanOutcome.UNKNOWN: _("No order or waybill %(code)s. Scan the order number or the waybill first."),
    }
    return messages[scan.outcome] % {
        "product": product,
        "order": scan.order.order_number if scan.order else "",
        "code": scan.code,
    }
