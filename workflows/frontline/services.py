"""Front-line writes: recording a customer's inquiry and answering it at once."""

from __future__ import annotations

from django.db import transaction
from django.utils.translation import gettext as _

from integrations.wechat.models import CustomerMessage, MessageStatus
from orders.access import Actor
from orders.models import Order
from orders.services import NotAllowed, OrderError
from workflows.frontline.answers import order_answer
from workflows.frontline.models import Inquiry, InquiryChannel
from workflows.notifications import customer_push_order_status

INQUIRY_ROLES = {"service", "sales", "supervisor"}


def inquiry_record(*, order: Order, by: Actor, channel: str, question: str = "") -> Inquiry:
    """Customer service notes that the customer asked about the order, and the customer is
    answered at once with a push carrying location, ETA and any exception explanation."""
    if channel not in InquiryChannel.values:
        raise OrderError(_("Choose how the customer asked: phone or WeChat."))
    if not by.roles & INQUIRY_ROLES:
        raise NotAllowed(_("Only customer service, sales or a supervisor record inquiries."))
    question = (question or "").strip()[:300] or _("Where is my order?")
    with transaction.atomic():
        inquiry = Inquiry.objects.create(
            order=order, customer_id=order.customer_id, channel=channel, question=question, recorded_by=by.user
        )
        message = inquiry_answer_push(order=order, inquiry=inquiry)
        if message is not None:
            inquiry.answer_message = message
            inquiry.save(update_fields=["answer_message"])
    return inquiry


def inquiry_answer_push(*, order: Order, inquiry: Inquiry) -> CustomerMessage | None:
    """The instant answer: one push, sent after commit — by WeChat to a follower, by SMS to a
    customer WeChat cannot reach (workflows/notifications.py decides). Returns the WeChat push
    that answers (None when the answer goes by SMS or not at all: the customer unsubscribed)."""
    answer = order_answer(order)
    message = customer_push_order_status(order=order, event_key=f"inquiry:{inquiry.pk}", reason=answer.explanation)
    if isinstance(message, CustomerMessage) and message.status != MessageStatus.REFUSED:
        return message
    return None
