"""Hostile and careless callers on the web side (issue 12): the self-service page answers every
shape of input without a 500 or a leak and throttles per client and per order, even with Redis
down; phone numbers typed into free text are masked for the masked roles; signed-in pages are
never cached; the error pages are the cockpit's own, in Chinese; a refusal is one log line; every
page has an icon."""

from __future__ import annotations

import logging
import re
import unicodedata

import pytest
from django.contrib.staticfiles import finders
from django.core.cache import cache
from django.template import loader
from django.test import RequestFactory, override_settings
from django.views.defaults import server_error

from orders import services
from orders.access import Actor
from orders.models import PackScan, ScanOutcome
from tests.conftest import PASSWORD, make_order
from tests.frontline_fixtures import fast_passwords, ship  # noqa: F401
from workflows.frontline import selfservice
from workflows.frontline.models import SelfServiceFailure, SelfServiceQuery

PROXY = "10.0.0.2"  # the one reverse proxy every customer's request comes through
NO_REDIS = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:1/0"}}


@pytest.fixture(autouse=True)
def empty_cache():
    cache.clear()  # the throttle's counters live in the shared cache
    yield
    cache.clear()


@pytest.fixture
def order(db):
    order = make_order(status="shipped", phone="13912345678")
    ship(order, location="广东,深圳市", eta=None)
    return order


def full_width(text: str) -> str:
    return "".join(chr(ord(char) + 0xFEE0) if "!" <= char <= "~" else char for char in text)


def ask(client, order_number, last4, *, address="203.0.113.7", forwarded_for=None):
    extra = {"REMOTE_ADDR": address}
    if forwarded_for:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded_for
    return client.post("/track/", {"order_number": order_number, "last4": last4}, **extra)


def error_text(response) -> str:
    found = re.search(r'id="track-error"[^>]*>(.*?)</p>', response.content.decode(), re.S)
    return found.group(1) if found else ""


def has_chinese(text: str) -> bool:
    return any("CJK" in unicodedata.name(char, "") for char in text)


def heading(html: str) -> str:
    """The error page's own heading (the page title alone is translated already)."""
    found = re.search(r'class="login-box error-box"[^>]*>\s*<h1>(.*?)</h1>', html, re.S)
    return found.group(1) if found else ""


# --- /track/: one normalisation ------------------------------------------------------------------


def test_full_width_and_lower_case_input_finds_the_order(client, order):
    assert full_width("5678") == "５６７８"
    assert ask(client, order.order_number, full_width("5678")).status_code == 200
    assert ask(client, order.order_number.lower(), "5678").status_code == 200
    assert ask(client, f"  {full_width(order.order_number.lower())} ", " 5678 ").status_code == 200
    assert SelfServiceQuery.objects.filter(order=order).count() == 3


def test_unknown_order_and_wrong_digits_get_the_same_answer(client, order):
    """Today full-width digits give a 500 for an existing order and a 400 for an unknown one,
    which tells a guesser which order numbers exist."""
    wrong_digits = ask(client, order.order_number, full_width("1234"), address="198.51.100.1")
    unknown = ask(client, "T9999999999", full_width("1234"), address="198.51.100.2")
    assert wrong_digits.status_code == unknown.status_code == 400
    assert error_text(wrong_digits) == error_text(unknown) != ""


@pytest.mark.parametrize(
    "order_number, last4",
    [
        ("T0000000001", "12a4"),
        ("T0000000001", "12345"),
        ("T0000000001", ""),
        ("T" * 41, "1234"),
        ("", "1234"),
    ],
)
def test_malformed_input_is_a_400_in_chinese_and_counted(client, order, order_number, last4):
    response = ask(client, order_number, last4, address="198.51.100.9")
    assert response.status_code == 400
    assert has_chinese(error_text(response))
    assert not SelfServiceQuery.objects.exists()
    for _ in range(selfservice.MAX_FAILURES_PER_ADDRESS - 1):
        ask(client, order_number, last4, address="198.51.100.9")
    # Counted: this address is now throttled, even with the right digits.
    assert ask(client, order.order_number, "5678", address="198.51.100.9").status_code == 429


def test_full_width_guesses_are_counted_per_order(client, order):
    for attempt in range(selfservice.MAX_FAILURES_PER_ORDER):
        response = ask(client, order.order_number, full_width(f"{attempt:04d}"), address=f"198.51.100.{attempt}")
        assert response.status_code == 400
    assert ask(client, order.order_number, "5678", address="192.0.2.1").status_code == 429
    # Another order is not affected.
    other = make_order(status="paid", phone="13700001234")
    assert ask(client, other.order_number, "1234", address="192.0.2.1").status_code == 200


# --- /track/: throttled per client behind the proxy, never one global lock ----------------------


def test_behind_the_proxy_each_customer_is_counted_by_their_own_address(client, order, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    guesser, customer = "198.51.100.66", "203.0.113.50"
    for attempt in range(selfservice.MAX_FAILURES_PER_ADDRESS):
        ask(client, f"GUESS{attempt}", "0000", address=PROXY, forwarded_for=guesser)
    assert ask(client, order.order_number, "5678", address=PROXY, forwarded_for=guesser).status_code == 429
    # The real customer behind the same proxy is not locked out by the guesser.
    assert ask(client, order.order_number, "5678", address=PROXY, forwarded_for=customer).status_code == 200
    # A forged X-Forwarded-For in front of the proxy's own entry does not reset the guesser's count.
    assert ask(client, order.order_number, "5678", address=PROXY, forwarded_for=f"1.2.3.4, {guesser}").status_code == 429


def test_signed_links_are_never_locked_by_other_clients_failures(client, order, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    token = selfservice.link_token(order)
    for attempt in range(selfservice.MAX_FAILURES_PER_ADDRESS):
        ask(client, f"GUESS{attempt}", "0000", address=PROXY, forwarded_for="198.51.100.66")
        client.get(f"/track/s/{token}x{attempt}/", REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=f"198.51.100.{attempt}")
    response = client.get(f"/track/s/{token}/", REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR="203.0.113.50")
    assert response.status_code == 200
    assert "广东,深圳市" in response.content.decode()


def test_bad_links_are_counted_against_their_own_address(client, order):
    token = selfservice.link_token(order)
    for attempt in range(selfservice.MAX_FAILURES_PER_ADDRESS):
        assert client.get(f"/track/s/{token}x{attempt}/", REMOTE_ADDR="198.51.100.66").status_code == 400
    assert client.get(f"/track/s/{token}x/", REMOTE_ADDR="198.51.100.66").status_code == 429
    assert client.get(f"/track/s/{token}x/", REMOTE_ADDR="203.0.113.50").status_code == 400


# --- /track/: Redis down ---------------------------------------------------------------------------


def test_with_redis_down_the_throttle_counts_in_the_database(client, order):
    with override_settings(CACHES=NO_REDIS):
        redis_down_journey(client, order)


def redis_down_journey(client, order):
    assert ask(client, order.order_number, "5678").status_code == 200
    for attempt in range(selfservice.MAX_FAILURES_PER_ORDER):
        assert ask(client, order.order_number, full_width(f"{attempt:04d}"), address=f"198.51.100.{attempt}").status_code == 400
    assert SelfServiceFailure.objects.filter(order_number=order.order_number).count() == selfservice.MAX_FAILURES_PER_ORDER
    assert ask(client, order.order_number, "5678", address="192.0.2.1").status_code == 429
    token = selfservice.link_token(order)
    assert client.get(f"/track/s/{token}/").status_code == 200
    assert client.get(f"/track/s/{token}x/").status_code == 400


# --- Phone numbers typed into free text ---------------------------------------------------------


@pytest.fixture
def chatty_order(people):
    order = make_order(status="picking", phone="13900001111", buyer_message="到了打我老公电话13612345678")
    services.order_add_note(order=order, by=Actor.of(people["service"]), body="客户电话13812345678", audience="warehouse")
    services.order_hold(
        order=order, by=Actor.of(people["service"]), reason="customer_request", until=None, note="等客户回电 137-1234-5678"
    )
    return order


TYPED_NUMBERS = {"13812345678": "138****5678", "13612345678": "136****5678", "137-1234-5678": "137****5678"}


@pytest.mark.parametrize("role", ["packer", "dispatcher", "courier"])
def test_masked_roles_see_typed_numbers_masked_on_the_card(client, chatty_order, role):
    client.login(username=role, password=PASSWORD)
    html = client.get(f"/orders/{chatty_order.order_number}/").content.decode()
    for typed, masked in TYPED_NUMBERS.items():
        assert typed not in html, typed
        assert masked in html, masked
    # The timeline line "Note for …: <body>" too.
    timeline = html[html.index('id="timeline"') :]
    assert "138****5678" in timeline and "13812345678" not in timeline
    # The roles that see phones see the typed numbers in full: the same rule as structured phones.
    client.login(username="service", password=PASSWORD)
    html = client.get(f"/orders/{chatty_order.order_number}/").content.decode()
    assert all(typed in html for typed in TYPED_NUMBERS)


def test_the_packing_station_masks_typed_numbers(client, chatty_order):
    client.login(username="packer", password=PASSWORD)
    html = client.get(f"/pda/{chatty_order.order_number}/").content.decode()
    assert "客户电话138****5678" in html and "13812345678" not in html


# --- One normalisation for order numbers everywhere a person types one ------------------------


def test_pda_scan_finds_a_lower_case_order_number(client, people):
    order = make_order(status="picking")
    client.login(username="packer", password=PASSWORD)
    response = client.post("/pda/scan/", {"code": full_width(order.order_number.lower())})
    assert response.status_code == 302 and response["Location"] == f"/pda/{order.order_number}/"
    assert PackScan.objects.get().outcome == ScanOutcome.OPENED


def test_order_search_and_customer_lookup_find_a_lower_case_order_number(client, people):
    order = make_order(status="paid", phone="13900002222")
    client.login(username="supervisor", password=PASSWORD)
    listed = client.get("/orders/", {"q": order.order_number.lower()}).content.decode()
    assert f"/orders/{order.order_number}/" in listed
    found = client.get("/service/lookup/", {"q": full_width(order.order_number.lower())}).content.decode()
    assert f'id="answer-{order.order_number}"' in found


# --- Cache-Control ------------------------------------------------------------------------------


def test_signed_in_pages_are_not_stored(client, people, order):
    client.login(username="supervisor", password=PASSWORD)
    for url in ("/", "/orders/", f"/orders/{order.order_number}/"):
        response = client.get(url, follow=url == "/")
        assert "no-store" in response["Cache-Control"], url
    # The public self-service page keeps its own caching.
    client.logout()
    assert "no-store" not in client.get("/track/").get("Cache-Control", "")


# --- The cockpit's own error pages ------------------------------------------------------------


def test_404_is_the_cockpits_chinese_page(client, people):
    response = client.get("/no-such-page/")
    html = response.content.decode()
    assert response.status_code == 404 and 'id="error-404"' in html and has_chinese(heading(html))


def test_404_in_the_demo_is_not_djangos_debug_page(client, people, settings):
    settings.DEBUG = True
    client.login(username="supervisor", password=PASSWORD)
    for url in ("/no-such-page/", "/orders/NO-SUCH-ORDER/"):
        response = client.get(url)
        html = response.content.decode()
        assert response.status_code == 404, url
        assert 'id="error-404"' in html and "URLconf" not in html and "Django" not in html, url
    # A missing trailing slash is still redirected, not refused.
    assert client.get("/orders").status_code == 301


def test_403_is_the_cockpits_chinese_page_and_one_log_line(client, people, caplog):
    client.login(username="packer", password=PASSWORD)
    with caplog.at_level(logging.WARNING, logger="django.request"):
        response = client.get("/health/")
    html = response.content.decode()
    assert response.status_code == 403 and 'id="error-403"' in html and has_chinese(heading(html))
    refusals = [record for record in caplog.records if record.name == "django.request"]
    assert len(refusals) == 1 and refusals[0].exc_info is None
    line = logging.Formatter().format(refusals[0])
    assert "Traceback" not in line and "\n" not in line and "/health/" in line


def test_500_page_needs_no_request_and_no_database():
    # No django_db mark: a database query here fails the test.
    html = loader.get_template("500.html").render()
    assert 'id="error-500"' in html and has_chinese(heading(html))
    response = server_error(RequestFactory().get("/"))
    assert response.status_code == 500 and 'id="error-500"' in response.content.decode()


# --- Favicon --------------------------------------------------------------------------------------


def test_every_page_links_an_icon_that_exists(client, people):
    html = client.get("/login/").content.decode()
    icon = re.search(r'<link rel="icon" href="([^"]+)"', html)
    assert icon and finders.find("favicon.svg")
    assert 'rel="icon"' in client.get("/track/").content.decode()
    response = client.get("/favicon.ico")
    assert response.status_code == 302 and response["Location"] == icon.group(1)


@pytest.mark.django_db
def test_a_csrf_failure_is_the_cockpits_chinese_page(people):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(people["reviewer"])
    response = client.post("/orders/T0000000001/approve/", HTTP_ACCEPT_LANGUAGE="zh-hans")
    body = response.content.decode()
    assert response.status_code == 403
    assert 'id="error-403-csrf"' in body and "表单已过期" in body
