"""The PDA packing station: open an order by scanning its number or waybill, verify every item
(gifts included) by barcode, acknowledge every warehouse note, then pack.

Every scan is a PackScan row, refusals included, so "who scanned what when" is on the record.
The rules (what counts as verified, which notes must be read, whether the order is intercepted)
live in orders/packing.py and orders/rules.py; this module is the station around them.
"""

from __future__ import annotations

import json
from contextlib import nullcontext
from dataclasses import dataclass

from django.db import connection, transaction
from django.db.models import Prefetch, prefetch_related_objects
from django.utils.translation import gettext as _

from orders import packing as verification
from orders import rules, services
from orders.access import Actor
from orders.models import (
    AddressChangeRequest,
    AfterSalesCase,
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
from orders.selectors import instances_from_json, json_rows, rows_by, set_prefetched

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


def _station_lists() -> tuple:
    """(name, model, the SQL of its rows as a JSON array) for STATION_ROWS and the order itself;
    `o` is the order. The orderings are the ORM's: the models' own, else by id."""
    user = Note._meta.get_field("author").related_model
    notes, acks = Note._meta.db_table, NoteAcknowledgement._meta.db_table

    of_notes = f"SELECT id FROM {notes} WHERE order_id = o.id"  # noqa: S608 - names from the models
    people = f"SELECT author_id FROM {notes} WHERE order_id = o.id UNION SELECT user_id FROM {acks} WHERE note_id IN ({of_notes})"  # noqa: S608 - names from the models
    return (
        ("order", Order, json_rows(Order, "t.id = o.id")),
        ("lines", OrderLine, json_rows(OrderLine, "t.order_id = o.id")),
        (
            "products",
            Product,
            json_rows(Product, f"t.id IN (SELECT product_id FROM {OrderLine._meta.db_table} WHERE order_id = o.id)"),  # noqa: S608 - names from the models
        ),
        ("after_sales", AfterSalesCase, json_rows(AfterSalesCase, "t.order_id = o.id")),
        ("address_changes", AddressChangeRequest, json_rows(AddressChangeRequest, "t.order_id = o.id")),
        ("notes", Note, json_rows(Note, "t.order_id = o.id", "t.created_at DESC, t.id DESC")),
        ("acknowledgements", NoteAcknowledgement, json_rows(NoteAcknowledgement, f"t.note_id IN ({of_notes})")),
        ("users", user, json_rows(user, f"t.id IN ({people})")),
    )


_STATION_LISTS = _station_lists()
# The item counts since the last restart (orders/packing.py scanned_counts), as {product id: count}.
_SCANNED_SQL = (
    f"(SELECT coalesce(json_object_agg(product_id, scanned), '{{}}') FROM ({verification.scanned_sql('o.id')}) c)::text"  # noqa: S608 - constant SQL
)
_STATION_SQL = (
    "SELECT "  # noqa: S608 - names from the models
    + ",\n       ".join(sql for _name, _model, sql in _STATION_LISTS)
    + f",\n       {_SCANNED_SQL}\n  FROM {Order._meta.db_table} o WHERE "
)
# An order by its number, else by a waybill on it (order_for_code), as one index lookup each.
_BY_CODE = (
    f"o.id = coalesce((SELECT id FROM {Order._meta.db_table} WHERE order_number = %(number)s),"  # noqa: S608 - names from the models
    f" (SELECT order_id FROM {Shipment._meta.db_table} WHERE tracking_number = %(tracking)s ORDER BY id LIMIT 1))"
)


def station_order(*, number: str = "", code: str = "", lock: bool = False) -> Order | None:
    """The order by its number (locked FOR UPDATE with `lock`), or by a scanned code (order_for_code),
    with what the station reads (STATION_ROWS) and its item counts (order.scan_counts), None when
    there is none. On PostgreSQL in one query that returns them as JSON, made into the model
    instances the ORM makes, cached where the related managers look (as the order card does,
    orders/selectors.py): each ORM query cost more CPU to build than the whole scan's SQL took
    (issue 14). Elsewhere (the embedded demo's SQLite), the ORM's queries."""
    if connection.vendor != "postgresql":
        if code:
            order = order_for_code(code)
        else:
            order = (Order.objects.select_for_update() if lock else Order.objects).filter(order_number=number).first()
        if order is not None:
            prefetch_related_objects([order], *STATION_ROWS)
            order.scan_counts = verification.scanned_counts(order)
        return order
    params = dict(verification.SCAN_OUTCOMES)
    if code:
        sql = _STATION_SQL + _BY_CODE
        params.update(number=normalize_order_number(code), tracking=code.upper())
    else:
        sql = _STATION_SQL + "o.order_number = %(number)s" + (" FOR UPDATE OF o" if lock else "")
        params["number"] = number
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        found = cursor.fetchone()
    if found is None:
        return None
    lists = {name: instances_from_json(model, text) for (name, model, _sql), text in zip(_STATION_LISTS, found[:-1], strict=True)}
    [order] = lists.pop("order")
    users = {user.pk: user for user in lists.pop("users")}
    products = {product.pk: product for product in lists.pop("products")}
    acknowledgements = rows_by(lists.pop("acknowledgements"), "note_id")
    for name, children in lists.items():
        set_prefetched(order, name, children, parent="order")
    for line in lists["lines"]:
        line._state.fields_cache["product"] = products.get(line.product_id)
    for note in lists["notes"]:
        note._state.fields_cache["author"] = users.get(note.author_id)
        for ack in acknowledgements.get(note.pk, []):
            ack._state.fields_cache["user"] = users.get(ack.user_id)
        set_prefetched(note, "acknowledgements", acknowledgements.get(note.pk, []), parent="note")
    order.scan_counts = {int(product_id): count for product_id, count in json.loads(found[-1]).items()}
    return order


def packing_state(*, order: Order, user, last_scan: PackScan | None = None) -> PackingState:
    if not hasattr(order, "scan_counts"):  # not read by station_order
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


def pack_scan(*, code: str, by: Actor, current: str = "") -> tuple[Order | None, PackScan]:
    """One scan at the bench, `current` the number of the order open on it ("" for none). With an
    order open, a barcode of one of its items counts that item; an order number or waybill opens
    that order; anything else is refused as a wrong item. The order returned has what the station
    shows read already (station_order)."""
    code = (code or "").strip()[:64]
    if not code:
        raise services.OrderError(_("Nothing was scanned; scan the order, waybill or item barcode."))
    # With no order open the scan writes one row and locks nothing: no transaction to open.
    with transaction.atomic() if current else nullcontext():
        # The row lock serialises two scans of the same order (two PDAs, a double trigger),
        # so the count check below cannot be passed twice for the last item.
        opened = station_order(number=current, lock=True) if current else None
        if opened is not None:
            line = next((line for line in opened.lines.all() if line.product.barcode == code), None)
            if line is not None:
                return opened, _item_scan(opened, line.product, code, by)
        target = station_order(code=code)
        if target is not None:
            return target, PackScan.objects.create(order=target, code=code, outcome=ScanOutcome.OPENED, scanned_by=by.user)
        if opened is None:
            return None, PackScan.objects.create(order=None, code=code, outcome=ScanOutcome.UNKNOWN, scanned_by=by.user)
        product = Product.objects.filter(barcode=code).first()
        return opened, PackScan.objects.create(
            order=opened, code=code, outcome=ScanOutcome.WRONG_ITEM, product=product, scanned_by=by.user
        )


def _item_scan(order: Order, product: Product, code: str, by: Actor) -> PackScan:
    outcome = verification.item_scan_outcome(order, product)
    scan = PackScan.objects.create(order=order, code=code, outcome=outcome, product=product, scanned_by=by.user)
    if outcome == ScanOutcome.MATCH:
        # The counts after this scan, for the station drawn next: read under the order's lock,
        # which every counted scan takes (a restart at the same instant shows at the next refresh).
        order.scan_counts[product.pk] = order.scan_counts.get(product.pk, 0) + 1
    return scan


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
