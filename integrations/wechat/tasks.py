from celery import shared_task

from integrations.wechat import services


@shared_task(acks_late=True)
def send_customer_message(message_id: int) -> str:
    return services.customer_message_send(message_id=message_id)


@shared_task
def relay_customer_messages() -> int:
    return services.customer_messages_relay()
