"""Formula-safe output: the one rule for every spreadsheet and CSV the cockpit writes.

Finance opens the daily ERP export and the import error report in Excel, and a 收货人姓名,
地址, 买家留言 or 商品名称 comes from customers and platforms: `=HYPERLINK("http://evil.example",
"点我领券")` or `=cmd|' /C calc'!A0` must reach Excel as the text it is, never as a formula.

- CSV (the OWASP CSV-injection rule): a text value that begins with `=`, `+`, `-`, `@`, a tab or a
  carriage return gets a leading single quote, which Excel hides and which makes it read the rest
  as text. The full-width ＝ ＋ － ＠ are treated the same: Excel in Chinese and Japanese locales
  turns a typed full-width ＝ into a formula, and a CSV cell is read like a typed one. Numbers
  (int, Decimal, float) are written as they are: a number is never a formula.
- .xlsx: a cell's XML says whether it is a formula, so the value itself stays unchanged (the
  file still reads back through our import as the same order); openpyxl would turn a text that
  begins with `=` into a formula, so text cells are forced to string type, and the ones that
  begin with a trigger also get Excel's quotePrefix style, so that editing the cell in Excel
  (F2, Enter) keeps it text too.

Writers: integrations/erp/exporter.py (xlsx), integrations/erp/views.py (import error report),
workflows/health/views.py (health CSV).
"""

from __future__ import annotations

import csv
from typing import Any

from openpyxl.cell import WriteOnlyCell

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "＝", "＋", "－", "＠")


def starts_like_a_formula(value: object) -> bool:
    return isinstance(value, str) and value.startswith(FORMULA_TRIGGERS)


def csv_safe(value: Any) -> Any:
    """One CSV cell value, with the OWASP quote in front of a text Excel would evaluate."""
    return "'" + value if starts_like_a_formula(value) else value


class FormulaSafeWriter:
    """csv.writer with every cell passed through csv_safe."""

    def __init__(self, stream, **options) -> None:
        self._writer = csv.writer(stream, **options)

    def writerow(self, row) -> Any:
        return self._writer.writerow([csv_safe(value) for value in row])

    def writerows(self, rows) -> None:
        for row in rows:
            self.writerow(row)


def csv_writer(stream, **options) -> FormulaSafeWriter:
    return FormulaSafeWriter(stream, **options)


def xlsx_text(sheet, value: str | None, *, number_format: str | None = None) -> WriteOnlyCell:
    """A text cell for a write-only sheet that Excel shows as text and never evaluates."""
    cell = WriteOnlyCell(sheet, value=value)
    if isinstance(value, str):
        cell.data_type = "s"  # openpyxl made it "f" (a formula) when the text begins with "="
        if starts_like_a_formula(value):
            cell.quotePrefix = True
    if number_format:
        cell.number_format = number_format
    return cell
