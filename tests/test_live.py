"""Live screens (orders/live.py): the check a screen makes each second costs no database query
and answers 304 while nothing changed; a change committed anywhere (this process, another one)
makes it answer the newer token; only a signed-in page's key for this session may ask."""

import os
import re
import subprocess
import sys
import time

import pytest
from django.core.cache import cache
from django.test import override_settings

from orders import live, services
from orders.access import Actor
from tests.conftest import PASSWORD, ROOT, database_url_for_subprocess, make_order

LIVE_ATTRIBUTES = re.compile(r'data-live="([^"]+)" data-live-since="(\d+)" data-live-key="([^"]+)"')


def _region(client, url: str) -> tuple[str, str, str]:
    """What a page's live region watches, since when, and its key, as live.js reads them."""
    html = client.get(url).content.decode()
    match = LIVE_ATTRIBUTES.search(html)
    assert match, f"{url} has no live region"
    return match.groups()


def _check(client, watch: str, since: str, key: str):
    return client.get("/live/", {"watch": watch}, HTTP_IF_NONE_MATCH=f'"{since}"', HTTP_X_LIVE_KEY=key)


@pytest.fixture
def supervisor(client, people):
    client.force_login(people["supervisor"])
    return people["supervisor"]


@pytest.fixture(autouse=True)
def empty_cache(monkeypatch):
    """The cache outlives a test (and order ids come back after a flush): start each test with
    no live keys, as after a cache restart. Each check reads the newest token afresh here (the
    process-wide read has its own test below)."""
    cache.clear()
    monkeypatch.setattr(live, "_newest", (float("-inf"), None))
    monkeypatch.setattr(live, "NEWEST_READ_EVERY_SECONDS", 0.0)


def test_an_idle_check_makes_no_database_query_and_answers_304(client, supervisor, django_assert_num_queries):
    order = make_order()
    watch, since, key = _region(client, f"/orders/{order.order_number}/")
    assert watch == f"order:{order.pk}"
    # The first check finds no key (a fresh cache): it stores now, and the card refreshes once.
    with django_assert_num_queries(0):
        first = _check(client, watch, since, key)
    assert first.status_code == 200
    token = first.content.decode()
    assert first["ETag"] == f'"{token}"' and int(token) > int(since)
    with django_assert_num_queries(0):
        idle = _check(client, watch, token, key)
    assert idle.status_code == 304 and idle["Cache-Control"] == "no-store"
    with django_assert_num_queries(0):
        again = _check(client, watch, token, key)
    assert again.status_code == 304


def test_a_committed_change_makes_the_check_answer_the_newer_token(
    client, supervisor, people, django_capture_on_commit_callbacks
):
    order, other = make_order(), make_order()
    watch, since, key = _region(client, f"/orders/{order.order_number}/")
    board_watch, board_since, board_key = _region(client, "/board/")
    assert board_watch == "orders"
    token = _check(client, watch, since, key).content.decode()
    board_token = _check(client, board_watch, board_since, board_key).content.decode()
    assert _check(client, watch, token, key).status_code == 304
    # Another order changes: the card of this one stays quiet, the board hears of it.
    with django_capture_on_commit_callbacks(execute=True):
        services.order_add_note(order=other, by=Actor.of(people["service"]), body="客户要求周六送")
    assert _check(client, watch, token, key).status_code == 304
    assert _check(client, board_watch, board_token, board_key).status_code == 200
    # Nothing is published before the commit.
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        services.order_add_note(order=order, by=Actor.of(people["service"]), body="先别发货")
    assert _check(client, watch, token, key).status_code == 304
    for callback in callbacks:
        callback()
    changed = _check(client, watch, token, key)
    assert changed.status_code == 200 and int(changed.content) > int(token)


def test_a_lookup_watches_every_order_it_shows(client, people, django_capture_on_commit_callbacks):
    client.force_login(people["service"])
    first, second = make_order(phone="13900002222"), make_order(phone="13900002222")
    watch, since, key = _region(client, "/service/lookup/?q=13900002222")
    assert sorted(watch.removeprefix("order:").split(",")) == sorted([str(first.pk), str(second.pk)])
    token = _check(client, watch, since, key).content.decode()
    assert _check(client, watch, token, key).status_code == 304
    with django_capture_on_commit_callbacks(execute=True):
        services.order_add_note(order=second, by=Actor.of(people["service"]), body="客户来电催单")
    assert _check(client, watch, token, key).status_code == 200


def test_a_change_committed_by_another_process_is_seen(transactional_db, client, people):
    """The publish goes through the shared cache (Redis, or the demo's file cache), so a change
    made by another process (a Celery worker, a second web process) reaches this one's check."""
    client.force_login(people["supervisor"])
    order = make_order()
    watch, since, key = _region(client, f"/orders/{order.order_number}/")
    token = _check(client, watch, since, key).content.decode()
    assert _check(client, watch, token, key).status_code == 304
    script = (
        "from orders import services; from orders.access import Actor; from orders.models import Order; "
        f"services.order_add_note(order=Order.objects.get(pk={order.pk}), by=Actor.system('WMS'), body='缺货，明天补')"
    )
    env = {**os.environ, "DATABASE_URL": database_url_for_subprocess()}
    subprocess.run([sys.executable, "manage.py", "shell", "-c", script], cwd=ROOT, env=env, check=True, timeout=120)
    assert _check(client, watch, token, key).status_code == 200


def test_a_process_reads_the_newest_token_once_for_many_checks(
    client, supervisor, people, monkeypatch, django_capture_on_commit_callbacks
):
    """Idle checks answered from one read of the newest token in a while; a change is still
    seen, at most that while later."""
    monkeypatch.setattr(live, "NEWEST_READ_EVERY_SECONDS", 1.0)  # long enough for a slow machine
    order, other = make_order(), make_order()
    watch, since, key = _region(client, f"/orders/{order.order_number}/")
    board_watch, board_since, board_key = _region(client, "/board/")
    # The first checks store the missing keys, the "orders" one first, as a change would have.
    board_token = _check(client, board_watch, board_since, board_key).content.decode()
    token = _check(client, watch, since, key).content.decode()
    monkeypatch.setattr(live, "_newest", (float("-inf"), None))  # read before the keys were stored
    reads = []
    real_read = live.last_change_ns
    monkeypatch.setattr(live, "last_change_ns", lambda: reads.append(1) or real_read())
    gets = []
    real_get_many = cache.get_many
    monkeypatch.setattr(cache, "get_many", lambda keys: gets.append(keys) or real_get_many(keys))
    for _ in range(5):
        assert _check(client, watch, token, key).status_code == 304
        assert _check(client, board_watch, board_token, board_key).status_code == 304
    assert len(reads) == 1 and not gets
    with django_capture_on_commit_callbacks(execute=True):
        services.order_add_note(order=other, by=Actor.of(people["service"]), body="客户要求周六送")
    time.sleep(live.NEWEST_READ_EVERY_SECONDS)
    assert _check(client, board_watch, board_token, board_key).status_code == 200
    # Some order changed after what the card has seen: its own key says whether it was this one.
    assert _check(client, watch, token, key).status_code == 304 and gets


def test_only_a_signed_in_page_may_check(client, people):
    order = make_order()
    # Anonymous: no session cookie, no key.
    assert client.get("/live/", {"watch": "orders"}).status_code == 403
    client.login(username="supervisor", password=PASSWORD)
    watch, since, key = _region(client, f"/orders/{order.order_number}/")
    assert _check(client, watch, since, key).status_code == 200
    assert _check(client, watch, since, key[:-2] + "xx").status_code == 403  # a forged key
    assert client.get("/live/", {"watch": watch}, HTTP_X_LIVE_KEY=key).status_code in (200, 304)
    assert _check(client, "orders; drop table", since, key).status_code == 400
    # A key older than a session is refused, though its signature was checked before.
    with override_settings(SESSION_COOKIE_AGE=-1):
        assert _check(client, watch, since, key).status_code == 403
    # The key is bound to this session: after logging out (or in another session) it is refused.
    client.post("/logout/")
    assert _check(client, watch, since, key).status_code == 403
    client.login(username="supervisor", password=PASSWORD)
    assert _check(client, watch, since, key).status_code == 403


def test_a_lost_key_refreshes_each_screen_once(client, supervisor):
    watch, since, key = _region(client, "/orders/")
    token = _check(client, watch, since, key).content.decode()
    cache.delete(live.KEY_PREFIX + live.ALL_ORDERS)  # the cache restarted, or the key expired
    fresh = _check(client, watch, token, key)
    assert fresh.status_code == 200
    newer = fresh.content.decode()
    # Every screen now agrees on the token stored by the first check: one refresh, then quiet.
    assert _check(client, watch, token, key).content.decode() == newer
    assert _check(client, watch, newer, key).status_code == 304


@pytest.mark.parametrize(
    "url",
    ["/board/", "/orders/", "/tickets/", "/address-changes/"],
)
def test_every_order_wide_screen_is_live(client, supervisor, url):
    watch, _since, _key = _region(client, url)
    assert watch == "orders"


def test_a_cache_outage_neither_fails_nor_slows_the_changes(
    client, supervisor, people, settings, monkeypatch, django_capture_on_commit_callbacks
):
    order = make_order()
    watch, since, key = _region(client, f"/orders/{order.order_number}/")
    monkeypatch.setattr(live, "_cache_away_until", 0.0)
    settings.CACHES = {"default": {"BACKEND": "beile.cache.RedisCache", "LOCATION": "redis://127.0.0.1:9/0"}}
    started = time.monotonic()
    for number in range(5):
        with django_capture_on_commit_callbacks(execute=True):
            services.order_add_note(order=order, by=Actor.of(people["service"]), body=f"缓存停了 {number}")
    # One attempt finds the cache away; the next changes do not wait for it again.
    assert time.monotonic() - started < 2.0
    assert order.notes.count() == 5
    refused = _check(client, watch, since, key)
    assert refused.status_code == 503 and refused["Retry-After"] == "5"


def test_under_gunicorn_the_check_is_answered_before_django_alike(client, supervisor, django_assert_num_queries):
    """beile/wsgi.py answers the check before Django's handler (as gunicorn runs it): the same
    answers as the view, the same headers, no database query; every other path is Django's."""
    from django.conf import settings
    from django.test import RequestFactory

    from beile.wsgi import application

    order = make_order()
    watch, since, key = _region(client, f"/orders/{order.order_number}/")
    cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"

    def wsgi_get(path: str, **headers) -> tuple[str, dict, bytes]:
        environ = RequestFactory().get(path, HTTP_COOKIE=cookie, **headers).environ
        answered = {}

        def start_response(status, response_headers):
            answered["status"], answered["headers"] = status, dict(response_headers)

        body = b"".join(application(environ, start_response))
        return answered["status"], answered["headers"], body

    with django_assert_num_queries(0):
        status, headers, body = wsgi_get(f"/live/?watch={watch}", HTTP_IF_NONE_MATCH=f'"{since}"', HTTP_X_LIVE_KEY=key)
        assert status == "200 OK" and headers["ETag"] == f'"{body.decode()}"' and int(body) > int(since)
        status, headers, body = wsgi_get(f"/live/?watch={watch}", HTTP_IF_NONE_MATCH=f'"{body.decode()}"', HTTP_X_LIVE_KEY=key)
    assert status == "304 Not Modified" and body == b""
    assert headers["Cache-Control"] == "no-store" and "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert headers["X-Frame-Options"] == "DENY" and headers["X-Content-Type-Options"] == "nosniff"
    # A forged key, a bad watch: refused as the view refuses them.
    assert wsgi_get(f"/live/?watch={watch}", HTTP_X_LIVE_KEY=key + "x")[0] == "403 Forbidden"
    assert wsgi_get("/live/?watch=everything", HTTP_X_LIVE_KEY=key)[0] == "400 Bad Request"
    # Any other path is Django's: the order card, signed in through the same cookie (the test's
    # connection kept open, as Django's test client keeps it).
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        status, _headers, body = wsgi_get(f"/orders/{order.order_number}/", HTTP_X_FORWARDED_PROTO="https")
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)
    assert status == "200 OK" and order.order_number in body.decode()


def test_gunicorns_access_log_leaves_out_answered_checks_only():
    """200 open screens ask 200 times a second: answered checks are not logged, refusals are,
    and gunicorn does not build the left-out lines."""
    import runpy
    from types import SimpleNamespace
    from unittest import mock

    from django.urls import reverse
    from gunicorn.config import Config
    from gunicorn.glogging import Logger

    from beile.logging import LIVE_CHECK_PATH

    assert reverse("live_check") == LIVE_CHECK_PATH
    conf = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    assert conf["logger_class"] is conf["AccessLogWithoutLiveChecks"]
    logger = conf["logger_class"](Config())

    def logged(path: str, status: int) -> bool:
        with mock.patch.object(Logger, "access") as access:
            logger.access(SimpleNamespace(status_code=status), None, {"PATH_INFO": path}, None)
        return access.called

    assert not logged(LIVE_CHECK_PATH, 304) and not logged(LIVE_CHECK_PATH, 200)
    assert logged(LIVE_CHECK_PATH, 403) and logged(LIVE_CHECK_PATH, 503) and logged("/orders/", 200)
