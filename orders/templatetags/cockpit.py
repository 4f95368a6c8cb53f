"""Small presentation helpers shared by every page: labels for codes, phones, durations and
the one-line summary of an order event."""

import datetime

from django import template
from django.utils.translation import gettext as _

from orders.access import display_phone
from orders.models import (
    AfterSalesKind,
    Carrier,
    EventKind,
    HoldReason,
    NoteAudience,
    OrderStatus,
    RiskTag,
    Role,
)

register = template.Library()


def _label(choices, code: str) -> str:
    # try/except rather than `code in choices.values`, which builds the list of values on every
    # call (these filters run hundreds of times on the lookup page and the board).
    try:
        return choices(code).label
    except ValueError:
        return code


@register.filter
def role_label(code: str) -> str:
    return _label(Role, code)


@register.filter
def status_label(code: str) -> str:
    return _label(OrderStatus, code)


@register.filter
def tag_label(code: str) -> str:
    return _label(RiskTag, code)


@register.filter
def carrier_label(code: str) -> str:
    return _label(Carrier, code)


@register.simple_tag(takes_context=True)
def phone(context, number: str) -> str:
    """The number as this viewer may see it (masked for the warehouse and couriers)."""
    return display_phone(context["request"].user, number)


@register.filter
def duration(value: datetime.timedelta | None) -> str:
    if value is None:
        return "—"
    minutes = int(value.total_seconds() // 60)
    if minutes < 0:
        return "—"
    hours, minutes = divmod(minutes, 60)
    if hours >= 24:
        days, hours = divmod(hours, 24)
        return _("%(d)dd %(h)dh") % {"d": days, "h": hours}
    if hours:
        return _("%(h)dh %(m)dm") % {"h": hours, "m": minutes}
    return _("%(m)dm") % {"m": minutes}


@register.filter
def event_summary(event) -> str:
    """What happened, in one line of the user's language."""
    payload = event.payload or {}
    kind = event.kind
    if kind == EventKind.STATUS:
        text = _("%(from)s → %(to)s") % {"from": status_label(payload.get("from", "")), "to": status_label(payload.get("to", ""))}
        if payload.get("reason"):
            text += _(" (reason: %(reason)s)") % {"reason": payload["reason"]}
        if payload.get("tracking_number"):
            text += f" · {carrier_label(payload.get('carrier', ''))} {payload['tracking_number']}"
        if payload.get("as_supervisor"):
            text += _(" — done by a supervisor on the role's behalf")
        return text
    if kind == EventKind.HOLD:
        reason = HoldReason(payload["reason"]).label if payload.get("reason") in HoldReason.values else payload.get("reason", "")
        return _("Put on hold: %(reason)s %(note)s") % {"reason": reason, "note": payload.get("note", "")}
    if kind in (EventKind.NOTE,):
        audience = NoteAudience(payload.get("audience", "")).label if payload.get("audience", "") in NoteAudience.values else ""
        return _("Note for %(audience)s: %(body)s") % {"audience": audience, "body": payload.get("body", "")}
    if kind == EventKind.ACKNOWLEDGE:
        return _("Acknowledged the note: %(body)s") % {"body": payload.get("body", "")}
    if kind == EventKind.FEEDBACK_ASK:
        return _("Asked %(role)s: %(question)s") % {"role": role_label(payload.get("to_role", "")), "question": payload.get("question", "")}
    if kind == EventKind.FEEDBACK_ANSWER:
        return _("Answered: %(answer)s") % {"answer": payload.get("answer", "")}
    if kind in (EventKind.TAG, EventKind.UNTAG):
        text = tag_label(payload.get("tag", ""))
        if payload.get("resolution"):
            text += f": {payload['resolution']}"
        return text
    if kind == EventKind.AFTER_SALES:
        case_kind = AfterSalesKind(payload["kind"]).label if payload.get("kind") in AfterSalesKind.values else ""
        actions = {"opened": _("opened"), "approved": _("approved"), "rejected": _("rejected")}
        text = _("%(kind)s request %(action)s") % {"kind": case_kind, "action": actions.get(payload.get("action"), "")}
        if payload.get("department"):
            text += _(" by %(department)s") % {"department": payload["department"]}
        if payload.get("reason"):
            text += _(", reason: %(reason)s") % {"reason": payload["reason"]}
        return text
    if kind == EventKind.ADDRESS_CHANGE:
        actions = {"requested": _("requested"), "applied": _("applied"), "rejected": _("rejected")}
        text = _("Address change %(action)s") % {"action": actions.get(payload.get("action"), "")}
        if payload.get("address"):
            text += f": {payload.get('province', '')}{payload.get('city', '')}{payload.get('district', '')}{payload['address']}"
        return text
    if kind == EventKind.SHIPMENT:
        return _("Carrier channel: %(carrier)s") % {"carrier": carrier_label(payload.get("carrier", ""))}
    if kind == EventKind.RELEASE:
        return _("Hold released")
    if kind == EventKind.PHONE_REVEAL:
        return _("Viewed the full phone number")
    if kind == EventKind.IMPORT_UPDATE:
        return _("Updated from %(source)s: %(fields)s") % {"source": event.actor_name, "fields": ", ".join(payload.get("fields", []))}
    return payload.get("message") or EventKind(kind).label if kind in EventKind.values else kind


@register.filter
def person(user) -> str:
    """A user's display name ("" for nobody), so templates never reach into a missing user."""
    if user is None:
        return ""
    return user.get_full_name() or user.get_username()
