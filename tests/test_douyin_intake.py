"""Douyin shop intake (issue 15), the real client against the fake platform over HTTP: pushed
orders appear once (replays and out-of-order messages included), the pull catches a missed push,
bad signatures are refused, the buyer's receiver stays encrypted, and the platform is told."""

from __future__ import annotations

import datetime
import json
import time
from decimal import Decimal

import pytest
from django.apps import apps
from django.core.cache import cache
from django.db import models
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from integrations.douyin import client, services
from integrations.douyin.models import (
    DecryptLog,
    DouyinMessage,
    DouyinOrder,
    DouyinShop,
    MessageState,
    ShippingWriteBack,
    WriteBackStatus,
)
from orders import services as order_services
from orders.access import Actor
from orders.models import (
    AddressChangeRequest,
    AddressChangeSource,
    AddressChangeStatus,
    AfterSalesCase,
    HoldReason,
    Order,
    OrderSource,
    OrderStatus,
)
from tests.douyin_fixtures import apply_all, fake_douyin, push, shops  # noqa: F401 - fixtures
from workflows import reactions
from workflows.address_changes import address_change_handle
from workflows.frontline.lookup import lookup
from workflows.health import douyin_feed
from workflows.models import Alert

pytestmark = pytest.mark.django_db


def the_order(platform_order: dict) -> Order:
    return Order.objects.get(platform_order_id=platform_order["order_id"])


def test_a_pushed_order_appears_once_with_exact_yuan_whatever_the_order_of_its_messages(fake_douyin, shops):
    placed = fake_douyin.new_order(shops[0].shop_id, lines=2)
    created = fake_douyin.trade_message(placed["order_id"], "create")
    fake_douyin.pay(placed["order_id"])
    paid = fake_douyin.trade_message(placed["order_id"], "paid")
    # Paid arrives before created, then both again (the platform retries what it thinks was lost).
    for message in (paid, created, paid, created):
        response = push(fake_douyin, [message])
        assert response.status_code == 200 and response.json() == {"code": 0, "msg": "success"}
    assert DouyinMessage.objects.count() == 2
    apply_all()
    apply_all()
    assert Order.objects.filter(platform_order_id=placed["order_id"]).count() == 1
    order = the_order(placed)
    assert order.source == OrderSource.PLATFORM and order.platform_shop == shops[0].name
    assert order.total_amount == Decimal(placed["order_amount"]) / 100
    assert order.paid_amount == Decimal(placed["pay_amount"]) / 100 and isinstance(order.paid_amount, Decimal)
    assert (
        sum(line.unit_price * line.quantity for line in order.lines.all())
        == Decimal(sum(sku["pay_amount"] for sku in placed["sku_order_list"])) / 100
    )
    assert order.platform_ship_deadline == datetime.datetime.fromtimestamp(placed["exp_ship_time"], tz=datetime.UTC)
    assert not order.is_held and order.status == OrderStatus.PENDING_REVIEW
    assert set(DouyinMessage.objects.values_list("state", flat=True)) == {MessageState.APPLIED}


def test_an_unpaid_order_waits_on_hold_until_the_buyer_pays_and_a_cancel_cancels(fake_douyin, shops):
    placed = fake_douyin.new_order(shops[1].shop_id)
    push(fake_douyin, [fake_douyin.trade_message(placed["order_id"], "create")])
    apply_all()
    order = the_order(placed)
    assert order.is_held and order.hold_reason == HoldReason.PAYMENT_CHECK and order.paid_amount == 0
    fake_douyin.pay(placed["order_id"])
    push(fake_douyin, [fake_douyin.trade_message(placed["order_id"], "paid")])
    apply_all()
    order.refresh_from_db()
    assert not order.is_held and order.paid_amount == order.total_amount

    other = fake_douyin.new_order(shops[1].shop_id)
    fake_douyin.cancel(other["order_id"])
    push(fake_douyin, [fake_douyin.trade_message(other["order_id"], "cancel")])  # the cancel alone
    apply_all()
    assert the_order(other).status == OrderStatus.CANCELLED


def test_a_bad_signature_or_a_malformed_push_is_refused_and_nothing_is_stored(fake_douyin, shops):
    placed = fake_douyin.new_order(shops[0].shop_id)
    message = fake_douyin.trade_message(placed["order_id"], "create")
    assert push(fake_douyin, [message], secret="not-the-secret").status_code == 401
    body, headers = fake_douyin.signed_push([message])
    url = reverse("douyin_push")
    assert Client().post(url, data=body, content_type="application/json").status_code == 401  # unsigned
    unknown_app = Client().post(
        url, data=body, content_type="application/json", headers={"app-id": "1", "event-sign": headers["event-sign"]}
    )
    assert unknown_app.status_code == 401
    for broken in (
        [{"tag": "x", "msg_id": "1", "data": {"p_id": 1}}],
        {"tag": "x"},
        [],
        [{"msg_id": "2", "data": "{}"}],
        [{"tag": "t", "msg_id": "3", "data": "[1]"}],
    ):
        bad_body, bad_headers = fake_douyin.signed_push([message])
        bad_body = json.dumps(broken).encode()
        signed = client.push_sign(app_key=shops[0].app_key, secret=shops[0].app_secret, body=bad_body)
        response = Client().post(
            url, data=bad_body, content_type="application/json", headers={"app-id": shops[0].app_key, "event-sign": signed}
        )
        assert response.status_code == 400 and response.json()["msg"], broken
    # A message for a shop of another app is not this app's to send.
    foreign = dict(message, data=json.dumps({**json.loads(message["data"]), "shop_id": 1}))
    foreign_body = json.dumps([foreign]).encode()
    signed = client.push_sign(app_key=shops[0].app_key, secret=shops[0].app_secret, body=foreign_body)
    assert (
        Client()
        .post(url, data=foreign_body, content_type="application/json", headers={"app-id": shops[0].app_key, "event-sign": signed})
        .status_code
        == 400
    )
    signature = {"app-id": headers["app-id"], "event-sign": headers["event-sign"]}
    assert Client().post(url, data=body, content_type="text/plain", headers=signature).status_code == 415
    assert not DouyinMessage.objects.exists() and not Order.objects.exists()


def test_the_pull_catches_missed_pushes_across_pages_and_agrees_with_later_pushes(fake_douyin, shops):
    shop = shops[2]
    placed = [fake_douyin.new_order(shop.shop_id) for _ in range(130)]
    for order in placed[:120]:
        fake_douyin.pay(order["order_id"])
    assert services.shop_pull(shop=DouyinShop.objects.get(pk=shop.pk)) == 130
    assert Order.objects.filter(platform_shop=shop.name).count() == 130
    assert Order.objects.filter(platform_shop=shop.name, is_held=True).count() == 10  # not paid yet
    # A page boundary was crossed by restarting at the last update time read, not by page number.
    assert any(call["page"] == 0 and call["update_time_start"] > 0 for call in fake_douyin.calls_of("order.searchList")[1:])
    # The push arriving late, and the next pull, change nothing.
    push(fake_douyin, [fake_douyin.trade_message(placed[0]["order_id"], "paid")])
    apply_all()
    shop.refresh_from_db()
    assert shop.last_pull_at is not None and shop.pull_cursor is not None
    services.shop_pull(shop=shop)
    assert Order.objects.filter(platform_shop=shop.name).count() == 130
    # Paid after the first pull: the next pull releases its payment hold.
    fake_douyin.pay(placed[125]["order_id"])
    services.shop_pull(shop=DouyinShop.objects.get(pk=shop.pk))
    assert not the_order(placed[125]).is_held


def _pushed_paid_order(fake_douyin, shop) -> tuple[dict, Order]:
    placed = fake_douyin.new_order(shop.shop_id)
    fake_douyin.pay(placed["order_id"])
    push(fake_douyin, [fake_douyin.trade_message(placed["order_id"], "paid")])
    apply_all()
    return placed, the_order(placed)


def _text_columns() -> list[tuple[type[models.Model], str]]:
    kinds = (models.CharField, models.TextField, models.JSONField)
    return [
        (model, field.name)
        for model in apps.get_models()
        for field in model._meta.concrete_fields
        if isinstance(field, kinds) and model._meta.managed
    ]


def test_the_receiver_is_stored_encrypted_and_decrypted_once_for_the_waybill_with_a_log(fake_douyin, shops, people):
    placed, order = _pushed_paid_order(fake_douyin, shops[0])
    buyer = placed["_buyer"]
    assert order.receiver_name == placed["mask_post_receiver"] and "****" in order.receiver_phone
    douyin_order = DouyinOrder.objects.get(order=order)
    assert douyin_order.encrypted_phone == placed["encrypt_post_tel"] and douyin_order.phone_tail == buyer["phone"][-4:]
    url = reverse("douyin_receiver", args=[order.order_number])
    packer = Client()
    packer.force_login(people["packer"])
    assert packer.post(url).status_code == 403  # packing needs no full receiver
    dispatcher = Client()
    dispatcher.force_login(people["dispatcher"])
    card = reverse("order_card", args=[order.order_number])
    assert url in dispatcher.get(card).content.decode() and url not in packer.get(card).content.decode()
    assert 'id="customer-phone">—<' in dispatcher.get(card).content.decode()  # the buyer's key is no number
    page = dispatcher.get(url).content.decode()
    assert buyer["name"] not in page and buyer["detail"] not in page
    shown = dispatcher.post(url)
    html = shown.content.decode()
    assert buyer["name"] in html and buyer["detail"] in html
    assert "虚拟号" in html  # the virtual number and until when it works
    assert "no-store" in shown["Cache-Control"]
    log = DecryptLog.objects.get()
    assert log.user == people["dispatcher"] and log.succeeded and log.virtual_number_expires_at is not None
    # Never stored: no text column anywhere holds the buyer's name, phone, detail or virtual number.
    virtual = fake_douyin._decrypt(
        {"shop_id": shops[0].shop_id}, {"cipher_infos": [{"cipher_text": placed["encrypt_post_tel"]}]}
    )[1]["data"]["decrypt_infos"][0]["decrypt_text"]
    for model, name in _text_columns():
        for secret in (buyer["name"], buyer["phone"], buyer["detail"], virtual):
            if isinstance(model._meta.get_field(name), models.JSONField):
                held = any(
                    secret in json.dumps(value, ensure_ascii=False) for value in model.objects.values_list(name, flat=True)
                )
            else:
                held = model.objects.filter(**{f"{name}__contains": secret}).exists()
            assert not held, f"{model.__name__}.{name} holds {secret}"


def test_lookup_by_the_phone_the_customer_says_or_its_tail_finds_the_encrypted_order(fake_douyin, shops):
    placed, order = _pushed_paid_order(fake_douyin, shops[1])
    _pushed_paid_order(fake_douyin, shops[1])  # another buyer
    phone = placed["_buyer"]["phone"]
    cache.clear()  # the cache outlives a test: another test's buyer may have had this number
    found = lookup(f"{phone[:3]} {phone[3:7]} {phone[7:]}")
    assert [o.pk for o in found.orders] == [order.pk]
    asked = len(fake_douyin.calls_of("order.BatchSearchIndex"))
    assert asked >= 1
    # The number's index is kept (under a keyed digest): the next lookup does not ask again.
    assert [o.pk for o in lookup(phone).orders] == [order.pk]
    assert len(fake_douyin.calls_of("order.BatchSearchIndex")) == asked
    by_tail = lookup(f"尾号{phone[-4:]}")
    assert order.pk in [o.pk for o in by_tail.orders]


def _ship(order: Order, people, tracking: str = "ZT7300000001") -> Order:
    order_services.order_transition(order=order, name="approve", by=Actor.of(people["reviewer"]))
    order_services.order_transition(order=order, name="start_picking", by=Actor.of(people["dispatcher"]))
    order_services.order_transition(order=order, name="pack", by=Actor.system("WMS"))
    return order_services.order_ship(order=order, by=Actor.system("WMS"), carrier_code="zhongtong", tracking_number=tracking)


def _shipped_reaction(order: Order) -> None:
    event = order.events.filter(kind="status", payload__to="shipped").get()
    reactions.react_to_status_event(event_id=event.pk)


def test_the_ship_write_back_survives_an_outage_and_is_never_doubled(fake_douyin, shops, people):
    placed, order = _pushed_paid_order(fake_douyin, shops[0])
    order = _ship(order, people)
    fake_douyin.fail_next(3)  # the platform is down for three calls
    reactions.reactions_relay()  # the nudge was lost (a crash after the ship's commit): the relay queues it
    _shipped_reaction(order)  # and a late nudge
    _shipped_reaction(order)
    row = ShippingWriteBack.objects.get()
    for _attempt in range(5):
        ShippingWriteBack.objects.filter(pk=row.pk).update(next_attempt_at=timezone.now())  # the backoff has passed
        services.write_backs_relay()
    row.refresh_from_db()
    assert row.status == WriteBackStatus.SENT and row.attempts == 4
    assert fake_douyin.shipped == [
        {"order_id": placed["order_id"], "company_code": "zhongtong", "logistics_code": "ZT7300000001"}
    ]
    _shipped_reaction(order)
    assert services.write_backs_relay() == 0 and len(fake_douyin.calls_of("order.logisticsAdd")) == 4


def test_a_refused_write_back_is_visible_on_the_order_as_an_exception(fake_douyin, shops, people):
    placed, order = _pushed_paid_order(fake_douyin, shops[0])
    order = _ship(order, people, tracking="ZT7300000002")
    fake_douyin.cancel(placed["order_id"])  # cancelled on the platform meanwhile: it refuses
    _shipped_reaction(order)
    services.write_backs_relay()
    row = ShippingWriteBack.objects.get()
    assert row.status == WriteBackStatus.REFUSED and "取消" in row.last_error
    tag = order.tags.get(tag="platform_writeback_failed")
    assert tag.resolved_at is None
    assert "ZT7300000002" in order.events.get(kind="tag", payload__tag="platform_writeback_failed").payload["note"]


def test_a_platform_address_change_enters_the_inbox_and_the_decision_is_answered(fake_douyin, shops, people):
    placed, order = _pushed_paid_order(fake_douyin, shops[0])
    message = fake_douyin.address_change_message(placed["order_id"])
    new_buyer = fake_douyin.orders[placed["order_id"]]["_pending_receiver"][0]
    push(fake_douyin, [message])
    apply_all()
    change = AddressChangeRequest.objects.get(order=order)
    assert change.source == AddressChangeSource.PLATFORM and change.status == AddressChangeStatus.OPEN
    assert change.receiver_phone.endswith(new_buyer["phone"][-4:]) and new_buyer["phone"] not in change.receiver_phone
    change = address_change_handle(change=change, by=Actor.of(people["reviewer"]))
    assert change.status == AddressChangeStatus.APPLIED
    event = order.events.filter(kind="address_change", payload__action="applied").get()
    reactions.react_to_status_event(event_id=event.pk)
    reactions.react_to_status_event(event_id=event.pk)  # answered once
    assert fake_douyin.address_answers == [{"order_id": placed["order_id"], "approved": True}]
    douyin_order = DouyinOrder.objects.get(order=order)
    assert douyin_order.phone_tail == new_buyer["phone"][-4:]
    assert douyin_order.encrypted_phone == fake_douyin.orders[placed["order_id"]]["encrypt_post_tel"]
    assert lookup(new_buyer["phone"]).orders == [Order.objects.get(pk=order.pk)]


def test_a_refund_opens_a_case_and_its_deadline_is_the_platform_clock(fake_douyin, shops, people):
    placed, order = _pushed_paid_order(fake_douyin, shops[1])
    refund = fake_douyin.refund_message(placed["order_id"], deadline_in_hours=1, amount=1999)
    push(fake_douyin, [refund])
    apply_all()
    case = AfterSalesCase.objects.get(order=order)
    assert case.kind == "refund" and case.amount == Decimal("19.99")
    order.refresh_from_db()
    first = order.platform_aftersales_deadline
    assert first is not None and timezone.now() < first < timezone.now() + datetime.timedelta(hours=1, minutes=1)
    push(fake_douyin, [fake_douyin.refund_deadline_message(refund, deadline_in_hours=5)])
    apply_all()
    order.refresh_from_db()
    assert order.platform_aftersales_deadline > first + datetime.timedelta(hours=3)
    assert AfterSalesCase.objects.filter(order=order).count() == 1
    # Answered here: no request is left open, so the platform's after-sales clock stops.
    order_services.after_sales_decide(
        case=AfterSalesCase.objects.get(order=order), by=Actor.of(people["service"]), approve=True, reason="同意退款"
    )
    order.refresh_from_db()
    assert order.platform_aftersales_deadline is None and order.refund_amount == Decimal("19.99")


def test_a_message_before_its_order_is_on_the_platform_waits_and_is_applied_later(fake_douyin, shops):
    placed = fake_douyin.new_order(shops[0].shop_id)
    message = fake_douyin.trade_message(placed["order_id"], "create")
    fake_douyin.fail_next(1)
    push(fake_douyin, [message])
    apply_all()
    assert DouyinMessage.objects.get().state == MessageState.WAITING and not Order.objects.exists()
    assert services.messages_relay() == 1
    assert DouyinMessage.objects.get().state == MessageState.APPLIED and Order.objects.count() == 1


def test_tokens_are_refreshed_before_they_expire(fake_douyin, shops):
    shop = shops[0]
    client.order_detail(shop, fake_douyin.new_order(shop.shop_id)["order_id"])
    assert len(fake_douyin.calls_of("token.create")) == 1
    shop.access_token_expires_at = timezone.now() + datetime.timedelta(minutes=5)
    shop.save()
    client.order_detail(shop, fake_douyin.new_order(shop.shop_id)["order_id"])
    assert len(fake_douyin.calls_of("token.refresh")) == 1
    shop.refresh_from_db()
    assert shop.access_token_expires_at > timezone.now() + datetime.timedelta(days=6)


def test_a_silent_shop_and_an_expiring_token_alert_the_supervisor_once(fake_douyin, shops, people):
    quiet, expiring = shops[0], shops[1]
    long_ago = timezone.now() - datetime.timedelta(hours=3)
    for n in range(60):
        DouyinMessage.objects.create(
            msg_id=f"old-{n}",
            tag="doudian_trade_TradePaid",
            shop=quiet,
            data="{}",
            received_at=long_ago - datetime.timedelta(minutes=30 * n),
            state=MessageState.APPLIED,
        )
    DouyinShop.objects.filter(pk=quiet.pk).update(
        last_push_at=long_ago, access_token_expires_at=timezone.now() + datetime.timedelta(days=5)
    )
    DouyinShop.objects.filter(pk=expiring.pk).update(
        last_push_at=timezone.now(), access_token_expires_at=timezone.now() + datetime.timedelta(hours=2)
    )
    DouyinShop.objects.filter(pk=shops[2].pk).update(access_token_expires_at=timezone.now() + datetime.timedelta(days=5))
    assert douyin_feed.feed_watch() == 2
    assert douyin_feed.feed_watch() == 0
    messages = list(Alert.objects.values_list("message", flat=True))
    assert any(quiet.name in text for text in messages) and any(expiring.name in text for text in messages)
    page = Client()
    page.force_login(people["supervisor"])
    html = page.get(reverse("health:douyin_feed")).content.decode()
    assert quiet.name in html and "douyin-shop-" in html


@pytest.mark.parametrize(
    "body", [b"[1, 2]", b'"x"', b"42", b"null", b"{", b"\xff\xfe", b"[" * 60000, b'[{"tag": "t", "msg_id": true, "data": "{}"}]']
)
def test_a_hostile_push_is_400_with_a_message_and_nothing_is_stored(fake_douyin, shops, body):
    signed = client.push_sign(app_key=shops[0].app_key, secret=shops[0].app_secret, body=body)
    caller = Client(raise_request_exception=False)
    response = caller.post(
        reverse("douyin_push"),
        data=body,
        content_type="application/json",
        headers={"app-id": shops[0].app_key, "event-sign": signed},
    )
    assert response.status_code == 400 and response.json()["msg"]
    assert not DouyinMessage.objects.exists()


def test_a_huge_push_is_refused_before_it_is_read(fake_douyin, shops):
    body = b"[" + b" " * services.MAX_PUSH_BYTES + b"]"
    caller = Client(raise_request_exception=False)
    response = caller.post(
        reverse("douyin_push"),
        data=body,
        content_type="application/json",
        headers={"app-id": shops[0].app_key, "event-sign": "x"},
    )
    assert response.status_code == 413 and not DouyinMessage.objects.exists()


def test_a_message_with_nonsense_values_waits_visibly_and_never_breaks_the_relay(fake_douyin, shops):
    placed, order = _pushed_paid_order(fake_douyin, shops[0])
    refund = fake_douyin.refund_message(placed["order_id"])
    refund["data"] = json.dumps({**json.loads(refund["data"]), "refund_amount": "lots"})
    push(fake_douyin, [refund])
    apply_all()
    waiting = DouyinMessage.objects.get(msg_id=refund["msg_id"])
    assert waiting.state == MessageState.WAITING and waiting.last_error
    assert not AfterSalesCase.objects.filter(order=order).exists()


@pytest.mark.django_db(transaction=True)
def test_the_demo_stream_pushes_over_http_and_every_order_arrives_once(live_server, fake_douyin, shops):
    fake_douyin.push_url = live_server.url + reverse("douyin_push")
    for _step in range(4):
        fake_douyin._stream_step()
    assert fake_douyin.pushes and all(status == 200 for _messages, status in fake_douyin.pushes)
    services.messages_relay()
    services.pull_all()  # and the orders whose pushes the stream "lost"
    on_platform = set(fake_douyin.orders)
    assert set(Order.objects.filter(source=OrderSource.PLATFORM).values_list("platform_order_id", flat=True)) == on_platform
    assert DouyinOrder.objects.count() == len(on_platform)


def test_while_intake_is_off_a_push_is_not_taken_and_nothing_is_pulled(fake_douyin, shops, settings):
    settings.DOUYIN = {**settings.DOUYIN, "ENABLED": False}
    placed = fake_douyin.new_order(shops[0].shop_id)
    assert push(fake_douyin, [fake_douyin.trade_message(placed["order_id"], "create")]).status_code == 503
    assert services.pull_all() == 0 and not fake_douyin.calls and not DouyinMessage.objects.exists()


def test_a_platform_address_change_after_the_parcel_left_is_answered_no(fake_douyin, shops, people):
    placed, order = _pushed_paid_order(fake_douyin, shops[2])
    _ship(order, people, tracking="ZT7300000003")  # shipped here; the buyer asks before the platform hears
    push(fake_douyin, [fake_douyin.address_change_message(placed["order_id"])])
    apply_all()
    change = address_change_handle(change=AddressChangeRequest.objects.get(order=order), by=Actor.of(people["service"]))
    assert change.status == AddressChangeStatus.REFUSED
    reactions.react_to_status_event(event_id=order.events.get(kind="address_change", payload__action="refused").pk)
    assert fake_douyin.address_answers == [{"order_id": placed["order_id"], "approved": False}]


def test_an_order_changing_between_two_pages_of_a_pull_skips_no_other_order(fake_douyin, shops):
    shop = shops[0]
    placed = [fake_douyin.new_order(shop.shop_id) for _ in range(150)]
    base = int(time.time()) - 3600
    for n, order in enumerate(placed):
        order["update_time"] = base + n  # one a second: the list's order is the update order
    # While the puller reads page 0, the fourth order is paid and moves to the end of the list;
    # asking for "page 1" next would miss the order that slid into page 0's last place.
    fake_douyin.after_next_page = lambda: fake_douyin.pay(placed[3]["order_id"])
    services.shop_pull(shop=shop)
    assert Order.objects.filter(platform_shop=shop.name).count() == 150
