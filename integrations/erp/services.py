"""Writes for the ERP pages: start an import run, confirm a preview, execute a run (the task)."""

from __future__ import annotations

from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from integrations.erp.importer import import_orders
from integrations.erp.models import ImportRun, ImportState
from integrations.erp.spreadsheet import UnreadableFile

MAX_UPLOAD_BYTES = 50 * 1024 * 1024


class UploadRefused(Exception):
    pass


def import_run_start(*, upload: UploadedFile, user, dry_run: bool) -> ImportRun:
    if upload.size == 0:
        raise UploadRefused(_("The file is empty: it has no header row and no orders."))
    if upload.size > MAX_UPLOAD_BYTES:
        raise UploadRefused(_("The file is larger than 50 MB; split the export by date."))
    from integrations.erp import tasks

    with transaction.atomic():
        run = ImportRun.objects.create(file=upload, original_name=upload.name[:200], uploaded_by=user, dry_run=dry_run)
        tasks.run_import.delay_on_commit(run.pk)
    return run


def import_run_confirm(*, preview: ImportRun, user) -> ImportRun:
    """Import the file a preview looked at (the same stored file, so what was seen is what goes in)."""
    if not preview.dry_run or preview.state != ImportState.DONE:
        raise UploadRefused(_("Only a finished preview can be imported."))
    from integrations.erp import tasks

    with transaction.atomic():
        run = ImportRun.objects.create(
            file=preview.file.name, original_name=preview.original_name, uploaded_by=user, dry_run=False, preview_of=preview
        )
        tasks.run_import.delay_on_commit(run.pk)
    return run


def import_run_execute(*, run: ImportRun) -> ImportRun:
    """Run the import and keep its outcome on the row; progress is written as chunks commit."""
    claimed = ImportRun.objects.filter(pk=run.pk, state=ImportState.QUEUED).update(
        state=ImportState.RUNNING, started_at=timezone.now()
    )
    if not claimed:  # another worker has it, or it is finished: a redelivered task does nothing
        return run

    def progress(done: int, total: int) -> None:
        ImportRun.objects.filter(pk=run.pk).update(processed_rows=done, total_rows=total)

    try:
        summary = import_orders(path=run.file.path, dry_run=run.dry_run, progress=progress, run_id=run.pk)
    except UnreadableFile as exc:
        ImportRun.objects.filter(pk=run.pk).update(
            state=ImportState.FAILED, file_error=str(exc)[:500], finished_at=timezone.now()
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
        changes=summary.changes,
        finished_at=timezone.now(),
    )
    run.refresh_from_db()
    return run
