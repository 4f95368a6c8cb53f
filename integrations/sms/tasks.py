from celery import shared_task

from integrations.sms import services


@shared_task(acks_late=True)
def send_sms(message_id: int) -> str:
    return services.sms_send(message_id=message_id)


@shared_task
def relay_sms() -> int:
    return services.sms_relay()
