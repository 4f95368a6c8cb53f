from celery import shared_task

from integrations.wechat import services, shipping


@shared_task(acks_late=True)
def send_customer_message(message_id: int) -> str:
    return services.customer_message_send(message_id=message_id)


@shared_task
def relay_customer_messages() -> int:
    return services.customer_messages_relay()


@shared_task(acks_late=True)
def send_shipping_upload(upload_id: int) -> str:
    return shipping.shipping_upload_send(upload_id=upload_id)


@shared_task
def relay_shipping_uploads() -> int:
    return shipping.shipping_uploads_relay()
