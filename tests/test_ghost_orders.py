"""The ghost-order check (issue 16, workflows/ghosts.py): shipped here with no carrier pickup scan
past the window; reported shipped by the WMS while not shipped here; the pickup that arrives
in time (no ghost) or late (the ghost released); the daily count on the health page."""

from __future__ import annotations

import datetime
import json
import time

import pytest
from django.test import Client
from django.utils import timezone, translation

from integrations.erp.inbound import sign
from integrations.kuaidi100 import client as kuaidi100
from integrations.kuaidi100.services import tracking_ingest
from orders import services
from orders.access import Actor
from orders.models import EventKind, OrderEvent, OrderTag, RiskTag
from orders.rules import TAG_RESOLVER_ROLES
from tests.conftest import make_order
from workflows import ghosts
from workflows.health.measures import MEASURES_BY_KEY, behind_ghost_orders, measure_ghost_orders

pytestmark = pytest.mark.django_db
WMS_SECRET = "wms-ghost-secret"


@pytest.fixture(autouse=True)
def chinese():
    with translation.override("zh-hans"):
        yield


def shipped(people, *, hours_ago: float, number: str = "SF1234567890"):
    order = make_order(status="packed")
    services.order_ship(order=order, by=Actor.of(people["courier"]), carrier_code="shunfeng", tracking_number=number)
    order.refresh_from_db()
    order.shipped_at = timezone.now() - datetime.timedelta(hours=hours_ago)
    order.save(update_fields=["shipped_at"])
    return order


def pickup(order, *, state="1"):
    shipment = order.shipments.get()
    item = kuaidi100.TrackingItem(timezone.now(), "【杭州市】顺丰速运 已收取快件", "杭州市", "", "揽收")
    result = kuaidi100.TrackingResult(shipment.carrier_code, shipment.tracking_number, state, [item], None)
    tracking_ingest(shipment=shipment, result=result)


def open_ghosts():
    return OrderTag.objects.filter(tag=RiskTag.GHOST_ORDER, resolved_at__isnull=True)


def test_shipped_past_the_window_without_a_pickup_scan_is_a_ghost(people, settings):
    settings.GHOST_ORDER_WINDOW = datetime.timedelta(hours=12)
    late = shipped(people, hours_ago=13)
    recent = shipped(people, hours_ago=2, number="SF1234567891")
    assert ghosts.ghost_check().opened == 1
    tag = open_ghosts().get()
    assert tag.order == late and tag.opened_by is None
    event = OrderEvent.objects.get(order=late, kind=EventKind.TAG)
    assert event.actor_name == "ghost check" and "13 小时" in event.payload["note"] and "揽收" in event.payload["note"]
    # Run again: nothing new (one open ghost per order); the recent order is still within its window.
    assert ghosts.ghost_check().opened == 0
    assert not open_ghosts().filter(order=recent).exists()
    # The window is a setting: at 1 h the recent one is a ghost too.
    settings.GHOST_ORDER_WINDOW = datetime.timedelta(hours=1)
    assert ghosts.ghost_check().opened == 1


def test_a_pickup_scan_in_time_means_no_ghost_and_a_late_one_releases_it(people, settings):
    settings.GHOST_ORDER_WINDOW = datetime.timedelta(hours=12)
    in_time = shipped(people, hours_ago=20)
    pickup(in_time)
    # Any tracking line counts as the carrier having it, whatever the state says.
    in_transit = shipped(people, hours_ago=20, number="SF1234567892")
    pickup(in_transit, state="0")
    late = shipped(people, hours_ago=20, number="SF1234567893")
    assert ghosts.ghost_check().opened == 1 and open_ghosts().get().order == late
    pickup(late)
    result = ghosts.ghost_check()
    assert (result.opened, result.released) == (0, 1)
    tag = OrderTag.objects.get(order=late, tag=RiskTag.GHOST_ORDER)
    assert tag.resolved_at is not None and "自动" in tag.resolution


def test_reported_shipped_by_the_wms_but_not_shipped_here_is_a_ghost(people, settings):
    settings.GHOST_ORDER_WINDOW = datetime.timedelta(hours=12)
    settings.INBOUND_EVENT_SECRETS = {"WMS": WMS_SECRET}
    order = make_order(status="packed")
    services.order_hold(order=order, by=Actor.of(people["service"]), reason="customer_request", until=None)
    body = json.dumps(
        {
            "event_id": "ghost-1",
            "order_number": order.order_number,
            "action": "ship",
            "carrier_code": "shunfeng",
            "tracking_number": "SF9",
        }
    ).encode()
    stamp = str(int(time.time()))
    response = Client().post(
        "/api/v1/events",
        data=body,
        content_type="application/json",
        HTTP_X_BEILE_SOURCE="WMS",
        HTTP_X_BEILE_TIMESTAMP=stamp,
        HTTP_X_BEILE_SIGNATURE=sign(secret=WMS_SECRET, timestamp=stamp, body=body),
    )
    assert response.status_code == 409  # the hold refused it: the WMS thinks it shipped, here it did not
    assert ghosts.ghost_check().opened == 0  # not yet past the window
    OrderEvent.objects.filter(order=order, kind=EventKind.SYNC_REFUSED).update(
        occurred_at=timezone.now() - datetime.timedelta(hours=13)
    )
    assert ghosts.ghost_check().opened == 1
    note = OrderEvent.objects.get(order=order, kind=EventKind.TAG).payload["note"]
    assert "WMS" in note and "已打包" in note
    # Cancelling it here ends the disagreement the other way: released.
    services.order_release(order=order, by=Actor.of(people["service"]))
    services.order_cancel(order=order, by=Actor.of(people["service"]), reason="客户取消")
    assert ghosts.ghost_check().released == 1


def test_a_ghost_a_person_reported_is_not_released_by_the_check_and_is_resolved_by_its_roles(people, settings):
    order = shipped(people, hours_ago=1)
    services.order_tag_add(order=order, by=Actor.of(people["dispatcher"]), tag=RiskTag.GHOST_ORDER)
    assert ghosts.ghost_check().released == 0
    assert TAG_RESOLVER_ROLES["ghost_order"] == frozenset({"dispatcher", "courier"})
    with pytest.raises(services.OrderError):
        services.order_tag_resolve(order=order, by=Actor.of(people["finance"]), tag=RiskTag.GHOST_ORDER, resolution="找到了")
    services.order_tag_resolve(
        order=order, by=Actor.of(people["courier"]), tag=RiskTag.GHOST_ORDER, resolution="包裹在分拣区，已交快递"
    )
    assert not open_ghosts().exists()


def test_the_daily_count_is_a_health_measure_and_beat_runs_the_check(people, settings):
    settings.GHOST_ORDER_WINDOW = datetime.timedelta(hours=12)
    assert "workflows-ghost-check" in settings.CELERY_BEAT_SCHEDULE
    late = shipped(people, hours_ago=13)
    shipped(people, hours_ago=13, number="SF1234567899")
    pickup(late)
    ghosts.ghost_check()
    today = timezone.localdate()
    value = measure_ghost_orders(day=today)
    assert value.value == 1.0 and value.detail == {"open": 1}
    rows = behind_ghost_orders(day=today)
    assert len(rows) == 1 and "揽收" in rows[0].what and rows[0].off_target
    assert MEASURES_BY_KEY["ghost_orders"].target == 0
    from workflows import tasks

    assert tasks.ghost_check() == 0  # the beat task: nothing new
