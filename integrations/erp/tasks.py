import datetime

from celery import shared_task

from integrations.erp import exporter, services
from integrations.erp.models import ImportRun


@shared_task(acks_late=True)
def run_import(run_id: int) -> None:
    run = ImportRun.objects.filter(pk=run_id).first()
    if run is None or run.finished:
        return
    services.import_run_execute(run=run)


@shared_task
def reap_import_runs() -> int:
    """Beat runs this every minute: imports (retryable) and sync checks whose worker died are marked failed."""
    return services.import_runs_reap() + services.reconciliation_runs_reap()


@shared_task(acks_late=True)
def produce_daily_export(business_date: str = "", produced_by: str = "beat") -> int:
    """Beat runs this after midnight for the day that just ended; the export page runs it for the
    day a person asked for (and polls its progress)."""
    day = datetime.date.fromisoformat(business_date) if business_date else exporter.today() - datetime.timedelta(days=1)
    return exporter.daily_export_produce(business_date=day, produced_by=produced_by).pk
