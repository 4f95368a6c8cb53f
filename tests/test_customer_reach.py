"""Issue 18, reaching every customer: a push goes by WeChat to a follower and by SMS (the approved
template) to a customer WeChat cannot reach; an opted-out customer gets nothing; the SMS outbox
keeps the outbox guarantees and the carriers' per-phone limits. Both fakes over real HTTP."""

import datetime
import time
from decimal import Decimal

import pytest
import time_machine
from django.utils import timezone, translation

from integrations.sms import client as sms_client
from integrations.sms import services as sms
from integrations.sms.models import SmsMessage, SmsOptOut, SmsStatus
from integrations.wechat import services as wechat
from integrations.wechat.models import CustomerMessage, MessageStatus
from tests.conftest import make_order
from tests.logistics_fixtures import bind_customer, fake_wechat  # noqa: F401 - fixture
from tests.reach_fixtures import SMS_TOKEN, daytime, fake_sms  # noqa: F401 - fixtures
from workflows import notifications
from workflows.models import ContactChannel

pytestmark = pytest.mark.django_db


def shipped(*, phone="13800138000", bound=True, **fields):
    order = make_order(status="shipped", phone=phone, **fields)
    if bound:
        bind_customer(order)
    return order


def send_wechat(message: CustomerMessage) -> str:
    outcome = wechat.customer_message_send(message_id=message.pk)
    message.refresh_from_db()
    return outcome


def send_all_sms() -> list[str]:
    return [sms.sms_send(message_id=pk) for pk in SmsMessage.objects.order_by("pk").values_list("pk", flat=True)]


def test_a_follower_gets_the_wechat_push_and_no_sms(fake_wechat, fake_sms, daytime):
    order = shipped()
    message = notifications.customer_push_order_status(order=order, event_key="shipped")
    assert send_wechat(message) == "sent"
    assert notifications.sms_fallback_scan() == 0
    assert len(fake_wechat.messages_for(order.customer.wechat_openid)) == 1
    assert fake_sms.messages == [] and not SmsMessage.objects.exists()


def test_a_non_follower_gets_the_sms_once(fake_wechat, fake_sms, daytime):
    order = shipped()
    fake_wechat.set_follower(order.customer.wechat_openid, "unsubscribed")
    message = notifications.customer_push_order_status(order=order, event_key="shipped")
    assert send_wechat(message) == "refused" and message.last_error.startswith("43004")
    # The fallback scan queues the SMS once, however often it runs.
    assert notifications.sms_fallback_scan() == 1
    assert notifications.sms_fallback_scan() == 0
    [text] = SmsMessage.objects.all()
    assert text.event_key == "shipped" and text.template_code == "SMS_BEILE_STATUS"
    assert send_all_sms() == ["sent"]
    assert send_all_sms() == ["not due"]
    [received] = fake_sms.messages_for(order.customer.phone)
    assert received["content"].startswith("【贝乐母婴】您的订单" + order.order_number)
    assert received["content"].endswith("回T退订")
    assert fake_sms.requests == 1


def test_a_customer_without_an_openid_gets_the_sms_at_once(fake_wechat, fake_sms, daytime):
    order = shipped(bound=False)
    notifications.customer_push_order_status(order=order, event_key="shipped")
    assert CustomerMessage.objects.get(order=order).status == MessageStatus.REFUSED
    assert SmsMessage.objects.filter(order=order).count() == 1
    assert notifications.sms_fallback_scan() == 0
    assert send_all_sms() == ["sent"]
    assert len(fake_sms.messages_for(order.customer.phone)) == 1
    assert fake_wechat.send_requests == 0


def test_a_blocked_follower_gets_the_sms_after_the_delivery_report(fake_wechat, fake_sms, daytime):
    order = shipped()
    message = notifications.customer_push_order_status(order=order, event_key="shipped")
    assert send_wechat(message) == "sent"
    wechat.delivery_report_record(msgid=message.provider_message_id, status="failed:user block")
    assert notifications.sms_fallback_scan() == 1
    assert send_all_sms() == ["sent"]


def test_an_opted_out_customer_gets_nothing(fake_wechat, fake_sms, daytime):
    order = shipped(bound=False)
    notifications.contact_channel_set(customer=order.customer, channel=ContactChannel.NONE)
    assert notifications.customer_push_order_status(order=order, event_key="shipped") is None
    assert notifications.sms_fallback_scan() == 0
    assert not CustomerMessage.objects.exists() and not SmsMessage.objects.exists()
    follower = shipped(phone="13900139000")
    notifications.contact_channel_set(customer=follower.customer, channel=ContactChannel.NONE)
    assert notifications.customer_push_order_status(order=follower, event_key="shipped") is None
    assert fake_wechat.send_requests == 0 and fake_sms.requests == 0


def test_a_td_reply_unsubscribes_the_phone_from_sms(client, fake_wechat, fake_sms, daytime, settings):
    fake_sms.reply_url = "http://testserver/unused"  # the reply is posted through the test client below
    order = shipped(bound=False)
    reply = {"phone_number": order.customer.phone, "content": "TD", "send_time": "2026-01-01 10:00:00", "sign_name": "贝乐母婴"}
    assert client.post("/integrations/sms/reply/?token=wrong", [reply], content_type="application/json").status_code == 403
    response = client.post(f"/integrations/sms/reply/?token={SMS_TOKEN}", [reply], content_type="application/json")
    assert response.status_code == 200 and response.json()["code"] == 0
    assert SmsOptOut.objects.filter(phone=order.customer.phone).exists()
    notifications.customer_push_order_status(order=order, event_key="shipped")
    assert not SmsMessage.objects.exists()


def test_sms_only_and_wechat_only_preferences(fake_wechat, fake_sms, daytime):
    sms_only = shipped()
    notifications.contact_channel_set(customer=sms_only.customer, channel=ContactChannel.SMS)
    assert isinstance(notifications.customer_push_order_status(order=sms_only, event_key="shipped"), SmsMessage)
    assert not CustomerMessage.objects.filter(order=sms_only).exists()
    wechat_only = shipped(phone="13900139000", bound=False)
    notifications.contact_channel_set(customer=wechat_only.customer, channel=ContactChannel.WECHAT)
    notifications.customer_push_order_status(order=wechat_only, event_key="shipped")
    assert notifications.sms_fallback_scan() == 0
    assert not SmsMessage.objects.filter(order=wechat_only).exists()


def test_delivery_receipts_are_recorded_with_their_cost(client, fake_wechat, fake_sms, daytime):
    order = shipped(bound=False)
    notifications.customer_push_order_status(order=order, event_key="shipped")
    send_all_sms()
    [sent] = fake_sms.messages
    receipt = fake_sms.receipt_of(sent)
    for _ in range(2):  # a receipt pushed twice changes nothing more
        response = client.post(f"/integrations/sms/report/?token={SMS_TOKEN}", [receipt], content_type="application/json")
        assert response.status_code == 200
    text = SmsMessage.objects.get()
    assert text.delivery_status == "delivered" and text.delivered_at is not None
    assert text.segments == sent["sms_size"] and text.cost == Decimal("0.045") * sent["sms_size"]
    assert client.post("/integrations/sms/report/", [receipt], content_type="application/json").status_code == 403


def test_the_per_phone_limit_holds_a_message_back_instead_of_losing_it(fake_wechat, fake_sms, daytime):
    order = shipped(bound=False)
    notifications.customer_push_order_status(order=order, event_key="shipped")
    notifications.customer_push_order_status(order=order, event_key="tracking:1:5")
    assert send_all_sms() == ["sent", "rate limited"]
    held = SmsMessage.objects.get(event_key="tracking:1:5")
    assert held.status == SmsStatus.PENDING and held.attempts == 0 and held.next_attempt_at > timezone.now()
    assert fake_sms.requests == 1  # the platform was never asked to break its limit
    with time_machine.travel(held.next_attempt_at + datetime.timedelta(seconds=1), tick=False):
        assert sms.sms_relay() == 1
        assert sms.sms_send(message_id=held.pk) == "sent"


def test_the_platforms_flow_control_waits_an_hour_and_transient_errors_are_retried(fake_wechat, fake_sms, daytime):
    order = shipped(bound=False)
    text = notifications.customer_push_order_status(order=order, event_key="shipped")
    text = SmsMessage.objects.get(order=order)
    fake_sms.fail_next("isv.BUSINESS_LIMIT_CONTROL", "触发小时级流控Permits:5")
    assert sms.sms_send(message_id=text.pk) == "retry"
    text.refresh_from_db()
    assert text.status == SmsStatus.FAILED and text.next_attempt_at > timezone.now() + datetime.timedelta(minutes=59)
    with time_machine.travel(text.next_attempt_at, tick=False):
        fake_sms.fail_next("isp.SYSTEM_ERROR", "系统错误")
        assert sms.sms_send(message_id=text.pk) == "retry"
    text.refresh_from_db()
    with time_machine.travel(text.next_attempt_at, tick=False):
        assert sms.sms_send(message_id=text.pk) == "sent"
    assert len(fake_sms.messages) == 1


@pytest.mark.parametrize("code", ["isv.MOBILE_NUMBER_ILLEGAL", "isv.SMS_TEMPLATE_ILLEGAL", "isv.TEMPLATE_MISSING_PARAMETERS"])
def test_refusals_are_recorded_and_never_retried(fake_wechat, fake_sms, daytime, code):
    order = shipped(bound=False)
    notifications.customer_push_order_status(order=order, event_key="shipped")
    text = SmsMessage.objects.get()
    fake_sms.fail_next(code, "refused")
    assert sms.sms_send(message_id=text.pk) == "refused"
    text.refresh_from_db()
    assert text.status == SmsStatus.REFUSED and text.error_code == code
    with time_machine.travel(timezone.now() + datetime.timedelta(days=1), tick=False):
        assert sms.sms_relay() == 0


def test_the_fake_checks_the_signature(fake_wechat, fake_sms, daytime, settings):
    order = shipped(bound=False)
    notifications.customer_push_order_status(order=order, event_key="shipped")
    settings.SMS = {**settings.SMS, "ACCESS_KEY_SECRET": "wrong"}
    assert send_all_sms() == ["refused"]
    assert SmsMessage.objects.get().error_code == "SignatureDoesNotMatch"
    assert fake_sms.messages == []


def test_the_signature_matches_the_documented_example():
    # Alibaba's published worked example of the RPC signature (AccessKeyId "testId", secret "testSecret").
    params = {
        "AccessKeyId": "testId",
        "Action": "SendSms",
        "Format": "XML",
        "OutId": "123",
        "PhoneNumbers": "15300000001",
        "RegionId": "cn-hangzhou",
        "SignName": "阿里云短信测试专用",
        "SignatureMethod": "HMAC-SHA1",
        "SignatureNonce": "45e25e9b-0a6f-4070-8c85-2956eda1b466",
        "SignatureVersion": "1.0",
        "TemplateCode": "SMS_71390007",
        "TemplateParam": '{"customer":"test"}',
        "Timestamp": "2017-07-12T02:42:19Z",
        "Version": "2017-05-25",
    }
    assert sms_client.signature(params, "testSecret", method="GET") == "zJDF+Lrzhj/ThnlvIToysFRq6t4="


def test_customer_service_records_the_opt_out_on_the_lookup(client, people, fake_wechat, fake_sms, daytime):
    order = shipped(bound=False)
    assert client.login(username="service", password="test-password-123")
    page = client.get("/service/lookup/", {"q": order.customer.phone}).content.decode()
    assert 'id="contact-form"' in page
    response = client.post(f"/service/lookup/{order.order_number}/contact/", {"channel": "none", "q": order.customer.phone})
    assert response.status_code == 302
    assert notifications.contact_channel(order.customer) == ContactChannel.NONE
    assert notifications.customer_push_order_status(order=order, event_key="shipped") is None
    assert client.post(f"/service/lookup/{order.order_number}/contact/", {"channel": "pigeon"}).status_code == 302
    assert notifications.contact_channel(order.customer) == ContactChannel.NONE
    # Only the lookup's roles may change it.
    client.logout()
    assert client.login(username="packer", password="test-password-123")
    assert client.post(f"/service/lookup/{order.order_number}/contact/", {"channel": "auto"}).status_code == 403
    assert notifications.contact_channel(order.customer) == ContactChannel.NONE


@pytest.mark.django_db(transaction=True)
def test_receipts_and_replies_come_back_over_http(live_server, fake_wechat, fake_sms, daytime):
    """The fake platform pushes the delivery receipt and the customer's 退订 reply to the running
    cockpit, as the real one does: both are recorded."""
    fake_sms.report_url = f"{live_server.url}/integrations/sms/report/?token={SMS_TOKEN}"
    fake_sms.reply_url = f"{live_server.url}/integrations/sms/reply/?token={SMS_TOKEN}"
    order = shipped(bound=False)
    notifications.customer_push_order_status(order=order, event_key="shipped")
    assert send_all_sms() == ["sent"]
    deadline = time.monotonic() + 10
    while not fake_sms.reports and time.monotonic() < deadline:
        time.sleep(0.05)
    assert fake_sms.reports and fake_sms.reports[0][1] == 200
    text = SmsMessage.objects.get()
    assert text.delivery_status == "delivered" and text.segments >= 1
    assert fake_sms.reply(order.customer.phone, "TD") == 200
    assert SmsOptOut.objects.filter(phone=order.customer.phone).exists()
    notifications.customer_push_order_status(order=order, event_key="tracking:9:5")
    assert SmsMessage.objects.count() == 1


def test_without_credentials_outside_debug_the_sms_channel_is_off(fake_wechat, settings):
    settings.SMS = {**settings.SMS, "SANDBOX": False, "ACCESS_KEY_ID": "", "ACCESS_KEY_SECRET": ""}
    assert sms_client.mode() == "off"
    order = shipped(bound=False)
    notifications.customer_push_order_status(order=order, event_key="shipped")
    assert not SmsMessage.objects.exists()


def test_the_card_lists_the_sms_beside_the_wechat_pushes(client, people, fake_wechat, fake_sms, daytime):
    order = shipped(bound=False)
    notifications.customer_push_order_status(order=order, event_key="shipped")
    assert send_all_sms() == ["sent"]
    assert client.login(username="service", password="test-password-123")
    with translation.override("zh-hans"):
        page = client.get(f"/orders/{order.order_number}/", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    panel = page[page.index('id="customer-messages"') :]
    assert "短信 · 已发货" in panel and "微信 · 已发货" in panel
    assert 'id="provider-sms"' in page and 'id="provider-wecom"' in page
