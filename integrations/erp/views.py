"""Finance's ERP pages (import, daily export, a sync check's result) and the signed status-event
endpoint. The ERP home page and running the sync check raise alerts, so they are
workflows/erp_bridge.py's."""

from __future__ import annotations

import datetime
from pathlib import Path

from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from integrations.erp import exporter, inbound, reconciliation, services
from integrations.erp.models import DailyExport, ImportKind, ImportRun, ReconciliationRun
from orders.access import Actor, public_endpoint, role_required
from orders.exports import csv_writer
from orders.models import Product
from orders.rules import SCREEN_ROLES

FINANCE_ROLES = ("finance", "supervisor")


def parse_business_date(raw: str) -> datetime.date | None:
    try:
        return datetime.date.fromisoformat(raw)
    except (TypeError, ValueError):
        return None


@require_POST
@role_required(*FINANCE_ROLES)
def import_upload(request: HttpRequest) -> HttpResponse:
    upload = request.FILES.get("file")
    if upload is None:
        messages.error(request, _("Choose the ERP export file (CSV or .xlsx) to upload."))
        return redirect("erp_home")
    try:
        run = services.import_run_start(upload=upload, user=request.user, dry_run=request.POST.get("mode") != "import")
    except services.UploadRefused as exc:
        messages.error(request, str(exc))
        return redirect("erp_home")
    return redirect("erp_import_detail", run_id=run.pk)


@require_POST
@role_required(*SCREEN_ROLES["products"])
def product_upload(request: HttpRequest) -> HttpResponse:
    """A product master export (商品资料): previewed or imported like an order export. With
    `recovers`, the order import that refused unknown SKUs runs again once the products are in."""
    recovers = None
    if request.POST.get("recovers"):
        recovers = ImportRun.objects.filter(pk=_int(request.POST["recovers"]), kind=ImportKind.ORDERS).first()
        if recovers is None:
            raise Http404
    back = redirect("erp_import_detail", run_id=recovers.pk) if recovers else redirect("product_list")
    upload = request.FILES.get("file")
    if upload is None:
        messages.error(request, _("Choose the product master export (商品资料, CSV or .xlsx) to upload."))
        return back
    try:
        run = services.import_run_start(
            upload=upload,
            user=request.user,
            dry_run=request.POST.get("mode") != "import",
            kind=ImportKind.PRODUCTS,
            recovers=recovers,
        )
    except services.UploadRefused as exc:
        messages.error(request, str(exc))
        return back
    return redirect("erp_import_detail", run_id=run.pk)


def _int(raw: str) -> int:
    try:
        return max(0, min(int(raw), 2**31 - 1))
    except (TypeError, ValueError):
        return 0


PRODUCTS_PER_PAGE = 100


@require_GET
@role_required(*SCREEN_ROLES["products"])
def product_list(request: HttpRequest) -> HttpResponse:
    """The product master: what the order import and the pack bench know, searchable by code,
    barcode or name, with the product imports next to it."""
    query = request.GET.get("q", "").strip()[:60]
    products = Product.objects.order_by("sku_code")
    if query:
        products = products.filter(Q(sku_code__icontains=query) | Q(barcode__icontains=query) | Q(name__icontains=query))
    page = Paginator(products, PRODUCTS_PER_PAGE).get_page(request.GET.get("page"))
    context = {
        "page": page,
        "query": query,
        "total": Product.objects.count(),
        "runs": ImportRun.objects.filter(kind=ImportKind.PRODUCTS).select_related("uploaded_by")[:10],
    }
    return render(request, "erp/products.html", context)


@require_GET
@role_required(*SCREEN_ROLES["products"])
def missing_products(request: HttpRequest, run_id: int) -> HttpResponse:
    """A product master sheet for the SKUs an order import refused as unknown, codes filled in:
    the ERP's names and barcodes go next to them, then the file goes back through the recovery."""
    run = get_object_or_404(ImportRun, pk=run_id, kind=ImportKind.ORDERS)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="missing-products-{run.pk}.csv"'
    response.write("\ufeff")
    writer = csv_writer(response)
    writer.writerow(["商品编码", "商品名称", "国际条码", "规格", "单价", "图片", "冷链", "赠品"])
    for sku in run.unknown_skus:
        writer.writerow([sku, "", "", "", "", "", "否", "否"])
    return response


@require_GET
@role_required(*FINANCE_ROLES)
def import_detail(request: HttpRequest, run_id: int) -> HttpResponse:
    run = get_object_or_404(ImportRun.objects.select_related("uploaded_by", "preview_of", "recovers", "rerun_after"), pk=run_id)
    context = {
        "run": run,
        "errors_shown": run.errors[:100],
        "reruns": list(run.reruns.all()[:3]) if run.finished else [],
        "recoveries": list(run.recoveries.filter(dry_run=False)[:3]) if run.unknown_skus else [],
    }
    if request.htmx:
        return render(request, "erp/import.html#import-progress", context)
    return render(request, "erp/import.html", context)


@require_POST
@role_required(*FINANCE_ROLES)
def import_confirm(request: HttpRequest, run_id: int) -> HttpResponse:
    preview = get_object_or_404(ImportRun, pk=run_id)
    try:
        run = services.import_run_confirm(preview=preview, user=request.user)
    except services.UploadRefused as exc:
        messages.error(request, str(exc))
        return redirect("erp_import_detail", run_id=preview.pk)
    return redirect("erp_import_detail", run_id=run.pk)


@require_POST
@role_required(*FINANCE_ROLES)
def import_retry(request: HttpRequest, run_id: int) -> HttpResponse:
    failed = get_object_or_404(ImportRun, pk=run_id)
    try:
        run = services.import_run_retry(run=failed, user=request.user)
    except services.UploadRefused as exc:
        messages.error(request, str(exc))
        return redirect("erp_import_detail", run_id=failed.pk)
    return redirect("erp_import_detail", run_id=run.pk)


@require_GET
@role_required(*FINANCE_ROLES)
def import_errors(request: HttpRequest, run_id: int) -> HttpResponse:
    """The error report: every refused row with its row number, column and reason. UTF-8 with a
    BOM, so Excel on a Chinese Windows opens it without garbling; a value quoted from the file
    never becomes a formula there (orders/exports.py)."""
    run = get_object_or_404(ImportRun, pk=run_id)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="erp-import-{run.pk}-errors.csv"'
    response.write("\ufeff")
    writer = csv_writer(response)
    writer.writerow([_("Row"), _("Column"), _("SKU code") if run.kind == ImportKind.PRODUCTS else _("Order number"), _("Reason")])
    if run.file_error:
        writer.writerow(["", "", "", run.file_error])
    for error in [*run.errors, *run.warnings]:
        writer.writerow([error["row"], error["column"], error["order_number"], error["reason"]])
    return response


@require_POST
@role_required(*FINANCE_ROLES)
def export_produce(request: HttpRequest) -> HttpResponse:
    day = parse_business_date(request.POST.get("date", ""))
    if day is None or day > exporter.today():
        messages.error(request, _("Choose a business date that has begun, like 2024-05-01."))
        return redirect("erp_home")
    kept = DailyExport.objects.filter(business_date=day).exclude(file="").first()
    if kept is not None and day < exporter.today() and Path(kept.file.path).exists():
        return redirect("erp_export_download", business_date=day.isoformat())  # a finished day's file: at once
    # Writing takes seconds: a worker writes it while the page shows how far it has got.
    from integrations.erp import tasks

    exporter.export_progress_note(day, "queued")
    tasks.produce_daily_export.delay_on_commit(day.isoformat(), Actor.of(request.user).name)
    return redirect("erp_export_status", business_date=day.isoformat())


@require_GET
@role_required(*FINANCE_ROLES)
def export_status(request: HttpRequest, business_date: str) -> HttpResponse:
    """The export being written: polls (htmx) until the file is ready, then downloads it."""
    day = parse_business_date(business_date)
    if day is None:
        raise Http404(_("No ERP export has been produced for this date yet."))
    progress = exporter.export_progress(day) or {}
    export = DailyExport.objects.filter(business_date=day).exclude(file="").first()
    ready = progress.get("state") == "done" or (not progress and export is not None)
    total = progress.get("total") or 0
    context = {
        "day": day,
        "state": progress.get("state", "done" if ready else "queued"),
        "done": progress.get("done", 0),
        "total": total,
        "percent": int(100 * progress.get("done", 0) / total) if total else 0,
        "export": export,
        "ready": ready and export is not None,
    }
    if request.htmx:
        response = render(request, "erp/export.html#export-progress", context)
        if context["ready"]:
            response["HX-Redirect"] = reverse("erp_export_download", args=[day.isoformat()])
        return response
    return render(request, "erp/export.html", context)


@require_GET
@role_required(*FINANCE_ROLES)
def export_download(request: HttpRequest, business_date: str) -> HttpResponse:
    day = parse_business_date(business_date)
    export = DailyExport.objects.filter(business_date=day).exclude(file="").first() if day else None
    if export is None or not Path(export.file.path).exists():
        raise Http404(_("No ERP export has been produced for this date yet."))
    return FileResponse(open(export.file.path, "rb"), as_attachment=True, filename=f"erp-export-{business_date}.xlsx")


@require_GET
@role_required(*FINANCE_ROLES)
def reconciliation_detail(request: HttpRequest, run_id: int) -> HttpResponse:
    """A sync check's page: polls (htmx) while a worker checks the uploaded file, then the result."""
    run = get_object_or_404(ReconciliationRun, pk=run_id)
    context = {"run": run, "tolerance": reconciliation.TOLERANCE_PCT}
    if request.htmx:
        return render(request, "erp/reconciliation.html#reconciliation-result", context)
    return render(request, "erp/reconciliation.html", context)


@csrf_exempt
@require_POST
@public_endpoint("WMS/ERP status events: authenticated by an HMAC signature per source system, not by a login")
def inbound_event(request: HttpRequest) -> HttpResponse:
    # Refused before the body is read: a sender that is not speaking JSON, or a body no event needs.
    if request.content_type != "application/json":
        return JsonResponse(
            {"ok": False, "error": _("Send the event as JSON with Content-Type: application/json.")},
            status=415,
            json_dumps_params={"ensure_ascii": False},
        )
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = -1
    if declared < 0 or declared > inbound.MAX_BODY_BYTES:
        return JsonResponse(
            {"ok": False, "error": _("An event body is at most %(limit)d bytes.") % {"limit": inbound.MAX_BODY_BYTES}},
            status=413,
            json_dumps_params={"ensure_ascii": False},
        )
    body = request.body
    source = request.headers.get("X-Beile-Source", "")
    problem = inbound.authenticate(
        source=source,
        timestamp=request.headers.get("X-Beile-Timestamp", ""),
        signature=request.headers.get("X-Beile-Signature", ""),
        body=body,
    )
    if problem:
        return JsonResponse({"ok": False, "error": problem}, status=401)
    status, answer = inbound.inbound_event_handle(source=source, body=body)
    return JsonResponse(answer, status=status, json_dumps_params={"ensure_ascii": False})
