import datetime

from celery import shared_task

from workflows.health import services
from workflows.health.measures import business_today


@shared_task(acks_late=True)
def store_yesterdays_measures() -> int:
    """Nightly: store yesterday's values (re-running replaces them, so a retry is harmless), and
    the recent days of the measures still settling."""
    return len(services.measures_store_night(yesterday=business_today() - datetime.timedelta(days=1)))


@shared_task(acks_late=True)
def sample_status_checks() -> int:
    """Daily at a fixed time: the five cross-role status checks (once per day, however often it runs)."""
    return len(services.consistency_sample_day(day=business_today()))
