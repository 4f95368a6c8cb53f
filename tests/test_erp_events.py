"""POST /api/v1/events: signed per source system, fresh, idempotent, through the order guards."""

from __future__ import annotations

import json
import time

import pytest
from django.utils import translation

from integrations.erp.inbound import sign
from integrations.erp.models import InboundEvent
from orders import events
from orders.models import EventKind, OrderEvent
from tests.conftest import PASSWORD, make_order
from tests.erp_fixtures import fast_passwords  # noqa: F401 (autouse)

pytestmark = pytest.mark.django_db
SECRET = "wms-test-secret"


@pytest.fixture(autouse=True)
def secrets(settings):
    settings.INBOUND_EVENT_SECRETS = {"WMS": SECRET, "ERP": "erp-test-secret"}


def post(client, payload: dict, *, source="WMS", secret=SECRET, timestamp=None, signature=None):
    body = json.dumps(payload, ensure_ascii=False).encode()
    timestamp = str(int(time.time()) if timestamp is None else timestamp)
    return client.post(
        "/api/v1/events",
        data=body,
        content_type="application/json",
        HTTP_X_BEILE_SOURCE=source,
        HTTP_X_BEILE_TIMESTAMP=timestamp,
        HTTP_X_BEILE_SIGNATURE=signature or sign(secret=secret, timestamp=timestamp, body=body),
    )


def picking_event(order, event_id="wms-1") -> dict:
    return {
        "event_id": event_id,
        "order_number": order.order_number,
        "action": "start_picking",
        "occurred_at": "2024-05-01T10:00:00+08:00",
    }


def test_good_event_is_applied_once_with_the_source_as_actor(client):
    order = make_order(status="paid")
    first = post(client, picking_event(order))
    assert first.status_code == 200 and first.json() == {"ok": True, "status": "picking"}
    order.refresh_from_db()
    assert order.status == "picking"
    event = OrderEvent.objects.get(order=order, kind=EventKind.STATUS)
    assert event.actor_name == "WMS" and event.source_time.isoformat() == "2024-05-01T02:00:00+00:00"

    replay = post(client, picking_event(order))
    assert replay.status_code == 200 and replay.json()["duplicate"] is True
    assert OrderEvent.objects.filter(order=order, kind=EventKind.STATUS).count() == 1
    assert InboundEvent.objects.count() == 1


def test_bad_signature_is_rejected(client):
    order = make_order(status="paid")
    wrong_key = post(client, picking_event(order), secret="guessed")
    assert wrong_key.status_code == 401 and "签名" in wrong_key.json()["error"]
    unknown = post(client, picking_event(order), source="HACKER")
    assert unknown.status_code == 401
    order.refresh_from_db()
    assert order.status == "paid" and not InboundEvent.objects.exists()


def test_stale_timestamp_is_rejected_even_when_signed(client):
    order = make_order(status="paid")
    response = post(client, picking_event(order), timestamp=int(time.time()) - 301)
    assert response.status_code == 401 and "5 分钟" in response.json()["error"]
    order.refresh_from_db()
    assert order.status == "paid"


def test_refused_transition_is_409_and_shown_on_the_card(client, people):
    order = make_order(status="pending_review")
    response = post(client, {"event_id": "wms-9", "order_number": order.order_number, "action": "pack"})
    assert response.status_code == 409
    reason = response.json()["error"]
    assert "待审核" in reason and "不能执行" in reason
    order.refresh_from_db()
    assert order.status == "pending_review"
    refused = OrderEvent.objects.get(order=order, kind=EventKind.SYNC_REFUSED)
    assert refused.actor_name == "WMS"
    # Written by events.sync_refused: facts only, no sentence fixed in the writer's language;
    # the describer words it for each reader.
    assert refused.payload == {"action": "pack", "event_id": "wms-9", "reason": reason}
    with translation.override("en"):
        assert events.describe(refused).startswith("Warehouse system asked for pack; refused: ")  # actor_label names the WMS
    client.login(username="service", password=PASSWORD)
    card = client.get(f"/orders/{order.order_number}/").content.decode()
    assert "仓储系统 请求 打包，已拒绝" in card
    # The same event again is tried again (a 409 is not final), refused for the same reason, and
    # the refusal is not recorded twice.
    again = post(client, {"event_id": "wms-9", "order_number": order.order_number, "action": "pack"})
    assert again.status_code == 409 and again.json()["error"] == reason
    assert OrderEvent.objects.filter(order=order, kind=EventKind.SYNC_REFUSED).count() == 1


def test_malformed_events(client):
    order = make_order(status="paid")
    assert post(client, {"order_number": order.order_number, "action": "pack"}).status_code == 400
    assert post(client, {"event_id": "x", "order_number": order.order_number, "action": "teleport"}).status_code == 400
    assert post(client, {"event_id": "y", "order_number": "NOPE", "action": "pack"}).status_code == 404


def test_ship_event_records_the_waybill(client):
    order = make_order(status="packed")
    response = post(
        client,
        {
            "event_id": "wms-s",
            "order_number": order.order_number,
            "action": "ship",
            "carrier_code": "zhongtong",
            "tracking_number": "zt778899",
        },
    )
    assert response.status_code == 200, response.content
    order.refresh_from_db()
    assert order.status == "shipped" and order.shipments.get().tracking_number == "ZT778899"
