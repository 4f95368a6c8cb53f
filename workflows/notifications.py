"""What a tracking state means, in one table, and the customer pushes composed from it.

Every reader of a tracking state asks this module: the tracking reactions (push the customer?
open which ticket? complete the order?), the WeChat push's text, and the front-line answer
(workflows/frontline/answers.py) that the lookup and self-service pages show. Adding a state, or
changing what one says, is one row here.

The customer texts are English msgids translated when used; `text` and `note` go into WeChat
`thing` fields and must stay within 20 characters in every language (tests pin it).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from django.conf import settings
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from integrations.wechat import services as wechat
from integrations.wechat.models import CustomerMessage
from orders.models import Order, Shipment, TrackingState
from workflows.frontline.selfservice import link_url
from workflows.models import TicketKind


@dataclass(frozen=True)
class TrackingMeaning:
    pushed: bool  # the customer hears of it at once (issue 5: picked up, out for delivery, signed, problem)
    ticket: str  # the TicketKind a person gets for it, "" for none
    completes: bool  # a shipped order is completed (the parcel was signed for)
    text: str  # what the customer reads as the parcel's status (≤ 20 characters: WeChat `thing`)
    note: str  # the push's short explanation (≤ 20 characters), "" for none
    explanation: str  # the sentence the front-line answer adds, "" when nothing is wrong


_CALL_YOU = gettext_noop("We will call you")
_ON_IT = gettext_noop("Sorting it out now")

# One row per Kuaidi100 `state` (docs/protocols.md).
TRACKING_MEANINGS: dict[str, TrackingMeaning] = {
    TrackingState.IN_TRANSIT: TrackingMeaning(False, "", False, gettext_noop("On its way"), "", ""),
    TrackingState.PICKED_UP: TrackingMeaning(True, "", False, gettext_noop("Picked up"), "", ""),
    TrackingState.PROBLEM: TrackingMeaning(
        True,
        TicketKind.PROBLEM,
        False,
        gettext_noop("Delivery problem"),
        _ON_IT,
        gettext_noop("The carrier reports a problem with the parcel; our logistics team is on it."),
    ),
    TrackingState.SIGNED: TrackingMeaning(True, "", True, gettext_noop("Delivered"), "", ""),
    TrackingState.RETURNED_SIGNED: TrackingMeaning(
        True,
        TicketKind.RETURNED,
        False,
        gettext_noop("Returned to us"),
        _CALL_YOU,
        gettext_noop("The parcel came back to us; customer service will contact you."),
    ),
    TrackingState.OUT_FOR_DELIVERY: TrackingMeaning(True, "", False, gettext_noop("Out for delivery"), "", ""),
    TrackingState.RETURNING: TrackingMeaning(
        True,
        TicketKind.RETURNED,
        False,
        gettext_noop("Being returned"),
        _CALL_YOU,
        gettext_noop("The parcel is on its way back to us; customer service will contact you."),
    ),
    TrackingState.TRANSFERRED: TrackingMeaning(False, "", False, gettext_noop("Transferred"), "", ""),
    TrackingState.CUSTOMS: TrackingMeaning(False, "", False, gettext_noop("Customs"), "", ""),
    TrackingState.AWAITING_CUSTOMS: TrackingMeaning(False, "", False, gettext_noop("Awaiting customs"), "", ""),
    TrackingState.IN_CUSTOMS: TrackingMeaning(False, "", False, gettext_noop("In customs"), "", ""),
    TrackingState.CLEARED: TrackingMeaning(False, "", False, gettext_noop("Cleared customs"), "", ""),
    TrackingState.CUSTOMS_PROBLEM: TrackingMeaning(
        False,
        "",
        False,
        gettext_noop("Customs problem"),
        "",
        gettext_noop("The parcel is held in customs; our logistics team is on it."),
    ),
    TrackingState.REFUSED: TrackingMeaning(
        True,
        TicketKind.RETURNED,
        False,
        gettext_noop("Refused at delivery"),
        _CALL_YOU,
        gettext_noop("Delivery was refused; customer service will contact you."),
    ),
}

# What silence means: no new tracking event for this long is an exception (docs/brief.md: "tracking
# stalled over 24 hours"; the demo shortens it through KUAIDI100_STALL_HOURS).
STALLED = TrackingMeaning(
    True,
    TicketKind.STALLED,
    False,
    "",
    gettext_noop("Parcel delayed"),
    gettext_noop("No tracking update for over 24 hours; we have asked the carrier."),
)
# Kuaidi100 stopped tracking the number (push status "abort"): a person must follow it.
ABORTED = TrackingMeaning(True, TicketKind.ABORTED, False, "", gettext_noop("Tracking lost"), "")
# Kuaidi100 refused the subscription: nobody watches the parcel, a person must. No push: the
# customer has just been told it shipped, and nothing about the parcel has changed.
SUBSCRIPTION_REFUSED = TrackingMeaning(False, TicketKind.ABORTED, False, "", "", "")


def stall_after() -> datetime.timedelta:
    return datetime.timedelta(hours=settings.TRACKING_STALL_HOURS)


def is_stalled(shipment: Shipment, *, now: datetime.datetime) -> bool:
    return (shipment.last_event_at or shipment.created_at) < now - stall_after()


# --- Customer pushes -------------------------------------------------------------------------------


def message_content(*, order: Order, reason: str = "") -> tuple[dict[str, str], bool]:
    """Template values for the order's current state, and whether they carry location and ETA
    or an explanation (the customer-perceived-delay measure counts those)."""
    shipment: Shipment | None = order.shipments.order_by("-created_at").first()
    state = shipment.tracking_state if shipment else ""
    meaning = TRACKING_MEANINGS.get(state)
    with translation.override(settings.LANGUAGE_CODE):
        if shipment and meaning:
            status = _(meaning.text)
        elif shipment:
            status = _("Shipped by %(carrier)s") % {"carrier": shipment.get_carrier_code_display()}
        else:
            status = str(order.get_status_display())
        explanation = reason or (_(meaning.note) if meaning and meaning.note else "")
        location = shipment.last_location if shipment else ""
        eta = shipment.eta if shipment and shipment.eta else None
        moment = eta or (shipment.last_event_at if shipment and shipment.last_event_at else timezone.now())
        data = {
            wechat.FIELD_ORDER: wechat.character_string(order.order_number),
            wechat.FIELD_STATUS: wechat.thing(status),
            wechat.FIELD_LOCATION: wechat.thing(location or (_("Warehouse") if shipment else "-")),
            wechat.FIELD_ETA: wechat.time_value(moment),
            wechat.FIELD_NOTE: wechat.thing(explanation or (_("See ETA above") if eta else _("Thank you!"))),
        }
    # Issue 6's CPD stops at a push with location and ETA, or with an exception explanation.
    carries_location = bool(explanation) or (bool(location) and (eta is not None or state == TrackingState.SIGNED))
    return data, carries_location


def customer_push_order_status(*, order: Order, event_key: str, reason: str = "") -> CustomerMessage:
    """Queue one push about `order` for `event_key` (e.g. "shipped", "tracking:12:5",
    f"inquiry:{inquiry.pk}"); the same order and event never make a second message. `reason`
    (≤ 20 characters shown) explains a problem to the customer. Sent after the caller commits;
    tapping it opens the customer's self-service page for the whole story."""
    existing = wechat.message_exists(order=order, event_key=event_key)
    if existing:
        return existing
    content, carries_location = message_content(order=order, reason=reason)
    return wechat.customer_message_queue(
        order=order, event_key=event_key, content=content, carries_location=carries_location, link=link_url(order)
    )


# --- What staff read about a push ----------------------------------------------------------------


def push_about(event_key: str) -> str:
    """What a push was about, in the reader's language, from the event key it was queued under
    (customer_push_order_status's callers: "shipped", "tracking:<shipment>:<state or abort>",
    "stalled:<shipment>:<time>", "inquiry:<id>"). The card's panel and the lookup show it."""
    kind, _sep, rest = event_key.partition(":")
    if kind == "shipped":
        return _("Shipped")
    if kind == "tracking":
        state = rest.rpartition(":")[2]
        if state == "abort":
            return _(ABORTED.note)
        meaning = TRACKING_MEANINGS.get(state)
        return _("Tracking: %(state)s") % {"state": _(meaning.text)} if meaning else _("Tracking update")
    if kind == "stalled":
        return _(STALLED.note)
    if kind == "inquiry":
        return _("Answer to the customer's question")
    if kind == "address_change":
        return _("Outcome of the address change")
    return _("Order status")


# Issue 13: what the customer is told when an address change ends (the push's note, ≤ 20
# characters shown), by the outcome's action (orders/events.py ADDRESS_CHANGE_OUTCOMES).
ADDRESS_CHANGE_PUSH_TEXT = {
    "applied": gettext_noop("New address applied"),
    "rerouted": gettext_noop("Carrier rerouted to new address"),
    "intercepted": gettext_noop("Parcel intercepted, returning"),
    "failed": gettext_noop("Address change failed"),
    "refused": gettext_noop("Address change not possible"),
    "rejected": gettext_noop("Address change not possible"),
}


# WeChat's delivery report (TEMPLATESENDJOBFINISH's Status, docs/protocols.md): "success",
# "failed:user block" (the customer refuses the account's messages), "failed: system failed".
DELIVERY_REPORTS = {
    "success": gettext_noop("delivered"),
    "failed:userblock": gettext_noop("not delivered: the customer blocks our messages"),
    "failed:systemfailed": gettext_noop("not delivered: WeChat failed"),
}


def delivery_text(delivery_status: str) -> str:
    report = DELIVERY_REPORTS.get(delivery_status.replace(" ", "").lower())
    return _(report) if report else _("not delivered")
