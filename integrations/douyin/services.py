"""Douyin shop intake (issue 15): pushed messages stored and applied, the pull that catches what
a push missed, the buyer's encrypted receiver, and what goes back to the platform (the shipping
write-back, the answer to an address-change request).

How the pushes and the pull agree (and why replays and out-of-order messages converge):

- a message is stored as received, once per msg_id (unique), before anything is applied;
- applying a trade message does not trust the message's own snapshot: it reads the order from the
  platform (order.orderDetail) and brings the cockpit's order to the platform's current state;
  "paid" before "created" therefore creates the order already paid, and a replay finds nothing
  left to change. The pull (order.searchList by update time) applies the same state the same way;
- every step is a service on the ground floor (orders/services.py) that writes only real changes.

The buyer's receiver: the order keeps only masked values (张*, 138****8000, the street with its
number hidden); DouyinOrder keeps the ciphertexts and the platform's search indexes. A phone the
customer says is turned into its index (order.BatchSearchIndex) and matched; the plaintext is
only ever shown once, to a role that prints waybills, and every decrypt is logged.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import logging
from decimal import Decimal

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.db.models import Count, Exists, Min, OuterRef, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from integrations import outbox
from integrations.douyin import client
from integrations.douyin.models import (
    DecryptLog,
    DouyinAddressChange,
    DouyinMessage,
    DouyinOrder,
    DouyinRefund,
    DouyinShop,
    MessageState,
    ShippingWriteBack,
    WriteBackStatus,
)
from orders import services
from orders.access import Actor
from orders.models import (
    ACTIVE_STATUSES,
    AddressChangeSource,
    AddressChangeStatus,
    AfterSalesKind,
    AfterSalesStatus,
    Customer,
    HoldReason,
    Order,
    OrderSource,
    OrderStatus,
    RiskTag,
    Shipment,
)
from orders.privacy import PLATFORM_BUYER_PREFIX

logger = logging.getLogger(__name__)
DOUYIN = Actor.system("douyin")
MAX_PUSH_BYTES = 1_000_000
# Platform statuses (docs/protocols.md): 1 unpaid, 105 paid, 2 preparing, 101 partly shipped,
# 3 shipped, 4 cancelled, 5 completed.
UNPAID, CANCELLED = 1, 4
PAID_STATUSES = {105, 2, 101, 3, 5}
TRADE_TAGS = {
    "doudian_trade_TradeCreate",
    "doudian_trade_TradePaid",
    "doudian_trade_TradeCanceled",
    "doudian_trade_TradeSellerShip",
    "doudian_trade_TradeSuccess",
    "doudian_trade_TradeAmountChanged",
}
ADDRESS_CHANGE_TAG = "doudian_trade_TradeAddressChangeApplied"
REFUND_TAGS = {"doudian_refund_RefundCreated", "doudian_refund_ExpirationChange"}
# The pull re-reads a few minutes before its cursor: an order updated while the last pull ran
# (its update time before the pull's end, its write after the page was read) is not skipped.
PULL_OVERLAP = datetime.timedelta(minutes=5)
FIRST_PULL = datetime.timedelta(days=1)
MAX_ATTEMPTS = 10
# Our carrier codes (Kuaidi100's) where the platform's logistics company codes differ.
DOUYIN_COMPANY_CODES = {"shunfenglengyun": "shunfeng", "huitongkuaidi": "baishiwuliu"}


class PushRefused(Exception):
    def __init__(self, message: str, *, http_status: int):
        super().__init__(message)
        self.message = message
        self.http_status = http_status


def _from_unix(value) -> datetime.datetime | None:
    try:
        seconds = int(value or 0)
    except (TypeError, ValueError):
        return None
    return datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC) if seconds > 0 else None


# --- Pushes --------------------------------------------------------------------------------------


def _parse_push(body: bytes) -> list[dict]:
    """The messages of a push, or PushRefused(400) saying what is wrong; nothing is stored then,
    so the platform's retry of a corrected push loses nothing."""
    try:
        items = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise PushRefused(_("The push is not JSON."), http_status=400) from exc
    if not isinstance(items, list) or not items:
        raise PushRefused(_("The push must be a JSON array of messages."), http_status=400)
    messages = []
    for item in items:
        if not isinstance(item, dict):
            raise PushRefused(_("Each message must be a JSON object."), http_status=400)
        tag, msg_id, data = item.get("tag"), item.get("msg_id"), item.get("data")
        if (
            not isinstance(tag, str)
            or not tag
            or isinstance(msg_id, bool)
            or not isinstance(msg_id, str | int)
            or not str(msg_id)
        ):
            raise PushRefused(_("Each message needs a tag and a msg_id."), http_status=400)
        if not isinstance(data, str):
            raise PushRefused(_("A message's data must be a JSON string."), http_status=400)
        try:
            parsed = json.loads(data)
        except ValueError as exc:
            raise PushRefused(_("A message's data is not JSON."), http_status=400) from exc
        if not isinstance(parsed, dict):
            raise PushRefused(_("A message's data must be a JSON object."), http_status=400)
        messages.append({"tag": tag[:64], "msg_id": str(msg_id)[:64], "data": data, "parsed": parsed})
    return messages


def push_receive(*, app_id: str, event_sign: str, body: bytes) -> int:
    """Verify, then store every message of one push (a replayed msg_id is stored once); returns
    how many were new. Raises PushRefused: 401 for a push we cannot verify (nothing stored), 400
    for a malformed one (nothing stored: the platform pushes it again)."""
    if len(body) > MAX_PUSH_BYTES:
        raise PushRefused(_("The push is too large."), http_status=413)
    if client.mode() == "off":
        # Not "received": the platform keeps the messages and pushes them again once we take them.
        raise PushRefused(_("Douyin intake is off."), http_status=503)
    shops = list(DouyinShop.objects.filter(app_key=app_id, enabled=True)) if app_id else []
    if not shops or not client.push_signature_valid(app_key=app_id, secret=shops[0].app_secret, body=body, given=event_sign):
        logger.warning("Douyin push with a bad or missing signature refused")
        raise PushRefused(_("The signature does not match."), http_status=401)
    messages = _parse_push(body)
    by_shop_id = {shop.shop_id: shop for shop in shops}
    for message in messages:
        shop_id = str(message["parsed"].get("shop_id", ""))
        if shop_id not in by_shop_id:
            raise PushRefused(_("Shop %(shop)s is not one of this app's shops.") % {"shop": shop_id[:20]}, http_status=400)
        message["shop"] = by_shop_id[shop_id]
    new_ids = []
    now = timezone.now()
    with transaction.atomic():
        for message in messages:
            parsed = message["parsed"]
            order_id = str(parsed.get("p_id") or parsed.get("order_id") or "")[:64]
            row, created = DouyinMessage.objects.get_or_create(
                msg_id=message["msg_id"],
                defaults={
                    "tag": message["tag"],
                    "shop": message["shop"],
                    "platform_order_id": order_id,
                    "data": message["data"],
                    "received_at": now,
                },
            )
            if created:
                new_ids.append(row.pk)
        DouyinShop.objects.filter(pk__in=[shop.pk for shop in shops if shop in {m["shop"] for m in messages}]).update(
            last_push_at=now
        )
        transaction.on_commit(lambda: _enqueue_apply(new_ids))
    return len(new_ids)


def _enqueue_apply(message_ids: list[int]) -> None:
    from integrations.douyin.tasks import apply_message

    for pk in message_ids:
        try:
            apply_message.apply_async(args=[pk], retry=False)
        except Exception:  # noqa: BLE001 - broker down: the relay applies it
            logger.warning("broker unavailable; Douyin message %s left to the relay", pk)


def message_apply(*, message_id: int) -> str:
    """Apply one stored message (once: a message being applied by another worker is skipped,
    an applied one is left alone). A message that cannot be applied yet waits for the relay."""
    with transaction.atomic():
        message = (
            DouyinMessage.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(pk=message_id, state__in=[MessageState.RECEIVED, MessageState.WAITING])
            .select_related("shop")
            .first()
        )
        if message is None:
            return "not due"
        message.attempts += 1
        try:
            with transaction.atomic():  # a failed application leaves nothing half-written behind
                outcome = _apply(message)
        except (client.DouyinError, services.OrderError, LookupError, ValueError, TypeError) as exc:
            # LookupError: the platform has no such order (yet); ValueError/TypeError: a value in
            # the message is not what the platform documents. Kept, visible, retried by the relay.
            message.state, message.last_error = MessageState.WAITING, str(exc)[:300]
            message.save(update_fields=["state", "last_error", "attempts"])
            return "waiting"
        message.state, message.applied_at, message.last_error = outcome, timezone.now(), ""
        message.save(update_fields=["state", "applied_at", "last_error", "attempts"])
    return str(outcome)


def _apply(message: DouyinMessage) -> str:
    data = json.loads(message.data)
    shop = message.shop
    if message.tag in TRADE_TAGS:
        order_sync(shop=shop, platform_order_id=message.platform_order_id)
        return MessageState.APPLIED
    if message.tag == ADDRESS_CHANGE_TAG:
        douyin_order = _known_order(shop, message.platform_order_id)
        _address_change_received(douyin_order, data)
        return MessageState.APPLIED
    if message.tag in REFUND_TAGS:
        douyin_order = _known_order(shop, message.platform_order_id)
        _refund_received(douyin_order, data)
        return MessageState.APPLIED
    return MessageState.IGNORED


def _known_order(shop: DouyinShop, platform_order_id: str) -> DouyinOrder:
    """The order a message is about; read from the platform when its own messages have not
    arrived yet (an address change or a refund before the order's creation)."""
    found = DouyinOrder.objects.filter(platform_order_id=platform_order_id).select_related("order").first()
    return found or order_sync(shop=shop, platform_order_id=platform_order_id)


def messages_relay(*, now: datetime.datetime | None = None, limit: int = 200) -> int:
    """Beat: re-apply the messages a lost task or a platform outage left unapplied (a day's worth)."""
    now = now or timezone.now()
    due = list(
        DouyinMessage.objects.filter(
            state__in=[MessageState.RECEIVED, MessageState.WAITING],
            received_at__gte=now - datetime.timedelta(days=1),
            attempts__lt=MAX_ATTEMPTS,
        )
        .order_by("received_at")
        .values_list("pk", flat=True)[:limit]
    )
    for pk in due:
        message_apply(message_id=pk)
    return len(due)


# --- The order's state, from the platform's own record -------------------------------------------


def order_sync(*, shop: DouyinShop, platform_order_id: str) -> DouyinOrder:
    detail = client.order_detail(shop, platform_order_id)
    if not detail:
        raise LookupError(_("The platform has no order %(number)s.") % {"number": platform_order_id})
    return order_apply(shop=shop, data=detail)


def _masked_receiver(data: dict) -> dict[str, str]:
    address, masked = data.get("post_addr") or {}, data.get("mask_post_addr") or {}

    def name_of(part: str) -> str:
        return str((address.get(part) or {}).get("name", ""))

    return {
        "receiver_name": str(data.get("mask_post_receiver", "")),
        "receiver_phone": str(data.get("mask_post_tel", "")),
        "province": name_of("province"),
        "city": name_of("city"),
        "district": name_of("town"),
        "address": str(masked.get("detail", "")),
    }


def search_index_of(cipher: str) -> str:
    """The platform's ciphertexts carry their search index as the first field: `#index#…#…#`
    for names and addresses, `$index$…$…$` for phones (the index BatchSearchIndex gives)."""
    if len(cipher) < 3 or cipher[0] not in "#$":
        return ""
    return cipher[1:].split(cipher[0], 1)[0][:128]


def _buyer_customer(data: dict) -> Customer:
    """The buyer as a customer without a phone we may know: keyed by the phone's search index
    (stable for the same number), so one buyer's orders meet in the lookup. Their key is not a
    mobile number, so no SMS goes to it (the platform tells its own buyers)."""
    index = search_index_of(str(data.get("encrypt_post_tel", ""))) or str(data.get("order_id", ""))
    key = PLATFORM_BUYER_PREFIX + hashlib.sha1(index.encode()).hexdigest()[:9]  # noqa: S324 - a key, not a secret
    customer, _created = Customer.objects.get_or_create(
        phone=key, defaults={"name": str(data.get("mask_post_receiver", ""))[:64] or _("Douyin buyer")}
    )
    return customer


def _lines(data: dict) -> list[dict]:
    lines = []
    for sku in data.get("sku_order_list") or []:
        quantity = max(int(sku.get("item_num") or 1), 1)
        lines.append(
            {
                "sku_code": str(sku.get("code") or sku.get("sku_id") or "")[:40],
                "product_name": str(sku.get("product_name", ""))[:120],
                "quantity": quantity,
                # The unit price as the platform states it (goods_price, fen): exact, where the
                # line's paid amount divided by its quantity might not be.
                "unit_price": client.fen_to_yuan(sku["goods_price"])
                if sku.get("goods_price") is not None
                else (client.fen_to_yuan(sku.get("pay_amount") or 0) / quantity).quantize(Decimal("0.01")),
            }
        )
    return lines


def order_apply(*, shop: DouyinShop, data: dict) -> DouyinOrder:
    """Bring the cockpit's order to the platform's state `data` (an orderDetail or a searchList
    item): created if new, paid, cancelled, its latest ship time. Older data than already applied
    changes nothing (a slow push after a fresher pull)."""
    platform_order_id = str(data.get("order_id", ""))
    updated_at = _from_unix(data.get("update_time"))
    with transaction.atomic():
        # One writer per shop creates an order: two messages of a new order applied at once
        # would otherwise both create it.
        DouyinShop.objects.select_for_update().filter(pk=shop.pk).first()
        douyin_order = DouyinOrder.objects.filter(platform_order_id=platform_order_id).select_related("order").first()
        if douyin_order is None:
            douyin_order = _create(shop, data)
        elif douyin_order.platform_updated_at and updated_at and updated_at < douyin_order.platform_updated_at:
            return douyin_order
    _converge(douyin_order, data)
    DouyinOrder.objects.filter(pk=douyin_order.pk).update(
        platform_status=int(data.get("order_status") or 0), platform_updated_at=updated_at
    )
    return douyin_order


def _create(shop: DouyinShop, data: dict) -> DouyinOrder:
    order = services.order_create_from_platform(
        by=DOUYIN,
        source=OrderSource.PLATFORM,
        order_number=str(data["order_id"]),
        customer=_buyer_customer(data),
        receiver=_masked_receiver(data),
        lines=_lines(data),
        total_amount=client.fen_to_yuan(data.get("order_amount") or 0),
        shipping_fee=client.fen_to_yuan(data.get("post_amount") or 0),
        buyer_message=str(data.get("buyer_words", "")),
        placed_at=_from_unix(data.get("create_time")) or timezone.now(),
        platform_shop=shop.name,
        platform_ship_deadline=_from_unix(data.get("exp_ship_time")),
        source_time=_from_unix(data.get("update_time")),
    )
    address = data.get("post_addr") or {}
    tel = str(data.get("encrypt_post_tel", ""))
    return DouyinOrder.objects.create(
        order=order,
        shop=shop,
        platform_order_id=order.order_number,
        encrypted_name=str(data.get("encrypt_post_receiver", "")),
        encrypted_phone=tel,
        encrypted_address=str(address.get("encrypt_detail", "")),
        name_index=search_index_of(str(data.get("encrypt_post_receiver", ""))),
        phone_index=search_index_of(tel),
        phone_tail=str(data.get("mask_post_tel", ""))[-4:],
    )


def _converge(douyin_order: DouyinOrder, data: dict) -> None:
    order = Order.objects.get(pk=douyin_order.order_id)
    status = int(data.get("order_status") or 0)
    source_time = _from_unix(data.get("update_time"))
    paid = status in PAID_STATUSES
    order = services.order_platform_update(
        order=order,
        by=DOUYIN,
        source_time=source_time,
        paid_amount=client.fen_to_yuan(data.get("pay_amount") or 0) if paid else None,
        ship_deadline=_from_unix(data.get("exp_ship_time")),
    )
    waiting_for_payment = order.is_held and order.hold_reason == HoldReason.PAYMENT_CHECK
    if status == UNPAID and order.status in ACTIVE_STATUSES and not order.is_held and order.paid_amount == 0:
        # Nobody reviews, picks or packs an order the buyer has not paid for; payment releases it.
        services.order_hold(
            order=order, by=DOUYIN, reason=HoldReason.PAYMENT_CHECK, until=None, note=_("Waiting for the buyer to pay on Douyin")
        )
    elif paid and waiting_for_payment:
        services.order_release(order=order, by=DOUYIN)
    elif status == CANCELLED and order.status in ACTIVE_STATUSES:
        services.order_cancel(order=order, by=DOUYIN, reason=_("Cancelled on Douyin"))


# --- After-sales and address changes from the platform --------------------------------------------


def _refund_received(douyin_order: DouyinOrder, data: dict) -> None:
    aftersale_id = str(data.get("aftersale_id", ""))
    if not aftersale_id:
        raise LookupError(_("The refund message has no aftersale_id."))
    deadline = _from_unix(data.get("status_deadline"))
    refund = DouyinRefund.objects.filter(aftersale_id=aftersale_id).first()
    if refund is None:
        order = douyin_order.order
        sku = str(data.get("sku_code", ""))
        case = services.after_sales_open(
            order=order,
            by=DOUYIN,
            kind=AfterSalesKind.REFUND,
            reason=(_("Douyin refund request: %(reason)s") % {"reason": str(data.get("reason_text", "")) or "—"})[:300],
            sku_code=sku if order.lines.filter(sku_code=sku).exists() else "",
            amount=client.fen_to_yuan(data.get("refund_amount") or 0),
        )
        refund = DouyinRefund.objects.create(aftersale_id=aftersale_id, douyin_order=douyin_order, case=case, deadline=deadline)
    elif deadline and refund.deadline != deadline:
        refund.deadline = deadline
        refund.save(update_fields=["deadline"])
    aftersales_deadlines_refresh(douyin_order)


def aftersales_deadlines_refresh(douyin_order: DouyinOrder) -> None:
    """The order's after-sales deadline is the soonest of its requests still waiting for us."""
    soonest = DouyinRefund.objects.filter(douyin_order=douyin_order, case__status=AfterSalesStatus.OPEN).aggregate(
        soonest=Min("deadline")
    )["soonest"]
    if soonest is not None:
        services.order_platform_update(order=douyin_order.order, by=DOUYIN, source_time=None, aftersales_deadline=soonest)


def _address_change_received(douyin_order: DouyinOrder, data: dict) -> None:
    """The buyer's request enters the address-change inbox (workflows/address_changes.py) with the
    masked new receiver; the ciphertexts wait here until the decision is answered."""
    new = data.get("receiver_msg") or {}
    address = new.get("addr") or {}
    masked = _masked_receiver(
        {
            "mask_post_receiver": new.get("mask_name", ""),
            "mask_post_tel": new.get("mask_tel", ""),
            "post_addr": address,
            "mask_post_addr": {"detail": new.get("mask_detail", "")},
        }
    )
    with transaction.atomic():
        change = services.address_change_request(
            order=douyin_order.order, by=DOUYIN, source=AddressChangeSource.PLATFORM, **masked
        )
        DouyinAddressChange.objects.create(
            change=change,
            douyin_order=douyin_order,
            encrypted_name=str(new.get("encrypt_name", "")),
            encrypted_phone=str(new.get("encrypt_tel", "")),
            encrypted_address=str(address.get("encrypt_detail", "")),
            phone_index=search_index_of(str(new.get("encrypt_tel", ""))),
        )


def address_answer_send(*, change_id: int) -> str:
    """Tell the platform the inbox's decision (order.addressConfirm); an approved change's new
    ciphertexts become the order's. Once: an answered request is left alone."""
    row = DouyinAddressChange.objects.select_related("change", "douyin_order__shop").filter(change_id=change_id).first()
    if row is None or row.answered_at is not None or row.change.is_waiting:
        return "nothing to answer"
    approved = row.change.status in (AddressChangeStatus.APPLIED, AddressChangeStatus.REROUTED)
    douyin_order = row.douyin_order
    try:
        client.address_confirm(douyin_order.shop, order_id=douyin_order.platform_order_id, approved=approved)
    except client.DouyinError as exc:
        row.answer_error = str(exc)[:300]
        row.save(update_fields=["answer_error"])
        return "failed"
    with transaction.atomic():
        row.answered_approved, row.answered_at, row.answer_error = approved, timezone.now(), ""
        row.save(update_fields=["answered_approved", "answered_at", "answer_error"])
        if approved:
            douyin_order.encrypted_name = row.encrypted_name
            douyin_order.encrypted_phone = row.encrypted_phone
            douyin_order.encrypted_address = row.encrypted_address
            douyin_order.name_index = search_index_of(row.encrypted_name)
            douyin_order.phone_index = row.phone_index
            douyin_order.phone_tail = row.change.receiver_phone[-4:]
            douyin_order.save()
    return "answered"


def address_answers_due() -> list[int]:
    """Decided platform requests whose answer has not reached the platform (the relay's list)."""
    return list(
        DouyinAddressChange.objects.filter(answered_at__isnull=True)
        .exclude(change__status__in=[AddressChangeStatus.OPEN, AddressChangeStatus.WITH_CARRIER])
        .values_list("change_id", flat=True)[:200]
    )


# --- The pull ------------------------------------------------------------------------------------


def shop_pull(*, shop: DouyinShop) -> int:
    """order.searchList by update time from the shop's cursor, oldest first; returns how many
    different orders were read. Between pages the query restarts at the last update time read (not at the
    next page number): an order updated meanwhile moves to the end of the list instead of
    shifting the pages under us, so nothing is skipped. The cursor is kept after every page."""
    now = timezone.now()
    end = int(now.timestamp())
    start = int(((shop.pull_cursor - PULL_OVERLAP) if shop.pull_cursor else now - FIRST_PULL).timestamp())
    page, read = 0, set()
    try:
        while True:
            orders, _total = client.search_list(shop, updated_from=start, updated_to=end, page=page)
            for data in orders:
                try:
                    order_apply(shop=shop, data=data)
                except services.OrderError as exc:
                    logger.warning("Douyin order %s not applied: %s", data.get("order_id"), exc)
            read.update(str(data.get("order_id")) for data in orders)
            if len(orders) < client.SEARCH_PAGE_SIZE:
                break
            last = int(orders[-1].get("update_time") or start)
            page, start = (page + 1, start) if last <= start else (0, last)
            DouyinShop.objects.filter(pk=shop.pk).update(pull_cursor=_from_unix(start))
    except client.DouyinError as exc:
        DouyinShop.objects.filter(pk=shop.pk).update(last_pull_error=str(exc)[:300])
        raise
    DouyinShop.objects.filter(pk=shop.pk).update(pull_cursor=_from_unix(end), last_pull_at=now, last_pull_error="")
    return len(read)


def pull_all() -> int:
    """Beat: every enabled shop's pull; one shop's trouble does not stop the others."""
    if client.mode() == "off":
        return 0
    read = 0
    for shop in DouyinShop.objects.filter(enabled=True):
        try:
            if shop.access_token_expires_at and shop.access_token_expires_at - timezone.now() < datetime.timedelta(days=1):
                client.token_refresh(shop)  # a day ahead: a failing refresh is alerted while the token still works
            read += shop_pull(shop=shop)
        except client.DouyinError as exc:
            logger.warning("Douyin pull of shop %s failed: %s", shop.shop_id, exc)
    return read


# --- The buyer's receiver ------------------------------------------------------------------------


def orders_by_phone(phone: str) -> list[int]:
    """Orders whose receiver has this phone, through the platform's search index (asked once per
    app); never by storing or comparing the plaintext."""
    found: list[int] = []
    if client.mode() == "off":
        return found
    asked: set[str] = set()
    for shop in DouyinShop.objects.filter(enabled=True).order_by("pk"):
        if shop.app_key in asked:
            continue
        asked.add(shop.app_key)
        # A number's index is stable per app: kept in the cache under a keyed digest of the
        # number (never the number itself), so a repeated lookup asks the platform once a day.
        digest = hmac.new(settings.SECRET_KEY.encode(), phone.encode(), hashlib.sha256).hexdigest()
        cache_key = f"douyin:phone-index:{shop.app_key}:{digest}"
        index = cache.get(cache_key)
        if index is None:
            try:
                index = client.batch_search_index(shop, [(phone, client.INDEX_PHONE)]).get(phone, "")
            except client.DouyinError as exc:
                logger.warning("Douyin search index unavailable for shop %s: %s", shop.shop_id, exc)
                continue
            cache.set(cache_key, index, 24 * 3600)
        if index:
            found += DouyinOrder.objects.filter(shop__app_key=shop.app_key, phone_index=index).values_list("order_id", flat=True)
    return found


def orders_by_tail(tail: str) -> list[int]:
    return list(DouyinOrder.objects.filter(phone_tail=tail).order_by("-order__placed_at").values_list("order_id", flat=True)[:50])


def receiver_decrypt(*, order: Order, by: Actor) -> dict:
    """The receiver in plaintext for the waybill, for a role that prints waybills
    (rules.ACTION_ROLES["decrypt_receiver"]). Logged (who, which order, when, the virtual
    number's expiry); the plaintext is returned to be shown once and is written nowhere."""
    role = services.check_may(by, "decrypt_receiver")
    douyin_order = DouyinOrder.objects.select_related("shop").get(order=order)
    ciphers = [douyin_order.encrypted_name, douyin_order.encrypted_phone, douyin_order.encrypted_address]
    log = DecryptLog(douyin_order=douyin_order, user=by.user, user_name=by.name[:64], role=role)
    try:
        plain = client.batch_decrypt(douyin_order.shop, [(douyin_order.platform_order_id, text) for text in ciphers])
        name, phone, address = (plain[text] for text in ciphers)
    except (client.DouyinError, KeyError) as exc:
        log.succeeded, log.error = False, str(exc)[:300]
        log.save()
        raise services.OrderError(_("The platform did not decrypt the receiver: %(error)s") % {"error": str(exc)[:120]}) from exc
    log.virtual_number_expires_at = phone.virtual_expires_at
    log.save()
    services.phone_reveal(order=order, by=by)
    return {
        "name": name.text,
        "phone": phone.text,
        "address": " ".join(part for part in (order.province, order.city, order.district, address.text) if part),
        "virtual_expires_at": phone.virtual_expires_at,
    }


# --- The shipping write-back ---------------------------------------------------------------------


def write_back_queue(*, order: Order) -> list[ShippingWriteBack]:
    """Every parcel of a shipped Douyin order, once per (order, waybill), sent after commit."""
    douyin_order = DouyinOrder.objects.filter(order=order).first()
    if douyin_order is None or client.mode() == "off":
        return []
    rows = []
    for shipment in order.shipments.all():
        try:
            with transaction.atomic():
                row, created = ShippingWriteBack.objects.get_or_create(
                    douyin_order=douyin_order,
                    tracking_number=shipment.tracking_number,
                    defaults={"shipment": shipment, "carrier_code": shipment.carrier_code},
                )
        except IntegrityError:
            row, created = (
                ShippingWriteBack.objects.get(douyin_order=douyin_order, tracking_number=shipment.tracking_number),
                False,
            )
        rows.append(row)
        if created:
            transaction.on_commit(lambda pk=row.pk: _enqueue_write_back(pk))
    return rows


def _enqueue_write_back(pk: int) -> None:
    from integrations.douyin.tasks import send_write_back

    outbox.enqueue(send_write_back, pk)


def write_back_send(*, write_back_id: int) -> str:
    """Send one write-back if it is due and nobody else holds it. The claim (attempts + 1 and
    the next attempt pushed past a lease, in its own short transaction) means two workers never
    send the same row at once; only the platform's own trouble is retried, with backoff; a
    refusal is kept on the order as an exception for the dispatcher."""
    row = outbox.claim_due(
        outbox.unsent(ShippingWriteBack).select_related("douyin_order__shop", "douyin_order__order"), write_back_id, of=("self",)
    )
    if row is None:
        return "not due"
    douyin_order = row.douyin_order
    try:
        client.logistics_add(
            douyin_order.shop,
            order_id=douyin_order.platform_order_id,
            company_code=DOUYIN_COMPANY_CODES.get(row.carrier_code, row.carrier_code),
            tracking_number=row.tracking_number,
        )
    except client.DouyinError as exc:
        wait = outbox.backoff(row.attempts, first=30, cap=3600)
        outcome = outbox.send_failed(row, exc, max_attempts=MAX_ATTEMPTS, wait=wait, error_code=exc.code[:32])
        if outcome == "refused":
            services.order_tag_add(
                order=douyin_order.order,
                by=DOUYIN,
                tag=RiskTag.PLATFORM_WRITEBACK_FAILED,
                note=_("Douyin refused the shipping write-back of %(number)s: %(error)s")
                % {"number": row.tracking_number, "error": exc.message or exc.code},
            )
        return outcome
    outbox.mine(row).update(status=WriteBackStatus.SENT, sent_at=timezone.now(), error_code="", last_error="")
    return "sent"


def write_backs_relay(*, now: datetime.datetime | None = None, limit: int = 200) -> int:
    return outbox.relay(outbox.unsent(ShippingWriteBack), lambda pk: write_back_send(write_back_id=pk), now=now, limit=limit)


def shipped_without_write_back(*, since: datetime.datetime) -> list[int]:
    """Douyin orders shipped since `since` with a parcel not yet in the outbox: the reactions
    relay's safety net for a nudge lost between the ship's commit and the reaction."""
    written = ShippingWriteBack.objects.filter(
        douyin_order__order_id=OuterRef("order_id"), tracking_number=OuterRef("tracking_number")
    )
    unsent = Shipment.objects.filter(
        order__douyin__isnull=False, order__status=OrderStatus.SHIPPED, order__shipped_at__gte=since
    ).filter(~Exists(written))
    return list(unsent.values_list("order_id", flat=True).distinct()[:200])


# --- Feed health ---------------------------------------------------------------------------------


def feed_health(*, now: datetime.datetime | None = None) -> list[dict]:
    """Per shop: last push and pull, messages in the last hour against the usual hourly rate (the
    last 7 days), waiting messages, refused write-backs, and the tokens' expiry."""
    now = now or timezone.now()
    hour, week = now - datetime.timedelta(hours=1), now - datetime.timedelta(days=7)
    rows = []
    for shop in DouyinShop.objects.order_by("name").annotate(
        last_hour=Count("messages", filter=Q(messages__received_at__gte=hour)),
        last_week=Count("messages", filter=Q(messages__received_at__gte=week)),
        waiting=Count("messages", filter=Q(messages__state=MessageState.WAITING)),
    ):
        first = shop.messages.filter(received_at__gte=week).aggregate(first=Min("received_at"))["first"]
        hours = max((now - first).total_seconds() / 3600, 1) if first else 0
        usual = round(shop.last_week / hours, 1) if hours else 0
        silence = settings.DOUYIN["SILENCE_MINUTES"]
        rows.append(
            {
                "shop": shop,
                "last_hour": shop.last_hour,
                "usual_per_hour": usual,
                "waiting": shop.waiting,
                "refused_write_backs": ShippingWriteBack.objects.filter(
                    douyin_order__shop=shop, status=WriteBackStatus.REFUSED
                ).count(),
                "silent": shop.enabled
                and usual >= 1
                and (shop.last_push_at is None or shop.last_push_at < now - datetime.timedelta(minutes=silence)),
                "token_expiring": shop.enabled and _token_expiring(shop, now),
            }
        )
    return rows


def _token_expiring(shop: DouyinShop, now: datetime.datetime) -> bool:
    """The pull refreshes a token a day before it expires (pull_all): one that comes within the
    warning window means the refresh keeps failing."""
    warn = datetime.timedelta(hours=settings.DOUYIN["TOKEN_WARN_HOURS"])
    return shop.access_token_expires_at is None or shop.access_token_expires_at < now + warn
