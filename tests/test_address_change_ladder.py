"""Issue 13: an address-change request through each rung of the ladder, decided by the order's
stage, with the fake Kuaidi100's interception and its signed result callback over real HTTP; the
customer's push; bad input refused in Chinese with nothing changed."""

from __future__ import annotations

import json

import pytest
from django.test import Client
from django.utils import translation

from integrations.kuaidi100 import services as kuaidi100_services
from integrations.kuaidi100.fake_server import md5_upper
from integrations.kuaidi100.models import TrackingSubscription
from integrations.wechat.models import CustomerMessage
from orders import packing, rules, services
from orders.access import Actor
from orders.models import AddressChangeRequest, Note, Order, OrderEvent
from tests.conftest import PASSWORD, make_order
from tests.logistics_fixtures import SALT, fake_kuaidi100, fake_wechat, role_groups, shipped_order  # noqa: F401 - fixtures
from tests.packing_fixtures import scan_every_item
from workflows import address_changes, reactions
from workflows.models import Ticket

pytestmark = pytest.mark.usefixtures("transactional_db", "role_groups")
NEW = {
    "receiver_name": "李娜",
    "receiver_phone": "13912345678",
    "province": "上海市",
    "city": "上海市",
    "district": "浦东新区",
    "address": "世纪大道1号",
}


@pytest.fixture
def ladder(fake_kuaidi100, live_server, settings):
    """The fake Kuaidi100 (with the label API's secret) answering callbacks to the live server."""
    settings.KUAIDI100 = {**settings.KUAIDI100, "SECRET": fake_kuaidi100.secret}
    settings.PUBLIC_BASE_URL = live_server.url
    return fake_kuaidi100


def _request(order: Order, people, **overrides) -> AddressChangeRequest:
    return services.address_change_request(order=order, by=Actor.of(people["service"]), **{**NEW, **overrides})


def _handle(change, people, role="reviewer"):
    return address_changes.address_change_handle(change=change, by=Actor.of(people[role]))


def _push(change) -> CustomerMessage | None:
    reactions.reactions_relay()  # the tests have no worker for the after-commit nudge
    return CustomerMessage.objects.filter(
        order_id=change.order_id, event_key=reactions.address_change_push_key(change.pk)
    ).first()


def test_not_yet_picked_applies_at_once_and_the_customer_is_told(people):
    order = make_order(status="paid")
    change = _request(order, people)
    assert rules.interception(order).address_change == change  # waiting: packing is intercepted
    change = _handle(change, people)
    order.refresh_from_db()
    assert (change.status, change.rung) == ("applied", "apply")
    assert order.address == "世纪大道1号" and order.receiver_phone == "13912345678"
    assert not order.notes.exists()
    push = _push(change)
    assert push is not None and "新地址" in json.dumps(push.content, ensure_ascii=False)
    event = OrderEvent.objects.filter(order=order, kind="address_change", payload__action="applied").get()
    assert event.payload["before"]["address"] == "市心北路100号" and event.payload["after"]["address"] == "世纪大道1号"


def test_picking_applies_with_a_warehouse_acknowledgement_and_a_reprint_before_shipping(people):
    order = make_order(status="picking")
    change = _handle(_request(order, people), people, role="service")
    assert (change.status, change.rung, change.reprint_pending) == ("applied", "apply_acknowledge", True)
    note = Note.objects.get(order=order, kind="warning", audience="warehouse")
    assert "世纪大道1号" in note.body
    scan_every_item(order, people["packer"])
    order.refresh_from_db()
    with translation.override("zh-hans"):
        reasons = packing.pack_check(order, Actor.of(people["packer"])).reasons
    assert reasons, "the unacknowledged warning note must block packing"
    with pytest.raises(services.TransitionBlocked):
        services.order_transition(order=order, name="pack", by=Actor.of(people["packer"]))
    services.note_acknowledge(note=note, by=Actor.of(people["packer"]))
    order = services.order_transition(order=Order.objects.get(pk=order.pk), name="pack", by=Actor.of(people["packer"]))
    assert order.status == "packed"
    with translation.override("zh-hans"), pytest.raises(services.TransitionBlocked) as blocked:
        services.order_ship(order=order, by=Actor.of(people["courier"]), carrier_code="zhongtong", tracking_number="ZT1300001")
    assert "面单" in str(blocked.value)
    services.address_change_confirm_reprint(order=order, by=Actor.of(people["packer"]))
    order = services.order_ship(
        order=Order.objects.get(pk=order.pk),
        by=Actor.of(people["courier"]),
        carrier_code="zhongtong",
        tracking_number="ZT1300001",
    )
    assert order.status == "shipped"
    assert OrderEvent.objects.filter(order=order, kind="address_change", payload__action="reprinted").exists()


def test_shipped_with_an_intercepting_carrier_is_rerouted_by_the_signed_callback(ladder, people):
    order = shipped_order(tracking_number="ZT1300002", carrier_code="zhongtong")
    change = _handle(_request(order, people), people)
    assert (change.status, change.rung) == ("with_carrier", "carrier_intercept")
    task = ladder.intercepts[change.carrier_task_id]
    assert task["type"] == "MODIFY_ADDR" and task["number"] == "ZT1300002"
    payload = ladder.intercept_payload(change.carrier_task_id)
    # A wrong signature is refused and changes nothing.
    refused = ladder.intercept_deliver(change.carrier_task_id, payload, sign="0" * 32)
    assert refused.status_code == 403 and "签名" in refused.json()["message"]
    assert AddressChangeRequest.objects.get(pk=change.pk).status == "with_carrier"
    # The real result.
    answer = ladder.intercept_deliver(change.carrier_task_id, payload)
    assert answer.json() == {"result": True, "returnCode": "200", "message": "成功"}
    change.refresh_from_db()
    order.refresh_from_db()
    assert change.status == "rerouted" and order.address == "世纪大道1号"
    # The same callback again (a replay) is refused and changes nothing.
    version = order.version
    replay = ladder.intercept_deliver(change.carrier_task_id, payload)
    assert replay.status_code == 409 and "已" in replay.json()["message"]
    assert Order.objects.get(pk=order.pk).version == version
    assert _push(change) is not None


def test_shipped_interception_the_carrier_cannot_do_fails_with_its_reason(ladder, people):
    order = shipped_order(tracking_number="ZT13NOINT3", carrier_code="zhongtong")
    change = _handle(_request(order, people), people)
    ladder.intercept_finish(change.carrier_task_id)
    change.refresh_from_db()
    order.refresh_from_db()
    assert change.status == "failed" and "派件" in change.outcome_reason
    assert order.address == "市心北路100号"
    assert _push(change) is not None


def test_shipped_with_sf_opens_a_courier_ticket_with_the_hotline_step(ladder, people):
    order = shipped_order(tracking_number="SF1300004", carrier_code="shunfeng")
    change = _handle(_request(order, people), people)
    assert (change.status, change.rung) == ("with_carrier", "courier_ticket")
    assert not ladder.intercepts  # SF is never asked through Kuaidi100
    ticket = Ticket.objects.get(order=order, kind="address_change")
    assert "95338" in ticket.summary and "SF1300004" in ticket.summary
    with pytest.raises(services.NotAllowed):
        address_changes.address_change_courier_outcome(ticket=ticket, by=Actor.of(people["packer"]), rerouted=True, reason="")
    client = Client()
    client.login(username="courier", password=PASSWORD)
    response = client.post(f"/tickets/{ticket.pk}/address_rerouted/", {"resolution": "顺丰客服已改派"})
    assert response.status_code == 302
    change.refresh_from_db()
    ticket.refresh_from_db()
    assert change.status == "rerouted" and ticket.closed_at is not None
    assert Order.objects.get(pk=order.pk).address == "世纪大道1号"
    assert _push(change) is not None


def test_delivered_is_refused_with_after_sales_offered(people):
    order = make_order(status="completed")
    change = _handle(_request(order, people), people)
    assert (change.status, change.rung) == ("refused", "refuse")
    assert "售后" in change.outcome_reason or "after-sales" in change.outcome_reason
    assert Order.objects.get(pk=order.pk).address == "市心北路100号"
    assert _push(change) is not None


@pytest.mark.parametrize(
    ("overrides", "status", "said"),
    [
        ({"receiver_name": ""}, "paid", "填写"),
        ({"address": "   "}, "paid", "填写"),
        ({"receiver_phone": "0571-88886666"}, "paid", "手机号"),
        ({}, "cancelled", "已取消"),
    ],
)
def test_bad_requests_are_refused_in_chinese_and_change_nothing(people, overrides, status, said):
    order = make_order(status=status)
    with translation.override("zh-hans"), pytest.raises(services.OrderError) as refused:
        _request(order, people, **overrides)
    assert said in str(refused.value)
    assert not AddressChangeRequest.objects.exists()
    assert not OrderEvent.objects.filter(order=order, kind="address_change").exists()


def test_only_reviewer_service_and_supervisor_handle_requests(people):
    order = make_order(status="paid")
    change = _request(order, people)
    for role in ("packer", "courier", "sales", "finance", "dispatcher"):
        with pytest.raises(services.NotAllowed):
            _handle(change, people, role=role)
    assert AddressChangeRequest.objects.get(pk=change.pk).status == "open"
    assert _handle(change, people, role="supervisor").status == "applied"


def test_the_inbox_shows_old_and_new_receiver_who_asked_and_the_deadline(people):
    order = make_order(status="paid")
    change = _request(order, people)
    for role, code in (("reviewer", 200), ("service", 200), ("supervisor", 200), ("packer", 403), ("courier", 403)):
        client = Client()
        client.login(username=role, password=PASSWORD)
        client.cookies["django_language"] = "zh-hans"
        response = client.get("/address-changes/")
        assert response.status_code == code, role
    body = response = None
    client = Client()
    client.login(username="reviewer", password=PASSWORD)
    client.cookies["django_language"] = "zh-hans"
    body = client.get("/address-changes/").content.decode()
    assert f'id="address-change-{change.pk}"' in body
    assert "世纪大道1号" in body and "市心北路100号" in body
    supervisor = Client()
    supervisor.login(username="supervisor", password=PASSWORD)
    board = supervisor.get("/board/").content.decode()
    assert 'id="lane-address-changes"' in board and f'id="address-change-{change.pk}"' in board
    response = client.post(f"/address-changes/{change.pk}/handle/")
    assert response.status_code == 302
    assert AddressChangeRequest.objects.get(pk=change.pk).status == "applied"


def test_a_wrong_signature_or_unsigned_result_never_reaches_a_request(ladder, people, live_server):
    import requests

    param = json.dumps({"taskId": "INT999", "kuaidicom": "zhongtong", "kuaidinum": "X", "status": "SUCCESS"})
    unsigned = requests.post(f"{live_server.url}/integrations/kuaidi100/intercept/", data={"param": param}, timeout=5)
    assert unsigned.status_code == 403
    unknown = requests.post(
        f"{live_server.url}/integrations/kuaidi100/intercept/", data={"param": param, "sign": md5_upper(param + SALT)}, timeout=5
    )
    assert unknown.status_code == 404


def test_the_customer_asks_on_the_self_service_page_with_the_signed_token(people):
    from workflows.frontline import selfservice

    order = make_order(status="paid")
    client = Client()
    client.cookies["django_language"] = "zh-hans"
    page = client.post("/track/", {"order_number": order.order_number, "last4": "8000"}).content.decode()
    assert 'id="address-change-form"' in page
    token = selfservice.link_token(order)
    bad = client.post("/track/address/", {**NEW, "receiver_phone": "12345", "token": token})
    assert bad.status_code == 400 and "手机号" in bad.content.decode()
    forged = client.post("/track/address/", {**NEW, "token": token + "x"})
    assert forged.status_code == 400
    assert not AddressChangeRequest.objects.exists()
    ok = client.post("/track/address/", {**NEW, "token": token})
    assert ok.status_code == 200 and 'id="address-change-notice"' in ok.content.decode()
    change = AddressChangeRequest.objects.get(order=order)
    assert change.source == "customer" and change.due_at > change.requested_at
    assert change.previous["address"] == "市心北路100号"


def test_address_change_closure_time_is_a_health_measure(people):
    from orders.clock import business_today
    from workflows.health.measures import MEASURES_BY_KEY

    measure = MEASURES_BY_KEY["address_change_closure"]
    order = make_order(status="paid")
    waiting = make_order(status="paid")
    _handle(_request(order, people), people)
    _request(waiting, people)
    value = measure.compute(day=business_today())
    assert value.value is not None and value.sample_size == 1 and value.detail["open"] == 1
    assert measure.healthy(value.value) and measure.target == 120
    behind = {row.order_number for row in measure.behind(day=business_today())}
    assert behind == {order.order_number, waiting.order_number}


def test_kuaidi100_refusing_at_once_is_the_outcome_and_a_busy_kuaidi100_changes_nothing(ladder, people):
    order = shipped_order(tracking_number="ZT1300009", carrier_code="zhongtong")
    change = _request(order, people)
    # Busy (a transient code): the request stays open for another try, nothing recorded.
    ladder.fail_next("/label/order", "502", "服务器繁忙")
    with translation.override("zh-hans"), pytest.raises(services.OrderError) as busy:
        _handle(change, people)
    assert "快递100" in str(busy.value)
    assert AddressChangeRequest.objects.get(pk=change.pk).status == "open"
    # The parcel was signed at the carrier before our tracking heard of it: Kuaidi100 refuses.
    subscription = TrackingSubscription.objects.get(shipment__order=order)
    assert kuaidi100_services.shipment_subscribe(subscription_id=subscription.pk) == "subscribed"
    for _step in range(5):
        ladder.advance("ZT1300009")
    change = _handle(change, people)
    assert change.status == "failed" and "签收" in change.outcome_reason
    assert Order.objects.get(pk=order.pk).address == "市心北路100号"
    assert _push(change) is not None
