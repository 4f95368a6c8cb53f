"""Hostile callers of POST /api/v1/events (and the same hostile values typed into the card's and
the PDA's forms): every malformed value is a 4xx with a message, never a 500; a 404 or 409 is not
final, so the sender's retry with the same event_id is applied once the cause is gone."""

from __future__ import annotations

import json
import time

import pytest

from integrations.erp import inbound
from integrations.erp.inbound import sign
from integrations.erp.models import InboundEvent
from orders.models import AfterSalesCase, EventKind, Note, OrderEvent
from tests.conftest import PASSWORD, make_order
from tests.erp_fixtures import fast_passwords  # noqa: F401 (autouse)

pytestmark = pytest.mark.django_db
SECRET = "wms-test-secret"


@pytest.fixture(autouse=True)
def secrets(settings):
    settings.INBOUND_EVENT_SECRETS = {"WMS": SECRET}


@pytest.fixture
def raise_server_errors(client):
    """A 500 must fail the test as a 500, not as an exception inside the test client."""
    client.raise_request_exception = False
    return client


def post_raw(client, body: bytes, *, content_type="application/json"):
    timestamp = str(int(time.time()))
    return client.post(
        "/api/v1/events",
        data=body,
        content_type=content_type,
        HTTP_X_BEILE_SOURCE="WMS",
        HTTP_X_BEILE_TIMESTAMP=timestamp,
        HTTP_X_BEILE_SIGNATURE=sign(secret=SECRET, timestamp=timestamp, body=body),
    )


def post(client, payload):
    return post_raw(client, json.dumps(payload, ensure_ascii=False).encode())


def event(number: str, **fields) -> dict:
    return {"event_id": "wms-1", "order_number": number, "action": "start_picking", **fields}


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"occurred_at": "2024-02-30T10:00:00+08:00"}, "2024-02-30"),
        ({"occurred_at": "2024-05-01T25:00:00+08:00"}, "occurred_at"),
        ({"occurred_at": 1714530000}, "occurred_at"),
        ({"event_id": {"id": 1}}, "event_id"),
        ({"event_id": True}, "event_id"),
        ({"event_id": "x" * 101}, "event_id"),
        ({"order_number": ["E1"]}, "order_number"),
        ({"tracking_number": {"$gt": ""}, "action": "ship"}, "tracking_number"),
    ],
)
def test_malformed_values_are_400_with_a_message(raise_server_errors, fields, says):
    order = make_order(status="paid")
    response = post(raise_server_errors, event(order.order_number, **fields))
    assert response.status_code == 400, response.content
    assert says in response.json()["error"]
    order.refresh_from_db()
    assert order.status == "paid" and not InboundEvent.objects.exists()


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_anywhere_are_400(raise_server_errors, constant):
    order = make_order(status="paid")
    for body in (
        f'{{"event_id": {constant}, "order_number": "{order.order_number}", "action": "start_picking"}}',
        f'{{"event_id": "e1", "order_number": "{order.order_number}", "action": "start_picking", "amount": {constant}}}',
        f'{{"event_id": "e2", "order_number": "{order.order_number}", "action": "start_picking", "lines": [{{"qty": {constant}}}]}}',
    ):
        response = post_raw(raise_server_errors, body.encode())
        assert response.status_code == 400, (body, response.content)
        assert constant.lstrip("-") in response.json()["error"]
    order.refresh_from_db()
    assert order.status == "paid" and not InboundEvent.objects.exists()


@pytest.mark.parametrize("body", [b"[1, 2]", b'"start_picking"', b"42", b"null", b"{", b"\xff\xfe", b"[" * 60000])
def test_a_body_that_is_not_an_object_is_400(raise_server_errors, body):
    response = post_raw(raise_server_errors, body)
    assert response.status_code == 400, response.content
    assert response.json()["error"]


def test_a_huge_body_and_a_wrong_content_type_are_refused_with_a_message(raise_server_errors):
    order = make_order(status="paid")
    huge = json.dumps(event(order.order_number, reason="x" * inbound.MAX_BODY_BYTES)).encode()
    too_big = post_raw(raise_server_errors, huge)
    assert too_big.status_code == 413 and str(inbound.MAX_BODY_BYTES) in too_big.json()["error"]
    form = post_raw(raise_server_errors, json.dumps(event(order.order_number)).encode(), content_type="text/plain")
    assert form.status_code == 415 and "application/json" in form.json()["error"]
    order.refresh_from_db()
    assert order.status == "paid" and not InboundEvent.objects.exists()


def test_an_event_for_an_order_not_imported_yet_is_applied_when_retried_after_the_import(client):
    first = post(client, event("E7001"))
    assert first.status_code == 404
    order = make_order(order_number="E7001", status="paid")  # the ERP import brings it in
    retry = post(client, event("E7001"))
    assert retry.status_code == 200 and retry.json() == {"ok": True, "status": "picking"}
    order.refresh_from_db()
    assert order.status == "picking"
    # From now on the answer is final: a replay repeats it and changes nothing.
    replay = post(client, event("E7001"))
    assert replay.status_code == 200 and replay.json()["duplicate"] is True
    assert OrderEvent.objects.filter(order=order, kind=EventKind.STATUS).count() == 1
    assert InboundEvent.objects.get().response_status == 200


def test_an_event_that_arrived_before_its_step_is_applied_when_retried_after_it(client):
    order = make_order(status="pending_review")
    early = post(client, {"event_id": "wms-pick", "order_number": order.order_number, "action": "start_picking"})
    assert early.status_code == 409
    again = post(client, {"event_id": "wms-pick", "order_number": order.order_number, "action": "start_picking"})
    assert again.status_code == 409 and "duplicate" not in again.json()
    # The refusal is on the timeline once, however often the sender retries.
    assert OrderEvent.objects.filter(order=order, kind=EventKind.SYNC_REFUSED).count() == 1

    approve = post(client, {"event_id": "erp-approve", "order_number": order.order_number, "action": "approve"})
    assert approve.status_code == 200
    retry = post(client, {"event_id": "wms-pick", "order_number": order.order_number, "action": "start_picking"})
    assert retry.status_code == 200 and retry.json()["status"] == "picking"
    order.refresh_from_db()
    assert order.status == "picking"
    assert InboundEvent.objects.get(event_id="wms-pick").response_status == 200


# --- The same hostile values typed into the card's and the PDA's forms ------------------------------


def test_an_impossible_hold_date_on_the_card_is_a_message_not_a_500(raise_server_errors, people):
    order = make_order(status="paid")
    raise_server_errors.login(username="supervisor", password=PASSWORD)
    for until in ("2026-02-30T10:00", "2026-05-01T25:00"):
        response = raise_server_errors.post(
            f"/orders/{order.order_number}/hold/", {"reason": "缺货", "until": until}, follow=True
        )
        assert response.status_code == 200
        assert "日期" in response.content.decode()
    order.refresh_from_db()
    assert not order.is_held


def test_a_nan_or_infinite_amount_on_the_card_is_a_message_not_a_500(raise_server_errors, people):
    order = make_order(status="shipped")
    raise_server_errors.login(username="service", password=PASSWORD)
    for amount in ("NaN", "Infinity", "-Infinity", "sNaN", "1e999999"):
        response = raise_server_errors.post(
            f"/orders/{order.order_number}/open_case/",
            {"kind": "refund", "reason": "破损", "amount": amount},
            follow=True,
        )
        assert response.status_code == 200, amount
    assert not AfterSalesCase.objects.exists()


def test_a_non_numeric_note_id_on_the_pda_is_not_a_500(raise_server_errors, people):
    order = make_order(status="picking")
    Note.objects.create(order=order, body="明天12点前送达", author=people["service"])
    raise_server_errors.login(username="packer", password=PASSWORD)
    for note_id in ("abc", "1.5", "９", "99999999999999999999"):
        response = raise_server_errors.post(f"/pda/{order.order_number}/acknowledge/", {"note_id": note_id})
        assert response.status_code in (400, 404), (note_id, response.status_code)
