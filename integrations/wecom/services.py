"""Staff alerts to WeCom group robots, via the outbox (wecom.RobotMessage): a row first, sent
after commit, re-sent by the relay; one sender at a time (the claim); transient errors retried
with backoff. A robot takes about 20 messages a minute: a role that reached
WECOM["PER_MINUTE"] in the last minute waits (workflows/alerts.py batches alerts into one
message per role and sweep, so it rarely does)."""

from __future__ import annotations

import datetime
from functools import partial

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from integrations import outbox
from integrations.wecom import client
from integrations.wecom.models import RobotMessage, RobotStatus

MAX_ATTEMPTS = 8


def robot_configured(role: str) -> bool:
    return bool(client.webhook(role))


def robot_message_queue(*, role: str, key: str, content: str, alert_count: int = 1) -> RobotMessage:
    existing = RobotMessage.objects.filter(idempotency_key=key).first()
    if existing:
        return existing
    try:
        with transaction.atomic():
            message = RobotMessage.objects.create(role=role, idempotency_key=key, content=content, alert_count=alert_count)
    except IntegrityError:
        return RobotMessage.objects.get(idempotency_key=key)
    from integrations.wecom.tasks import send_robot_message

    transaction.on_commit(lambda: outbox.enqueue(send_robot_message, message.pk))
    return message


def robot_message_send(*, message_id: int) -> str:
    now = timezone.now()
    with transaction.atomic():
        message = outbox.lock_due(outbox.unsent(RobotMessage), message_id, now=now)
        if message is None:
            return "not due"
        url = client.webhook(message.role)
        if not url:
            message.status, message.last_error = RobotStatus.REFUSED, "no webhook configured for this role"
            message.save(update_fields=["status", "last_error"])
            return "refused"
        recent = list(
            RobotMessage.objects.filter(role=message.role, sent_at__gt=now - datetime.timedelta(minutes=1))
            .order_by("sent_at")
            .values_list("sent_at", flat=True)
        )
        if len(recent) >= settings.WECOM["PER_MINUTE"]:
            message.next_attempt_at = recent[0] + datetime.timedelta(minutes=1)
            message.save(update_fields=["next_attempt_at"])
            return "rate limited"
        outbox.claim(message, now=now)
    try:
        client.send_markdown(url=url, content=message.content)
    except client.WeComError as exc:
        # 45009: the robot's own per-minute limit, free again within the minute.
        wait = datetime.timedelta(seconds=60) if exc.errcode == 45009 else outbox.backoff(message.attempts)
        return outbox.send_failed(message, exc, max_attempts=MAX_ATTEMPTS, wait=wait)
    outbox.mine(message).update(status=RobotStatus.SENT, sent_at=timezone.now(), last_error="")
    return "sent"


def robot_messages_relay(*, now: datetime.datetime | None = None, limit: int = 500) -> int:
    from integrations.wecom.tasks import send_robot_message

    return outbox.relay(outbox.unsent(RobotMessage), partial(outbox.enqueue, send_robot_message), now=now, limit=limit)
