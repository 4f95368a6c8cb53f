"""Import of ERP order exports: read, validate every row, group lines by order number, then write
orders in bulk, each order all-or-nothing.

Decisions (also stated on the upload page and in the README):
- The order number is the key and stays text. A number that Excel turned into a float or into
  scientific notation (1.23E+17) is refused: its digits are already lost, rounding would invent
  another order.
- An unknown 商品编码 is refused: products carry barcodes the pack bench verifies, so they are
  created in the product master, not guessed from an export.
- Status: a new order starts where the ERP says it is (待审核 / 已付款 / 已发货 / 已完成 / 已取消).
  An existing order's status is not moved by a file; status changes arrive as status events
  (POST /api/v1/events) through the same guards a person meets.
- Re-importing the same file changes nothing: an order is written only when a value differs.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from integrations.erp.spreadsheet import Table, read_table
from orders.access import Actor
from orders.models import (
    Carrier,
    Customer,
    EventKind,
    Order,
    OrderEvent,
    OrderLine,
    OrderSource,
    OrderStatus,
    Product,
    Shipment,
)
from orders.phones import normalize_mobile

ERP = Actor.system("ERP")
CHUNK = 1000  # orders per transaction: bounds lock time and the size of each bulk statement
SHOWN_CHANGES = 200  # how many changed orders a preview lists

# Canonical key → the column names ERP exports use for it (the first is the one we print).
COLUMNS: dict[str, tuple[str, ...]] = {
    "order_number": ("订单号", "内部订单号"),
    "placed_at": ("下单时间",),
    "paid_at": ("付款日期", "付款时间"),
    "shipped_at": ("发货日期", "发货时间"),
    "total_amount": ("应付金额",),
    "paid_amount": ("已付金额",),
    "shipping_fee": ("运费",),
    "refund_amount": ("订单退款金额",),
    "erp_status": ("状态",),
    "carrier": ("快递公司",),
    "tracking_number": ("快递单号",),
    "receiver_name": ("收货人姓名", "收货人"),
    "phone": ("手机", "收货人手机"),
    "province": ("省份",),
    "city": ("城市",),
    "district": ("区县",),
    "address": ("地址", "详细地址"),
    "buyer_message": ("买家留言",),
    "sku_code": ("商品编码",),
    "product_name": ("商品名称",),
    "quantity": ("数量",),
    "unit_price": ("商品单价",),
    "is_gift": ("是否赠品",),
}
REQUIRED = (
    "order_number", "sku_code", "quantity", "unit_price", "receiver_name", "phone",
    "province", "city", "address", "total_amount",
)
LINE_KEYS = {"sku_code", "product_name", "quantity", "unit_price", "is_gift"}
ORDER_KEYS = [key for key in COLUMNS if key not in LINE_KEYS and key != "order_number"]
ADDRESS_KEYS = ("receiver_name", "receiver_phone", "province", "city", "district", "address")
AMOUNT_KEYS = ("total_amount", "paid_amount", "shipping_fee", "refund_amount")
# Order fields an import may change on an existing order, compared one by one.
UPDATABLE = (*ADDRESS_KEYS, *AMOUNT_KEYS, "carrier_code", "buyer_message")

CARRIER_NAMES = {
    "顺丰冷运": Carrier.SHUNFENG_COLD, "顺丰冷链": Carrier.SHUNFENG_COLD, "顺丰": Carrier.SHUNFENG,
    "中通": Carrier.ZHONGTONG, "圆通": Carrier.YUANTONG, "韵达": Carrier.YUNDA, "申通": Carrier.SHENTONG,
    "EMS": Carrier.EMS, "京东": Carrier.JD, "极兔": Carrier.JTEXPRESS, "百世": Carrier.BEST,
    "德邦": Carrier.DEPPON, "邮政": Carrier.CHINA_POST,
}

ORDER_NUMBER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,39}$")
SCIENTIFIC = re.compile(r"^[+-]?\d+(\.\d+)?[eE][+-]?\d+$")
DECIMAL_NUMBER = re.compile(r"^\d+\.\d+$")
# Excel keeps 15 significant digits: a longer number in a numeric cell may already be rounded.
EXACT_DIGITS = 15


@dataclass
class RowError:
    row: int
    column: str
    reason: str
    order_number: str = ""

    def as_dict(self) -> dict:
        return {"row": self.row, "column": self.column, "reason": self.reason, "order_number": self.order_number}


@dataclass
class LineDraft:
    row: int
    sku_code: str
    product_name: str
    quantity: int
    unit_price: Decimal
    is_gift: bool


@dataclass
class OrderDraft:
    number: str
    first_row: int
    raw: dict[str, tuple[int, object]] = field(default_factory=dict)  # key → (row, cell)
    lines: list[LineDraft] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    rows: int = 0
    values: dict = field(default_factory=dict)  # parsed order-level values

    def error(self, row: int, column: str, reason: str) -> None:
        self.errors.append(RowError(row, column, reason, self.number))


@dataclass
class ImportSummary:
    dry_run: bool
    total_rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    rejected_rows: int = 0
    errors: list[RowError] = field(default_factory=list)
    changes: list[dict] = field(default_factory=list)

    @property
    def nothing_changed(self) -> bool:
        return not (self.created or self.updated or self.rejected) and self.unchanged > 0

    def headline(self) -> str:
        if self.nothing_changed:
            return _("Nothing changed: all %(count)d orders in this file are already up to date.") % {"count": self.unchanged}
        template = (
            _("Preview: %(created)d would be created, %(updated)d updated, %(unchanged)d unchanged, %(rejected)d rejected.")
            if self.dry_run
            else _("%(created)d created, %(updated)d updated, %(unchanged)d unchanged, %(rejected)d rejected.")
        )
        return template % {"created": self.created, "updated": self.updated, "unchanged": self.unchanged, "rejected": self.rejected}


Progress = Callable[[int, int], None]


def import_orders(*, path: Path | str, dry_run: bool = False, progress: Progress | None = None, run_id: int | None = None) -> ImportSummary:
    """Import one ERP export. Raises UnreadableFile when the file as a whole cannot be used."""
    table = read_table(path, COLUMNS, REQUIRED)
    summary = ImportSummary(dry_run=dry_run, total_rows=len(table.rows))
    drafts, loose_errors = _group_rows(table)
    products = _products({line.sku_code for draft in drafts for line in draft.lines})
    for draft in drafts:
        _validate(draft, table, products)
    summary.errors.extend(loose_errors)
    summary.rejected += len({error.order_number or f"row{error.row}" for error in loose_errors})
    summary.rejected_rows += len({error.row for error in loose_errors})
    good = []
    for draft in drafts:
        if draft.errors:
            _reject(summary, draft)
        else:
            good.append(draft)
    done_rows = summary.rejected_rows
    if progress:
        progress(done_rows, summary.total_rows)
    for start in range(0, len(good), CHUNK):
        chunk = good[start : start + CHUNK]
        _apply_chunk(chunk, products, summary, dry_run=dry_run, run_id=run_id)
        done_rows += sum(draft.rows for draft in chunk)
        if progress:
            progress(done_rows, summary.total_rows)
    summary.errors.sort(key=lambda error: error.row)
    return summary


def _reject(summary: ImportSummary, draft: OrderDraft) -> None:
    summary.rejected += 1
    summary.rejected_rows += draft.rows
    summary.errors.extend(draft.errors)


# --- Reading and validating --------------------------------------------------------------------


def _cell(row: list, index: int | None):
    if index is None or index >= len(row):
        return None
    value = row[index]
    return value.strip() if isinstance(value, str) else value


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer() and abs(value) < 10**EXACT_DIGITS:
        return str(int(value))
    return str(value).strip()


def order_number_problem(value) -> tuple[str, str]:
    """(the number as text, "" or why it is refused). Never rounds: a mangled number is refused."""
    if value is None or value == "":
        return "", _("The order number is empty.")
    if isinstance(value, float):
        shown = f"{value:.15G}"
        return shown, _(
            "The order number %(value)s arrived as a number (Excel rounds long numbers); its exact digits are lost. "
            "Format the order number column as text in the ERP export and export again."
        ) % {"value": shown}
    if isinstance(value, int):
        text = str(value)
        if len(text) > EXACT_DIGITS:
            return text, _(
                "The order number %(value)s is stored as a number with more than 15 digits and may have been rounded. "
                "Format the column as text and export again."
            ) % {"value": text}
        return text, ""
    text = str(value).strip()
    if SCIENTIFIC.match(text):
        return text, _(
            "The order number %(value)s is in scientific notation: the real number is lost. "
            "Format the order number column as text in the ERP export and export again."
        ) % {"value": text}
    if DECIMAL_NUMBER.match(text):
        return text, _("The order number %(value)s has a decimal point: it was converted to a number. Export it as text.") % {"value": text}
    if not ORDER_NUMBER.match(text):
        return text, _("The order number %(value)s may contain only letters, digits, - and _ (at most 40).") % {"value": text}
    return text, ""


def _group_rows(table: Table) -> tuple[list[OrderDraft], list[RowError]]:
    """Lines grouped by order number (rows of one order need not be adjacent). Order-level cells
    are kept raw from the first row that fills them and parsed once per order; a later row that
    fills them differently is an error, since one order cannot have two addresses or totals."""
    index = table.header
    order_column = table.labels["order_number"]
    drafts: dict[str, OrderDraft] = {}
    loose: list[RowError] = []
    order_index = index["order_number"]
    order_fields = [(key, index[key]) for key in ORDER_KEYS if key in index]
    for number, row in table.rows:
        text, problem = order_number_problem(_cell(row, order_index))
        if problem:
            loose.append(RowError(number, order_column, problem, text))
            continue
        draft = drafts.get(text)
        if draft is None:
            draft = drafts[text] = OrderDraft(number=text, first_row=number)
        draft.rows += 1
        for key, column in order_fields:
            value = _cell(row, column)
            if value is None or value == "":
                continue
            seen = draft.raw.get(key)
            if seen is None:
                draft.raw[key] = (number, value)
            elif seen[1] != value and _text(seen[1]) != _text(value):
                draft.error(
                    number,
                    table.labels[key],
                    _("%(value)s differs from %(first)s in row %(row)d of the same order.")
                    % {"value": _text(value), "first": _text(seen[1]), "row": seen[0]},
                )
        line = _parse_line(draft, number, row, table)
        if line:
            draft.lines.append(line)
    return list(drafts.values()), loose


def _parse_line(draft: OrderDraft, number: int, row: list, table: Table) -> LineDraft | None:
    index, labels = table.header, table.labels
    sku = _text(_cell(row, index["sku_code"]))
    ok = True
    if not sku:
        draft.error(number, labels["sku_code"], _("The SKU code is empty."))
        ok = False
    quantity_raw = _cell(row, index["quantity"])
    quantity = _quantity(quantity_raw)
    if quantity is None:
        draft.error(number, labels["quantity"], _("The quantity %(value)s is not a whole number of at least 1.") % {"value": _text(quantity_raw) or "—"})
        ok = False
    price_raw = _cell(row, index["unit_price"])
    price = parse_amount(price_raw)
    if price is None:
        draft.error(number, labels["unit_price"], _amount_reason(price_raw))
        ok = False
    gift_raw = _text(_cell(row, index.get("is_gift")))
    gift = _yes_no(gift_raw)
    if gift is None:
        draft.error(number, labels.get("is_gift", "是否赠品"), _("Write 是 or 否 for a gift, not %(value)s.") % {"value": gift_raw})
        ok = False
    if not ok:
        return None
    name = _text(_cell(row, index.get("product_name")))[:120]
    return LineDraft(row=number, sku_code=sku, product_name=name, quantity=quantity, unit_price=price, is_gift=bool(gift))


def _quantity(value) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        quantity = value
    elif isinstance(value, float) and value.is_integer():
        quantity = int(value)
    else:
        text = _text(value)
        if not text.isdigit():
            return None
        quantity = int(text)
    return quantity if 1 <= quantity <= 100_000 else None


def parse_amount(value) -> Decimal | None:
    """An amount in yuan with at most two decimals, never negative; floats from .xlsx cells are
    read through their shortest repr (59.9, not 59.899999…)."""
    if value is None or value == "":
        return None
    text = repr(value) if isinstance(value, float) else str(value)
    text = text.strip().replace(",", "").replace("¥", "").replace("￥", "")
    try:
        amount = Decimal(text)
    except InvalidOperation:
        return None
    if not amount.is_finite() or amount < 0 or amount.as_tuple().exponent < -2 or amount >= Decimal("1e10"):
        return None
    return amount.quantize(Decimal("0.01"))


def _amount_reason(value) -> str:
    return _("%(value)s is not an amount: write yuan with at most two decimals, e.g. 59.90.") % {"value": _text(value) or "—"}


def _yes_no(text: str) -> bool | None:
    if text in ("", "否", "0", "N", "n", "FALSE", "False", "false", "no"):
        return False
    if text in ("是", "1", "Y", "y", "TRUE", "True", "true", "yes", "赠品"):
        return True
    return None


_DATE_CACHE: dict[str, datetime.datetime | None] = {}


def parse_erp_time(value) -> datetime.datetime | None:
    """ERP times are Beijing wall-clock times: 2024-05-01 10:20:30, 2024/5/1 10:20, 2024-05-01."""
    if isinstance(value, datetime.datetime):
        return timezone.make_aware(value) if timezone.is_naive(value) else value
    if isinstance(value, datetime.date):
        return timezone.make_aware(datetime.datetime.combine(value, datetime.time()))
    text = _text(value)
    if text in _DATE_CACHE:
        return _DATE_CACHE[text]
    parsed = None
    normalized = text.replace("/", "-").replace("T", " ")
    try:
        parsed = datetime.datetime.fromisoformat(normalized)
    except ValueError:
        for pattern in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d"):
            try:
                parsed = datetime.datetime.strptime(normalized, pattern)
                break
            except ValueError:
                continue
    if parsed is not None and timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed)
    if len(_DATE_CACHE) < 100_000:
        _DATE_CACHE[text] = parsed
    return parsed


def _products(skus: set[str]) -> dict[str, Product]:
    found: dict[str, Product] = {}
    sku_list = sorted(skus)
    for start in range(0, len(sku_list), 2000):
        for product in Product.objects.filter(sku_code__in=sku_list[start : start + 2000]):
            found[product.sku_code] = product
    return found


def _validate(draft: OrderDraft, table: Table, products: dict[str, Product]) -> None:
    """Parse the order-level cells once and check every line's SKU."""
    labels = table.labels
    values = draft.values

    def raw(key: str) -> tuple[int, object]:
        return draft.raw.get(key, (draft.first_row, None))

    for key in ("receiver_name", "province", "city", "address"):
        row, value = raw(key)
        if not _text(value):
            draft.error(row, labels[key], _("This column is empty for this order."))
        values[key] = _text(value)[: Order._meta.get_field(key).max_length]
    # A column the file does not have is None: the import leaves that field alone.
    values["district"] = _text(raw("district")[1])[:32] if "district" in table.header else None
    values["buyer_message"] = _text(raw("buyer_message")[1])[:500] if "buyer_message" in table.header else None
    row, value = raw("phone")
    phone = normalize_mobile(_text(value))
    if phone is None:
        draft.error(row, labels["phone"], _("%(value)s is not a mainland mobile number (11 digits starting with 1).") % {"value": _text(value) or "—"})
    values["receiver_phone"] = phone or ""
    for key in AMOUNT_KEYS:
        row, value = raw(key)
        if value is None or value == "":
            if key == "total_amount":
                draft.error(row, labels[key], _("The amount payable is empty."))
            values[key] = Decimal("0.00") if key in table.header else None
            continue
        amount = parse_amount(value)
        if amount is None:
            draft.error(row, labels[key], _amount_reason(value))
        values[key] = amount
    for key in ("placed_at", "paid_at", "shipped_at"):
        row, value = raw(key)
        values[key] = None
        if value is None or value == "":
            continue
        moment = parse_erp_time(value)
        if moment is None:
            draft.error(row, labels[key], _("%(value)s is not a date and time like 2024-05-01 10:20:30.") % {"value": _text(value)})
        values[key] = moment
    carrier_text = _text(raw("carrier")[1])
    values["carrier_code"] = None if "carrier" not in table.header else ""
    if carrier_text:
        code = _carrier_code(carrier_text)
        if code is None:
            draft.error(raw("carrier")[0], labels["carrier"], _("Unknown carrier %(value)s.") % {"value": carrier_text})
        values["carrier_code"] = code or ""
    values["tracking_number"] = _text(raw("tracking_number")[1]).upper()[:32]
    values["erp_status"] = _text(raw("erp_status")[1])
    for line in draft.lines:
        if line.sku_code not in products:
            draft.error(
                line.row,
                labels["sku_code"],
                _("Unknown SKU %(sku)s: add the product (with its barcode) to the product master first; the import does not create products.")
                % {"sku": line.sku_code},
            )
    times = [values[key] for key in ("placed_at", "paid_at", "shipped_at") if values.get(key)]
    values["source_time"] = max(times) if times else None


def _carrier_code(text: str) -> str | None:
    if text.lower() in Carrier.values:
        return text.lower()
    for name, code in CARRIER_NAMES.items():
        if name in text:
            return code
    return None


def _initial_status(values: dict) -> str:
    """Where a new order starts, from the ERP's 状态 (and its dates when 状态 is missing)."""
    status = values["erp_status"]
    if "取消" in status or "关闭" in status:
        return OrderStatus.CANCELLED
    if any(word in status for word in ("完成", "签收", "成功")):
        return OrderStatus.COMPLETED
    if "已发货" in status or (not status and values["shipped_at"]):
        return OrderStatus.SHIPPED
    if "待付款" in status or "未付款" in status:
        return OrderStatus.PENDING_REVIEW
    if values["paid_at"] or "付款" in status or "审核" in status and "待审核" not in status:
        return OrderStatus.PAID
    return OrderStatus.PENDING_REVIEW


# --- Writing -----------------------------------------------------------------------------------


def _apply_chunk(chunk: list[OrderDraft], products: dict[str, Product], summary: ImportSummary, *, dry_run: bool, run_id: int | None) -> None:
    # A concurrent import may create one of our new order numbers between our read and our
    # insert; the unique index refuses it, and the retry finds that order as existing.
    for attempt in (1, 2):
        try:
            with transaction.atomic():
                outcome = _plan_and_write(chunk, products, dry_run=dry_run, run_id=run_id)
            break
        except IntegrityError:
            if attempt == 2:
                raise
    created, updated, unchanged, rejected, changes = outcome
    summary.created += created
    summary.updated += updated
    summary.unchanged += unchanged
    for draft in rejected:
        _reject(summary, draft)
    room = SHOWN_CHANGES - len(summary.changes)
    summary.changes.extend(changes[: max(room, 0)])


def _lines_key(lines) -> list[tuple]:
    return sorted((line.sku_code, line.quantity, line.unit_price, line.is_gift) for line in lines)


def _plan_and_write(chunk: list[OrderDraft], products: dict[str, Product], *, dry_run: bool, run_id: int | None):
    numbers = [draft.number for draft in chunk]
    existing_query = Order.objects.filter(order_number__in=numbers)
    # Lock the existing rows like any order change (services.py's recipe), so a person acting on
    # one of them waits for this chunk instead of overwriting it or being overwritten.
    existing = {order.order_number: order for order in (existing_query if dry_run else existing_query.select_for_update())}
    current_lines: dict[int, list] = {}
    if existing:
        for line in OrderLine.objects.filter(order_id__in=[order.pk for order in existing.values()]).only(
            "order_id", "sku_code", "quantity", "unit_price", "is_gift"
        ):
            current_lines.setdefault(line.order_id, []).append(line)

    now = timezone.now()
    new_drafts: list[OrderDraft] = []
    changed: list[tuple[Order, OrderDraft, list[str], bool]] = []
    rejected: list[OrderDraft] = []
    unchanged = 0
    changes: list[dict] = []
    for draft in chunk:
        order = existing.get(draft.number)
        if order is None:
            new_drafts.append(draft)
            changes.append({"order_number": draft.number, "action": "created", "fields": []})
            continue
        fields = [
            key for key in UPDATABLE
            if draft.values.get(key) is not None and getattr(order, key) != draft.values[key]
        ]
        lines_differ = _lines_key(current_lines.get(order.pk, [])) != _lines_key(draft.lines)
        if not fields and not lines_differ:
            unchanged += 1
            continue
        if order.status in (OrderStatus.SHIPPED, OrderStatus.COMPLETED, OrderStatus.CANCELLED) and (
            lines_differ or any(key in ADDRESS_KEYS for key in fields)
        ):
            # The rule services.address_change_request enforces for people applies to the ERP too.
            draft.error(
                draft.first_row,
                "",
                _("Order %(number)s is already %(status)s here; its address and items can no longer change.")
                % {"number": draft.number, "status": order.get_status_display()},
            )
            rejected.append(draft)
            continue
        changed.append((order, draft, fields, lines_differ))
        changes.append({"order_number": draft.number, "action": "updated", "fields": fields + (["lines"] if lines_differ else [])})

    if not dry_run:
        _create_orders(new_drafts, products, now, run_id)
        _update_orders(changed, products, now, run_id)
    return len(new_drafts), len(changed), unchanged, rejected, changes


def _customers(drafts: list[OrderDraft]) -> dict[str, Customer]:
    phones = {draft.values["receiver_phone"]: draft.values["receiver_name"] for draft in drafts}
    found = {customer.phone: customer for customer in Customer.objects.filter(phone__in=list(phones))}
    missing = [Customer(phone=phone, name=name) for phone, name in phones.items() if phone not in found]
    if missing:
        Customer.objects.bulk_create(missing, ignore_conflicts=True)
        found.update({customer.phone: customer for customer in Customer.objects.filter(phone__in=[c.phone for c in missing])})
    return found


def _order_lines(order: Order, draft: OrderDraft, products: dict[str, Product]) -> list[OrderLine]:
    return [
        OrderLine(
            order=order,
            product=products[line.sku_code],
            sku_code=line.sku_code,
            product_name=line.product_name or products[line.sku_code].name,
            quantity=line.quantity,
            unit_price=line.unit_price,
            is_gift=line.is_gift,
            cold_chain=products[line.sku_code].cold_chain,
        )
        for line in draft.lines
    ]


def _event(order: Order, kind: str, payload: dict, source_time, now) -> OrderEvent:
    return OrderEvent(order=order, kind=kind, occurred_at=now, source_time=source_time, actor_name=ERP.name, payload=payload)


def _create_orders(drafts: list[OrderDraft], products: dict[str, Product], now, run_id: int | None) -> None:
    if not drafts:
        return
    customers = _customers(drafts)
    orders = []
    for draft in drafts:
        values = draft.values
        status = _initial_status(values)
        placed = values["placed_at"] or now
        stamps = {"pending_review_at": placed, "paid_at": values["paid_at"], "shipped_at": values["shipped_at"]}
        if status == OrderStatus.PAID and not stamps["paid_at"]:
            stamps["paid_at"] = now
        if status == OrderStatus.CANCELLED:
            stamps["cancelled_at"] = now
        if status == OrderStatus.COMPLETED:
            stamps["completed_at"] = now
        orders.append(
            Order(
                order_number=draft.number,
                source=OrderSource.ERP,
                customer=customers[values["receiver_phone"]],
                status=status,
                **{key: values[key] or "" for key in ADDRESS_KEYS},
                **{key: values[key] if values[key] is not None else Decimal("0.00") for key in AMOUNT_KEYS},
                carrier_code=values["carrier_code"] or "",
                buyer_message=values["buyer_message"] or "",
                requires_cold_chain=any(products[line.sku_code].cold_chain for line in draft.lines),
                placed_at=placed,
                created_at=now,
                stage_entered_at=now,
                source_updated_at=values["source_time"],
                **stamps,
            )
        )
    Order.objects.bulk_create(orders, batch_size=CHUNK)
    lines, shipments, events = [], [], []
    for order, draft in zip(orders, drafts, strict=True):
        lines += _order_lines(order, draft, products)
        tracking = draft.values["tracking_number"]
        if order.status in (OrderStatus.SHIPPED, OrderStatus.COMPLETED) and tracking and order.carrier_code:
            shipments.append(Shipment(order=order, carrier_code=order.carrier_code, tracking_number=tracking, created_at=now))
        events.append(_event(order, EventKind.CREATED, {"import_run": run_id, "erp_status": draft.values["erp_status"]}, draft.values["source_time"], now))
    OrderLine.objects.bulk_create(lines, batch_size=5000)
    # A tracking number already known here (e.g. entered by the courier) is kept, not duplicated.
    Shipment.objects.bulk_create(shipments, ignore_conflicts=True)
    OrderEvent.objects.bulk_create(events, batch_size=5000)


def _update_orders(changed: list[tuple[Order, OrderDraft, list[str], bool]], products: dict[str, Product], now, run_id: int | None) -> None:
    if not changed:
        return
    update_fields = {"version", "updated_at", "source_updated_at"}
    replace_lines: list[Order] = []
    new_lines: list[OrderLine] = []
    events = []
    for order, draft, fields, lines_differ in changed:
        before = {key: str(getattr(order, key)) for key in fields}
        for key in fields:
            setattr(order, key, draft.values[key])
        update_fields.update(fields)
        order.version += 1
        order.updated_at = now
        order.source_updated_at = draft.values["source_time"] or order.source_updated_at
        if lines_differ:
            replace_lines.append(order)
            new_lines += _order_lines(order, draft, products)
            order.requires_cold_chain = any(products[line.sku_code].cold_chain for line in draft.lines)
            update_fields.add("requires_cold_chain")
        payload = {
            "fields": fields + (["lines"] if lines_differ else []),
            "before": before,
            "after": {key: str(draft.values[key]) for key in fields},
            "import_run": run_id,
        }
        events.append(_event(order, EventKind.IMPORT_UPDATE, payload, draft.values["source_time"], now))
    Order.objects.bulk_update([item[0] for item in changed], sorted(update_fields), batch_size=500)
    if replace_lines:
        OrderLine.objects.filter(order__in=replace_lines).delete()
        OrderLine.objects.bulk_create(new_lines, batch_size=5000)
    OrderEvent.objects.bulk_create(events, batch_size=5000)

