"""Inbound status events from the WMS and the ERP (POST /api/v1/events).

Authentication, per source system (settings.INBOUND_EVENT_SECRETS):
  X-Beile-Source: WMS
  X-Beile-Timestamp: 1735689600            (Unix seconds; refused when more than 5 minutes off)
  X-Beile-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." + raw body)>
The timestamp is inside the signature, so an old request cannot be re-dated; the event id makes
a replay inside the window harmless (the stored answer is repeated, nothing is applied twice).

Body: {"event_id": "…", "order_number": "…", "action": "approve|start_picking|pack|ship|complete|cancel",
       "occurred_at": "2024-05-01T10:20:30+08:00", "carrier_code": "…", "tracking_number": "…", "reason": "…"}
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _

from integrations.erp.models import InboundEvent
from orders import events, services
from orders.access import Actor
from orders.models import Order

MAX_AGE = datetime.timedelta(minutes=5)
ACTIONS = ("approve", "start_picking", "pack", "ship", "complete", "cancel")


def sign(*, secret: str, timestamp: str, body: bytes) -> str:
    """The signature a sender puts in X-Beile-Signature (also used by tests and the README)."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def authenticate(*, source: str, timestamp: str, signature: str, body: bytes) -> str:
    """ "" when the request is genuine and fresh, else why not (answered with 401)."""
    secret = settings.INBOUND_EVENT_SECRETS.get(source)
    if not secret:
        return _("Unknown source system %(source)s.") % {"source": source or "—"}
    try:
        sent_at = datetime.datetime.fromtimestamp(int(timestamp), tz=datetime.UTC)
    except (ValueError, OverflowError, OSError):
        return _("X-Beile-Timestamp must be Unix seconds.")
    if abs(timezone.now() - sent_at) > MAX_AGE:
        return _("The timestamp is more than 5 minutes from our clock; the request is refused as stale.")
    if not hmac.compare_digest(sign(secret=secret, timestamp=timestamp, body=body), signature):
        return _("The signature does not match the body and timestamp.")
    return ""


def _parse(body: bytes) -> tuple[dict | None, str]:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None, _("The body is not JSON.")
    if not isinstance(data, dict):
        return None, _("The body must be a JSON object.")
    event_id = str(data.get("event_id") or "").strip()
    if not event_id or len(event_id) > 100:
        return None, _("event_id is required (at most 100 characters).")
    if data.get("action") not in ACTIONS:
        return None, _("action must be one of %(actions)s.") % {"actions": ", ".join(ACTIONS)}
    if not str(data.get("order_number") or "").strip():
        return None, _("order_number is required.")
    occurred = data.get("occurred_at")
    if occurred:
        moment = parse_datetime(str(occurred))
        if moment is None:
            return None, _("occurred_at must be an ISO 8601 date and time.")
        data["occurred_at"] = timezone.make_aware(moment) if timezone.is_naive(moment) else moment
    data["event_id"] = event_id
    data["order_number"] = str(data["order_number"]).strip()
    return data, ""


def inbound_event_handle(*, source: str, body: bytes) -> tuple[int, dict]:
    """Apply one authenticated event once; returns (HTTP status, JSON answer)."""
    data, problem = _parse(body)
    if data is None:
        return 400, {"ok": False, "error": problem}
    try:
        with transaction.atomic():
            record = InboundEvent.objects.create(
                source_system=source,
                event_id=data["event_id"],
                order_number=data["order_number"][:40],
                event_type=data["action"],
                source_time=data.get("occurred_at"),
            )
            status, answer = _apply(source, data)
            record.response_status, record.response_body = status, answer
            record.save(update_fields=["response_status", "response_body"])
    except IntegrityError:
        # The same event again (a retry or a replay): repeat what we answered the first time.
        stored = InboundEvent.objects.get(source_system=source, event_id=data["event_id"])
        return stored.response_status, {**stored.response_body, "duplicate": True}
    return status, answer


def _apply(source: str, data: dict) -> tuple[int, dict]:
    order = Order.objects.filter(order_number=data["order_number"]).first()
    if order is None:
        return 404, {"ok": False, "error": _("No order %(number)s.") % {"number": data["order_number"]}}
    actor = Actor.system(source)
    action, occurred = data["action"], data.get("occurred_at")
    try:
        if action == "ship":
            order = services.order_ship(
                order=order,
                by=actor,
                carrier_code=str(data.get("carrier_code") or order.carrier_code),
                tracking_number=str(data.get("tracking_number") or ""),
                source_time=occurred,
            )
        elif action == "cancel":
            # A cancel needs a reason from the source system too: without one it is refused (409).
            order = services.order_cancel(order=order, by=actor, reason=str(data.get("reason") or ""))
        else:
            order = services.order_transition(order=order, name=action, by=actor, source_time=occurred)
    except services.OrderError as refusal:
        reason = str(refusal)
        # The refusal is part of the order's story: whoever opens the card sees that the WMS
        # said "packed" and why the cockpit did not follow (orders/events.py describes it in the
        # reader's language; the payload keeps the facts).
        events.sync_refused(order=order, by=actor, action=action, event_id=data["event_id"], reason=reason, source_time=occurred)
        return 409, {"ok": False, "error": reason, "status": order.status}
    return 200, {"ok": True, "status": order.status}
