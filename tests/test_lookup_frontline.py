"""The customer-service lookup: one input, the whole lifecycle, a fixed number of queries, and
the actions customer service takes from it."""

import datetime

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone, translation

from integrations.sms.models import SmsMessage
from integrations.wechat.models import CustomerMessage
from orders import services
from orders.access import Actor
from orders.models import AddressChangeRequest, Note, Order
from tests.conftest import PASSWORD, make_order
from tests.frontline_fixtures import customer_with_orders, fast_passwords, rejected_return, ship  # noqa: F401
from workflows.frontline.lookup import lookup
from workflows.frontline.models import Inquiry
from workflows.frontline.templatetags.frontline import relative_day
from workflows.models import ContactPreference

pytestmark = pytest.mark.django_db


def page(client, user, query):
    client.login(username=user.username, password=PASSWORD)
    return client.get("/service/lookup/", {"q": query})


@pytest.mark.parametrize("role", ["service", "supervisor", "sales"])
def test_front_line_roles_may_look_up(client, people, role):
    assert page(client, people[role], "").status_code == 200


@pytest.mark.parametrize("role", ["packer", "courier", "finance", "outsider"])
def test_other_roles_may_not(client, people, role):
    assert page(client, people[role], "").status_code == 403


def test_anonymous_is_sent_to_log_in(client):
    response = client.get("/service/lookup/")
    assert response.status_code == 302 and "/login/" in response["Location"]


@pytest.mark.parametrize("typed", ["139 0000 1111", "+86 139-0000-1111", "１３９００００１１１１", "0086 13900001111"])
def test_phone_in_any_format_finds_every_order(people, typed):
    customer_with_orders(3, phone="13900001111", people=people)
    make_order(phone="13900002222")  # someone else
    result = lookup(typed)
    assert result.found_by == "phone"
    assert result.customer.phone == "13900001111"
    assert len(result.orders) == 3


def test_order_number_and_waybill_find_the_whole_customer(people):
    customer_with_orders(2, phone="13900001111", people=people)
    order = Order.objects.filter(customer__phone="13900001111").first()
    waybill = order.shipments.get().tracking_number
    assert len(lookup(order.order_number).orders) == 2
    by_waybill = lookup(waybill.lower())
    assert by_waybill.found_by == "tracking" and len(by_waybill.orders) == 2


def test_nothing_found_says_what_to_check(people):
    result = lookup("139 0000 9999")
    assert result.customer is None
    assert "11" in result.problem


def test_query_count_does_not_grow_with_orders(client, people):
    customer_with_orders(2, phone="13900001111", people=people)
    customer_with_orders(20, phone="13900002222", people=people)
    client.login(username="service", password=PASSWORD)
    client.get("/service/lookup/", {"q": "13900001111"})  # warm up session and role caches
    with CaptureQueriesContext(connection) as few:
        assert client.get("/service/lookup/", {"q": "13900001111"}).status_code == 200
    with CaptureQueriesContext(connection) as many:
        response = client.get("/service/lookup/", {"q": "13900002222"})
    assert response.content.decode().count('class="order-block') == 20
    assert len(many) == len(few), [q["sql"][:120] for q in many.captured_queries]
    assert len(many) <= 20


def test_rejected_return_reads_as_said_on_the_phone(client, people):
    # Thursday 2026-01-22; "last Tuesday" is 2026-01-13.
    with time_machine.travel(
        datetime.datetime(2026, 1, 22, 15, 0, tzinfo=datetime.timezone(datetime.timedelta(hours=8))), tick=False
    ):
        order = make_order(status="completed", phone="13900001111")
        decided = timezone.now() - datetime.timedelta(days=9)
        rejected_return(order, decided_at=decided, by=people["service"])
        response = page(client, people["service"], "139 0000 1111")
        html = response.content.decode()
        with translation.override("zh-hans"):
            when = relative_day(decided)
    assert "Tue" in when or "周二" in when  # "上周二" once the Chinese catalogue is in
    assert when in html
    assert "技术部" in html and "已拆封影响二次销售" in html
    entry = next(e for e in lookup(order.order_number).timeline if "decision-rejected" in e.kind)
    assert "技术部" in entry.summary and entry.actor == "小服"


def test_relative_day_names_the_weekday():
    thursday = datetime.datetime(2026, 1, 22, 15, 0, tzinfo=datetime.timezone(datetime.timedelta(hours=8)))
    with translation.override("en"):
        assert relative_day(thursday - datetime.timedelta(hours=1), now=thursday) == "today 14:00"
        assert relative_day(thursday - datetime.timedelta(days=1), now=thursday).startswith("yesterday")
        assert relative_day(thursday - datetime.timedelta(days=3), now=thursday).startswith("this Mon")
        assert relative_day(thursday - datetime.timedelta(days=9), now=thursday).startswith("last Tue")
        assert relative_day(thursday - datetime.timedelta(days=20), now=thursday).startswith("01-02")


def test_timeline_merges_everything_for_every_order(people):
    customer = customer_with_orders(2, phone="13900001111", people=people)
    order = customer.orders.first()
    Inquiry.objects.create(order=order, customer=customer, channel="phone", question="到哪了", recorded_by=people["service"])
    CustomerMessage.objects.create(
        order=order, recipient="x", event_key="shipped", idempotency_key="k1", content={"text": "已发货"}
    )
    kinds = {entry.kind.split()[0] for entry in lookup("13900001111").timeline}
    assert {"note", "after-sales", "shipment", "message", "inquiry"} <= kinds


def test_inquiry_answers_the_customer_at_once_with_location(client, people):
    customer_with_orders(1, phone="13900001111", people=people)
    order = Order.objects.get(customer__phone="13900001111")
    client.login(username="service", password=PASSWORD)
    response = client.post(f"/service/lookup/{order.order_number}/inquiry/", {"channel": "wechat", "q": "13900001111"})
    assert response.status_code == 302
    inquiry = Inquiry.objects.get(order=order)
    message = inquiry.answer_message
    assert message.recipient == "openid-13900001111" and message.event_key == f"inquiry:{inquiry.pk}"
    assert message.carries_location and "深圳" in message.content["thing3"]  # the template's location field
    assert message.created_at - inquiry.asked_at < datetime.timedelta(seconds=5)


def test_inquiry_without_openid_tells_the_agent_what_to_say(client, people):
    order = make_order(status="picking", phone="13900003333")
    client.login(username="service", password=PASSWORD)
    response = client.post(
        f"/service/lookup/{order.order_number}/inquiry/",
        {"channel": "phone"},
        HTTP_HX_REQUEST="true",
        HTTP_HX_TARGET="lookup-result",
    )
    assert Inquiry.objects.get(order=order).answer_message is None
    assert not CustomerMessage.objects.filter(status="pending").exists()
    assert 'id="lookup-notice"' in response.content.decode()


def test_inquiry_from_a_customer_who_unsubscribed_tells_the_agent_what_to_say(client, people):
    order = make_order(status="picking", phone="13900003334")
    ContactPreference.objects.create(customer=order.customer, channel="none")
    client.login(username="service", password=PASSWORD)
    response = client.post(
        f"/service/lookup/{order.order_number}/inquiry/",
        {"channel": "phone"},
        HTTP_HX_REQUEST="true",
        HTTP_HX_TARGET="lookup-result",
    )
    assert not CustomerMessage.objects.exists() and not SmsMessage.objects.exists()
    assert 'id="lookup-notice"' in response.content.decode()


def test_inquiry_without_openid_is_answered_by_sms(client, people):
    order = make_order(status="picking", phone="13900003335")
    client.login(username="service", password=PASSWORD)
    client.post(f"/service/lookup/{order.order_number}/inquiry/", {"channel": "phone"})
    assert SmsMessage.objects.filter(order=order, event_key__startswith="inquiry:").count() == 1


def test_note_from_lookup_reaches_the_order(client, people):
    order = make_order(status="picking", phone="13900003333")
    client.login(username="service", password=PASSWORD)
    client.post(
        f"/service/lookup/{order.order_number}/note/",
        {"body": "客户要求明日12点前送达", "kind": "customer_request", "audience": "warehouse"},
    )
    assert Note.objects.get(order=order).body == "客户要求明日12点前送达"


def test_refused_action_is_explained(client, people):
    # A cancelled order has no parcel to send elsewhere (a shipped one goes to the carrier: issue 13).
    order = make_order(status="cancelled", phone="13900003333")
    client.login(username="service", password=PASSWORD)
    response = client.post(
        f"/service/lookup/{order.order_number}/request_address/",
        {
            "receiver_name": "王丽",
            "receiver_phone": "13900003333",
            "province": "浙江省",
            "city": "杭州市",
            "address": "新地址1号",
        },
        HTTP_HX_REQUEST="true",
    )
    assert 'id="lookup-error"' in response.content.decode()
    assert not AddressChangeRequest.objects.exists()


ADDRESS = {
    "receiver_name": "王丽",
    "receiver_phone": "139 0000 3333",
    "province": "浙江省",
    "city": "杭州市",
    "address": "新地址1号",
}


def test_address_change_before_packing_stops_packing(client, people):
    order = make_order(status="picking", phone="13900003333")
    client.login(username="service", password=PASSWORD)
    client.post(f"/service/lookup/{order.order_number}/request_address/", ADDRESS)
    with pytest.raises(services.TransitionBlocked, match="改地址申请"):
        services.order_transition(order=order, name="pack", by=Actor.of(people["packer"]))


def test_address_change_after_packing_intercepts_shipping(client, people):
    order = make_order(status="packed", phone="13900003333")
    client.login(username="service", password=PASSWORD)
    client.post(f"/service/lookup/{order.order_number}/request_address/", ADDRESS)
    with pytest.raises(services.TransitionBlocked, match="改地址申请"):
        services.order_ship(order=order, by=Actor.of(people["courier"]), carrier_code="zhongtong", tracking_number="ZT1")
    change = AddressChangeRequest.objects.get(order=order)
    services.address_change_resolve(change=change, by=Actor.of(people["service"]), apply=True)
    # Issue 13: applied after packing, the label with the old address is reprinted before shipping.
    with pytest.raises(services.TransitionBlocked, match="重打面单"):
        services.order_ship(order=order, by=Actor.of(people["courier"]), carrier_code="zhongtong", tracking_number="ZT1")
    services.address_change_confirm_reprint(order=order, by=Actor.of(people["courier"]))
    services.order_ship(order=order, by=Actor.of(people["courier"]), carrier_code="zhongtong", tracking_number="ZT1")
    order.refresh_from_db()
    assert order.status == "shipped" and order.address == "新地址1号"
