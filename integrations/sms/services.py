"""Text messages to customers through the SMS platform, via the outbox (sms.SmsMessage).

The same guarantees as the WeChat outbox (integrations/wechat/services.py):

- one row per (order, event): the idempotency key is unique, so an event never makes two SMS;
- a row is written in the caller's transaction and sent by a task after commit; a beat relay
  re-sends what a lost task or a down broker left pending, so nothing is lost;
- one sender at a time: a sender claims the row (locked, attempts + 1, next_attempt_at pushed
  past a lease) before calling the platform;
- only transient errors are retried, with backoff; the platform's flow control
  (`isv.BUSINESS_LIMIT_CONTROL`) waits an hour; a refusal is recorded and never retried;
- the per-phone limits the carriers impose (SMS["RATE_LIMITS"]: per minute, hour, day) are kept
  here before the platform is asked: a message over the limit waits, it is not dropped.

Whether a customer gets an SMS at all, and what it says, is decided in workflows/notifications.py.
"""

from __future__ import annotations

import datetime
import hashlib
import math
from decimal import Decimal
from functools import partial

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from integrations import outbox
from integrations.sms import client
from integrations.sms.models import SmsMessage, SmsOptOut, SmsStatus
from orders.models import Order

MAX_ATTEMPTS = 8
RATE_LIMIT_WAIT = datetime.timedelta(hours=1)
# One SMS segment: 70 characters (Chinese), 67 each when a long message is split.
SEGMENT = 70
LONG_SEGMENT = 67
WINDOWS = {"minute": datetime.timedelta(minutes=1), "hour": datetime.timedelta(hours=1), "day": datetime.timedelta(days=1)}


def _key(order: Order, event_key: str) -> str:
    raw = f"sms:{order.pk}:{event_key}"
    return raw if len(raw) <= 64 else f"sms:{order.pk}:{hashlib.sha1(event_key.encode()).hexdigest()}"  # noqa: S324


def opted_out(phone: str) -> bool:
    return SmsOptOut.objects.filter(phone=phone).exists()


def message_exists(*, order: Order, event_key: str) -> SmsMessage | None:
    return SmsMessage.objects.filter(idempotency_key=_key(order, event_key)).first()


def sms_queue(
    *,
    order: Order,
    phone: str,
    event_key: str,
    template_code: str,
    params: dict[str, str],
    carries_location: bool = False,
    not_before: datetime.datetime | None = None,
) -> SmsMessage | None:
    """Queue one SMS about `order` for `event_key` (the existing row when there is one). None
    when the phone replied 退订. `not_before` holds it (quiet hours); otherwise it goes after
    the caller commits. None as well while the platform is off (no credentials)."""
    key = _key(order, event_key)
    existing = SmsMessage.objects.filter(idempotency_key=key).first()
    if existing:
        return existing
    if opted_out(phone) or client.mode() == "off":
        # Off (no credentials outside DEBUG): visibly no SMS channel, rather than rows refused later.
        return None
    due = not_before or timezone.now()
    try:
        with transaction.atomic():
            message = SmsMessage.objects.create(
                order=order,
                phone=phone,
                event_key=event_key[:64],
                idempotency_key=key,
                template_code=template_code,
                params=params,
                carries_location=carries_location,
                next_attempt_at=due,
            )
    except IntegrityError:
        return SmsMessage.objects.get(idempotency_key=key)
    if due <= timezone.now():
        from integrations.sms.tasks import send_sms

        transaction.on_commit(lambda: outbox.enqueue(send_sms, message.pk))
    return message


def _over_limit(phone: str, now: datetime.datetime) -> datetime.datetime | None:
    """When the phone may get its next SMS, or None when it may now (the carriers' per-phone
    limits, counted from what we sent)."""
    limits = settings.SMS["RATE_LIMITS"]
    for window, span in WINDOWS.items():
        limit = limits.get(window)
        if not limit:
            continue
        sent = list(
            SmsMessage.objects.filter(phone=phone, sent_at__gt=now - span).order_by("-sent_at").values_list("sent_at", flat=True)
        )
        if len(sent) >= limit:
            return sent[limit - 1] + span
    return None


def segments(text: str) -> int:
    return 1 if len(text) <= SEGMENT else math.ceil(len(text) / LONG_SEGMENT)


def sms_send(*, message_id: int) -> str:
    """Send one outbox row if it is due, nobody else holds it and the phone is under its limits."""
    now = timezone.now()
    with transaction.atomic():
        message = outbox.lock_due(outbox.unsent(SmsMessage), message_id, now=now)
        if message is None:
            return "not due"
        if opted_out(message.phone):
            message.status, message.error_code, message.last_error = SmsStatus.REFUSED, "opted_out", "退订"
            message.save(update_fields=["status", "error_code", "last_error"])
            return "refused"
        wait_until = _over_limit(message.phone, now)
        if wait_until:
            message.next_attempt_at = wait_until
            message.save(update_fields=["next_attempt_at"])
            return "rate limited"
        outbox.claim(message, now=now)
    try:
        biz_id = client.send_sms(
            phone=message.phone,
            template_code=message.template_code,
            template_param=message.params,
            out_id=message.idempotency_key,
        )
    except client.SmsError as exc:
        wait = RATE_LIMIT_WAIT if exc.rate_limited else outbox.backoff(message.attempts)
        return outbox.send_failed(message, exc, max_attempts=MAX_ATTEMPTS, wait=wait, error_code=exc.code[:64])
    outbox.mine(message).update(status=SmsStatus.SENT, sent_at=timezone.now(), biz_id=biz_id, last_error="", error_code="")
    return "sent"


def sms_relay(*, now: datetime.datetime | None = None, limit: int = 500) -> int:
    """Beat: enqueue every pending or failed SMS whose next attempt is due (index sms_outbox_due)."""
    from integrations.sms.tasks import send_sms

    return outbox.relay(outbox.unsent(SmsMessage), partial(outbox.enqueue, send_sms), now=now, limit=limit)


def receipts_record(reports: list[dict]) -> int:
    """The SmsReport push: [{biz_id, phone_number, success, err_code, report_time, sms_size}].
    A receipt changes only its own message; a repeated receipt changes nothing new."""
    price = Decimal(str(settings.SMS["PRICE_PER_SEGMENT"]))
    recorded = 0
    for report in reports:
        biz_id = str(report.get("biz_id", ""))
        if not biz_id:
            continue
        try:
            size = max(1, int(report.get("sms_size") or 1))
        except (TypeError, ValueError):
            size = 1
        reported = _parse_time(str(report.get("report_time", ""))) or timezone.now()
        success = report.get("success") in (True, "true", "True", 1)
        recorded += SmsMessage.objects.filter(biz_id=biz_id, phone=str(report.get("phone_number", ""))).update(
            delivery_status="delivered" if success else "failed",
            delivery_error="" if success else str(report.get("err_code", ""))[:64],
            delivered_at=reported if success else None,
            segments=size,
            cost=price * size,
        )
    return recorded


def _parse_time(text: str) -> datetime.datetime | None:
    try:
        moment = datetime.datetime.strptime(text, "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return None
    return timezone.make_aware(moment, timezone.get_default_timezone())


def replies_record(replies: list[dict]) -> int:
    """The SmsUp push: a reply of T / TD / 退订 opts the phone out of every later SMS."""
    opted = 0
    for reply in replies:
        phone, content = str(reply.get("phone_number", ""))[-11:], str(reply.get("content", ""))
        if phone and client.is_opt_out(content):
            _, created = SmsOptOut.objects.get_or_create(phone=phone, defaults={"reply": content[:70]})
            opted += created
    return opted
