"""Exports of any order-list view (issue 17): CSV streamed to the browser, .xlsx written by a task.

Both walk the view's orders with a server-side cursor (`iterator`) over plain value tuples, so
memory stays flat however many orders the view holds; both write through the formula-safe
writers (orders/exports.py). Identifiers (order number, phone) are text, amounts are the
Decimal's exact digits, phone numbers are shown as the exporting person may see them
(orders/privacy.py): an export never holds more than its author's screen does.
"""

from __future__ import annotations

import datetime
import io
import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path

from django.conf import settings
from django.core.files import File
from django.db.models import F
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell

from orders import privacy, selectors
from orders.access import user_roles
from orders.exports import csv_writer, xlsx_text
from orders.models import Carrier, HoldReason, OrderSource, OrderStatus
from workflows.models import ExportRun, RunState

logger = logging.getLogger(__name__)
PROGRESS_EVERY = 2000

FIELDS = (
    "order_number",
    "status",
    "source",
    "customer__name",
    "receiver_name",
    "receiver_phone",
    "province",
    "city",
    "total_amount",
    "paid_amount",
    "refund_amount",
    "carrier_code",
    "requires_cold_chain",
    "is_rush",
    "hold_reason",
    "placed_at",
    "stage_due_at",
)


def headers() -> list[str]:
    return [
        _("Order number"),
        _("Status"),
        _("Source"),
        _("Customer"),
        _("Receiver"),
        _("Receiver phone"),
        _("Province"),
        _("City"),
        _("Amount payable"),
        _("Amount paid"),
        _("Refunded"),
        _("Carrier"),
        _("Cold chain"),
        _("Rush"),
        _("Hold reason"),
        _("Placed"),
        _("Stage due"),
    ]


def _label(choices, code: str) -> str:
    try:
        return str(choices(code).label)
    except ValueError:
        return code


def _rows(user, filters: selectors.OrderFilters) -> Iterator[tuple]:
    queryset = selectors.filtered_orders(user=user, filters=filters).order_by("-placed_at", "-id").values_list(*FIELDS)
    return queryset.iterator(chunk_size=2000)


def _local(moment: datetime.datetime | None) -> datetime.datetime | None:
    # Excel has no time zones: Beijing wall-clock time, as in the ERP export.
    return timezone.localtime(moment).replace(tzinfo=None) if moment else None


def _cells(row: tuple, roles: frozenset[str]) -> dict:
    values = dict(zip(FIELDS, row, strict=True))
    yes, no = _("yes"), _("no")
    return {
        **values,
        "status": _label(OrderStatus, values["status"]),
        "source": _label(OrderSource, values["source"]),
        "receiver_phone": privacy.display_phone(roles, values["receiver_phone"]),
        "carrier_code": _label(Carrier, values["carrier_code"]) if values["carrier_code"] else "",
        "requires_cold_chain": yes if values["requires_cold_chain"] else no,
        "is_rush": yes if values["is_rush"] else no,
        "hold_reason": _label(HoldReason, values["hold_reason"]) if values["hold_reason"] else "",
        "placed_at": _local(values["placed_at"]),
        "stage_due_at": _local(values["stage_due_at"]),
    }


# --- CSV, streamed ------------------------------------------------------------------------------


class _Line:
    """A write target that hands back what was written (one CSV line at a time)."""

    def __init__(self) -> None:
        self.buffer = io.StringIO()

    def write(self, text: str) -> int:
        return self.buffer.write(text)

    def take(self) -> str:
        text = self.buffer.getvalue()
        self.buffer.seek(0)
        self.buffer.truncate()
        return text


def csv_stream(*, user, filters: selectors.OrderFilters) -> Iterator[str]:
    """The view as CSV lines, generated as the response is sent. A UTF-8 BOM first: Excel opens
    a CSV as the local code page without it, and the Chinese would be garbled."""
    roles = user_roles(user)
    line = _Line()
    writer = csv_writer(line)
    yield "\ufeff"
    writer.writerow(headers())
    yield line.take()
    for row in _rows(user, filters):
        cells = _cells(row, roles)
        writer.writerow(
            [
                *(cells[field] for field in FIELDS[:15]),
                cells["placed_at"].strftime("%Y-%m-%d %H:%M:%S") if cells["placed_at"] else "",
                cells["stage_due_at"].strftime("%Y-%m-%d %H:%M:%S") if cells["stage_due_at"] else "",
            ]
        )
        yield line.take()


# --- .xlsx, by a task ---------------------------------------------------------------------------


def export_start(*, user, filters: selectors.OrderFilters) -> ExportRun:
    from workflows import tasks

    run = ExportRun.objects.create(created_by=user, filters=filters.to_params())
    tasks.export_orders_xlsx.delay_on_commit(run.pk)
    return run


def export_execute(*, run_id: int) -> ExportRun | None:
    """Claim the queued run, write the workbook (write-only: rows go to disk as they come), keep
    it on the run. Whatever goes wrong ends the run failed with a message, never left running."""
    if not ExportRun.objects.filter(pk=run_id, state=RunState.QUEUED).update(state=RunState.RUNNING):
        return None
    run = ExportRun.objects.select_related("created_by").get(pk=run_id)
    filters = selectors.OrderFilters.from_params(run.filters)
    try:
        with translation.override(settings.LANGUAGE_CODE):
            run.total = selectors.filtered_orders(user=run.created_by, filters=filters).count()
            ExportRun.objects.filter(pk=run.pk).update(total=run.total)
            with tempfile.TemporaryDirectory() as folder:
                path = Path(folder) / f"orders-{run.pk}.xlsx"
                write_xlsx(user=run.created_by, filters=filters, out=path, progress=lambda n: _progress(run, n))
                with path.open("rb") as handle:
                    run.file.save(f"orders-{timezone.localtime():%Y%m%d-%H%M}-{run.pk}.xlsx", File(handle), save=False)
        run.state = RunState.DONE
    except Exception as error:  # noqa: BLE001 - the person sees the run failed, the log has the trace
        logger.exception("export %s failed", run.pk)
        run.state = RunState.FAILED
        run.error = str(error)[:500]
    run.finished_at = timezone.now()
    run.processed = ExportRun.objects.get(pk=run.pk).processed
    run.save(update_fields=["state", "error", "file", "finished_at"])
    return run


def _progress(run: ExportRun, rows: int) -> None:
    ExportRun.objects.filter(pk=run.pk).update(processed=F("processed") + rows)


def write_xlsx(*, user, filters: selectors.OrderFilters, out: Path, progress=None) -> int:
    roles = user_roles(user)
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(_("Orders"))
    sheet.append(headers())

    def text(value: str) -> WriteOnlyCell:
        return xlsx_text(sheet, value, number_format="@")  # identifiers: never 1.23E+17

    def words(value: str) -> WriteOnlyCell:
        return xlsx_text(sheet, value)

    def money(value) -> WriteOnlyCell:
        cell = WriteOnlyCell(sheet, value=value)  # the Decimal's exact digits
        cell.number_format = "0.00"
        return cell

    def moment(value) -> WriteOnlyCell:
        cell = WriteOnlyCell(sheet, value=value)
        cell.number_format = "yyyy-mm-dd hh:mm:ss"
        return cell

    count = since = 0
    for row in _rows(user, filters):
        cells = _cells(row, roles)
        sheet.append(
            [
                text(cells["order_number"]),
                words(cells["status"]),
                words(cells["source"]),
                words(cells["customer__name"]),
                words(cells["receiver_name"]),
                text(cells["receiver_phone"]),
                words(cells["province"]),
                words(cells["city"]),
                money(cells["total_amount"]),
                money(cells["paid_amount"]),
                money(cells["refund_amount"]),
                words(cells["carrier_code"]),
                words(cells["requires_cold_chain"]),
                words(cells["is_rush"]),
                words(cells["hold_reason"]),
                moment(cells["placed_at"]),
                moment(cells["stage_due_at"]),
            ]
        )
        count += 1
        since += 1
        if progress and since >= PROGRESS_EVERY:
            progress(since)
            since = 0
    if progress and since:
        progress(since)
    workbook.save(out)
    return count


def export_of(*, run_id: int, user) -> ExportRun:
    return ExportRun.objects.get(pk=run_id, created_by=user)


def csv_filename() -> str:
    return f"orders-{timezone.localtime():%Y%m%d-%H%M}.csv"
