"""Reading ERP exports (Jushuitan-style, docs/protocols.md): CSV in UTF-8 / UTF-8 with BOM / GB18030,
or .xlsx; the header row is found by its column names, because real exports may put a title row
(名称：聚水潭成本) above it. Everything about the file format stays in this module."""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from django.utils.translation import gettext as _

HEADER_SEARCH_ROWS = 20


class UnreadableFile(Exception):
    """The file as a whole cannot be imported (exit code 2); the message says why and what to do."""


@dataclass
class Table:
    header: dict[str, int]  # canonical column key → index
    header_row: int  # 1-based row number of the header in the file
    rows: list[tuple[int, list]]  # (1-based row number, cells), blank rows left out
    labels: dict[str, str]  # canonical column key → the header text found in the file


def read_table(path: Path | str, columns: dict[str, tuple[str, ...]], required: tuple[str, ...]) -> Table:
    """The data rows under the header, with the header mapped onto `columns` (key → accepted names)."""
    raw_rows = list(_raw_rows(Path(path)))
    if not any(any(_is_filled(cell) for cell in row) for row in raw_rows):
        raise UnreadableFile(_("The file is empty: it has no header row and no orders."))
    header_at = None
    for index, row in enumerate(raw_rows[:HEADER_SEARCH_ROWS]):
        names = {_header_name(cell) for cell in row}
        if (
            any(alias in names for alias in columns[required[0]])
            and sum(1 for aliases in columns.values() if any(alias in names for alias in aliases)) >= 3
        ):
            header_at = index
            break
    if header_at is None:
        expected = "、".join(columns[key][0] for key in required)
        raise UnreadableFile(
            _("No header row found in the first %(rows)d rows. An ERP order export needs the columns %(columns)s.")
            % {"rows": HEADER_SEARCH_ROWS, "columns": expected}
        )
    names = [_header_name(cell) for cell in raw_rows[header_at]]
    header: dict[str, int] = {}
    labels: dict[str, str] = {}
    for key, aliases in columns.items():
        for alias in aliases:  # the first alias present wins (订单号 before 内部订单号)
            if alias in names:
                header[key] = names.index(alias)
                labels[key] = alias
                break
    missing = [columns[key][0] for key in required if key not in header]
    if missing:
        raise UnreadableFile(
            _("The header row (row %(row)d) lacks required columns: %(missing)s. Export again with these columns.")
            % {"row": header_at + 1, "missing": "、".join(missing)}
        )
    rows = [(number, row) for number, row in enumerate(raw_rows[header_at + 1 :], start=header_at + 2) if not _is_blank(row)]
    return Table(header=header, header_row=header_at + 1, rows=rows, labels=labels)


def _is_blank(row: list) -> bool:
    first = row[0] if row else None
    if first.__class__ is str and first and not first.isspace():  # the usual row: its first cell is filled
        return False
    return not any(_is_filled(cell) for cell in row)


def _is_filled(cell) -> bool:
    return cell is not None and (not isinstance(cell, str) or cell.strip() != "")


def _header_name(cell) -> str:
    return str(cell).replace("\ufeff", "").replace("\u3000", "").strip() if cell is not None else ""


def _raw_rows(path: Path) -> Iterator[list]:
    try:
        head = path.open("rb").read(8)
    except OSError as exc:
        raise UnreadableFile(_("The file cannot be opened: %(error)s") % {"error": exc.strerror or exc}) from exc
    if head.startswith(b"PK\x03\x04"):
        return _xlsx_rows(path)
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        raise UnreadableFile(_("This is an old Excel .xls file. Save it as .xlsx or CSV and upload again."))
    return _csv_rows(path)


def _xlsx_rows(path: Path) -> Iterator[list]:
    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except (InvalidFileException, zipfile.BadZipFile, KeyError, OSError) as exc:
        raise UnreadableFile(_("This is a ZIP file but not an Excel workbook (.xlsx).")) from exc
    try:
        sheet = workbook.worksheets[0]
        return iter([list(row) for row in sheet.iter_rows(values_only=True)])
    finally:
        workbook.close()


def _csv_rows(path: Path) -> Iterator[list]:
    data = path.read_bytes()
    if b"\x00" in data[:4096]:
        raise UnreadableFile(_("This is not a spreadsheet: upload the ERP export as CSV or .xlsx."))
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise UnreadableFile(_("The file's text is neither UTF-8 nor GB18030; save it as CSV (UTF-8) and try again."))
    sample = text[:4096]
    delimiter = "\t" if sample.count("\t") > sample.count(",") else ","
    return iter(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
