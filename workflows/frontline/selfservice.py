"""Customer self-service access: order number + last 4 digits of the phone, or a signed link
from a push; both rate-limited against guessing through the shared cache."""

from __future__ import annotations

import datetime
import hmac

from django.conf import settings
from django.core import signing
from django.core.cache import cache
from django.urls import reverse

from orders.models import Order
from workflows.frontline.models import SelfServiceQuery

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


def order_for_code(order_number: str, last4: str) -> Order | None:
    order = Order.objects.select_related("customer").filter(order_number=order_number.strip()).first()
    if order is None or len(last4) != 4:
        return None
    candidates = {order.receiver_phone[-4:], order.customer.phone[-4:]}
    # Compare in constant time so response timing tells nothing about the digits.
    return order if any(hmac.compare_digest(last4, digits) for digits in candidates) else None


def _keys(address: str, order_number: str) -> tuple[str, str]:
    return f"track-fail:addr:{address}", f"track-fail:order:{order_number.strip().upper()[:40]}"


def too_many_failures(*, address: str, order_number: str) -> bool:
    address_key, order_key = _keys(address, order_number)
    counts = cache.get_many([address_key, order_key])
    return counts.get(address_key, 0) >= MAX_FAILURES_PER_ADDRESS or counts.get(order_key, 0) >= MAX_FAILURES_PER_ORDER


def record_failure(*, address: str, order_number: str) -> None:
    for key in _keys(address, order_number):
        # add() starts the window once; incr() is atomic in Redis, so parallel web processes
        # cannot lose a count.
        cache.add(key, 0, timeout=FAILURE_WINDOW_SECONDS)
        try:
            cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.set(key, 1, timeout=FAILURE_WINDOW_SECONDS)


def self_service_query_record(*, order: Order, via: str) -> SelfServiceQuery:
    return SelfServiceQuery.objects.create(order=order, via=via)
