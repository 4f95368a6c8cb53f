"""The PDA packing station: open an order by scanning its number or waybill, verify every item
(gifts included) by barcode, acknowledge every warehouse note, then pack.

Every scan is a PackScan row, refusals included, so "who scanned what when" is on the record.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import transaction
from django.db.models import Count, Prefetch
from django.utils.translation import gettext as _

from workflows.frontline.models import PackScan, ScanOutcome
from orders import services
from orders.access import Actor
from orders.models import (
    AddressChangeStatus,
    AfterSalesKind,
    AfterSalesStatus,
    Note,
    NoteAcknowledgement,
    NoteAudience,
    Order,
    OrderLine,
    OrderStatus,
    Product,
    Shipment,
)

REFUSED = {ScanOutcome.WRONG_ITEM, ScanOutcome.OVER_COUNT, ScanOutcome.INTERCEPTED, ScanOutcome.UNKNOWN, ScanOutcome.NOT_PACKABLE}
# The packer must have read what was said to the warehouse and to everyone on the order
# (BRIEF.md: "the gift note was in the remarks" / "I never saw a remarks field").
PACKER_AUDIENCES = (NoteAudience.WAREHOUSE, NoteAudience.EVERYONE)


@dataclass
class PackLine:
    product: Product
    expected: int
    scanned: int = 0
    is_gift: bool = False
    cold_chain: bool = False
    names: list[str] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return self.scanned >= self.expected


@dataclass
class PackingState:
    order: Order
    lines: list[PackLine]
    notes: list[Note]  # newest first, each with .acknowledged_by_me and .needs_ack
    interceptions: list[str]
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
    def station_blockers(self) -> list[str]:
        """Why the station will not pack yet (the status guards add hold, cold chain, …)."""
        reasons = []
        if self.order.status != OrderStatus.PICKING:
            reasons.append(_("This order is %(status)s; only an order in picking can be packed.") % {"status": self.order.get_status_display()})
        reasons += self.interceptions
        for line in self.missing:
            reasons.append(
                _("%(sku)s %(name)s: %(scanned)d of %(expected)d scanned.")
                % {"sku": line.product.sku_code, "name": line.product.name, "scanned": line.scanned, "expected": line.expected}
            )
        if self.unacknowledged:
            reasons.append(_("%(count)d note(s) not yet acknowledged.") % {"count": len(self.unacknowledged)})
        return reasons


def order_for_code(code: str) -> Order | None:
    """An order by its number, else by a waybill (tracking number) on it."""
    order = Order.objects.filter(order_number=code).first()
    if order is None:
        shipment = Shipment.objects.select_related("order").filter(tracking_number=code.upper()).first()
        order = shipment.order if shipment else None
    return order


def _interceptions(order: Order) -> list[str]:
    """An open refund or address change stops the parcel at the bench (interception)."""
    reasons = []
    if order.after_sales.filter(kind=AfterSalesKind.REFUND, status=AfterSalesStatus.OPEN).exists():
        reasons.append(_("STOP: the customer asked for a refund. Do not pack; put the goods aside and tell the supervisor."))
    change = order.address_changes.filter(status=AddressChangeStatus.OPEN).first()
    if change:
        reasons.append(
            _("STOP: the delivery address is being changed to %(address)s. Do not pack or label until it is applied.")
            % {"address": f"{change.province}{change.city}{change.district}{change.address}"}
        )
    return reasons


def _scanned_counts(order: Order) -> dict[int, int]:
    """Verified items per product since the last restart (ids grow with time, so compare ids)."""
    restart = PackScan.objects.filter(order=order, outcome=ScanOutcome.RESTART).order_by("-id").values_list("id", flat=True).first()
    scans = PackScan.objects.filter(order=order, outcome=ScanOutcome.MATCH)
    if restart is not None:
        scans = scans.filter(id__gt=restart)
    return dict(scans.values("product_id").annotate(n=Count("id")).values_list("product_id", "n"))


def packing_state(*, order: Order, user, last_scan: PackScan | None = None) -> PackingState:
    lines: dict[int, PackLine] = {}
    for line in OrderLine.objects.filter(order=order).select_related("product").order_by("is_gift", "id"):
        pack_line = lines.setdefault(line.product_id, PackLine(product=line.product, expected=0))
        pack_line.expected += line.quantity
        pack_line.is_gift = pack_line.is_gift or line.is_gift
        pack_line.cold_chain = pack_line.cold_chain or line.cold_chain
    for product_id, scanned in _scanned_counts(order).items():
        if product_id in lines:
            lines[product_id].scanned = scanned
    notes = list(
        Note.objects.filter(order=order)
        .select_related("author")
        .prefetch_related(Prefetch("acknowledgements", queryset=NoteAcknowledgement.objects.select_related("user")))
        .order_by("-created_at", "-id")
    )
    for note in notes:
        note.acknowledged_by_me = any(ack.user_id == user.pk for ack in note.acknowledgements.all())
        note.needs_ack = note.audience in PACKER_AUDIENCES
    return PackingState(order=order, lines=list(lines.values()), notes=notes, interceptions=_interceptions(order), last_scan=last_scan)


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
            line = OrderLine.objects.filter(order=current, product__barcode=code).select_related("product").first()
            if line is not None:
                return current, _item_scan(current, line.product, code, by)
        target = order_for_code(code)
        if target is not None:
            return target, PackScan.objects.create(order=target, code=code, outcome=ScanOutcome.OPENED, scanned_by=by.user)
        if current is None:
            return None, PackScan.objects.create(order=None, code=code, outcome=ScanOutcome.UNKNOWN, scanned_by=by.user)
        product = Product.objects.filter(barcode=code).first()
        return current, PackScan.objects.create(order=current, code=code, outcome=ScanOutcome.WRONG_ITEM, product=product, scanned_by=by.user)


def _item_scan(order: Order, product: Product, code: str, by: Actor) -> PackScan:
    if order.status != OrderStatus.PICKING:
        outcome = ScanOutcome.NOT_PACKABLE
    elif _interceptions(order):
        outcome = ScanOutcome.INTERCEPTED
    else:
        expected = sum(OrderLine.objects.filter(order=order, product=product).values_list("quantity", flat=True))
        outcome = ScanOutcome.OVER_COUNT if _scanned_counts(order).get(product.pk, 0) >= expected else ScanOutcome.MATCH
    return PackScan.objects.create(order=order, code=code, outcome=outcome, product=product, scanned_by=by.user)


def packing_restart(*, order: Order, by: Actor) -> PackScan:
    """Start verifying again (the parcel was unpacked): earlier item scans stop counting."""
    return PackScan.objects.create(order=order, code="", outcome=ScanOutcome.RESTART, scanned_by=by.user)


def packing_finish(*, order: Order, by: Actor) -> Order:
    """Pack, only when every item is verified and every note acknowledged at this station; the
    status machine's own guards (hold, cold chain, interceptions) still apply."""
    with transaction.atomic():
        order = Order.objects.select_for_update().get(pk=order.pk)
        blockers = packing_state(order=order, user=by.user).station_blockers
        if blockers:
            raise services.TransitionBlocked(blockers)
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
    return messages[scan.outcome] % {"product": product, "order": scan.order.order_number if scan.order else "", "code": scan.code}
