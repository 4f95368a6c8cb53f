from celery import shared_task

from orders import services


@shared_task(acks_late=True)
def release_expired_holds() -> int:
    return services.release_expired_holds()


@shared_task(acks_late=True)
def release_exceptions() -> int:
    """Exceptions whose reason's release condition holds are closed (orders/reasons.py)."""
    return services.exceptions_auto_release()
