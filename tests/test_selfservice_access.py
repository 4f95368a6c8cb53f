"""The customer's self-service page: order number + last 4 digits or a signed link; wrong digits
refused, guessing rate-limited, links expire, personal data masked, every view counted."""

import datetime

import pytest
import time_machine
from django.core import signing
from django.core.cache import cache

from tests.conftest import make_order
from tests.frontline_fixtures import fast_passwords, ship  # noqa: F401
from workflows.frontline import selfservice
from workflows.frontline.models import SelfServiceQuery

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def empty_cache():
    cache.clear()  # rate-limit counters live in the shared cache
    yield
    cache.clear()


@pytest.fixture
def order():
    order = make_order(status="shipped", phone="13912345678")  # receiver 王丽, 市心北路100号
    ship(order, location="广东,深圳市", eta=None)
    return order


def ask(client, order_number, last4, address="203.0.113.7"):
    return client.post("/track/", {"order_number": order_number, "last4": last4}, REMOTE_ADDR=address)


def test_form_is_public(client):
    assert client.get("/track/").status_code == 200


def test_right_digits_show_status_with_masked_personal_data(client, order):
    response = ask(client, order.order_number, "5678")
    html = response.content.decode()
    assert response.status_code == 200
    assert "广东,深圳市" in html
    assert "139****5678" in html and "13912345678" not in html
    assert "市心北路" not in html and "王*" in html
    assert SelfServiceQuery.objects.get().via == "code"


def test_wrong_digits_are_refused(client, order):
    response = ask(client, order.order_number, "1234")
    assert response.status_code == 400
    assert "广东,深圳市" not in response.content.decode()
    assert not SelfServiceQuery.objects.exists()


def test_unknown_order_is_refused_the_same_way(client, order):
    assert ask(client, "NO-SUCH-ORDER", "5678").status_code == 400


def test_guessing_one_order_is_rate_limited(client, order):
    for attempt in range(selfservice.MAX_FAILURES_PER_ORDER):
        assert ask(client, order.order_number, f"{attempt:04d}", address=f"198.51.100.{attempt}").status_code == 400
    # Even the right digits from a fresh address wait now: the order itself is being guessed.
    assert ask(client, order.order_number, "5678", address="192.0.2.1").status_code == 429


def test_guessing_many_orders_from_one_address_is_rate_limited(client, order):
    for attempt in range(selfservice.MAX_FAILURES_PER_ADDRESS):
        ask(client, f"GUESS{attempt}", "0000")
    assert ask(client, order.order_number, "5678").status_code == 429
    assert ask(client, order.order_number, "5678", address="192.0.2.1").status_code == 200


def test_signed_link_opens_the_page_and_counts(client, order):
    token = selfservice.link_token(order)
    response = client.get(f"/track/s/{token}/")
    assert response.status_code == 200 and "广东,深圳市" in response.content.decode()
    assert SelfServiceQuery.objects.get().via == "link"


def test_signed_link_expires(client, order):
    token = selfservice.link_token(order)
    with time_machine.travel(datetime.datetime.now(tz=datetime.UTC) + selfservice.LINK_MAX_AGE + datetime.timedelta(minutes=1)):
        response = client.get(f"/track/s/{token}/")
    assert response.status_code == 410
    assert 'id="track-form"' in response.content.decode()
    assert not SelfServiceQuery.objects.exists()


def test_tampered_link_is_refused(client, order):
    token = selfservice.link_token(order)
    other = make_order(status="paid")
    payload, signed_at, signature = token.split(":")
    forged = ":".join([signing.b64_encode(f'"{other.order_number}"'.encode()).decode(), signed_at, signature])
    assert forged != token
    assert client.get(f"/track/s/{forged}/").status_code == 400
    assert client.get(f"/track/s/{token}x/").status_code == 400
