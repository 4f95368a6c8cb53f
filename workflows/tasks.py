from celery import shared_task

from workflows import sla


@shared_task(acks_late=True)
def sla_sweep() -> int:
    """Idempotent (a breach is marked once under its row lock), so a redelivery is harmless."""
    return sla.sla_sweep().breached
