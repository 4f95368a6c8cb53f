"""Inbound status events from the WMS and the ERP (POST /api/v1/events).

Authentication, per source system (settings.INBOUND_EVENT_SECRETS):
  X-Beile-Source: WMS
  X-Beile-Timestamp: 1735689600            (Unix seconds; refused when more than 5 minutes off)
  X-Beile-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." + raw body)>
The timestamp is inside the signature, so an old request cannot be re-dated; the event id makes
a replay inside the window harmless (the stored answer is repeated, nothing is applied twice).
Only a 200 is final for an event id: a 404 or 409 is answered again, afresh, when the sender
retries the same event id (inbound_event_handle).

Body: {"event_id": "…", "order_number": "…", "action": "approve|start_picking|pack|ship|complete|cancel",
       "occurred_at": "2024-05-01T10:20:30+08:00", "carrier_code": "…", "tracking_number": "…", "reason": "…"}
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
from decimal import Decimal

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
# An event is a few hundred bytes; anything near this is not one (answered 413 before it is read).
MAX_BODY_BYTES = 64 * 1024
ACTIONS = ("approve", "start_picking", "pack", "ship", "complete", "cancel", "exception")
# "exception": the ERP marked the order with one of its exception codes ("code", in the dialect
# "code_system": jushuitan question_type or wangdiantong bad_reason); it opens the catalogue's
# reason (orders/reasons.py), optionally with "release_at" for a paused shipment.


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


class _NotANumber(ValueError):
    pass


def _refuse_constant(name: str):
    raise _NotANumber(name)


def _text(data: dict, key: str, *, required: bool = False, limit: int = 200) -> tuple[str, str]:
    """A text field: a JSON string (an identifier may also come as a whole number), else why not."""
    value = data.get(key)
    if value is None or value == "":
        return "", (_("%(field)s is required.") % {"field": key}) if required else ""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return "", _("%(field)s must be a string.") % {"field": key}
    text = str(value).strip()
    if required and not text:
        return "", _("%(field)s is required.") % {"field": key}
    if len(text) > limit:
        return "", _("%(field)s is longer than %(limit)d characters.") % {"field": key, "limit": limit}
    return text, ""


def _parse(body: bytes) -> tuple[dict | None, str]:
    """The event, or why it is malformed (answered with 400). NaN and Infinity are refused where
    Python's json would accept them; a non-integer number is kept exact (Decimal), never a float."""
    try:
        data = json.loads(body, parse_constant=_refuse_constant, parse_float=Decimal)
    except _NotANumber as exc:
        return None, _("%(value)s is not a number JSON allows; send numbers as digits.") % {"value": exc.args[0]}
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None, _("The body is not JSON.")
    if not isinstance(data, dict):
        return None, _("The body must be a JSON object.")
    event_id, problem = _text(data, "event_id", required=True, limit=100)
    if problem:
        return None, problem
    if data.get("action") not in ACTIONS:
        return None, _("action must be one of %(actions)s.") % {"actions": ", ".join(ACTIONS)}
    order_number, problem = _text(data, "order_number", required=True, limit=40)
    if problem:
        return None, problem
    for key in ("carrier_code", "tracking_number", "reason", "code", "code_system"):
        data[key], problem = _text(data, key, limit=500)
        if problem:
            return None, problem
    occurred = data.get("occurred_at")
    if occurred not in (None, ""):
        if not isinstance(occurred, str):
            return None, _("occurred_at must be an ISO 8601 date and time.")
        try:
            moment = parse_datetime(occurred.strip())
        except ValueError:  # well formed but not on any calendar: 2024-02-30, 25:00
            return None, _("occurred_at %(value)s is not a real date and time.") % {"value": occurred[:40]}
        if moment is None:
            return None, _("occurred_at must be an ISO 8601 date and time.")
        data["occurred_at"] = timezone.make_aware(moment) if timezone.is_naive(moment) else moment
    else:
        data["occurred_at"] = None
    data["event_id"] = event_id
    data["order_number"] = order_number
    return data, ""


def inbound_event_handle(*, source: str, body: bytes) -> tuple[int, dict]:
    """Apply one authenticated event; returns (HTTP status, JSON answer).

    Only a 200 is final for an event_id: a replay gets the stored answer with "duplicate": true
    and nothing is applied twice. A 404 (the order is not imported yet) or a 409 (the event
    arrived before the step it follows, or a guard refused) is kept as the latest answer but not
    final: the sender's retry with the same event_id is applied afresh once the cause is gone.
    The event's row is locked while it is applied, so two deliveries of one event at once apply
    it once: the second waits, then finds the first's answer."""
    data, problem = _parse(body)
    if data is None:
        return 400, {"ok": False, "error": problem}
    facts = {"order_number": data["order_number"][:40], "event_type": data["action"], "source_time": data["occurred_at"]}
    with transaction.atomic():
        try:
            with transaction.atomic():
                record = InboundEvent.objects.create(source_system=source, event_id=data["event_id"], response_status=0, **facts)
            previous = None
        except IntegrityError:
            record = InboundEvent.objects.select_for_update().get(source_system=source, event_id=data["event_id"])
            if record.response_status == 200:
                # The same event again (a retry or a replay): repeat what we answered.
                return record.response_status, {**record.response_body, "duplicate": True}
            previous = record.response_body
        status, answer = _apply(source, data, previous=previous)
        for key, value in facts.items():
            setattr(record, key, value)
        record.response_status, record.response_body, record.received_at = status, answer, timezone.now()
        record.save(update_fields=["response_status", "response_body", "received_at", *facts])
    return status, answer


def _apply(source: str, data: dict, *, previous: dict | None) -> tuple[int, dict]:
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
                carrier_code=data["carrier_code"] or order.carrier_code,
                tracking_number=data["tracking_number"],
                source_time=occurred,
            )
        elif action == "exception":
            release_at = None
            if isinstance(data.get("release_at"), str):
                try:
                    release_at = parse_datetime(data["release_at"].strip()[:40])
                except ValueError:
                    release_at = None
                if release_at is not None and timezone.is_naive(release_at):
                    release_at = timezone.make_aware(release_at)
            services.exception_from_erp(
                order=order, by=actor, system=data["code_system"], code=data["code"], release_at=release_at
            )
        elif action == "cancel":
            # A cancel needs a reason from the source system too: without one it is refused (409).
            order = services.order_cancel(order=order, by=actor, reason=data["reason"])
        else:
            order = services.order_transition(order=order, name=action, by=actor, source_time=occurred)
    except services.OrderError as refusal:
        reason = str(refusal)
        # The refusal is part of the order's story: whoever opens the card sees that the WMS
        # said "packed" and why the cockpit did not follow (orders/events.py describes it in the
        # reader's language; the payload keeps the facts). A retry refused for the same reason
        # is not written again: the sender may retry for hours.
        if previous is None or previous.get("error") != reason:
            events.sync_refused(
                order=order, by=actor, action=action, event_id=data["event_id"], reason=reason, source_time=occurred
            )
        return 409, {"ok": False, "error": reason, "status": order.status}
    return 200, {"ok": True, "status": order.status}
