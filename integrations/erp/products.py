"""Import of the ERP's product master export (商品资料): the products the order import needs.

The order import refuses a line whose 商品编码 is not in the product master (products carry the
barcodes the pack bench verifies); this import is how a company with hundreds of SKUs fills
the master, and how an order import that refused unknown SKUs is recovered in one step
(integrations/erp/services.py: the product run re-runs the order file when it is done).

It reads through the same bounded reader as the order import (spreadsheet.read_table: CSV in
UTF-8/GB18030 or .xlsx, a title row above the header is fine), runs as the same ImportRun
(preview → import, progress, heartbeat, reaper, retry) and keeps its problems the same way
(importer.ErrorLog, the formula-safe error report of the run's page).

Decisions:
- 商品编码 is the key. A row for a known SKU updates it; a file imported twice changes nothing.
- A barcode stays text. A barcode that reached the file as a number with lost digits (1.23E+12,
  a decimal point, more than 15 digits) is refused, and so is a numeric cell that lost a leading
  zero (the GTIN check digit only works with the zero back): the pack bench would never match
  the printed code.
- A barcode belongs to one product: one already used by another SKU (here or earlier in the
  file) is refused with the owner's code.
- A SKU repeated with the same values is reported and counted once; repeated with different
  values it is refused whole (which row is right is the ERP's to say), every row listed.
- An optional column that the file does not have leaves that field as it is (a 商品资料 export
  without 冷链 does not clear the cold-chain flag set here).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from integrations.erp.importer import (
    DECIMAL_NUMBER,
    EXACT_DIGITS,
    SCIENTIFIC,
    ErrorLog,
    ImportSummary,
    RowError,
    _text,
    _too_long,
    _yes_no,
    parse_amount,
)
from integrations.erp.spreadsheet import read_table
from orders.models import Product

CHUNK = 1000
HEARTBEAT_ROWS = 5000
SHOWN_CHANGES = 200

COLUMNS: dict[str, tuple[str, ...]] = {
    "sku_code": ("商品编码", "货品编码", "SKU编码"),
    "name": ("商品名称", "货品名称"),
    "barcode": ("国际条码", "条码", "条形码", "商品条码"),
    "spec": ("规格", "颜色及规格", "商品规格"),
    "unit_price": ("单价", "基本售价", "销售价", "商品单价"),
    "image": ("图片", "图片地址", "商品图片"),
    "cold_chain": ("冷链", "是否冷链"),
    "is_gift": ("赠品", "是否赠品"),
}
REQUIRED = ("sku_code", "name", "barcode")
OPTIONAL = ("spec", "unit_price", "image", "cold_chain", "is_gift")
LENGTHS = {key: Product._meta.get_field(key).max_length for key in ("sku_code", "name", "barcode", "spec", "image")}
BARCODE = re.compile(r"^[A-Za-z0-9\-]{1,40}$")
GTIN_LENGTHS = (8, 12, 13, 14)


def gtin_valid(digits: str) -> bool:
    """The GS1 check digit (EAN-8, UPC-A, EAN-13, GTIN-14)."""
    if not digits.isdigit() or len(digits) not in GTIN_LENGTHS:
        return False
    body, check = digits[:-1], int(digits[-1])
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return (10 - total % 10) % 10 == check


def barcode_problem(value) -> tuple[str, str]:
    """(the barcode as text, "" or why it is refused). Never rounds, never pads."""
    numeric = False
    if value is None or (isinstance(value, str) and not value.strip()):
        return "", _("The barcode is empty: the pack bench verifies every item by its barcode.")
    if isinstance(value, float):
        if not value.is_integer() or abs(value) >= 10**EXACT_DIGITS:
            shown = f"{value:.15G}"
            return shown, _(
                "The barcode %(value)s arrived as a number (Excel rounds long numbers); its exact digits are lost. "
                "Format the barcode column as text in the ERP export and export again."
            ) % {"value": shown}
        text, numeric = str(int(value)), True
    elif isinstance(value, int) and not isinstance(value, bool):
        text, numeric = str(value), True
        if len(text) > EXACT_DIGITS:
            return text, _(
                "The barcode %(value)s is stored as a number with more than 15 digits and may have been rounded. "
                "Format the column as text and export again."
            ) % {"value": text}
    else:
        text = str(value).strip()
        if SCIENTIFIC.match(text):
            return text, _(
                "The barcode %(value)s is in scientific notation: the real code is lost. "
                "Format the barcode column as text in the ERP export and export again."
            ) % {"value": text}
        if DECIMAL_NUMBER.match(text):
            return text, _("The barcode %(value)s has a decimal point: it was converted to a number. Export it as text.") % {
                "value": text
            }
    if numeric and not gtin_valid(text) and gtin_valid("0" + text):
        return text, _(
            "The barcode %(value)s arrived as a number and lost its leading zero (0%(value)s is the valid code). "
            "Format the barcode column as text in the ERP export and export again."
        ) % {"value": text}
    if not BARCODE.match(text):
        return text, _("The barcode %(value)s may contain only letters, digits and - (at most 40).") % {"value": text[:60]}
    return text, ""


@dataclass
class ProductDraft:
    sku: str
    row: int
    values: dict
    rows: list[int] = field(default_factory=list)
    failed: bool = False


def import_products(
    *,
    path: Path | str,
    dry_run: bool = False,
    progress: Callable[[int, int], None] | None = None,
    heartbeat: Callable[[], None] | None = None,
) -> ImportSummary:
    """Import one product master export. Raises UnreadableFile when the file as a whole cannot
    be used (nothing is written then)."""
    table = read_table(
        path,
        COLUMNS,
        REQUIRED,
        no_header=_(
            "No header row found in the first %(rows)d rows. A product master export (商品资料) needs the columns %(columns)s."
        ),
    )
    summary = ImportSummary(dry_run=dry_run)
    errors, warnings = summary.error_log, summary.warning_log
    index, labels = table.header, table.labels
    present = [key for key in OPTIONAL if key in index]
    drafts: dict[str, ProductDraft] = {}
    read = 0
    for number, row in table.stream():
        read += 1
        if heartbeat and read % HEARTBEAT_ROWS == 0:
            heartbeat()
        sku, draft = _parse_row(number, row, index, labels, present, errors)
        if not sku:
            summary.rejected += 1
            summary.rejected_rows += 1
            continue
        earlier = drafts.get(sku)
        if earlier is None:
            # A row with a problem still holds its SKU: another row of it must not slip in alone.
            drafts[sku] = draft or ProductDraft(sku=sku, row=number, values={}, failed=True)
            drafts[sku].rows.append(number)
            continue
        earlier.rows.append(number)
        if draft is None or not earlier.values:
            earlier.failed = True
        elif earlier.values == draft.values:
            warnings.add(
                RowError(
                    number,
                    labels["sku_code"],
                    _("Row %(row)d repeats row %(first)d exactly; the product is imported once.")
                    % {"row": number, "first": earlier.row},
                    draft.sku,
                )
            )
        else:
            differ = [labels[key] for key in draft.values if earlier.values.get(key) != draft.values.get(key)]
            errors.add(
                RowError(
                    number,
                    "、".join(differ),
                    _(
                        "SKU %(sku)s is also in row %(first)d with different values (%(columns)s); which one is right is for the ERP to say. "
                        "The product is not imported; fix the ERP and export again."
                    )
                    % {"sku": draft.sku, "first": earlier.row, "columns": "、".join(differ)},
                    draft.sku,
                )
            )
            earlier.failed = True
    summary.total_rows = read

    _check_barcodes(drafts, labels, errors)
    good = []
    for draft in drafts.values():
        if draft.failed:
            summary.rejected += 1
            summary.rejected_rows += len(draft.rows)
        else:
            good.append(draft)
    done = summary.rejected_rows
    if progress:
        progress(done, read)
    for start in range(0, len(good), CHUNK):
        chunk = good[start : start + CHUNK]
        _apply_chunk(chunk, summary, labels, dry_run=dry_run)
        done += sum(len(draft.rows) for draft in chunk)
        if progress:
            progress(done, read)
    return summary


def _parse_row(
    number: int, row: list, index: dict, labels: dict, present: list[str], errors: ErrorLog
) -> tuple[str, ProductDraft | None]:
    def cell(key):
        at = index[key]
        return row[at] if at < len(row) else None

    sku = _text(cell("sku_code"))
    problems: list[tuple[str, str]] = []
    if not sku:
        problems.append(("sku_code", _("The SKU code is empty.")))
    elif len(sku) > LENGTHS["sku_code"]:
        problems.append(("sku_code", _too_long(sku, LENGTHS["sku_code"])))
    values: dict = {}
    name = _text(cell("name"))
    if not name:
        problems.append(("name", _("The product name is empty.")))
    elif len(name) > LENGTHS["name"]:
        problems.append(("name", _too_long(name, LENGTHS["name"])))
    values["name"] = name
    barcode, reason = barcode_problem(cell("barcode"))
    if reason:
        problems.append(("barcode", reason))
    values["barcode"] = barcode
    for key in present:
        raw = cell(key)
        if key in ("spec", "image"):
            text = _text(raw)
            if len(text) > LENGTHS[key]:
                problems.append((key, _too_long(text, LENGTHS[key])))
            values[key] = text
        elif key == "unit_price":
            text = _text(raw)
            price = parse_amount(raw) if text else None
            if text and price is None:
                problems.append(
                    (key, _("%(value)s is not an amount: write yuan with at most two decimals, e.g. 59.90.") % {"value": text})
                )
            values[key] = price
        else:
            flag = _yes_no(_text(raw))
            if flag is None:
                problems.append((key, _("%(value)s is not a yes/no value: write 是 or 否.") % {"value": _text(raw)}))
            values[key] = flag
    for key, reason in problems:
        errors.add(RowError(number, labels.get(key, COLUMNS[key][0]), reason, sku))
    if problems:
        return sku, None
    return sku, ProductDraft(sku=sku, row=number, values=values)


def _check_barcodes(drafts: dict[str, ProductDraft], labels: dict, errors: ErrorLog) -> None:
    """A barcode belongs to one product, in the file and in the master."""
    first_of: dict[str, ProductDraft] = {}
    for draft in drafts.values():
        if draft.failed:
            continue
        barcode = draft.values["barcode"]
        owner = first_of.get(barcode)
        if owner is not None:
            draft.failed = True
            errors.add(
                RowError(
                    draft.row,
                    labels["barcode"],
                    _("The barcode %(barcode)s is also given to SKU %(other)s in row %(row)d; a barcode identifies one product.")
                    % {"barcode": barcode, "other": owner.sku, "row": owner.row},
                    draft.sku,
                )
            )
        else:
            first_of[barcode] = draft
    barcodes = list(first_of)
    owners: dict[str, str] = {}
    for start in range(0, len(barcodes), 2000):
        owners.update(Product.objects.filter(barcode__in=barcodes[start : start + 2000]).values_list("barcode", "sku_code"))
    for barcode, draft in first_of.items():
        owner = owners.get(barcode)
        if owner is not None and owner != draft.sku:
            draft.failed = True
            errors.add(
                RowError(
                    draft.row,
                    labels["barcode"],
                    _(
                        "The barcode %(barcode)s already belongs to product %(other)s; a barcode identifies one product. "
                        "Correct the barcode, or change product %(other)s's first."
                    )
                    % {"barcode": barcode, "other": owner},
                    draft.sku,
                )
            )


def _apply_chunk(chunk: list[ProductDraft], summary: ImportSummary, labels: dict, *, dry_run: bool) -> None:
    try:
        with transaction.atomic():
            _write(chunk, summary, dry_run=dry_run)
    except IntegrityError:
        # Another import or a person in the admin took a barcode or a SKU meanwhile: one by one,
        # so only the product that collides is refused.
        for draft in chunk:
            try:
                with transaction.atomic():
                    _write([draft], summary, dry_run=dry_run)
            except IntegrityError:
                summary.rejected += 1
                summary.rejected_rows += len(draft.rows)
                summary.error_log.add(
                    RowError(
                        draft.row,
                        labels["barcode"],
                        _("SKU %(sku)s or its barcode %(barcode)s was taken by another product while importing; import again.")
                        % {"sku": draft.sku, "barcode": draft.values["barcode"]},
                        draft.sku,
                    )
                )


def _write(chunk: list[ProductDraft], summary: ImportSummary, *, dry_run: bool) -> None:
    existing = {
        product.sku_code: product
        for product in Product.objects.select_for_update().filter(sku_code__in=[draft.sku for draft in chunk])
    }
    new, changed, fields_changed = [], [], set()
    for draft in chunk:
        values = {key: value for key, value in draft.values.items() if value is not None}
        product = existing.get(draft.sku)
        if product is None:
            new.append(Product(sku_code=draft.sku, **values))
            _change(summary, draft.sku, "created", [])
            continue
        fields = [key for key, value in values.items() if getattr(product, key) != value]
        if not fields:
            summary.unchanged += 1
            continue
        for key in fields:
            setattr(product, key, values[key])
        changed.append(product)
        fields_changed.update(fields)
        _change(summary, draft.sku, "updated", fields)
    summary.created += len(new)
    summary.updated += len(changed)
    if dry_run:
        return
    Product.objects.bulk_create(new, batch_size=500)
    if changed:
        Product.objects.bulk_update(changed, sorted(fields_changed), batch_size=500)


def _change(summary: ImportSummary, sku: str, action: str, fields: list[str]) -> None:
    if len(summary.changes) < SHOWN_CHANGES:
        summary.changes.append({"order_number": sku, "action": action, "fields": fields})
