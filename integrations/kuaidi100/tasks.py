"""Thin tasks: take a primary key, call one service. The services claim their rows, so a task
that runs twice (a redelivery, or the relay racing the original) does the work once. The poll
and the watch scan react to what they find, so their tasks live in workflows/tasks.py."""

from celery import shared_task

from integrations.kuaidi100 import services


@shared_task(acks_late=True)
def subscribe_shipment(subscription_id: int) -> str:
    return services.shipment_subscribe(subscription_id=subscription_id)


@shared_task
def relay_subscriptions() -> int:
    return services.subscriptions_relay()
