"""The mini-program's shipping information upload (docs/protocols.md "WeChat mini-program shipping
information"), through its outbox (wechat.ShippingUpload).

A mini-program payment's funds stay frozen until its shipping information is uploaded, and WeChat
takes one upload and one update per payment, so an upload must happen and must not happen twice:

- one row per reason: the upload when the order ships here ("upload"), the update a changed
  waybill asks for ("waybill:<event>"); the idempotency key is unique, so the nudge and the relay
  asking for the same one make one row;
- one sender at a time: the sender claims the row (locked, attempts + 1, the next attempt pushed
  past a lease) before calling WeChat, as every outbox does (integrations/outbox.py);
- the body is built when sent, from the order's parcels then: an upload still waiting when the
  waybill changes carries the new waybill and needs no update;
- an outage is retried with backoff; after an attempt whose answer never came (a timeout, a
  503), WeChat is asked what it holds (get_order) before uploading again, so a reply lost on
  the way does not spend the payment's one update;
- a refusal is kept on the row (the card shows it) and opens the catalogue's exception
  "platform write-back failed" for the courier liaison (orders/reasons.py).
"""

from __future__ import annotations

import datetime
from functools import partial

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from integrations import outbox
from integrations.wechat import client
from integrations.wechat.models import MessageStatus, ShippingUpload, ShippingUploadKind
from orders import services as order_services
from orders.access import Actor
from orders.models import Order, OrderSource, RiskTag
from orders.privacy import mask_phone

MAX_ATTEMPTS = 8
UPLOAD_KEY = "upload"
MINIPROGRAM = Actor.system("wechat-miniprogram")

# What went wrong with an upload, for people: WeChat's codes (-1 and 10060012 are retried), and
# our own checks before sending (codes of -100 and below, never sent to WeChat).
NOT_CONFIGURED = -100
NO_PAYMENT_KEY = -101
NO_PARCEL = -102
TOO_MANY_PARCELS = -103
UPDATE_USED = -104
PROBLEMS = {
    -1: gettext_noop("WeChat is busy; trying again"),
    10060012: gettext_noop("WeChat system error; trying again"),
    10060001: gettext_noop("WeChat knows no such payment"),
    10060002: gettext_noop("the payment's shipping is already complete"),
    10060003: gettext_noop("the payment's one update is used"),
    10060004: gettext_noop("the payment cannot ship (refunded or closed)"),
    10060005: gettext_noop("wrong logistics type"),
    10060007: gettext_noop("a split delivery must say whether all is shipped"),
    10060008: gettext_noop("the item description is empty"),
    10060009: gettext_noop("the item description is too long"),
    10060014: gettext_noop("WeChat refused a field of the upload"),
    NOT_CONFIGURED: gettext_noop("the mini-program has no credentials: nothing uploaded"),
    NO_PAYMENT_KEY: gettext_noop("the order has no mini-program payment number or payer"),
    NO_PARCEL: gettext_noop("the order has no parcel to upload"),
    TOO_MANY_PARCELS: gettext_noop("more than 15 parcels: WeChat takes at most 15"),
    UPDATE_USED: gettext_noop("WeChat allows one update of the shipping information, already used"),
}


def refusal_text(upload: ShippingUpload) -> str:
    """What went wrong with an upload, in the reader's language."""
    if upload.errcode in PROBLEMS:
        return _(PROBLEMS[upload.errcode])
    if upload.errcode is None:
        return _("WeChat could not be reached") if upload.last_error else ""
    return _("refused by WeChat (%(code)s)") % {"code": upload.errcode}


def _item_desc(order: Order) -> str:
    text = "；".join(f"{line.product_name}×{line.quantity}" for line in order.lines.all())
    return text if len(text) <= client.ITEM_DESC_LIMIT else text[: client.ITEM_DESC_LIMIT - 1] + "…"


def shipping_body(order: Order, *, now: datetime.datetime) -> dict:
    """upload_shipping_info's body for the order's parcels now (replaced waybills left out)."""
    description = _item_desc(order)
    # "Receiver contact masked" (docs/protocols.md): WeChat needs it for SF, never the full number.
    contact = mask_phone(order.receiver_phone)
    packages = [
        {
            "tracking_no": shipment.tracking_number,
            "express_company": client.EXPRESS_COMPANY.get(shipment.carrier_code, shipment.carrier_code.upper()),
            "item_desc": description,
            "contact": {"receiver_contact": contact},
        }
        for shipment in order.shipments.filter(replaced_at__isnull=True).order_by("created_at", "pk")
    ]
    body = {
        "order_key": {
            "order_number_type": 1,  # merchant id + out_trade_no
            "mchid": settings.WECHAT_MINIPROGRAM["MCH_ID"],
            "out_trade_no": order.platform_order_id,
        },
        "logistics_type": 1,  # express delivery
        "delivery_mode": 1 if len(packages) == 1 else 2,  # all at once, or split
        "shipping_list": packages,
        "upload_time": timezone.localtime(now).isoformat(timespec="milliseconds"),
        "payer": {"openid": order.platform_buyer_id},
    }
    if len(packages) > 1:
        body["is_all_delivered"] = True
    return body


def _local_problem(order: Order, body: dict) -> int | None:
    if client.miniprogram_mode() == "off":
        return NOT_CONFIGURED
    if not order.platform_order_id or not order.platform_buyer_id:
        return NO_PAYMENT_KEY
    if not body["shipping_list"]:
        return NO_PARCEL
    if len(body["shipping_list"]) > client.MAX_PACKAGES:
        return TOO_MANY_PARCELS
    return None


def shipping_upload_queue(*, order: Order, reason: str = UPLOAD_KEY) -> ShippingUpload | None:
    """The upload of a mini-program order that shipped here (reason "upload"), or the update a
    changed waybill asks for (reason "waybill:<event id>"). Sent after the caller commits; the
    same reason never makes a second row. Not a mini-program order: nothing."""
    if order.source != OrderSource.MINI_PROGRAM:
        return None
    key = f"{order.pk}:{reason}"[:64]
    existing = ShippingUpload.objects.filter(idempotency_key=key).first()
    if existing:
        return existing
    fields = {"order": order, "kind": ShippingUploadKind.UPLOAD}
    if reason != UPLOAD_KEY:
        first = ShippingUpload.objects.filter(order=order, kind=ShippingUploadKind.UPLOAD).first()
        if first is not None and first.status == MessageStatus.REFUSED:
            # The courier changed the waybill after a refusal: the upload is tried again with it.
            return _retry(first)
        if first is None or first.status != MessageStatus.SENT:
            # Not uploaded yet: the upload, built when sent, carries the new waybill.
            return first
        fields["kind"] = ShippingUploadKind.UPDATE
        if ShippingUpload.objects.filter(order=order, kind=ShippingUploadKind.UPDATE).exclude(errcode=UPDATE_USED).exists():
            fields.update(status=MessageStatus.REFUSED, errcode=UPDATE_USED, last_error="update already used")
    try:
        with transaction.atomic():
            upload = ShippingUpload.objects.create(idempotency_key=key, **fields)
    except IntegrityError:
        return ShippingUpload.objects.get(idempotency_key=key)
    if upload.status == MessageStatus.REFUSED:
        upload_exception_open(upload)
    else:
        from integrations.wechat.tasks import send_shipping_upload

        transaction.on_commit(lambda: outbox.enqueue(send_shipping_upload, upload.pk))
    return upload


def _retry(upload: ShippingUpload) -> ShippingUpload:
    from integrations.wechat.tasks import send_shipping_upload

    ShippingUpload.objects.filter(pk=upload.pk, status=MessageStatus.REFUSED).update(
        status=MessageStatus.PENDING, attempts=0, errcode=None, last_error="", next_attempt_at=timezone.now()
    )
    transaction.on_commit(lambda: outbox.enqueue(send_shipping_upload, upload.pk))
    upload.refresh_from_db()
    return upload


def upload_exception_open(upload: ShippingUpload) -> None:
    """The order gets the "platform write-back failed" exception (once while open), saying why."""
    order_services.order_tag_add(
        order=upload.order,
        by=MINIPROGRAM,
        tag=RiskTag.PLATFORM_WRITEBACK_FAILED,
        note=_("WeChat mini-program shipping information: %(reason)s") % {"reason": refusal_text(upload)},
    )


def shipping_upload_send(*, upload_id: int) -> str:
    """Send one outbox row if it is due and nobody else holds it. Returns what happened."""
    now = timezone.now()
    upload = outbox.claim_due(outbox.unsent(ShippingUpload), upload_id, now=now)
    if upload is None:
        return "not due"
    mine = outbox.mine(upload)
    # `attempts` counts this claim: an earlier attempt without an errcode never got its answer.
    answer_lost = upload.attempts > 1 and upload.errcode is None
    order = Order.objects.get(pk=upload.order_id)
    body = shipping_body(order, now=now)
    problem = _local_problem(order, body)
    if problem is not None:
        mine.update(status=MessageStatus.REFUSED, errcode=problem, last_error="refused before sending", body=body)
        upload.refresh_from_db()
        upload_exception_open(upload)
        return "refused"
    try:
        wanted = {package["tracking_no"] for package in body["shipping_list"]}
        # The last attempt's answer never came: WeChat may hold it already (a second upload would
        # spend the payment's one update, or be refused).
        if answer_lost and client.shipped_tracking_numbers(out_trade_no=order.platform_order_id) == wanted:
            mine.update(status=MessageStatus.SENT, sent_at=timezone.now(), body=body, errcode=0, last_error="")
            return "already there"
        client.upload_shipping_info(body)
    except client.WeChatError as exc:
        outcome = outbox.send_failed(
            upload, exc, max_attempts=MAX_ATTEMPTS, wait=outbox.backoff(upload.attempts), errcode=exc.errcode, body=body
        )
        if outcome == "refused":
            upload.refresh_from_db()
            upload_exception_open(upload)
        return outcome
    mine.update(status=MessageStatus.SENT, sent_at=timezone.now(), body=body, errcode=0, last_error="")
    return "sent"


def shipping_uploads_relay(*, now: datetime.datetime | None = None, limit: int = 500) -> int:
    """Beat: enqueue every pending or failed upload whose next attempt is due (served by the
    partial index shipping_upload_due)."""
    from integrations.wechat.tasks import send_shipping_upload

    return outbox.relay(outbox.unsent(ShippingUpload), partial(outbox.enqueue, send_shipping_upload), now=now, limit=limit)
