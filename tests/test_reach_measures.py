"""Issue 18's measures on the health page, computed from what happened (pushes sent through the
fakes over HTTP, inquiries recorded, receipts pushed back): CPD over both channels, the share of
customers reached before they asked, SMS cost per day, failures by reason."""

import datetime
from decimal import Decimal

import pytest
import time_machine
from django.utils import timezone, translation

from integrations.sms import services as sms
from integrations.sms.models import SmsMessage
from integrations.wechat import services as wechat
from integrations.wechat.models import CustomerMessage
from orders.access import Actor
from orders.models import Shipment
from tests.conftest import make_order
from tests.logistics_fixtures import bind_customer, fake_wechat  # noqa: F401 - fixture
from tests.reach_fixtures import fake_sms  # noqa: F401 - fixture
from workflows import delays, notifications
from workflows.frontline.services import inquiry_record
from workflows.health import measures
from workflows.models import ContactChannel

pytestmark = pytest.mark.django_db
SHANGHAI = datetime.timezone(datetime.timedelta(hours=8))
DAY = datetime.date(2026, 11, 24)


def at(hour: int, minute: int = 0):
    return time_machine.travel(datetime.datetime(2026, 11, 24, hour, minute, tzinfo=SHANGHAI), tick=False)


def send_everything() -> None:
    for pk in CustomerMessage.objects.values_list("pk", flat=True):
        wechat.customer_message_send(message_id=pk)
    for pk in SmsMessage.objects.values_list("pk", flat=True):
        sms.sms_send(message_id=pk)


def test_the_reach_measures_come_from_what_happened(client, people, fake_wechat, fake_sms, settings):
    settings.CUSTOMER_QUIET_HOURS = (22, 7)
    service = Actor.of(people["service"])
    with at(10):
        # A follower whose parcel missed its ETA: told before asking, then asks anyway.
        told = make_order(status="shipped", phone="13800000001")
        bind_customer(told)
        Shipment.objects.create(
            order=told,
            carrier_code="zhongtong",
            tracking_number="ZT1",
            last_location="杭州市",
            eta=timezone.now() - datetime.timedelta(minutes=5),
        )
        assert delays.delays_scan() == 1
        # A customer without WeChat asks first: answered by SMS a minute later.
        asked = make_order(status="shipped", phone="13800000002")
        Shipment.objects.create(
            order=asked,
            carrier_code="zhongtong",
            tracking_number="ZT2",
            last_location="杭州市",
            eta=timezone.now() + datetime.timedelta(hours=20),
        )
        send_everything()
    with at(10, 30):
        inquiry_record(order=told, by=service, channel="phone")
        inquiry_record(order=asked, by=service, channel="phone")
    with at(10, 31):
        send_everything()
        # A follower who blocked the account and chose WeChat only: nobody reached.
        blocked = make_order(status="shipped", phone="13800000003")
        bind_customer(blocked)
        notifications.contact_channel_set(customer=blocked.customer, channel=ContactChannel.WECHAT)
        fake_wechat.set_follower(blocked.customer.wechat_openid, "unsubscribed")
        notifications.customer_push_order_status(order=blocked, event_key="shipped")
        send_everything()
    # The SMS platform's receipt comes back with the billed segments.
    for sent in fake_sms.messages:
        response = client.post(
            f"/integrations/sms/report/?token={settings.SMS['CALLBACK_TOKEN']}",
            [fake_sms.receipt_of(sent)],
            content_type="application/json",
        )
        assert response.status_code == 200

    # CPD over both channels: the WeChat follower answered at 10:31 (asked 10:30), the SMS one too.
    cpd = measures.measure_perceived_delay(day=DAY)
    assert cpd.sample_size == 2 and cpd.value == 1.0
    assert SmsMessage.objects.filter(order=asked, event_key__startswith="inquiry:", status="sent").exists()

    # Reached first: the delay push went out before the first inquiry for one of the two problems.
    proactive = measures.measure_proactive_share(day=DAY)
    assert proactive.detail == {"problems": 2, "reached_first": 1} and proactive.value == 50.0

    # SMS cost: the receipts' segments × the price.
    cost = measures.measure_sms_cost(day=DAY)
    segments = sum(m["sms_size"] for m in fake_sms.messages)
    assert cost.detail["sms_sent"] == len(fake_sms.messages) and cost.detail["segments"] == segments
    assert Decimal(str(cost.value)) == (Decimal("0.045") * segments).quantize(Decimal("0.01"))

    # Failures by reason: the WeChat-only customer who does not follow.
    failures = measures.measure_push_failures(day=DAY)
    with translation.override("zh-hans"):
        assert "微信：未关注服务号 ×1" == measures.measure_push_failures(day=DAY).detail["by_reason"]
    total = failures.sample_size
    assert failures.value == round(100 / total, 2)
    [row] = measures.behind_push_failures(day=DAY)
    assert row.order_number == blocked.order_number

    # All on the health page with their targets.
    assert client.login(username="supervisor", password="test-password-123")
    page = client.get("/health/").content.decode()
    for key in ("proactive_share", "sms_cost", "push_failures"):
        assert str(measures.MEASURES_BY_KEY[key].label) in page
