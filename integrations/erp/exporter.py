"""The daily export for the ERP: one standard .xlsx per business day (Asia/Shanghai) with the
day's new and changed orders, one row per order line, columns fixed (EXPORT_COLUMNS, documented
in the README). The header names are the ERP's own, so the file also reads back through our import."""

from __future__ import annotations

import datetime
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Prefetch, Q
from django.utils import timezone
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell

from integrations.erp.models import DailyExport
from orders.clock import business_day_bounds, business_today
from orders.exports import xlsx_text
from orders.models import Carrier, Order, OrderLine, Shipment

EXPORT_COLUMNS = [
    "订单号",
    "来源",
    "状态",
    "下单时间",
    "付款日期",
    "发货日期",
    "收货人姓名",
    "手机",
    "省份",
    "城市",
    "区县",
    "地址",
    "买家留言",
    "商品编码",
    "商品名称",
    "数量",
    "商品单价",
    "是否赠品",
    "应付金额",
    "已付金额",
    "运费",
    "订单退款金额",
    "快递公司",
    "快递单号",
    "新增或变更",
    "最后变更时间",
]
# Fixed data for the ERP clerk, not UI text: the same words whatever the user's language.
STATUS_NAMES = {
    "pending_review": "待审核",
    "paid": "已付款",
    "picking": "配货中",
    "packed": "已打包",
    "shipped": "已发货",
    "completed": "已完成",
    "cancelled": "已取消",
}
SOURCE_NAMES = {"erp": "ERP", "rush": "加急链接", "manual": "手工", "platform": "抖店"}
CARRIER_CHINESE = {
    Carrier.SHUNFENG: "顺丰",
    Carrier.SHUNFENG_COLD: "顺丰冷运",
    Carrier.ZHONGTONG: "中通",
    Carrier.YUANTONG: "圆通",
    Carrier.YUNDA: "韵达",
    Carrier.SHENTONG: "申通",
    Carrier.EMS: "EMS",
    Carrier.JD: "京东",
    Carrier.JTEXPRESS: "极兔",
    Carrier.BEST: "百世",
    Carrier.DEPPON: "德邦",
    Carrier.CHINA_POST: "邮政",
}
EXPORT_DIR = "erp/exports"
logger = logging.getLogger(__name__)

# --- Progress ----------------------------------------------------------------------------------
# A day's file takes seconds (2,000 orders: ~2 s of openpyxl on this machine), so a person's
# request is written by a worker (integrations/erp/tasks.py) while the page polls its progress.
# The progress lives in the shared cache, not on the DailyExport row: the writer holds that row
# locked inside its transaction, where an update would be invisible to the page until the end.
PROGRESS_EVERY = 250  # orders between two progress notes
PROGRESS_KEEP = 3600  # seconds


def _progress_key(business_date: datetime.date) -> str:
    return f"erp-export-progress:{business_date.isoformat()}"


def export_progress(business_date: datetime.date) -> dict | None:
    """{"state": queued|running|done|failed, "done": orders written, "total": orders, "at": iso}"""
    try:
        return cache.get(_progress_key(business_date))
    except Exception:  # the cache is down: the page still polls, just without numbers
        logger.warning("erp export: the cache is unavailable; no progress for %s", business_date)
        return None


def export_progress_note(business_date: datetime.date, state: str, *, done: int = 0, total: int = 0) -> None:
    note = {"state": state, "done": done, "total": total, "at": timezone.now().isoformat()}
    try:
        cache.set(_progress_key(business_date), note, timeout=PROGRESS_KEEP)
    except Exception:  # noqa: S110 - progress is a courtesy; the file is what counts
        pass


def today() -> datetime.date:
    """The business day now (orders/clock.py keeps the calendar); the day a file may still change."""
    return business_today()


def day_orders(business_date: datetime.date):
    """Orders created or changed during the business day."""
    start, end = business_day_bounds(business_date)
    return (
        Order.objects.filter(Q(created_at__gte=start, created_at__lt=end) | Q(updated_at__gte=start, updated_at__lt=end))
        .prefetch_related(
            Prefetch("lines", queryset=OrderLine.objects.order_by("id")),
            Prefetch("shipments", queryset=Shipment.objects.order_by("-created_at")),
        )
        .order_by("created_at", "id")
    )


def _local(moment: datetime.datetime | None) -> datetime.datetime | None:
    # Excel has no time zones: write Beijing wall-clock time, as the ERP's own exports do.
    return timezone.localtime(moment).replace(tzinfo=None) if moment else None


def write_export(
    business_date: datetime.date, out: Path | str, progress: Callable[[int, int], None] | None = None
) -> tuple[int, int]:
    """Write the day's file to `out`; returns (orders, lines). `progress(done, total)` is told
    every PROGRESS_EVERY orders."""
    start, end = business_day_bounds(business_date)
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(f"{business_date:%Y-%m-%d}")
    sheet.append(EXPORT_COLUMNS)
    orders = lines = 0

    def text(value: str) -> WriteOnlyCell:
        # Identifiers stay text in Excel (no 1.23E+17), like every text cell: never a formula,
        # whatever a customer typed (orders/exports.py).
        return xlsx_text(sheet, value, number_format="@")

    def words(value: str) -> WriteOnlyCell:
        return xlsx_text(sheet, value)

    def money(value) -> WriteOnlyCell:
        cell = WriteOnlyCell(sheet, value=value)  # a Decimal is written as its exact digits
        cell.number_format = "0.00"
        return cell

    def moment(value) -> WriteOnlyCell:
        cell = WriteOnlyCell(sheet, value=_local(value))
        cell.number_format = "yyyy-mm-dd hh:mm:ss"
        return cell

    total = day_orders(business_date).count() if progress else 0
    if progress:
        progress(0, total)
    for order in day_orders(business_date).iterator(chunk_size=2000):
        orders += 1
        if progress and orders % PROGRESS_EVERY == 0:
            progress(orders, total)
        shipment = next(iter(order.shipments.all()), None)
        is_new = start <= order.created_at < end
        for line in order.lines.all():
            lines += 1
            sheet.append(
                [
                    text(order.order_number),
                    words(SOURCE_NAMES.get(order.source, order.source)),
                    STATUS_NAMES[order.status],
                    moment(order.placed_at),
                    moment(order.paid_at),
                    moment(order.shipped_at),
                    words(order.receiver_name),
                    text(order.receiver_phone),
                    words(order.province),
                    words(order.city),
                    words(order.district),
                    words(order.address),
                    words(order.buyer_message),
                    text(line.sku_code),
                    words(line.product_name),
                    line.quantity,
                    money(line.unit_price),
                    "是" if line.is_gift else "否",
                    money(order.total_amount),
                    money(order.paid_amount),
                    money(order.shipping_fee),
                    money(order.refund_amount),
                    words(CARRIER_CHINESE.get(order.carrier_code, order.carrier_code)),
                    text(shipment.tracking_number if shipment else ""),
                    "新增" if is_new else "变更",
                    moment(order.updated_at),
                ]
            )
    workbook.save(str(out))
    return orders, lines


def daily_export_produce(*, business_date: datetime.date, produced_by: str = "system") -> DailyExport:
    """daily_export_write, its progress noted for the page that polls it (export_progress)."""

    def progress(done: int, total: int) -> None:
        export_progress_note(business_date, "running", done=done, total=total)

    try:
        export = daily_export_write(business_date=business_date, produced_by=produced_by, progress=progress)
    except Exception:
        export_progress_note(business_date, "failed")
        raise
    export_progress_note(business_date, "done", done=export.order_count, total=export.order_count)
    return export


def daily_export_write(
    *, business_date: datetime.date, produced_by: str = "system", progress: Callable[[int, int], None] | None = None
) -> DailyExport:
    """The business day's file, written once and kept. A day that is not over yet is written
    afresh on each request (it is still changing); a finished day's kept file is returned as is.

    Two beat processes at midnight: the unique business_date makes them share one row, and the
    row lock makes the second wait and then find the file already written."""
    export, _created = DailyExport.objects.get_or_create(business_date=business_date)
    with transaction.atomic():
        export = DailyExport.objects.select_for_update().get(pk=export.pk)
        day_over = business_date < today()
        if export.file and day_over and Path(export.file.path).exists():
            return export
        folder = Path(settings.MEDIA_ROOT) / EXPORT_DIR
        folder.mkdir(parents=True, exist_ok=True)
        name = f"erp-export-{business_date:%Y-%m-%d}.xlsx"
        # Written beside the final name, then renamed: a reader never sees half a file.
        handle, temporary = tempfile.mkstemp(dir=folder, suffix=".xlsx.part")
        os.close(handle)
        try:
            export.order_count, export.line_count = write_export(business_date, temporary, progress)
            os.replace(temporary, folder / name)
        finally:
            if os.path.exists(temporary):
                os.unlink(temporary)
        export.file.name = f"{EXPORT_DIR}/{name}"
        export.produced_at = timezone.now()
        export.produced_by = produced_by
        export.save(update_fields=["file", "order_count", "line_count", "produced_at", "produced_by"])
    return export
