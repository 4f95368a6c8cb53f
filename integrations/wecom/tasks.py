from celery import shared_task

from integrations.wecom import services


@shared_task(acks_late=True)
def send_robot_message(message_id: int) -> str:
    return services.robot_message_send(message_id=message_id)


@shared_task
def relay_robot_messages() -> int:
    return services.robot_messages_relay()
