"""WeChat pushes through the outbox against the fake WeChat over real HTTP: the central token,
a token expiring mid-batch, every errcode path, idempotency, the delivery report."""

import hashlib
import time

import pytest
import requests
import time_machine
from django.utils import timezone

from integrations.wechat import client, services
from integrations.wechat.fake_server import FakeWeChat
from integrations.wechat.models import CustomerMessage, MessageStatus
from tests.conftest import make_order
from tests.logistics_fixtures import bind_customer, fake_wechat  # noqa: F401 - fixture
from workflows import notifications

pytestmark = pytest.mark.django_db


def queued(*, event_key: str = "shipped", bound: bool = True, phone: str = "13800138000", **order_fields) -> CustomerMessage:
    order = make_order(status="shipped", phone=phone, **order_fields)
    if bound:
        bind_customer(order)
    return notifications.customer_push_order_status(order=order, event_key=event_key)


def send(message: CustomerMessage) -> str:
    outcome = services.customer_message_send(message_id=message.pk)
    message.refresh_from_db()
    return outcome


def test_a_push_is_a_row_first_then_sent_with_the_template_values(fake_wechat):
    message = queued()
    assert message.status == MessageStatus.PENDING and message.attempts == 0
    assert send(message) == "sent"
    assert message.status == MessageStatus.SENT and message.provider_message_id
    [received] = fake_wechat.messages_for(message.recipient)
    assert received["client_msg_id"] == services.client_msg_id(message)
    assert received["data"]["character_string1"] == message.order.order_number
    assert all(len(value) <= 20 for key, value in received["data"].items() if key.startswith("thing"))
    # The link to the customer's self-service page was fixed when the push was queued.
    assert "/track/" in message.link and received["url"] == message.link


def test_the_same_event_makes_one_message(fake_wechat):
    first = queued(event_key="inquiry:7")
    again = notifications.customer_push_order_status(order=first.order, event_key="inquiry:7")
    assert again.pk == first.pk
    assert CustomerMessage.objects.filter(order=first.order).count() == 1


def test_a_customer_without_wechat_is_recorded_not_sent(fake_wechat):
    message = queued(bound=False)
    assert message.status == MessageStatus.REFUSED
    assert "客户未关注微信服务号" in message.last_error
    assert send(message) == "not due"
    assert fake_wechat.send_requests == 0


def test_one_token_serves_many_messages(fake_wechat):
    for index in range(3):
        send(queued(event_key=f"e{index}"))
    assert fake_wechat.token_requests == 1


def test_a_token_expiring_mid_batch_costs_one_refresh_and_one_retry(fake_wechat):
    messages = [queued(event_key=f"batch:{index}") for index in range(6)]
    for message in messages[:3]:
        assert send(message) == "sent"
    fake_wechat.expire_token()
    for message in messages[3:]:
        assert send(message) == "sent"
    assert fake_wechat.token_requests == 2
    assert fake_wechat.send_requests == 7  # 6 messages + the one retry
    assert len(fake_wechat.messages) == 6


def test_an_invalid_token_is_refreshed_once_and_not_forever(fake_wechat):
    message = queued()
    client.access_token()
    fake_wechat.fail_next(40001, "invalid credential")
    fake_wechat.fail_next(40001, "invalid credential")
    assert send(message) == "retry"  # refreshed once, retried once, still refused: try later
    assert fake_wechat.send_requests == 2
    assert message.status == MessageStatus.FAILED


def test_the_token_is_refreshed_before_it_expires(fake_wechat, settings):
    fake_wechat.token_seconds = 100
    client.access_token()
    with time_machine.travel(time.time() + 95, tick=False):  # 95 % of the lifetime gone
        fake_wechat.token_expires = time.time() + 5
        client.access_token()
    assert fake_wechat.token_requests == 2


def test_system_busy_is_retried_with_backoff(fake_wechat):
    message = queued()
    fake_wechat.fail_next(-1, "system error")
    assert send(message) == "retry"
    assert message.status == MessageStatus.FAILED and message.attempts == 1
    assert message.next_attempt_at > timezone.now()
    assert send(message) == "not due"
    with time_machine.travel(message.next_attempt_at, tick=False):
        assert services.customer_messages_relay() == 1
        assert send(message) == "sent"
    assert message.attempts == 2


@pytest.mark.parametrize("errcode", [43004, 40003, 43101, 47003, 45009])
def test_refusals_are_recorded_and_never_retried(fake_wechat, errcode):
    message = queued()
    fake_wechat.fail_next(errcode, "refused")
    assert send(message) == "refused"
    assert message.status == MessageStatus.REFUSED
    assert message.last_error.startswith(str(errcode))
    with time_machine.travel(timezone.now() + timezone.timedelta(days=1), tick=False):
        assert services.customer_messages_relay() == 0
        assert send(message) == "not due"
    assert fake_wechat.send_requests == 1


def test_an_unsubscribed_customer_gets_43004_from_the_fake(fake_wechat):
    message = queued()
    fake_wechat.set_follower(message.recipient, "unsubscribed")
    assert send(message) == "refused"
    assert message.last_error.startswith("43004")


def test_the_fake_enforces_value_limits(fake_wechat):
    token = client.access_token()
    reply = requests.post(
        f"{fake_wechat.url}/cgi-bin/message/template/send",
        params={"access_token": token},
        timeout=5,
        json={
            "touser": "o" + "a" * 27,
            "template_id": "test-template",
            "client_msg_id": "x",
            "data": {"thing2": {"value": "这是一个超过二十个字符的很长很长很长的物流状态说明"}},
        },
    ).json()
    assert reply["errcode"] == 47003


def test_long_values_are_cut_to_the_template_limits(fake_wechat):
    order = make_order(status="shipped", order_number="BL-长单号-2026")
    bind_customer(order)
    from orders.models import Shipment

    Shipment.objects.create(
        order=order,
        carrier_code="zhongtong",
        tracking_number="ZT1",
        tracking_state="2",
        last_location="内蒙古自治区呼和浩特市赛罕区某某街道某某小区快递驿站门口",
    )
    message = notifications.customer_push_order_status(
        order=order, event_key="tracking:x:2", reason="客户地址不详，快递员多次联系未果，请客户尽快回电确认地址"
    )
    assert send(message) == "sent"
    assert len(message.content["thing3"]) == 20 and message.content["thing3"].endswith("…")
    assert message.content["character_string1"] == "BL--2026"
    assert message.carries_location


def test_an_unreachable_wechat_is_transient(settings):
    fake = FakeWeChat().start()
    url = fake.url
    fake.stop()
    settings.WECHAT = {
        "SANDBOX": True,
        "BASE_URL": url,
        "APP_ID": "a",
        "APP_SECRET": "b",
        "CALLBACK_TOKEN": "c",
        "TEMPLATE_ID": "d",
    }
    from django.core.cache import cache

    cache.delete(client.TOKEN_KEY)
    message = queued()
    assert send(message) == "retry"
    assert message.status == MessageStatus.FAILED


def test_a_sender_that_died_mid_send_is_resent_once_thanks_to_client_msg_id(fake_wechat):
    message = queued()
    assert send(message) == "sent"
    # Simulate a worker killed after WeChat accepted the message but before the row was updated.
    CustomerMessage.objects.filter(pk=message.pk).update(status=MessageStatus.PENDING, next_attempt_at=timezone.now())
    assert send(message) == "sent"
    assert fake_wechat.send_requests == 2
    assert len(fake_wechat.messages_for(message.recipient)) == 1


def test_a_claimed_message_is_not_sent_by_a_second_sender(fake_wechat):
    message = queued()
    CustomerMessage.objects.filter(pk=message.pk).update(next_attempt_at=timezone.now() + timezone.timedelta(seconds=60))
    assert services.customer_messages_relay() == 0
    assert send(message) == "not due"
    assert fake_wechat.send_requests == 0


def _signed(token: str = "test-token") -> dict:
    timestamp, nonce = str(int(time.time())), "n0nce"
    return {
        "signature": hashlib.sha1("".join(sorted([token, timestamp, nonce])).encode()).hexdigest(),
        "timestamp": timestamp,
        "nonce": nonce,
    }


REPORT = (
    "<xml><ToUserName><![CDATA[gh_1]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName><CreateTime>1</CreateTime>"
    "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[TEMPLATESENDJOBFINISH]]></Event><MsgID>{msgid}</MsgID>"
    "<Status><![CDATA[failed:user block]]></Status></xml>"
)


def test_the_delivery_report_updates_the_message(fake_wechat, client):
    message = queued()
    send(message)
    body = REPORT.format(openid=message.recipient, msgid=message.provider_message_id)
    response = client.post(
        "/integrations/wechat/callback/?" + requests.compat.urlencode(_signed()), data=body, content_type="text/xml"
    )
    assert response.status_code == 200 and response.content == b"success"
    message.refresh_from_db()
    assert message.delivery_status == "failed:user block"


def test_a_delivery_report_with_a_bad_signature_is_refused(fake_wechat, client):
    message = queued()
    send(message)
    body = REPORT.format(openid=message.recipient, msgid=message.provider_message_id)
    response = client.post(
        "/integrations/wechat/callback/?" + requests.compat.urlencode(_signed("other-token")), data=body, content_type="text/xml"
    )
    assert response.status_code == 403
    message.refresh_from_db()
    assert message.delivery_status == ""


def test_the_url_check_echoes(fake_wechat, client):
    response = client.get("/integrations/wechat/callback/", {**_signed(), "echostr": "hello123"})
    assert response.content == b"hello123"
