"""Customer self-service access: order number + last 4 digits of the phone, or a signed link
from a push. Typed attempts are rate-limited per client address and per order number; a valid
signed link is its own proof and is never held back by other people's failures."""

from __future__ import annotations

import datetime
import hmac
import logging

from django.conf import settings
from django.core import signing
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from redis.exceptions import RedisError

from orders.models import Order
from orders.phones import ORDER_NUMBER_MAX_LENGTH
from workflows.frontline.models import SelfServiceFailure, SelfServiceQuery

logger = logging.getLogger(__name__)

LINK_SALT = "frontline.track-link"
# A push's link stays valid for two weeks: long enough for the parcel to arrive and be returned.
LINK_MAX_AGE = datetime.timedelta(days=14)

# Failed attempts allowed per window, per client address and per order number. Four digits are
# 10,000 guesses: 5 per order per 15 minutes makes guessing one order take weeks, and the
# per-address limit stops one client from walking through many order numbers.
FAILURE_WINDOW_SECONDS = 15 * 60
MAX_FAILURES_PER_ADDRESS = 20
MAX_FAILURES_PER_ORDER = 5


def link_token(order: Order) -> str:
    return signing.dumps(order.order_number, salt=LINK_SALT)


def link_url(order: Order) -> str:
    return settings.PUBLIC_BASE_URL.rstrip("/") + reverse("track_link", args=[link_token(order)])


def order_number_from_token(token: str) -> str:
    """The order number a link was signed for; raises signing.SignatureExpired or BadSignature."""
    return signing.loads(token, salt=LINK_SALT, max_age=LINK_MAX_AGE)


def code_problem(*, order_number: str, last4: str | None) -> str:
    """Why the typed values cannot name an order (too long, not four digits), or "" when they
    can. The values are already normalised (orders/phones.py)."""
    if not order_number or len(order_number) > ORDER_NUMBER_MAX_LENGTH or last4 is None:
        return _("Enter your order number (at most %(max)d characters) and the last 4 digits of your phone (4 digits).") % {
            "max": ORDER_NUMBER_MAX_LENGTH
        }
    return ""


def order_for_code(order_number: str, last4: str) -> Order | None:
    """The order when the normalised number and last four digits match; None for "no such order"
    and "wrong digits" alike, so the answer tells nothing about which order numbers exist."""
    order = Order.objects.select_related("customer").filter(order_number=order_number).first()
    if order is None:
        return None
    candidates = {order.receiver_phone[-4:], order.customer.phone[-4:]}
    # Compare in constant time so response timing tells nothing about the digits (bytes: a
    # str compare refuses anything but ASCII).
    return order if any(hmac.compare_digest(last4.encode(), digits.encode()) for digits in candidates) else None


# --- Throttle ------------------------------------------------------------------------------------
# Counted per client address (as orders.access.client_ip sees it through TRUSTED_PROXY_COUNT) and
# per order number, never under one shared key: one guesser must not lock out everyone else.
# The counts live in the shared cache (Redis); when it cannot be reached, in SelfServiceFailure
# rows, so the page keeps answering and guessing stays limited.
CACHE_ERRORS = (RedisError, OSError)


def _keys(address: str, order_number: str) -> list[str]:
    keys = [f"track-fail:addr:{address}"]
    if order_number:
        keys.append(f"track-fail:order:{order_number}")
    return keys


def _over_limit(address_count: int, order_count: int) -> bool:
    return address_count >= MAX_FAILURES_PER_ADDRESS or order_count >= MAX_FAILURES_PER_ORDER


def too_many_failures(*, address: str, order_number: str = "") -> bool:
    """Whether this address, or this order number (when given), has failed too often lately."""
    keys = _keys(address, order_number)
    try:
        counts = cache.get_many(keys)
    except CACHE_ERRORS:
        logger.warning("self-service throttle: cache unreachable, counting failures in the database")
        since = timezone.now() - datetime.timedelta(seconds=FAILURE_WINDOW_SECONDS)
        recent = SelfServiceFailure.objects.filter(failed_at__gte=since)
        by_order = recent.filter(order_number=order_number).count() if order_number else 0
        return _over_limit(recent.filter(address=address).count(), by_order)
    return _over_limit(counts.get(keys[0], 0), counts.get(keys[1], 0) if order_number else 0)


def record_failure(*, address: str, order_number: str = "") -> None:
    """Counts one refused attempt against the address and, when given, the order number."""
    try:
        for key in _keys(address, order_number):
            # add() starts the window once; incr() is atomic in Redis, so parallel web processes
            # cannot lose a count.
            cache.add(key, 0, timeout=FAILURE_WINDOW_SECONDS)
            try:
                cache.incr(key)
            except ValueError:  # expired between add and incr
                cache.set(key, 1, timeout=FAILURE_WINDOW_SECONDS)
    except CACHE_ERRORS:
        now = timezone.now()
        SelfServiceFailure.objects.filter(failed_at__lt=now - datetime.timedelta(seconds=FAILURE_WINDOW_SECONDS)).delete()
        SelfServiceFailure.objects.create(address=address[:64], order_number=order_number, failed_at=now)


def self_service_query_record(*, order: Order, via: str) -> SelfServiceQuery:
    return SelfServiceQuery.objects.create(order=order, via=via)
