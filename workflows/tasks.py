from celery import shared_task

from workflows import reactions, sla


@shared_task(acks_late=True)
def sla_sweep() -> int:
    """Idempotent (a breach is marked once under its row lock), so a redelivery is harmless."""
    return sla.sla_sweep().breached


# Named explicitly: orders/services.py sends it by this name (the ground floor cannot import it).
@shared_task(name="workflows.react_to_status_event", acks_late=True)
def react_to_status_event(event_id: int) -> str:
    return reactions.react_to_status_event(event_id=event_id)


@shared_task
def relay_reactions() -> int:
    return reactions.reactions_relay()
