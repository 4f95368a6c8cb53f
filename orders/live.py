"""Live screens: a screen showing an order's state learns of a change committed anywhere within
about a second, without a reload (issue 14).

The rule, in one place:
- **Publish.** Every saved OrderEvent (orders/events.py `_event`, which every change writes)
  and the writers that insert events in bulk (the SLA sweep, the ERP import), tickets and alerts
  call `order_changed` / `orders_changed`. After the transaction commits, the cache gets a new
  token (the commit time in nanoseconds) under the order's key and under the key every
  order-wide screen watches. The cache is Redis across web processes, a file cache in the demo;
  both are shared by every local process, the Celery worker included.
- **Watch.** A screen's region carries `{% live_region … %}` (orders/templatetags/live.py):
  what it watches ("orders", or "order:<ids>"), `since` (the time its request started, noted by
  beile/middleware.py LiveMiddleware, so a change committed while the page was being read is not
  missed) and a key signed for the session. static/js/live.js asks `check` once a second with If-None-Match: the token it has
  seen; `check` answers 304 from the cache alone, with no database query, or 200 with the newer
  token, and the region is fetched again (or, over a form the user is filling in, a banner says
  the order changed). Most idle checks need no cache read at all: a process reads the newest
  token of all once a tenth of a second, and a check that has seen it has nothing to learn.
  Tabs of one browser watching the same thing share one check (live.js).
- **A missing key** (an empty or restarted cache, an expired key) is "unknown": the first check
  stores the current time under it, so every screen that watches it refreshes once and then
  agrees on the new token; no storm.

Why a check each second rather than server-sent events: gunicorn runs synchronous workers, where
an open stream would hold a worker thread per screen, and the demo has no Redis to publish
through; an idle check costs well under a millisecond of CPU per screen per second under
gunicorn, most of it gunicorn's own HTTP handling (`python manage.py bench --only live` prints
both), and a change is seen within a second plus the region's fetch.

Tokens are wall-clock times: the hosts serving one cockpit must agree on the time (NTP) to
within the gap between a request's start and its first read, which is what a skew can hide.

Who may poll: the check needs no session or user row. The key in the page is a signature over a
hash of the session cookie, made when a signed-in page was rendered, and checked against the
cookie the browser sends: after logging out (cookie gone or replaced) or after the session's
age, the check is refused (403). A token reveals only when some order last changed.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Iterable

from django.conf import settings
from django.core import signing
from django.core.cache import cache
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET

from orders.access import public_endpoint

ALL_ORDERS = "orders"
KEY_PREFIX = "live:"
# A day: a key is written on every change of its order; an order untouched for a day that is
# still on someone's screen costs that screen one refresh when the key comes back.
KEY_TIMEOUT = 24 * 3600
# "orders", or up to 100 order ids: the lookup shows at most 100 orders (workflows/frontline/lookup.py).
WATCH = re.compile(r"^(?:orders|order:\d{1,19}(?:,\d{1,19}){0,99})$")
SIGNER_SALT = "orders.live"
# With the cache away (a Redis outage), a call fails only after redis-py's retries (~0.35 s):
# after one failure, publishing and checking are skipped for this long instead of making every
# change and every screen's check wait. Screens then show changes at their next reload, or at
# the first change after the cache is back.
CACHE_RETRY_SECONDS = 5.0
_cache_away_until = 0.0
# Every change writes the "orders" key with the same token as its orders' keys, so no watched
# key is newer than it: a check that has seen it has nothing newer to find. A process reads it
# at most this often for all its checks, and answers such a check without reading the cache:
# at 200 open idle screens that was the check's cache read, a fifth of its CPU under gunicorn
# (docs/benchmarks.md). The price: a change is missed by the checks in the next tenth of a
# second, so about one change in twenty reaches a screen one check (a second) later; commit →
# visible stays within its p95 of 2 s (bench --only live).
NEWEST_READ_EVERY_SECONDS = 0.1
_newest = (float("-inf"), None)  # (time.monotonic() when read, the "orders" token or None)

logger = logging.getLogger(__name__)


def _cache_away() -> bool:
    return time.monotonic() < _cache_away_until


def _cache_failed() -> None:
    global _cache_away_until
    _cache_away_until = time.monotonic() + CACHE_RETRY_SECONDS
    logger.warning("live screens: the cache is unavailable; open screens are not told of changes for %.0f s", CACHE_RETRY_SECONDS)


# --- Publish -------------------------------------------------------------------------------------


def order_changed(order_id: int) -> None:
    orders_changed([order_id])


def orders_changed(order_ids: Iterable[int]) -> None:
    """After the current transaction commits (at once outside one), tell every screen watching
    these orders."""
    ids = list(order_ids)
    transaction.on_commit(lambda: _publish(ids))


def _publish(order_ids: list[int]) -> None:
    if _cache_away():
        return
    token = time.time_ns()
    tokens = {KEY_PREFIX + ALL_ORDERS: token}
    tokens.update({f"{KEY_PREFIX}order:{order_id}": token for order_id in order_ids})
    try:
        cache.set_many(tokens, timeout=KEY_TIMEOUT)
    except Exception:  # the change is committed: a cache outage must not turn it into an error
        _cache_failed()


# --- Watch ---------------------------------------------------------------------------------------


def last_change_ns() -> int | None:
    """When some order last changed (nanoseconds), or None when the cache does not know."""
    return cache.get(KEY_PREFIX + ALL_ORDERS)


def _newest_token() -> int | None:
    """The "orders" token as read at most NEWEST_READ_EVERY_SECONDS ago by this process."""
    global _newest
    read_at, token = _newest
    now = time.monotonic()
    if now - read_at >= NEWEST_READ_EVERY_SECONDS:
        token = last_change_ns()
        _newest = (now, token)  # one assignment: the threads of a process may race, harmlessly
    return token


def watch_keys(watch: str) -> list[str]:
    if watch == ALL_ORDERS:
        return [KEY_PREFIX + ALL_ORDERS]
    return [f"{KEY_PREFIX}order:{order_id}" for order_id in watch.removeprefix("order:").split(",")]


def current_token(watch: str) -> int:
    """The newest token among the watched keys; a missing key is stored as now (see above)."""
    keys = watch_keys(watch)
    found = cache.get_many(keys)
    missing = [key for key in keys if key not in found]
    if missing:
        now = time.time_ns()
        for key in missing:
            # add(): of two processes finding the key missing, the first one's token stays.
            if not cache.add(key, now, timeout=KEY_TIMEOUT):
                found[key] = cache.get(key, now)
            else:
                found[key] = now
    return max(found.values())


def _session_hash(session_key: str) -> str:
    return hashlib.sha256(f"{SIGNER_SALT}:{session_key}".encode()).hexdigest()[:32]


def key_for(request: HttpRequest) -> str:
    """The key a signed-in page hands to live.js; bound to this session's cookie."""
    return signing.TimestampSigner(salt=SIGNER_SALT).sign(_session_hash(request.session.session_key or ""))


def _may_poll(cookie: str, key: str) -> bool:
    if not cookie or not key:
        return False
    try:
        signed = signing.TimestampSigner(salt=SIGNER_SALT).unsign(key, max_age=settings.SESSION_COOKIE_AGE)
    except signing.BadSignature:
        return False
    return signed == _session_hash(cookie)


def answer(*, cookie: str, key: str, watch: str, seen: str) -> tuple[int, str]:
    """The live check as (HTTP status, token): 304 when nothing watched changed since `seen` (the
    If-None-Match the page sent), 200 with the newer token, 403 / 400 for a caller or a watch
    refused, 503 while the cache is away. Two entrances: the view below and, under gunicorn,
    beile/wsgi.py before Django's request handling (a third of an idle check's CPU)."""
    if not _may_poll(cookie, key):
        return 403, ""
    if not WATCH.match(watch):
        return 400, ""
    if _cache_away():
        return 503, ""
    seen = seen.strip('W/"')
    seen_token = int(seen) if seen.isdigit() else None
    try:
        newest = _newest_token()
        if newest is not None and seen_token is not None and newest <= seen_token:
            return 304, str(newest)  # nothing anywhere is newer than what this screen has seen
        token = current_token(watch)
    except Exception:  # the cache is away: live.js tries again at its next check
        _cache_failed()
        return 503, ""
    return (304 if seen_token is not None and token <= seen_token else 200), str(token)


@require_GET
@public_endpoint(
    "the live-screen check: it must cost no database query, so instead of the session it checks a key "
    "signed for this session's cookie when a signed-in page was rendered (orders/live.py)"
)
# Answered by beile/middleware.py LiveMiddleware before the rest of the middleware stack.
def check(request: HttpRequest) -> HttpResponse:
    status, token = answer(
        cookie=request.COOKIES.get(settings.SESSION_COOKIE_NAME, ""),
        key=request.headers.get("X-Live-Key", ""),
        watch=request.GET.get("watch", ""),
        seen=request.headers.get("If-None-Match", ""),
    )
    response = HttpResponse(token if status == 200 else "", status=status)
    for header, value in answer_headers(status, token):
        response[header] = value
    return response


def answer_headers(status: int, token: str) -> list[tuple[str, str]]:
    if status == 503:
        return [("Retry-After", str(int(CACHE_RETRY_SECONDS)))]
    if status in (200, 304):
        return [("ETag", f'"{token}"'), ("Cache-Control", "no-store")]
    return []
