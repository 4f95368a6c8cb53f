"""Front-line writes: recording a customer's inquiry and answering it at once."""

from __future__ import annotations

from django.db import transaction
from django.utils.translation import gettext as _

from orders.frontline.answers import order_answer
from orders.frontline.models import Inquiry, InquiryChannel
from orders.frontline.selfservice import link_url
from orders.access import Actor
from orders.models import Order
from orders.services import NotAllowed, OrderError
from workflows.models import CustomerMessage

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
        inquiry = Inquiry.objects.create(order=order, customer_id=order.customer_id, channel=channel, question=question, recorded_by=by.user)
        message = inquiry_answer_push(order=order, inquiry=inquiry)
        if message is not None:
            inquiry.answer_message = message
            inquiry.save(update_fields=["answer_message"])
    return inquiry


def inquiry_answer_push(*, order: Order, inquiry: Inquiry) -> CustomerMessage | None:
    """The instant answer as an outbox row (None when the customer has no WeChat openid).

    Stand-in for the logistics issue's `customer_push_order_status(order=…, event_key=…)`,
    which writes the same row and sends it after commit: at merge, replace this body with that
    call. Until then the outbox relay sends the pending row."""
    if not order.customer.wechat_openid:
        return None
    answer = order_answer(order)
    key = f"inquiry:{inquiry.pk}"
    return CustomerMessage.objects.create(
        order=order,
        recipient=order.customer.wechat_openid,
        event_key=key,
        idempotency_key=key,
        content={
            "order_number": order.order_number,
            "status": answer.status,
            "location": answer.location,
            "eta": answer.eta.isoformat() if answer.eta else "",
            "explanation": answer.explanation,
            "text": answer.as_text(),
            "url": link_url(order),
        },
        carries_location=answer.carries_location,
    )
