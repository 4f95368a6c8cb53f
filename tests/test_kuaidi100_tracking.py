"""Shipped → subscribed → pushes from the fake Kuaidi100 arrive at the real callback over HTTP:
signatures, the exact acknowledgement, duplicates, out-of-order reports, abort, completion."""

import json

import pytest
import requests

from integrations.kuaidi100 import services
from integrations.kuaidi100.models import SubscriptionState, TrackingSubscription
from integrations.wechat.models import CustomerMessage
from orders.models import Order, OrderEvent, Shipment
from tests.logistics_fixtures import SALT, fake_kuaidi100, fake_wechat, role_groups, shipped_order  # noqa: F401 - fixtures
from workflows import tracking
from workflows.models import Ticket

pytestmark = pytest.mark.usefixtures("transactional_db", "role_groups")
ACK = {"result": True, "returnCode": "200", "message": "成功"}


@pytest.fixture
def tracked(fake_kuaidi100, fake_wechat, live_server, settings):
    """Ship an order and subscribe its shipment with the callback pointing at the live server."""
    settings.PUBLIC_BASE_URL = live_server.url

    def ship(number: str, **kwargs) -> Shipment:
        order = shipped_order(tracking_number=number, **kwargs)
        subscription = TrackingSubscription.objects.get(shipment__order=order)  # created by the shipped reaction
        assert services.shipment_subscribe(subscription_id=subscription.pk) == "subscribed"
        return subscription.shipment

    return ship


def test_a_delivered_parcel_completes_the_order_and_pushes_each_meaningful_step(tracked, fake_kuaidi100):
    shipment = tracked("ZT7001")
    assert fake_kuaidi100.parcels["ZT7001"].callback_url.endswith(f"/integrations/kuaidi100/callback/?shipment={shipment.pk}")
    for _step in range(5):
        response = fake_kuaidi100.push("ZT7001")
        assert response.status_code == 200
        assert response.json() == ACK
        assert '"result": true' in response.text or '"result":true' in response.text  # a JSON boolean, not "true"
    shipment.refresh_from_db()
    assert shipment.events.count() == 5
    assert shipment.tracking_state == "3"
    assert shipment.last_location == "上海市"
    assert shipment.eta is None  # delivered: no ETA any more
    order = Order.objects.get(pk=shipment.order_id)
    assert order.status == "completed"
    completion = OrderEvent.objects.get(order=order, kind="status", payload__transition="complete")
    assert completion.actor_name == "kuaidi100"
    assert TrackingSubscription.objects.get(shipment=shipment).state == SubscriptionState.FINISHED
    keys = set(CustomerMessage.objects.filter(order=order).values_list("event_key", flat=True))
    pk = shipment.pk
    assert keys == {"shipped", f"tracking:{pk}:1", f"tracking:{pk}:5", f"tracking:{pk}:3"}  # in transit is not pushed
    assert not Ticket.objects.filter(order=order).exists()


def test_eta_and_location_show_on_the_card(tracked, fake_kuaidi100, client, people):
    shipment = tracked("ZT7002")
    fake_kuaidi100.push("ZT7002")
    shipment.refresh_from_db()
    assert shipment.eta is not None and shipment.tracking_state == "1"
    client.force_login(people["courier"])
    page = client.get(f"/orders/{shipment.order.order_number}/").content.decode()
    assert "杭州市" in page
    assert 'id="provider-kuaidi100"' in page and "sandbox" in page


def test_a_push_with_a_wrong_signature_is_refused_and_retried_later(tracked, fake_kuaidi100):
    shipment = tracked("ZT7003")
    payload = fake_kuaidi100.advance("ZT7003")
    response = fake_kuaidi100.deliver("ZT7003", payload, sign="0" * 32)
    assert response.status_code == 403
    assert response.json()["result"] is False
    assert shipment.events.count() == 0
    assert fake_kuaidi100.parcels["ZT7003"].pending_retry is not None  # the provider will push again
    assert fake_kuaidi100.deliver("ZT7003", payload).json() == ACK
    assert shipment.events.count() == 1


def test_a_push_without_a_signature_is_refused(tracked, fake_kuaidi100, live_server):
    tracked("ZT7004")
    param = json.dumps(fake_kuaidi100.advance("ZT7004"), ensure_ascii=False)
    response = requests.post(f"{live_server.url}/integrations/kuaidi100/callback/", data={"param": param}, timeout=5)
    assert response.status_code == 403


def test_the_same_push_twice_adds_nothing(tracked, fake_kuaidi100):
    shipment = tracked("ZT7005")
    payload = fake_kuaidi100.advance("ZT7005")
    assert fake_kuaidi100.deliver("ZT7005", payload).json() == ACK
    assert fake_kuaidi100.deliver("ZT7005", payload).json() == ACK
    assert shipment.events.count() == 1
    assert OrderEvent.objects.filter(order_id=shipment.order_id, kind="tracking").count() == 1
    assert CustomerMessage.objects.filter(order_id=shipment.order_id, event_key=f"tracking:{shipment.pk}:1").count() == 1


def test_an_older_report_arriving_late_never_moves_the_state_back(tracked, fake_kuaidi100):
    shipment = tracked("ZT7006")
    first = fake_kuaidi100.advance("ZT7006")  # picked up
    fake_kuaidi100.advance("ZT7006")
    fake_kuaidi100.advance("ZT7006")
    fourth = fake_kuaidi100.advance("ZT7006")  # out for delivery
    fake_kuaidi100.deliver("ZT7006", fourth)
    fake_kuaidi100.deliver("ZT7006", first)
    shipment.refresh_from_db()
    assert shipment.tracking_state == "5"
    assert shipment.events.count() == 4
    assert shipment.last_event_at == max(shipment.events.values_list("occurred_at", flat=True))


def test_abort_opens_one_ticket_and_tells_the_customer(tracked, fake_kuaidi100):
    shipment = tracked("ZT7LOST1")
    response = fake_kuaidi100.push("ZT7LOST1")
    assert response.json() == ACK
    fake_kuaidi100.deliver("ZT7LOST1", fake_kuaidi100.parcels["ZT7LOST1"].pushes[-1]["payload"])  # and again
    tickets = Ticket.objects.filter(shipment=shipment)
    assert tickets.count() == 1
    assert tickets.get().kind == "aborted" and tickets.get().closed_at is None
    assert "3天查询无记录" in tickets.get().summary
    assert TrackingSubscription.objects.get(shipment=shipment).state == SubscriptionState.ABORTED
    assert CustomerMessage.objects.filter(order_id=shipment.order_id, event_key=f"tracking:{shipment.pk}:abort").count() == 1
    # Resubscribing is allowed after abort (docs/protocols.md): the fake accepts it again.
    TrackingSubscription.objects.filter(shipment=shipment).update(
        state=SubscriptionState.PENDING, next_attempt_at=shipment.created_at
    )
    assert services.shipment_subscribe(subscription_id=shipment.subscription.pk) == "subscribed"


def test_a_problem_parcel_opens_exactly_one_courier_ticket(tracked, fake_kuaidi100):
    shipment = tracked("ZT7PROB1")
    for _step in range(3):
        fake_kuaidi100.push("ZT7PROB1")
    fake_kuaidi100.deliver("ZT7PROB1", fake_kuaidi100.parcels["ZT7PROB1"].pushes[-1]["payload"])
    ticket = Ticket.objects.get(shipment=shipment)
    assert ticket.kind == "problem" and ticket.for_role == "courier"
    message = CustomerMessage.objects.get(order_id=shipment.order_id, event_key=f"tracking:{shipment.pk}:2")
    assert message.carries_location and message.content["thing5"] != "-"
    assert Order.objects.get(pk=shipment.order_id).status == "shipped"


def test_a_refused_parcel_opens_a_returned_ticket_and_does_not_complete(tracked, fake_kuaidi100):
    shipment = tracked("ZT7REFUSE1")
    for _step in range(5):
        fake_kuaidi100.push("ZT7REFUSE1")
    assert Ticket.objects.get(shipment=shipment).kind == "returned"
    assert Order.objects.get(pk=shipment.order_id).status == "shipped"


def test_a_push_for_an_unknown_parcel_is_acknowledged_and_ignored(live_server, settings):
    settings.KUAIDI100 = {**settings.KUAIDI100, "CALLBACK_SALT": SALT}
    from integrations.kuaidi100.client import callback_sign

    param = json.dumps({"status": "polling", "lastResult": {"nu": "NOPE1", "com": "zhongtong", "state": "0", "data": []}})
    response = requests.post(
        f"{live_server.url}/integrations/kuaidi100/callback/",
        data={"param": param, "sign": callback_sign(param, SALT)},
        timeout=5,
    )
    assert response.json() == ACK


def test_the_callback_only_takes_post(client):
    assert client.get("/integrations/kuaidi100/callback/").status_code == 405


def test_a_permanently_refused_subscription_opens_a_ticket(fake_kuaidi100, fake_wechat, settings, live_server):
    settings.PUBLIC_BASE_URL = live_server.url
    order = shipped_order(tracking_number="YZ7001", carrier_code="youzhengguonei")
    subscription = TrackingSubscription.objects.get(shipment__order=order)
    assert services.shipment_subscribe(subscription_id=subscription.pk) == "refused"
    subscription.refresh_from_db()
    assert subscription.state == SubscriptionState.REFUSED and subscription.last_error.startswith("701")
    # Nobody watches the parcel now: the minute watch scan hands it to a person, once.
    assert tracking.shipments_watch_scan() == 1
    ticket = Ticket.objects.get(order=order)
    assert ticket.kind == "aborted" and "701" in ticket.summary
    assert tracking.shipments_watch_scan() == 0


def test_a_busy_provider_is_retried_with_backoff_and_a_claim_is_taken_once(fake_kuaidi100, fake_wechat, settings, live_server):
    settings.PUBLIC_BASE_URL = live_server.url
    order = shipped_order(tracking_number="ZT7008")
    subscription = TrackingSubscription.objects.get(shipment__order=order)
    fake_kuaidi100.fail_next("/poll", "500", "服务器错误")
    assert services.shipment_subscribe(subscription_id=subscription.pk) == "retry"
    assert services.shipment_subscribe(subscription_id=subscription.pk) == "not due"  # backing off
    TrackingSubscription.objects.filter(pk=subscription.pk).update(next_attempt_at=subscription.created_at)
    assert services.shipment_subscribe(subscription_id=subscription.pk) == "subscribed"
    assert services.shipment_subscribe(subscription_id=subscription.pk) == "not due"
    assert sum(1 for path, _form in fake_kuaidi100.requests if path == "/poll") == 2
