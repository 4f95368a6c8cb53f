"""The ERP sync check as finance meets it: run the comparison (integrations/erp/reconciliation.py
computes the differences), and when they are over the 0.5% tolerance alert finance and the
supervisors once per business date (docs/brief.md: "a difference over 0.5% sends an email alert").
Also the ERP home page, which lists those alerts next to the imports, exports and runs."""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable
from pathlib import Path

from django.contrib import messages
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from integrations.erp import exporter, reconciliation
from integrations.erp.models import DailyExport, ImportRun, ImportState, ReconciliationRun
from integrations.erp.services import MAX_UPLOAD_BYTES, UploadRefused
from integrations.erp.spreadsheet import UnreadableFile
from integrations.erp.views import FINANCE_ROLES, parse_business_date
from orders.access import Actor, role_required
from workflows.alerts import alert_raise, alerts_email_send
from workflows.models import Alert, AlertKind

logger = logging.getLogger(__name__)


def erp_sync_check(
    *,
    business_date: datetime.date,
    erp_path: Path | str,
    erp_file_name: str,
    by: str,
    run: ReconciliationRun | None = None,
    progress: Callable[[int], None] | None = None,
) -> ReconciliationRun:
    """Compare, keep the run (a new one, or an uploaded file's queued `run`), and alert finance
    and supervisors once per date when over tolerance. Raises UnreadableFile when the ERP's file
    cannot be read."""
    run = reconciliation.reconciliation_run(
        business_date=business_date, erp_path=erp_path, erp_file_name=erp_file_name, by=by, run=run, progress=progress
    )
    if run.over_tolerance:
        _alert_once(run)
    return run


def reconciliation_upload_start(*, business_date: datetime.date, upload: UploadedFile, by: str) -> ReconciliationRun:
    """Keep the uploaded file on a queued run and hand it to a worker: a big or broken file never
    holds (or breaks) the web request. Raises UploadRefused for an empty or oversized file."""
    if upload.size == 0:
        raise UploadRefused(_("The file is empty: it has no header row and no orders."))
    if upload.size > MAX_UPLOAD_BYTES:
        raise UploadRefused(_("The file is larger than 50 MB; split the export by date."))
    from workflows import tasks

    with transaction.atomic():
        run = ReconciliationRun.objects.create(
            business_date=business_date, ran_by=by, erp_file_name=upload.name[:200], file=upload, state=ImportState.QUEUED
        )
        tasks.reconcile_upload.delay_on_commit(run.pk)
    return run


def reconciliation_upload_execute(*, run_id: int) -> ReconciliationRun | None:
    """The task's body: claim the queued run, compare, and end it done or failed. Whatever goes
    wrong ends in a failed run with a message the person sees, never a run left running."""
    claimed = ReconciliationRun.objects.filter(pk=run_id, state=ImportState.QUEUED).update(state=ImportState.RUNNING)
    if not claimed:  # another worker has it, or it is finished: a redelivered task does nothing
        return None
    run = ReconciliationRun.objects.get(pk=run_id)

    def progress(rows: int) -> None:
        ReconciliationRun.objects.filter(pk=run_id).update(processed_rows=rows)

    try:
        return erp_sync_check(
            business_date=run.business_date,
            erp_path=run.file.path,
            erp_file_name=run.erp_file_name,
            by=run.ran_by,
            run=run,
            progress=progress,
        )
    except UnreadableFile as exc:
        problem = str(exc)
    except Exception:
        logger.exception("ERP sync check %s failed", run_id)
        problem = _(
            "The check stopped on an unexpected error; the file is kept. Upload it again, or ask IT with run %(run)d."
        ) % {"run": run_id}
    ReconciliationRun.objects.filter(pk=run_id).update(
        state=ImportState.FAILED, file_error=problem[:500], finished_at=timezone.now()
    )
    return ReconciliationRun.objects.get(pk=run_id)


def _alert_message(run: ReconciliationRun) -> str:
    return _(
        "ERP sync check for %(date)s is over the 0.5%% tolerance: orders %(our_count)d vs ERP %(erp_count)d (%(count_pct)s%%), "
        "amount ¥%(our_total)s vs ERP ¥%(erp_total)s (%(total_pct)s%%), refunds %(our_refunds)d vs ERP %(erp_refunds)d (%(refund_pct)s%%)."
    ) % {
        "date": run.business_date.isoformat(),
        "our_count": run.our_order_count,
        "erp_count": run.erp_order_count,
        "count_pct": run.order_count_diff_pct,
        "our_total": run.our_total_amount,
        "erp_total": run.erp_total_amount,
        "total_pct": run.total_amount_diff_pct,
        "our_refunds": run.our_refund_count,
        "erp_refunds": run.erp_refund_count,
        "refund_pct": run.refund_count_diff_pct,
    }


def _alert_once(run: ReconciliationRun) -> None:
    """One in-app alert per role and date, and one e-mail per date: the alerts' unique
    dedupe_keys decide, so a second run (or two at once) finds the rows and sends nothing."""
    message = _alert_message(run)
    link = reverse("erp_reconciliation_detail", args=[run.pk])
    with transaction.atomic():
        raised = [
            alert_raise(
                kind=AlertKind.RECONCILIATION,
                for_role=role,
                message=message,
                link=link,
                dedupe_key=f"erp-reconciliation:{run.business_date.isoformat()}:{role}",
            )
            for role in FINANCE_ROLES
        ]
        if not any(created for _alert, created in raised):
            return
        run.alerted = True
        run.save(update_fields=["alerted"])
    # Sent here, after the commit, as the person who ran the check waits for the page anyway;
    # a mail server that refuses leaves the alerts to the SLA sweep's retries.
    alerts_email_send(alert_ids=[alert.pk for alert, created in raised if created])


# --- Pages -----------------------------------------------------------------------------------------


def _open_reconciliation_alerts(limit: int = 10) -> list[Alert]:
    """A difference alerts each finance role (one row per role, to acknowledge apart); the page
    shows it once."""
    seen: dict[tuple[str, str], Alert] = {}
    for alert in Alert.objects.filter(
        kind=AlertKind.RECONCILIATION, for_role__in=FINANCE_ROLES, acknowledged_at__isnull=True
    ).order_by("-created_at")[: limit * len(FINANCE_ROLES)]:
        seen.setdefault((alert.link, alert.message), alert)
    return list(seen.values())[:limit]


@require_GET
@role_required(*FINANCE_ROLES)
def erp_home(request: HttpRequest) -> HttpResponse:
    yesterday = exporter.today() - datetime.timedelta(days=1)
    context = {
        "imports": ImportRun.objects.filter(kind="orders").select_related("uploaded_by")[:10],
        "exports": DailyExport.objects.exclude(file="")[:14],
        "runs": ReconciliationRun.objects.all()[:10],
        "alerts": _open_reconciliation_alerts(),
        "yesterday": yesterday.isoformat(),
    }
    return render(request, "erp/home.html", context)


@require_POST
@role_required(*FINANCE_ROLES)
def reconciliation_run(request: HttpRequest) -> HttpResponse:
    day = parse_business_date(request.POST.get("date", ""))
    upload = request.FILES.get("erp_file")
    if day is None or upload is None:
        messages.error(request, _("Choose the business date and the ERP's export or day summary for it."))
        return redirect("erp_home")
    try:
        run = reconciliation_upload_start(business_date=day, upload=upload, by=Actor.of(request.user).name)
    except UploadRefused as exc:
        messages.error(request, str(exc))
        return redirect("erp_home")
    return redirect("erp_reconciliation_detail", run_id=run.pk)
