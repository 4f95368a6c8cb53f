"""Staff alerts to WeCom group robots, via the outbox (wecom.RobotMessage): a row first, sent
after commit, re-sent by the relay; one sender at a time (the claim); transient errors retried
with backoff. A robot takes about 20 messages a minute: a role that reached
WECOM["PER_MINUTE"] in the last minute waits (workflows/alerts.py batches alerts into one
message per role and sweep, so it rarely does)."""

from __future__ import annotations

import datetime
import logging

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from integrations.wecom import client
from integrations.wecom.models import RobotMessage, RobotStatus

logger = logging.getLogger(__name__)
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

    transaction.on_commit(lambda: _enqueue(send_robot_message, message.pk))
    return message


def _enqueue(task, pk: int) -> None:
    try:
        task.apply_async(args=[pk], retry=False)
    except Exception:  # noqa: BLE001 - broker down: the row waits for the relay
        logger.warning("broker unavailable; robot message %s left to the relay", pk)


def robot_message_send(*, message_id: int) -> str:
    now = timezone.now()
    with transaction.atomic():
        message = (
            RobotMessage.objects.select_for_update(skip_locked=True)
            .filter(pk=message_id, status__in=[RobotStatus.PENDING, RobotStatus.FAILED], next_attempt_at__lte=now)
            .first()
        )
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
        message.attempts += 1
        message.next_attempt_at = now + datetime.timedelta(seconds=settings.INTEGRATION_CLAIM_SECONDS)
        message.save(update_fields=["attempts", "next_attempt_at"])
    mine = RobotMessage.objects.filter(pk=message.pk, attempts=message.attempts)
    try:
        client.send_markdown(url=url, content=message.content)
    except client.WeComError as exc:
        if exc.permanent or message.attempts >= MAX_ATTEMPTS:
            mine.update(status=RobotStatus.REFUSED, last_error=str(exc)[:300])
            return "refused"
        backoff = datetime.timedelta(seconds=60 if exc.errcode == 45009 else min(15 * 2 ** (message.attempts - 1), 1800))
        mine.update(status=RobotStatus.FAILED, last_error=str(exc)[:300], next_attempt_at=timezone.now() + backoff)
        return "retry"
    mine.update(status=RobotStatus.SENT, sent_at=timezone.now(), last_error="")
    return "sent"


def robot_messages_relay(*, now: datetime.datetime | None = None, limit: int = 500) -> int:
    now = now or timezone.now()
    from integrations.wecom.tasks import send_robot_message

    due = list(
        RobotMessage.objects.filter(status__in=[RobotStatus.PENDING, RobotStatus.FAILED], next_attempt_at__lte=now)
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )
    for pk in due:
        _enqueue(send_robot_message, pk)
    return len(due)
