"""The WeChat mini-program's shipping information upload (issue 15) through the real client against
the fake WeChat over HTTP: the upload when a mini-program order ships here, its one update,
outages retried and never duplicated, refusals visible on the card as an exception."""

import datetime

import pytest
import time_machine
from django.core.cache import cache
from django.utils import timezone

from integrations.wechat import client, shipping
from integrations.wechat.fake_server import FakeWeChat
from integrations.wechat.models import MessageStatus, ShippingUpload, ShippingUploadKind
from orders.access import Actor
from orders.models import Order, OrderTag, Shipment
from orders.services import order_change_waybill, order_ship
from tests.conftest import PASSWORD, make_order
from workflows import reactions

pytestmark = pytest.mark.django_db
TRADE_NO = "MP202612020000001"
PAYER = "oMiniPayer" + "x" * 18


@pytest.fixture
def fake_miniprogram(settings):
    fake = FakeWeChat(miniprogram_app_id="wxminitest", miniprogram_app_secret="mini-secret", mch_id="1230000109").start()
    settings.WECHAT_MINIPROGRAM = {
        "SANDBOX": True,
        "BASE_URL": fake.url,
        "APP_ID": "wxminitest",
        "APP_SECRET": "mini-secret",
        "MCH_ID": "1230000109",
    }
    cache.delete_many([client.MINIPROGRAM_TOKEN_KEY, client.MINIPROGRAM_TOKEN_LOCK_KEY])
    yield fake
    fake.stop()
    cache.delete_many([client.MINIPROGRAM_TOKEN_KEY, client.MINIPROGRAM_TOKEN_LOCK_KEY])


def shipped_mini_order(*, tracking_number: str = "SF1400000000001", carrier_code: str = "shunfeng", **fields) -> Order:
    """A packed mini-program order shipped through the real service; its reactions run as the
    reactions relay runs them (the tests have no worker to receive the after-commit nudge)."""
    order = make_order(
        status="packed",
        source="miniprogram",
        phone="13912345678",
        carrier_code=carrier_code,
        platform_order_id=fields.pop("platform_order_id", TRADE_NO),
        platform_buyer_id=PAYER,
        **fields,
    )
    order = order_ship(order=order, by=Actor.system("WMS"), carrier_code=carrier_code, tracking_number=tracking_number)
    reactions.reactions_relay()
    return order


def send(upload: ShippingUpload) -> str:
    outcome = shipping.shipping_upload_send(upload_id=upload.pk)
    upload.refresh_from_db()
    return outcome


def later(upload: ShippingUpload):
    return time_machine.travel(upload.next_attempt_at + datetime.timedelta(seconds=1), tick=False)


def test_shipping_a_mini_program_order_uploads_its_shipping_information(fake_miniprogram):
    order = shipped_mini_order()
    upload = ShippingUpload.objects.get(order=order)
    assert upload.kind == ShippingUploadKind.UPLOAD and upload.status == MessageStatus.PENDING
    assert send(upload) == "sent" and upload.status == MessageStatus.SENT

    [body] = fake_miniprogram.uploads_for(TRADE_NO)
    assert body["order_key"] == {"order_number_type": 1, "mchid": "1230000109", "out_trade_no": TRADE_NO}
    assert body["logistics_type"] == 1 and body["delivery_mode"] == 1 and "is_all_delivered" not in body
    [package] = body["shipping_list"]
    assert package["tracking_no"] == "SF1400000000001" and package["express_company"] == "SF"
    assert package["contact"] == {"receiver_contact": "139****5678"}  # masked, never the full number
    assert "×1" in package["item_desc"] and len(package["item_desc"]) <= 120
    assert body["payer"] == {"openid": PAYER}
    assert datetime.datetime.fromisoformat(body["upload_time"]).utcoffset() == datetime.timedelta(hours=8)
    # The mini-program's own token, not the service account's.
    assert fake_miniprogram.miniprogram_token_requests == 1 and fake_miniprogram.token_requests == 0
    assert upload.body == body


def test_the_relay_queues_a_missed_upload_once(fake_miniprogram):
    order = make_order(status="packed", source="miniprogram", platform_order_id=TRADE_NO, platform_buyer_id=PAYER)
    order_ship(order=order, by=Actor.system("WMS"), carrier_code="zhongtong", tracking_number="ZT7700000001")
    assert not ShippingUpload.objects.filter(order=order).exists()  # the nudge was lost (no worker here)
    reactions.reactions_relay()
    reactions.reactions_relay()
    assert ShippingUpload.objects.filter(order=order).count() == 1


def test_other_orders_upload_nothing(fake_miniprogram):
    order = make_order(status="packed", source="erp")
    order_ship(order=order, by=Actor.system("WMS"), carrier_code="zhongtong", tracking_number="ZT7700000002")
    reactions.reactions_relay()
    assert not ShippingUpload.objects.exists() and fake_miniprogram.shipping_requests == 0


def test_an_outage_is_retried_with_backoff_and_the_upload_made_once(fake_miniprogram):
    upload = ShippingUpload.objects.get(order=shipped_mini_order())
    fake_miniprogram.outage(2)
    assert send(upload) == "retry"
    assert upload.status == MessageStatus.FAILED and upload.attempts == 1 and upload.next_attempt_at > timezone.now()
    assert send(upload) == "not due"  # the backoff holds
    with later(upload):
        assert shipping.shipping_uploads_relay() == 1
        assert send(upload) == "retry"  # still down
    first_wait = upload.next_attempt_at
    with later(upload):
        assert send(upload) == "sent"
    assert upload.attempts == 3 and first_wait - upload.created_at > datetime.timedelta(seconds=30)  # backing off
    assert len(fake_miniprogram.uploads_for(TRADE_NO)) == 1
    with time_machine.travel(timezone.now() + datetime.timedelta(days=1), tick=False):
        assert shipping.shipping_uploads_relay() == 0


def test_a_reply_lost_on_the_way_is_checked_before_uploading_again(fake_miniprogram):
    upload = ShippingUpload.objects.get(order=shipped_mini_order())
    fake_miniprogram.lose_next_reply()
    assert send(upload) == "retry"  # WeChat took it, but we never heard
    with later(upload):
        assert send(upload) == "already there"
    assert upload.status == MessageStatus.SENT
    # Exactly one upload: the payment's one update is still unused.
    assert len(fake_miniprogram.uploads_for(TRADE_NO)) == 1 and fake_miniprogram.shipping[TRADE_NO]["updates"] == 0


def test_system_busy_is_retried_and_a_token_refused_is_refreshed_once(fake_miniprogram):
    upload = ShippingUpload.objects.get(order=shipped_mini_order())
    fake_miniprogram.fail_next_shipping(-1, "system error")
    assert send(upload) == "retry" and upload.errcode == -1
    client.miniprogram_access_token()
    fake_miniprogram.miniprogram_token = "replaced-by-another-process"
    with later(upload):
        assert send(upload) == "sent"
    assert fake_miniprogram.miniprogram_token_requests == 2
    assert len(fake_miniprogram.uploads_for(TRADE_NO)) == 1


def test_a_refusal_opens_the_exception_and_shows_on_the_card(fake_miniprogram, client, people):
    fake_miniprogram.set_payment(TRADE_NO, "refunded")
    order = shipped_mini_order()
    upload = ShippingUpload.objects.get(order=order)
    assert send(upload) == "refused"
    assert upload.status == MessageStatus.REFUSED and upload.errcode == 10060004
    tag = OrderTag.objects.get(order=order, tag="platform_writeback_failed", resolved_at__isnull=True)
    assert tag.due_at is not None
    # Not retried: the payment cannot ship, trying again changes nothing.
    with time_machine.travel(timezone.now() + datetime.timedelta(days=1), tick=False):
        assert shipping.shipping_uploads_relay() == 0
    assert fake_miniprogram.shipping_requests == 1

    client.login(username="courier", password=PASSWORD)
    page = client.get(f"/orders/{order.order_number}/").content.decode()
    assert 'id="tag-platform_writeback_failed"' in page and "平台回传失败" in page
    uploads = page[page.index('id="shipping-uploads"') :][:1500]
    assert "已拒绝" in uploads or "拒绝" in uploads
    assert "不可发货" in uploads  # why, in Chinese
    assert "微信小程序" in page


def test_a_changed_waybill_is_the_one_update_and_a_second_change_is_refused_here(fake_miniprogram, people):
    order = shipped_mini_order()
    assert send(ShippingUpload.objects.get(order=order)) == "sent"
    courier = Actor.of(people["courier"])
    first = Shipment.objects.get(order=order)
    reship = order_change_waybill(
        order=order, by=courier, change="reship", carrier_code="shunfeng", tracking_number="SF1400000000002", replaces=first
    )
    reactions.reactions_relay()
    update = ShippingUpload.objects.get(order=order, kind=ShippingUploadKind.UPDATE)
    assert send(update) == "sent"
    uploads = fake_miniprogram.uploads_for(TRADE_NO)
    assert [body["shipping_list"][0]["tracking_no"] for body in uploads] == ["SF1400000000001", "SF1400000000002"]

    order_change_waybill(
        order=order, by=courier, change="reship", carrier_code="shunfeng", tracking_number="SF1400000000003", replaces=reship
    )
    reactions.reactions_relay()
    refused = ShippingUpload.objects.filter(order=order, kind=ShippingUploadKind.UPDATE, status=MessageStatus.REFUSED).get()
    assert refused.errcode == shipping.UPDATE_USED
    assert OrderTag.objects.filter(order=order, tag="platform_writeback_failed", resolved_at__isnull=True).exists()
    assert fake_miniprogram.shipping_requests == 2  # WeChat was not asked a third time


def test_a_split_shipment_is_a_split_delivery_and_more_than_15_parcels_are_refused_here(fake_miniprogram):
    order = shipped_mini_order()
    Shipment.objects.create(order=order, carrier_code="shunfeng", tracking_number="SF1400000000099")
    upload = ShippingUpload.objects.get(order=order)
    body = shipping.shipping_body(order, now=timezone.now())
    assert body["delivery_mode"] == 2 and body["is_all_delivered"] is True and len(body["shipping_list"]) == 2

    for index in range(14):
        Shipment.objects.create(order=order, carrier_code="shunfeng", tracking_number=f"SF15000000000{index:02d}")
    assert send(upload) == "refused" and upload.errcode == shipping.TOO_MANY_PARCELS
    assert fake_miniprogram.shipping_requests == 0


def test_without_credentials_the_mini_program_is_off_and_nothing_is_sent(fake_miniprogram, settings):
    settings.WECHAT_MINIPROGRAM = {**settings.WECHAT_MINIPROGRAM, "SANDBOX": False, "APP_ID": "", "APP_SECRET": ""}
    assert client.miniprogram_mode() == "off"
    upload = ShippingUpload.objects.get(order=shipped_mini_order())
    assert send(upload) == "refused" and upload.errcode == shipping.NOT_CONFIGURED
    assert fake_miniprogram.shipping_requests == 0 and fake_miniprogram.miniprogram_token_requests == 0


@pytest.mark.parametrize(
    ("change", "errcode"),
    [
        ({"item_desc": "x" * 121}, 10060009),
        ({"item_desc": ""}, 10060008),
        ({"contact": {"receiver_contact": "13912345678"}}, 10060014),
    ],
)
def test_the_fake_enforces_the_upload_rules(fake_miniprogram, change, errcode):
    order = shipped_mini_order()
    body = shipping.shipping_body(order, now=timezone.now())
    body["shipping_list"][0].update(change)
    with pytest.raises(client.WeChatError) as refused:
        client.upload_shipping_info(body)
    assert refused.value.errcode == errcode and refused.value.permanent


@pytest.mark.celery_worker
@pytest.mark.django_db(transaction=True)
def test_through_a_real_worker_the_upload_survives_an_outage_and_is_made_once(fake_miniprogram, settings):
    """Shipped through the service: the after-commit nudge, the reaction and the upload run in a
    real Celery worker; WeChat is down for the first try, the relay (as beat runs it) retries."""
    import os

    from beile.celery import app
    from tests.conftest import database_url_for_subprocess, require_postgres, require_redis, wait_for
    from tests.test_kuaidi100_worker import start_worker

    require_postgres()
    require_redis()
    env = {
        **os.environ,
        "DATABASE_URL": database_url_for_subprocess(),
        "WECHAT_MINIPROGRAM_BASE_URL": fake_miniprogram.url,
        "WECHAT_MINIPROGRAM_APP_ID": "wxminitest",
        "WECHAT_MINIPROGRAM_APP_SECRET": "mini-secret",
        "WECHAT_MINIPROGRAM_MCH_ID": "1230000109",
    }
    app.control.purge()  # tasks other tests left in the queue point at rows that no longer exist
    fake_miniprogram.outage(1)
    worker = start_worker(env)
    try:
        order = make_order(status="packed", source="miniprogram", platform_order_id=TRADE_NO, platform_buyer_id=PAYER)
        order_ship(order=order, by=Actor.system("WMS"), carrier_code="zhongtong", tracking_number="ZT7700000009")
        upload = wait_for(
            lambda: ShippingUpload.objects.filter(order=order, status=MessageStatus.FAILED).first(),
            timeout=60,
            message="the first attempt, refused by the outage",
        )
        assert upload.attempts == 1 and upload.errcode is None

        def uploaded():
            shipping.shipping_uploads_relay()  # what beat does every 15 s
            return ShippingUpload.objects.filter(order=order, status=MessageStatus.SENT).exists()

        wait_for(uploaded, timeout=90, interval=1.0, message="the retried upload")
    finally:
        worker.kill()
        worker.wait(timeout=10)
    assert len(fake_miniprogram.uploads_for(TRADE_NO)) == 1
    assert ShippingUpload.objects.filter(order=order).count() == 1
