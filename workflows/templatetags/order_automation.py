"""The card's automation panel: tickets, customer pushes and which providers are live, read
here so the order card's own view stays as it is."""

from django import template
from django.conf import settings

from integrations.kuaidi100 import client as kuaidi100
from integrations.wechat import client as wechat
from integrations.wechat.models import CustomerMessage
from workflows.models import Ticket
from workflows.notifications import delivery_text, push_about

register = template.Library()


@register.inclusion_tag("workflows/_order_automation.html", takes_context=True)
def order_automation(context, order):
    openid = order.customer.wechat_openid
    messages = list(CustomerMessage.objects.filter(order=order).order_by("-created_at")[:10])
    for message in messages:
        message.about = push_about(message.event_key)
        message.delivery = delivery_text(message.delivery_status) if message.delivery_status else ""
    phone_url = f"{settings.WECHAT['BASE_URL'].rstrip('/')}/phone/{openid}" if wechat.mode() == "sandbox" and openid else ""
    return {
        "order": order,
        "my_roles": context.get("my_roles", frozenset()),
        "request": context.get("request"),
        "tickets": Ticket.objects.filter(order=order).select_related("shipment", "owner").order_by("-opened_at"),
        "customer_messages": messages,
        "kuaidi100_mode": kuaidi100.mode(),
        "wechat_mode": wechat.mode(),
        "customer_phone_url": phone_url,
    }


@register.simple_tag
def provider_mode(name: str) -> str:
    return {"kuaidi100": kuaidi100.mode, "wechat": wechat.mode}[name]()
