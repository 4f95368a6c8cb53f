"""Writes for the ERP pages: start an import run, confirm a preview, execute a run (the task),
reap runs whose worker died, retry a failed run."""

from __future__ import annotations

import datetime
import logging

from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from integrations.erp.importer import import_orders
from integrations.erp.models import ImportKind, ImportRun, ImportState, ReconciliationRun
from integrations.erp.products import import_products
from integrations.erp.spreadsheet import UnreadableFile

MAX_UPLOAD_BYTES = 50 * 1024 * 1024

logger = logging.getLogger(__name__)


class UploadRefused(Exception):
    pass


def import_run_start(
    *, upload: UploadedFile, user, dry_run: bool, kind: str = ImportKind.ORDERS, recovers: ImportRun | None = None
) -> ImportRun:
    """A new run of an uploaded file. `recovers`: the order import that refused unknown SKUs and
    is run again once this product import is done (the one-step recovery)."""
    if upload.size == 0:
        raise UploadRefused(_("The file is empty: it has no header row and no orders."))
    if upload.size > MAX_UPLOAD_BYTES:
        raise UploadRefused(_("The file is larger than 50 MB; split the export by date."))
    from integrations.erp import tasks

    with transaction.atomic():
        run = ImportRun.objects.create(
            file=upload, original_name=upload.name[:200], uploaded_by=user, dry_run=dry_run, kind=kind, recovers=recovers
        )
        tasks.run_import.delay_on_commit(run.pk)
    return run


def import_run_confirm(*, preview: ImportRun, user) -> ImportRun:
    """Import the file a preview looked at (the same stored file, so what was seen is what goes in)."""
    if not preview.dry_run or preview.state != ImportState.DONE:
        raise UploadRefused(_("Only a finished preview can be imported."))
    from integrations.erp import tasks

    with transaction.atomic():
        run = ImportRun.objects.create(
            file=preview.file.name,
            original_name=preview.original_name,
            uploaded_by=user,
            dry_run=False,
            preview_of=preview,
            kind=preview.kind,
            recovers=preview.recovers,
        )
        tasks.run_import.delay_on_commit(run.pk)
    return run


def import_run_execute(*, run: ImportRun) -> ImportRun:
    """Run the import and keep its outcome on the row; progress is written as chunks commit.
    Whatever happens, the run ends done or failed with a message (a worker that dies outright is
    left to import_runs_reap)."""
    now = timezone.now()
    claimed = ImportRun.objects.filter(pk=run.pk, state=ImportState.QUEUED).update(
        state=ImportState.RUNNING, started_at=now, heartbeat_at=now
    )
    if not claimed:  # another worker has it, or it is finished: a redelivered task does nothing
        return run
    running = ImportRun.objects.filter(pk=run.pk, state=ImportState.RUNNING)

    def heartbeat() -> None:
        running.update(heartbeat_at=timezone.now())

    def progress(done: int, total: int) -> None:
        running.update(processed_rows=done, total_rows=total, heartbeat_at=timezone.now())

    try:
        if run.kind == ImportKind.PRODUCTS:
            summary = import_products(path=run.file.path, dry_run=run.dry_run, progress=progress, heartbeat=heartbeat)
        else:
            summary = import_orders(
                path=run.file.path, dry_run=run.dry_run, progress=progress, run_id=run.pk, heartbeat=heartbeat
            )
    except UnreadableFile as exc:
        _fail(run, str(exc))
        run.refresh_from_db()
        return run
    except Exception as exc:  # noqa: BLE001 — the run must not stay "running"; the log keeps the traceback
        logger.exception("ERP import run %s stopped", run.pk)
        _fail(
            run,
            _(
                "The import stopped on an unexpected error (%(error)s). Orders of the chunks already written stay; retry the run, and tell the administrator if it happens again."
            )
            % {"error": exc.__class__.__name__},
        )
        run.refresh_from_db()
        return run
    ImportRun.objects.filter(pk=run.pk).update(
        state=ImportState.DONE,
        total_rows=summary.total_rows,
        processed_rows=summary.total_rows,
        created_count=summary.created,
        updated_count=summary.updated,
        unchanged_count=summary.unchanged,
        rejected_count=summary.rejected,
        rejected_rows=summary.rejected_rows,
        errors=[error.as_dict() for error in summary.errors],
        errors_omitted=summary.errors_omitted,
        warnings=[warning.as_dict() for warning in summary.warnings],
        warnings_omitted=summary.warnings_omitted,
        changes=summary.changes,
        unknown_skus=summary.unknown_skus,
        finished_at=timezone.now(),
    )
    run.refresh_from_db()
    if run.recovers_id and not run.dry_run and run.kind == ImportKind.PRODUCTS and (run.created_count or run.updated_count):
        _rerun_recovered(run)
    return run


def _rerun_recovered(product_run: ImportRun) -> ImportRun:
    """The second half of the one-step recovery: the order file that refused unknown SKUs runs
    again (orders already imported are found unchanged; the refused ones now find their products)."""
    from integrations.erp import tasks

    refused = product_run.recovers
    with transaction.atomic():
        rerun = ImportRun.objects.create(
            file=refused.file.name,
            original_name=refused.original_name,
            uploaded_by=product_run.uploaded_by,
            dry_run=False,
            kind=ImportKind.ORDERS,
            rerun_after=product_run,
        )
        tasks.run_import.delay_on_commit(rerun.pk)
    return rerun


def _fail(run: ImportRun, message: str) -> None:
    try:
        ImportRun.objects.filter(pk=run.pk).update(state=ImportState.FAILED, file_error=message[:500], finished_at=timezone.now())
    except Exception:  # noqa: BLE001 — the database itself is gone: the reaper marks the run once it is back
        logger.exception("ERP import run %s: could not record the failure", run.pk)


def import_runs_reap() -> int:
    """Mark failed every running import whose heartbeat is older than the lease: its worker was
    killed (SIGKILL, out of memory) or restarted mid-run. Returns how many. The beat runs this
    every minute (beile/settings.py)."""
    stale = timezone.now() - ImportRun.HEARTBEAT_LEASE
    return ImportRun.objects.filter(state=ImportState.RUNNING, heartbeat_at__lt=stale).update(
        state=ImportState.FAILED,
        file_error=_(
            "The import stopped: the worker running it ended (it was killed or restarted) and sent no sign of life for %(minutes)d minutes. "
            "Orders of the chunks already written stay; retry the run to import the rest."
        )
        % {"minutes": ImportRun.HEARTBEAT_LEASE.seconds // 60},
        finished_at=timezone.now(),
    )


# A sync check reads one day's file in seconds; one still unfinished after this lost its worker.
RECONCILIATION_LEASE = datetime.timedelta(minutes=15)


def reconciliation_runs_reap() -> int:
    """Mark failed every uploaded sync check still queued or running long after it was uploaded
    (its worker died); the user sees why and uploads the file again. Beat runs this with the
    import reaper."""
    return ReconciliationRun.objects.filter(
        state__in=[ImportState.QUEUED, ImportState.RUNNING], ran_at__lt=timezone.now() - RECONCILIATION_LEASE
    ).update(
        state=ImportState.FAILED,
        file_error=_("The check stopped: the worker running it ended before it finished. Upload the file again."),
        finished_at=timezone.now(),
    )


def import_run_retry(*, run: ImportRun, user) -> ImportRun:
    """A new run of a failed run's stored file, same mode. Re-importing is safe: orders already
    written by the failed run are found unchanged."""
    if run.state != ImportState.FAILED:
        raise UploadRefused(_("Only a failed import can be retried."))
    from integrations.erp import tasks

    with transaction.atomic():
        retry = ImportRun.objects.create(
            file=run.file.name,
            original_name=run.original_name,
            uploaded_by=user,
            dry_run=run.dry_run,
            preview_of=run.preview_of,
            retry_of=run,
            kind=run.kind,
            recovers=run.recovers,
        )
        tasks.run_import.delay_on_commit(retry.pk)
    return retry
