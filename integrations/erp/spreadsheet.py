"""Reading ERP exports (Jushuitan-style, docs/protocols.md): CSV in UTF-8 / UTF-8 with BOM / GB18030,
or .xlsx; the header row is found by its column names, because real exports may put a title row
(名称：聚水潭成本) above it. Everything about the file format stays in this module, and the import,
the reconciliation and the ERP's day summary all read through `read_table`.

The files come from anyone with an upload button, so reading is bounded (issue 12):
- rows are streamed, never the whole file: a CSV is decoded line by line, a sheet is parsed row
  by row (openpyxl read-only) and each row is as wide as its last filled cell, never as wide as
  the sheet's declared `<dimension>` (a 5 KB sheet declaring A1:XFD1048576 once made openpyxl pad
  every row to 16,384 cells and a million rows: 137 GB);
- the limits below are checked before anything is allocated for them: the zip's central
  directory gives every member's size and compression ratio, the sheet's `<row>` elements are
  counted in its decompressed bytes before a single cell is parsed;
- every way a file can be broken ends in one UnreadableFile with a Chinese message (the import's
  exit code 2), never a traceback. defusedxml is installed, so openpyxl refuses sheets that
  declare XML entities (the "billion laughs" expansion).
"""

from __future__ import annotations

import codecs
import csv
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from xml.etree.ElementTree import ParseError

from django.utils.translation import gettext as _

HEADER_SEARCH_ROWS = 20

# The limits (README, "Import of ERP order exports"). A real day's export is a few thousand to
# 100,000 lines of 20–40 columns; these leave room for that and refuse what would occupy a
# worker for minutes or take more than a few hundred MB.
MAX_ROWS = 200_000  # data rows (lines) per file
MAX_COLUMNS = 256  # Excel allows 16,384; an ERP export has about 40
MAX_CELLS = 8_000_000  # cells of all rows together (200,000 rows × 40 columns)
MAX_LINE_CHARS = 100_000  # one CSV line (a row of 40 long addresses is ~ 4,000)
MAX_UNZIPPED_BYTES = 512 * 1024 * 1024  # an .xlsx's members together, decompressed (a 200,000-line sheet is ~230 MB)
MAX_SHARED_STRINGS_BYTES = 128 * 1024 * 1024  # held in memory by openpyxl, so bounded on its own
MAX_COMPRESSION_RATIO = 100  # real sheets compress 5–30×; a zip bomb 1,000×
RATIO_CHECKED_FROM = 1024 * 1024  # tiny members (a 300-byte styles.xml) may compress better without harm
READ_CHUNK = 1024 * 1024

OLE_MAGIC = b"\xd0\xcf\x11\xe0"
# A password-protected .xlsx is an OLE compound file holding the encrypted zip under this stream
# name (MS-OFFCRYPTO); the names in an OLE directory are UTF-16LE.
ENCRYPTED_PACKAGE = "EncryptedPackage".encode("utf-16-le")


class UnreadableFile(Exception):
    """The file as a whole cannot be imported (exit code 2); the message says why and what to do."""


@dataclass
class Table:
    header: dict[str, int]  # canonical column key → index
    header_row: int  # 1-based row number of the header in the file
    labels: dict[str, str]  # canonical column key → the header text found in the file
    # (1-based row number, cells) of the data rows, blank rows left out: read once, as they stream.
    data: Iterator[tuple[int, list]] = field(repr=False)

    def stream(self) -> Iterator[tuple[int, list]]:
        """The data rows as the file is read (one pass). Raises UnreadableFile when the file turns
        out to be broken or over a limit further down."""
        return self.data

    @cached_property
    def rows(self) -> list[tuple[int, list]]:
        """All data rows in a list, for small files (the day summary, benchmarks' baselines)."""
        return list(self.data)


def read_table(
    path: Path | str, columns: dict[str, tuple[str, ...]], required: tuple[str, ...], *, no_header: str | None = None
) -> Table:
    """The header mapped onto `columns` (key → accepted names), and the data rows under it.
    `no_header` replaces the message for a file without a header row (it gets %(rows)d and
    %(columns)s): the product master import reads through here too."""
    raw = _raw_rows(Path(path))
    head: list[tuple[int, list]] = []
    for number, row in raw:
        head.append((number, row))
        if len(head) == HEADER_SEARCH_ROWS:
            break
    if not any(any(_is_filled(cell) for cell in row) for _number, row in head):
        raise UnreadableFile(_("The file is empty: it has no header row and no orders."))
    header_at = None
    for index, (_number, row) in enumerate(head):
        names = {_header_name(cell) for cell in row}
        if (
            any(alias in names for alias in columns[required[0]])
            and sum(1 for aliases in columns.values() if any(alias in names for alias in aliases)) >= 3
        ):
            header_at = index
            break
    if header_at is None:
        expected = "、".join(columns[key][0] for key in required)
        message = no_header or _(
            "No header row found in the first %(rows)d rows. An ERP order export needs the columns %(columns)s."
        )
        raise UnreadableFile(message % {"rows": HEADER_SEARCH_ROWS, "columns": expected})
    header_number, header_cells = head[header_at]
    names = [_header_name(cell) for cell in header_cells]
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
            % {"row": header_number, "missing": "、".join(missing)}
        )
    return Table(header=header, header_row=header_number, labels=labels, data=_data_rows(head[header_at + 1 :], raw))


def _data_rows(buffered: list[tuple[int, list]], rest: Iterable[tuple[int, list]]) -> Iterator[tuple[int, list]]:
    for source in (buffered, rest):
        for number, row in source:
            if not _is_blank(row):
                yield number, row


def _is_blank(row: list) -> bool:
    first = row[0] if row else None
    if first.__class__ is str and first and not first.isspace():  # the usual row: its first cell is filled
        return False
    return not any(_is_filled(cell) for cell in row)


def _is_filled(cell) -> bool:
    return cell is not None and (not isinstance(cell, str) or cell.strip() != "")


def _header_name(cell) -> str:
    return str(cell).replace("\ufeff", "").replace("\u3000", "").strip() if cell is not None else ""


def _too_many_rows() -> UnreadableFile:
    return UnreadableFile(
        _("The file has more than %(limit)s rows; split the export (by date or shop) into files of at most %(limit)s lines.")
        % {"limit": f"{MAX_ROWS:,}"}
    )


def _too_many_cells() -> UnreadableFile:
    return UnreadableFile(
        _("The file has more than %(limit)s cells; export only the order columns, or split the export.")
        % {"limit": f"{MAX_CELLS:,}"}
    )


def _too_wide(number: int) -> UnreadableFile:
    return UnreadableFile(
        _(
            "Row %(row)d has a filled cell beyond column %(limit)d; an ERP export has far fewer columns. Delete the stray cells and save again."
        )
        % {"row": number, "limit": MAX_COLUMNS}
    )


# The last file row that may hold data: MAX_ROWS data rows under a title and a header.
LAST_ROW = MAX_ROWS + HEADER_SEARCH_ROWS


def _raw_rows(path: Path) -> Iterator[tuple[int, list]]:
    """(1-based row number in the file, cells) of every row, blank ones included."""
    try:
        with path.open("rb") as handle:
            head = handle.read(8)
    except OSError as exc:
        raise UnreadableFile(_("The file cannot be opened: %(error)s") % {"error": exc.strerror or exc}) from exc
    if not head:
        raise UnreadableFile(_("The file is empty: it has no header row and no orders."))
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return _xlsx_rows(path)
    if head.startswith(OLE_MAGIC):
        if _holds_encrypted_package(path):
            raise UnreadableFile(
                _(
                    "The workbook is password-protected (encrypted). Remove the password in Excel (File → Info → Protect Workbook) and upload again."
                )
            )
        raise UnreadableFile(_("This is an old Excel .xls file. Save it as .xlsx or CSV and upload again."))
    return _csv_rows(path)


def _holds_encrypted_package(path: Path) -> bool:
    overlap = len(ENCRYPTED_PACKAGE)
    tail = b""
    with path.open("rb") as handle:
        while chunk := handle.read(READ_CHUNK):
            if ENCRYPTED_PACKAGE in tail + chunk:
                return True
            tail = chunk[-overlap:]
    return False


# --- .xlsx ---------------------------------------------------------------------------------------


def _damaged(detail: str = "") -> UnreadableFile:
    message = _(
        "The workbook is damaged (cut off or not saved completely) and cannot be read. Open it in Excel, save it again as .xlsx and upload that."
    )
    return UnreadableFile(f"{message} ({detail})" if detail else message)


def _check_archive(archive: zipfile.ZipFile) -> None:
    """The limits a zip's central directory answers before anything is decompressed."""
    total = 0
    for info in archive.infolist():
        if info.flag_bits & 0x1:
            raise UnreadableFile(
                _(
                    "The workbook is password-protected (encrypted). Remove the password in Excel (File → Info → Protect Workbook) and upload again."
                )
            )
        total += info.file_size
        if info.file_size >= RATIO_CHECKED_FROM and info.file_size > MAX_COMPRESSION_RATIO * max(info.compress_size, 1):
            raise UnreadableFile(
                _(
                    "The workbook unpacks to more than %(ratio)d times its size (%(name)s); that is a zip bomb, not an export. Refused."
                )
                % {"ratio": MAX_COMPRESSION_RATIO, "name": info.filename[:80]}
            )
        if info.filename.lower().endswith("sharedstrings.xml") and info.file_size > MAX_SHARED_STRINGS_BYTES:
            raise UnreadableFile(
                _("The workbook's text table unpacks to more than %(limit)d MB; split the export into smaller files.")
                % {"limit": MAX_SHARED_STRINGS_BYTES // (1024 * 1024)}
            )
    if total > MAX_UNZIPPED_BYTES:
        raise UnreadableFile(
            _("The workbook unpacks to more than %(limit)d MB; split the export (by date or shop) into smaller files.")
            % {"limit": MAX_UNZIPPED_BYTES // (1024 * 1024)}
        )


def _count_rows(archive: zipfile.ZipFile, member: str) -> int:
    """`<row>` elements in a sheet, counted in its decompressed bytes (about 1 s per 200 MB) so a
    sheet of a million rows is refused before openpyxl parses a single one."""
    count, tail = 0, b""
    with archive.open(member) as source:
        while chunk := source.read(READ_CHUNK):
            window = tail + chunk
            # Tags split across two chunks are found in the overlap; a tag wholly inside the
            # overlap was counted already, so count the window minus what the tail alone holds.
            count += sum(window.count(tag) - tail.count(tag) for tag in (b"<row ", b"<row>", b":row ", b":row>"))
            tail = chunk[-5:]
    return count


def _xlsx_rows(path: Path) -> Iterator[tuple[int, list]]:
    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise _damaged(_("the zip's table of contents is missing")) from exc
    with archive:
        _check_archive(archive)
        if "xl/workbook.xml" not in archive.namelist():
            raise UnreadableFile(_("This is a ZIP file but not an Excel workbook (.xlsx)."))
        # Before openpyxl opens it: without a <dimension>, openpyxl parses the whole sheet just
        # to size it (5 s and 170 MB for a million rows).
        try:
            member = _first_sheet(archive)
            if member and _count_rows(archive, member) > LAST_ROW:
                raise _too_many_rows()
        except UnreadableFile:
            raise
        except Exception as exc:  # noqa: BLE001 — a broken deflate stream, a cut-off member, hostile XML
            raise _xml_problem(exc) from exc
    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except (InvalidFileException, zipfile.BadZipFile, KeyError) as exc:
        raise UnreadableFile(_("This is a ZIP file but not an Excel workbook (.xlsx).")) from exc
    except Exception as exc:  # noqa: BLE001 — every parse failure of a hostile file is one message
        raise _xml_problem(exc) from exc
    if not workbook.worksheets:
        workbook.close()
        raise UnreadableFile(_("The file is empty: it has no header row and no orders."))
    return _sheet_rows(workbook, workbook.worksheets[0])


def _first_sheet(archive: zipfile.ZipFile) -> str | None:
    """The zip member of the workbook's first sheet (the one read), from workbook.xml and its
    relationships, as openpyxl finds it; None when the workbook does not say."""
    from defusedxml.ElementTree import fromstring

    main = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
    relationship = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}id"
    sheet = fromstring(archive.read("xl/workbook.xml")).find(f"{main}sheets/{main}sheet")
    if sheet is None or "xl/_rels/workbook.xml.rels" not in archive.namelist():
        return None
    wanted = sheet.get(relationship)
    for rel in fromstring(archive.read("xl/_rels/workbook.xml.rels")):
        if rel.get("Id") == wanted:
            target = rel.get("Target", "")
            member = target.lstrip("/") if target.startswith("/") else f"xl/{target}"
            return member if member in archive.namelist() else None
    return None


def _sheet_rows(workbook, sheet) -> Iterator[tuple[int, list]]:
    # The declared <dimension> is ignored: each row is as wide as its own last cell, and rows
    # the sheet leaves out come through as empty rows (so row numbers stay the file's).
    sheet.reset_dimensions()
    cells = 0
    number = 0
    try:
        for number, values in enumerate(sheet.iter_rows(values_only=True), start=1):
            if number > LAST_ROW:
                raise _too_many_rows()
            width = len(values)
            if width > MAX_COLUMNS:
                if any(value is not None for value in values[MAX_COLUMNS:]):
                    raise _too_wide(number)
                values = values[:MAX_COLUMNS]
                width = MAX_COLUMNS
            cells += width
            if cells > MAX_CELLS:
                raise _too_many_cells()
            yield number, list(values)
    except UnreadableFile:
        raise
    except Exception as exc:  # noqa: BLE001 — every parse failure of a hostile file is one message
        raise _xml_problem(exc, number + 1) from exc
    finally:
        workbook.close()


def _xml_problem(exc: Exception, row: int | None = None) -> UnreadableFile:
    try:
        from defusedxml import DefusedXmlException
    except ImportError:  # pragma: no cover — a dependency (pyproject.toml)
        DefusedXmlException = ()  # noqa: N806
    # openpyxl wraps what failed in a ValueError ("could not read worksheets"): judge the cause.
    causes = [exc]
    while causes[-1].__cause__ is not None and len(causes) < 5:
        causes.append(causes[-1].__cause__)
    if any(isinstance(cause, DefusedXmlException) for cause in causes):
        return UnreadableFile(
            _(
                "The workbook contains XML entity or DTD declarations, which Excel never writes (they can expand to gigabytes). Refused; export the file again from the ERP."
            )
        )
    if any(isinstance(cause, ParseError | zlib.error | EOFError | zipfile.BadZipFile) for cause in causes):
        return _damaged(_("row %(row)d") % {"row": row} if row else "")
    if isinstance(exc, MemoryError):
        return UnreadableFile(_("The workbook is too large to read; split the export into smaller files."))
    return _damaged(exc.__class__.__name__)


# --- CSV -----------------------------------------------------------------------------------------


def _csv_encoding(path: Path) -> str:
    """UTF-8 (with or without BOM) or GB18030, decided by decoding the whole file in chunks
    (nothing kept); NUL bytes mean a binary file or UTF-16 text, which csv cannot read."""
    for encoding in ("utf-8-sig", "gb18030"):
        decoder = codecs.getincrementaldecoder(encoding)()
        offset = 0
        try:
            with path.open("rb") as handle:
                while chunk := handle.read(READ_CHUNK):
                    nul = chunk.find(b"\x00")
                    if nul >= 0:
                        if offset + nul < 4096:
                            raise UnreadableFile(_("This is not a spreadsheet: upload the ERP export as CSV or .xlsx."))
                        raise UnreadableFile(
                            _(
                                "The file contains NUL bytes (at byte %(offset)d): it is binary or UTF-16 text, not a CSV. Save it as CSV (UTF-8) and upload again."
                            )
                            % {"offset": offset + nul}
                        )
                    decoder.decode(chunk)
                    offset += len(chunk)
                decoder.decode(b"", final=True)
            return encoding
        except UnicodeDecodeError:
            continue
    raise UnreadableFile(_("The file's text is neither UTF-8 nor GB18030; save it as CSV (UTF-8) and try again."))


def _bounded_lines(handle) -> Iterator[str]:
    for number, line in enumerate(handle, start=1):
        if len(line) > MAX_LINE_CHARS:
            raise UnreadableFile(
                _("Line %(line)d is longer than %(limit)s characters; this is not an order export (or its line breaks are lost).")
                % {"line": number, "limit": f"{MAX_LINE_CHARS:,}"}
            )
        yield line


def _csv_rows(path: Path) -> Iterator[tuple[int, list]]:
    encoding = _csv_encoding(path)
    handle = path.open("r", encoding=encoding, newline="")
    sample = handle.read(4096)
    handle.seek(0)
    delimiter = "\t" if sample.count("\t") > sample.count(",") else ","
    return _csv_records(handle, delimiter)


def _csv_records(handle, delimiter: str) -> Iterator[tuple[int, list]]:
    cells = 0
    number = 0
    try:
        with handle:
            for number, row in enumerate(csv.reader(_bounded_lines(handle), delimiter=delimiter), start=1):
                if number > LAST_ROW:
                    raise _too_many_rows()
                width = len(row)
                if width > MAX_COLUMNS:
                    if any(row[MAX_COLUMNS:]):
                        raise _too_wide(number)
                    del row[MAX_COLUMNS:]
                    width = MAX_COLUMNS
                cells += width
                if cells > MAX_CELLS:
                    raise _too_many_cells()
                yield number, row
    except csv.Error as exc:
        raise UnreadableFile(
            _("Row %(row)d cannot be read as CSV (%(error)s); save the file as CSV (UTF-8) again.")
            % {"row": number + 1, "error": exc}
        ) from exc
