"""Customer pushes through the WeChat service account, via the outbox (wechat.CustomerMessage).

A push is a row first — order, event, recipient, idempotency key, template values, link —
written in the caller's transaction; a task sends it after commit and a beat relay re-sends
whatever a lost task or a down broker left behind. A message goes out at most once per event:

- one row per (order, event): the idempotency key is unique;
- one sender at a time: a sender claims the row (locked, attempts + 1, next_attempt_at pushed
  past a lease) before calling WeChat, so the relay and the original task cannot both send;
- a sender that dies mid-send leaves the claim to expire; the resend carries the same
  `client_msg_id`, which WeChat delivers once per openid within 10 minutes (lease < 10 min).

What a push says is decided in workflows/notifications.py; this module takes the ready values.
"""

from __future__ import annotations

import datetime
import hashlib
from functools import partial

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from integrations import outbox
from integrations.wechat import client
from integrations.wechat.models import CustomerMessage, MessageStatus
from orders.models import Order

MAX_ATTEMPTS = 8
# The template's fields, with the kinds WeChat checks (docs/protocols.md value limits).
FIELD_ORDER = "character_string1"  # ≤ 32 characters, no Chinese
FIELD_STATUS = "thing2"  # ≤ 20 characters
FIELD_LOCATION = "thing3"
FIELD_ETA = "time4"  # like 2024-06-21 16:34:24
FIELD_NOTE = "thing5"
THING_LIMIT = 20


def thing(text: str) -> str:
    """A `thing` value: at most 20 characters, never empty."""
    text = " ".join((text or "").split()) or "-"
    return text if len(text) <= THING_LIMIT else text[: THING_LIMIT - 1] + "…"


def character_string(text: str) -> str:
    """A `character_string` value: at most 32 printable ASCII characters, never empty."""
    return "".join(ch for ch in text if ch.isascii() and ch.isprintable())[:32] or "-"


def time_value(moment: datetime.datetime) -> str:
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M:%S")


def _key(order: Order, event_key: str) -> str:
    raw = f"wechat:{order.pk}:{event_key}"
    return raw if len(raw) <= 64 else f"wechat:{order.pk}:{hashlib.sha1(event_key.encode()).hexdigest()}"  # noqa: S324


def client_msg_id(message: CustomerMessage) -> str:
    return hashlib.sha1(message.idempotency_key.encode()).hexdigest()[:32]  # noqa: S324 - an identifier


def message_exists(*, order: Order, event_key: str) -> CustomerMessage | None:
    return CustomerMessage.objects.filter(idempotency_key=_key(order, event_key)).first()


def customer_message_queue(
    *,
    order: Order,
    event_key: str,
    content: dict[str, str],
    carries_location: bool = False,
    link: str = "",
    not_before: datetime.datetime | None = None,
) -> CustomerMessage:
    """Queue one push about `order` for `event_key`; the same order and event never make a
    second message (the existing row is returned). Sent after the caller commits, or from
    `not_before` on (quiet hours), by the relay."""
    key = _key(order, event_key)
    existing = CustomerMessage.objects.filter(idempotency_key=key).first()
    if existing:
        return existing
    openid = order.customer.wechat_openid
    fields = {
        "order": order,
        "channel": "wechat",
        "recipient": openid,
        "event_key": event_key[:64],
        "content": content,
        "carries_location": carries_location,
        "link": link[:400],
        "next_attempt_at": not_before or timezone.now(),
    }
    if not openid:
        fields.update(status=MessageStatus.REFUSED, last_error=_("The customer has not followed the WeChat service account."))
    try:
        with transaction.atomic():
            message = CustomerMessage.objects.create(idempotency_key=key, **fields)
    except IntegrityError:
        return CustomerMessage.objects.get(idempotency_key=key)
    if openid and not not_before:
        from integrations.wechat.tasks import send_customer_message

        transaction.on_commit(lambda: outbox.enqueue(send_customer_message, message.pk))
    return message


def customer_message_send(*, message_id: int) -> str:
    """Send one outbox row if it is due and nobody else holds it. Returns what happened."""
    message = outbox.claim_due(outbox.unsent(CustomerMessage), message_id)
    if message is None:
        return "not due"
    try:
        msgid = client.send_template(
            openid=message.recipient, data=message.content, client_msg_id=client_msg_id(message), url=message.link
        )
    except client.WeChatError as exc:
        return outbox.send_failed(message, exc, max_attempts=MAX_ATTEMPTS, wait=outbox.backoff(message.attempts))
    outbox.mine(message).update(status=MessageStatus.SENT, sent_at=timezone.now(), provider_message_id=msgid, last_error="")
    return "sent"


def customer_messages_relay(*, now: datetime.datetime | None = None, limit: int = 500) -> int:
    """Beat: enqueue every pending or failed message whose next attempt is due (served by the
    partial index outbox_due)."""
    from integrations.wechat.tasks import send_customer_message

    return outbox.relay(outbox.unsent(CustomerMessage), partial(outbox.enqueue, send_customer_message), now=now, limit=limit)


# The customer cannot receive template messages: not following (43004), refused them (43101),
# an openid that is not theirs (40003) — or blocked the account, which only the delivery report
# tells ("failed:user block"). A push like that needs another channel (workflows/notifications.py).
UNREACHABLE_CODES = ("43004", "43101", "40003")
BLOCKED_REPORT = "failed:user block"


# Why WeChat refused a message, for people (the health page's failures by reason).
REFUSAL_REASONS = {
    "43004": gettext_noop("not following the service account"),
    "43101": gettext_noop("refuses our messages"),
    "40003": gettext_noop("not a valid openid"),
    "47003": gettext_noop("message values refused"),
    "45009": gettext_noop("daily quota reached"),
}


def refusal_text(last_error: str) -> str:
    code = (last_error or "").split(" ", 1)[0]
    if code in REFUSAL_REASONS:
        return _(REFUSAL_REASONS[code])
    return _("no openid") if not code[:1].isdigit() else _("refused by WeChat")


def unreachable_messages(*, since: datetime.datetime):
    """Messages of the customers WeChat cannot reach, queued since `since`."""
    refused = Q(status=MessageStatus.REFUSED) & (
        Q(recipient="") | Q(last_error__regex=r"^(" + "|".join(UNREACHABLE_CODES) + r") ")
    )
    return CustomerMessage.objects.filter(created_at__gte=since).filter(refused | Q(delivery_status=BLOCKED_REPORT))


def delivery_report_record(*, msgid: str, status: str) -> int:
    """WeChat's TEMPLATESENDJOBFINISH: success, failed:user block, failed: system failed."""
    return CustomerMessage.objects.filter(channel="wechat", provider_message_id=msgid).update(delivery_status=status[:64])
