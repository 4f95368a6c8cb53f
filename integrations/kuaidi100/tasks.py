"""Thin tasks: take a primary key, call one service. The services claim their rows, so a task
that runs twice (a redelivery, or the relay racing the original) does the work once."""

from celery import shared_task

from integrations.kuaidi100 import services


@shared_task(acks_late=True)
def subscribe_shipment(subscription_id: int) -> str:
    return services.shipment_subscribe(subscription_id=subscription_id)


@shared_task(acks_late=True)
def poll_shipment(subscription_id: int) -> str:
    return services.shipment_poll(subscription_id=subscription_id)


@shared_task
def relay_subscriptions() -> int:
    return services.subscriptions_relay()


@shared_task
def poll_silent_shipments() -> int:
    pks = list(services.subscriptions_due_for_poll().values_list("pk", flat=True)[:200])
    for pk in pks:
        services._enqueue(poll_shipment, pk)
    return len(pks)


@shared_task
def scan_stalled_shipments() -> int:
    return services.shipments_stalled_scan()
