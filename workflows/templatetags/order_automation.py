"""The card's automation panel: tickets, customer pushes and which providers are live, read
here so the order card's own view stays as it is."""

from django import template
from django.conf import settings
from django.db import connection
from django.utils.translation import gettext as _

from integrations.kuaidi100 import client as kuaidi100
from integrations.sms import client as sms_client
from integrations.sms.client import error_text as sms_error_text
from integrations.sms.models import SmsMessage
from integrations.wechat import client as wechat
from integrations.wechat import shipping
from integrations.wechat.models import CustomerMessage
from integrations.wecom import client as wecom_client
from orders.models import OrderSource
from workflows.models import Ticket
from workflows.notifications import delivery_text, push_about

register = template.Library()


_ROWS_SQL = f"""
SELECT EXISTS (SELECT 1 FROM {CustomerMessage._meta.db_table} WHERE order_id = %s),
       EXISTS (SELECT 1 FROM {SmsMessage._meta.db_table} WHERE order_id = %s),
       EXISTS (SELECT 1 FROM {Ticket._meta.db_table} WHERE order_id = %s)
"""  # noqa: S608 - table names come from the models, values are parameters


@register.inclusion_tag("workflows/_order_automation.html", takes_context=True)
def order_automation(context, order):
    openid = order.customer.wechat_openid
    # Most orders have no push, text or ticket yet: one plain-SQL query says which of the three
    # lists hold rows, and only those are read through the ORM (~1 ms of CPU each, issue 14).
    with connection.cursor() as cursor:
        cursor.execute(_ROWS_SQL, [order.pk] * 3)
        has_messages, has_texts, has_tickets = cursor.fetchone()
    messages = list(CustomerMessage.objects.filter(order=order).order_by("-created_at")[:10]) if has_messages else []
    for message in messages:
        message.about = push_about(message.event_key)
        message.delivery = delivery_text(message.delivery_status) if message.delivery_status else ""
        message.channel = _("WeChat")
        message.what, message.where = message.content.get("thing2", ""), message.content.get("thing3", "")
    # The SMS that went instead (issue 18): the same list, newest first.
    for text in SmsMessage.objects.filter(order=order).order_by("-created_at")[:10] if has_texts else []:
        text.about = push_about(text.event_key)
        text.channel = _("SMS")
        text.what, text.where = text.params.get("status", "") or text.params.get("note", ""), text.params.get("location", "")
        if text.delivery_status == "delivered":
            text.delivery = delivery_text("success")
        else:
            text.delivery = sms_error_text(text.delivery_error, delivery=True) if text.delivery_status else ""
        text.last_error = sms_error_text(text.error_code) if text.error_code else ""
        messages.append(text)
    messages.sort(key=lambda message: message.created_at, reverse=True)
    phone_url = f"{settings.WECHAT['BASE_URL'].rstrip('/')}/phone/{openid}" if wechat.mode() == "sandbox" and openid else ""
    # Issue 15: a mini-program order's shipping uploads and their refusals (other orders: no query).
    uploads = list(order.shipping_uploads.all()) if order.source == OrderSource.MINI_PROGRAM else []
    for upload in uploads:
        upload.problem = shipping.refusal_text(upload)
    return {
        "order": order,
        "shipping_uploads": uploads,
        "miniprogram_mode": wechat.miniprogram_mode() if order.source == OrderSource.MINI_PROGRAM else "",
        "my_roles": context.get("my_roles", frozenset()),
        "request": context.get("request"),
        "tickets": Ticket.objects.filter(order=order).select_related("shipment", "owner").order_by("-opened_at")
        if has_tickets
        else [],
        "customer_messages": messages,
        "kuaidi100_mode": kuaidi100.mode(),
        "wechat_mode": wechat.mode(),
        "sms_mode": sms_client.mode(),
        "wecom_mode": wecom_client.mode(),
        "customer_phone_url": phone_url,
    }


@register.simple_tag
def provider_mode(name: str) -> str:
    return {"kuaidi100": kuaidi100.mode, "wechat": wechat.mode, "sms": sms_client.mode, "wecom": wecom_client.mode}[name]()
