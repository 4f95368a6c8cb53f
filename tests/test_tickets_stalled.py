"""Stalled shipments open one ticket for the courier role; tickets have an owner, notes and a
close with a resolution; the fallback poll keeps to one query per number per 30 minutes."""

import datetime

import pytest
import time_machine
from django.utils import timezone

from integrations.kuaidi100 import services
from integrations.kuaidi100.models import SubscriptionState, TrackingSubscription
from orders.access import Actor
from orders.models import Shipment
from tests.conftest import PASSWORD, make_order
from tests.logistics_fixtures import fake_kuaidi100, fake_wechat  # noqa: F401 - fixtures
from workflows import tickets, tracking
from workflows.health.measures import measure_exception_closure
from workflows.models import Ticket

pytestmark = pytest.mark.django_db


def tracked_shipment(*, number: str = "ZT9001", hours_silent: float = 0, state: str = "0") -> Shipment:
    order = make_order(status="shipped")
    last = timezone.now() - datetime.timedelta(hours=hours_silent)
    shipment = Shipment.objects.create(
        order=order,
        carrier_code="zhongtong",
        tracking_number=number,
        tracking_state=state,
        last_event_at=last,
        last_location="杭州市",
        created_at=last,
    )
    TrackingSubscription.objects.create(shipment=shipment, state=SubscriptionState.ACTIVE, subscribed_at=last, last_push_at=last)
    return shipment


def test_24_hours_of_silence_opens_exactly_one_ticket(fake_wechat):
    quiet = tracked_shipment(number="ZT9002", hours_silent=25)
    tracked_shipment(number="ZT9003", hours_silent=23)
    assert tracking.shipments_stalled_scan() == 1
    assert tracking.shipments_stalled_scan() == 0
    ticket = Ticket.objects.get()
    assert ticket.shipment == quiet and ticket.kind == "stalled" and ticket.for_role == "courier"
    assert quiet.order.alerts.filter(kind="ticket").count() == 1


def test_a_closed_stall_is_not_reopened_for_the_same_silence_but_for_a_new_one(fake_wechat, people):
    shipment = tracked_shipment(hours_silent=30)
    tracking.shipments_stalled_scan()
    ticket = Ticket.objects.get()
    tickets.ticket_close(ticket=ticket, by=Actor.of(people["courier"]), resolution="承运商已找到包裹")
    assert tracking.shipments_stalled_scan() == 0
    Shipment.objects.filter(pk=shipment.pk).update(last_event_at=timezone.now())  # a new scan after the ticket
    with time_machine.travel(timezone.now() + datetime.timedelta(hours=25), tick=False):
        assert tracking.shipments_stalled_scan() == 1
    assert Ticket.objects.filter(shipment=shipment, closed_at__isnull=True).count() == 1


def test_untracked_or_finished_shipments_are_not_scanned(fake_wechat):
    shipment = tracked_shipment(hours_silent=48)
    TrackingSubscription.objects.filter(shipment=shipment).update(state=SubscriptionState.FINISHED)
    assert tracking.shipments_stalled_scan() == 0


def test_ticket_lifecycle_and_permissions(fake_wechat, people):
    shipment = tracked_shipment(hours_silent=30)
    ticket, created = tickets.ticket_open_for_shipment(shipment=shipment, kind="stalled", summary="no update")
    again, created_again = tickets.ticket_open_for_shipment(shipment=shipment, kind="problem", summary="dup")
    assert created and not created_again and again.pk == ticket.pk
    with pytest.raises(tickets.TicketError):
        tickets.ticket_close(ticket=ticket, by=Actor.of(people["packer"]), resolution="x")
    with pytest.raises(tickets.TicketError):
        tickets.ticket_close(ticket=ticket, by=Actor.of(people["courier"]), resolution="  ")
    tickets.ticket_take(ticket=ticket, by=Actor.of(people["courier"]))
    tickets.ticket_add_note(ticket=ticket, by=Actor.of(people["courier"]), body="已致电中通网点")
    opened = ticket.opened_at
    with time_machine.travel(opened + datetime.timedelta(minutes=80), tick=False):
        closed = tickets.ticket_close(ticket=ticket, by=Actor.of(people["courier"]), resolution="包裹已找到，明日派送")
    assert closed.owner == people["courier"] and closed.closed_by == people["courier"]
    with pytest.raises(tickets.TicketError):
        tickets.ticket_close(ticket=ticket, by=Actor.of(people["supervisor"]), resolution="again")
    # The exception closure measure (its one home: workflows/health/measures.py) counts the
    # ticket on the business day it closed, open → closed.
    closed_day = timezone.localtime(closed.closed_at, timezone.get_default_timezone()).date()
    measured = measure_exception_closure(day=closed_day)
    assert (measured.value, measured.sample_size) == (80.0, 1)


@pytest.mark.parametrize(
    ("role", "status"), [("courier", 200), ("supervisor", 200), ("packer", 403), ("service", 403), ("outsider", 403)]
)
def test_ticket_pages_by_role(client, people, fake_wechat, role, status):
    shipment = tracked_shipment(hours_silent=30)
    ticket, _created = tickets.ticket_open_for_shipment(shipment=shipment, kind="stalled", summary="no update")
    client.login(username=role, password=PASSWORD)
    assert client.get("/tickets/").status_code == status
    assert client.get(f"/tickets/{ticket.pk}/").status_code == status
    assert client.post(f"/tickets/{ticket.pk}/take/").status_code == (302 if status == 200 else 403)


def test_anonymous_is_sent_to_login(client):
    assert client.get("/tickets/").status_code == 302


def test_courier_works_a_ticket_by_plain_post_and_htmx(client, people, fake_wechat):
    shipment = tracked_shipment(hours_silent=30)
    tracking.shipments_stalled_scan()
    ticket = Ticket.objects.get()
    client.login(username="courier", password=PASSWORD)
    card = client.get(f"/orders/{shipment.order.order_number}/").content.decode()
    assert f'id="ticket-{ticket.pk}"' in card and "/tickets/" in card
    response = client.post(f"/tickets/{ticket.pk}/note/", {"body": "网点说明天到"}, HTTP_HX_REQUEST="true")
    assert 'id="ticket-detail"' in response.content.decode() and "网点说明天到" in response.content.decode()
    response = client.post(f"/tickets/{ticket.pk}/close/", {"resolution": ""}, HTTP_HX_REQUEST="true")
    assert 'id="ticket-error"' in response.content.decode()
    response = client.post(
        f"/tickets/{ticket.pk}/close/", {"resolution": "已派送", "next": f"/orders/{shipment.order.order_number}/"}
    )
    assert response.status_code == 302 and response["Location"] == f"/orders/{shipment.order.order_number}/"
    ticket.refresh_from_db()
    assert ticket.closed_at is not None and ticket.resolution == "已派送"


def test_the_fallback_poll_asks_once_per_30_minutes(fake_kuaidi100, fake_wechat, settings):
    from integrations.kuaidi100 import client

    shipment = tracked_shipment(number="ZT9100", hours_silent=3)
    client.subscribe(carrier_code="zhongtong", tracking_number="ZT9100", callback_url="http://127.0.0.1:9/x")
    fake_kuaidi100.advance("ZT9100")
    fake_kuaidi100.advance("ZT9100")  # pushes that never arrived
    due = services.subscriptions_due_for_poll()
    assert list(due.values_list("shipment_id", flat=True)) == [shipment.pk]
    subscription = shipment.subscription
    assert tracking.shipment_poll(subscription_id=subscription.pk) == "polled"
    assert tracking.shipment_poll(subscription_id=subscription.pk) == "polled recently"
    assert sum(1 for path, _form in fake_kuaidi100.requests if path == "/poll/query.do") == 1
    shipment.refresh_from_db()
    assert shipment.events.count() == 2 and shipment.tracking_state == "0"
    assert not services.subscriptions_due_for_poll().exists()
    with time_machine.travel(timezone.now() + datetime.timedelta(minutes=31), tick=False):
        assert tracking.shipment_poll(subscription_id=subscription.pk) == "polled"
    assert sum(1 for path, _form in fake_kuaidi100.requests if path == "/poll/query.do") == 2


def test_a_poll_without_results_is_recorded(fake_kuaidi100, fake_wechat):
    shipment = tracked_shipment(number="ZT9101", hours_silent=3)
    assert tracking.shipment_poll(subscription_id=shipment.subscription.pk) == "error 500"
    shipment.subscription.refresh_from_db()
    assert "查询无结果" in shipment.subscription.last_error
