from celery import shared_task

from integrations.douyin import services


@shared_task(acks_late=True)
def apply_message(message_id: int) -> str:
    return services.message_apply(message_id=message_id)


@shared_task(acks_late=True)
def send_write_back(write_back_id: int) -> str:
    return services.write_back_send(write_back_id=write_back_id)


@shared_task(acks_late=True)
def answer_address_change(change_id: int) -> str:
    return services.address_answer_send(change_id=change_id)


@shared_task
def pull_orders() -> int:
    return services.pull_all()


@shared_task
def relay() -> int:
    """What a lost task or a platform outage left undone: messages to apply, write-backs to send,
    decisions on address changes to answer."""
    done = services.messages_relay() + services.write_backs_relay()
    for change_id in services.address_answers_due():
        services.address_answer_send(change_id=change_id)
        done += 1
    return done
