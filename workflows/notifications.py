"""What a tracking state means, in one table, and the customer pushes composed from it.

Every reader of a tracking state asks this module: the tracking reactions (push the customer?
open which ticket? complete the order?), the WeChat push's text, and the front-line answer
(workflows/frontline/answers.py) that the lookup and self-service pages show. Adding a state, or
changing what one says, is one row here.

A push goes by WeChat to a follower, and by SMS (the approved template) when WeChat cannot
reach the customer — no openid, not following (43004), refused or blocked — unless the customer
chose otherwise (workflows.ContactPreference) or replied 退订. That decision lives here, once.

The customer texts are English msgids translated when used; `text` and `note` go into WeChat
`thing` fields and must stay within 20 characters in every language (tests pin it).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from integrations.sms import services as sms
from integrations.sms.models import SmsMessage, SmsOptOut
from integrations.wechat import services as wechat
from integrations.wechat.models import CustomerMessage, MessageStatus
from orders.models import Customer, Order, OrderSource, Shipment, TrackingState
from workflows.frontline.selfservice import link_url
from workflows.models import ContactChannel, ContactPreference, TicketKind


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

# A WeChat refusal older than this is not followed by an SMS: news that late would confuse.
FALLBACK_WINDOW = datetime.timedelta(hours=24)
DELAY_PREFIX = "delay:"
# Why a parcel is late, per cause of a delay push (workflows/delays.py), as the customer reads it
# (≤ 20 characters: a WeChat `thing`).
DELAY_REASONS = {
    "stalled": STALLED.note,
    "eta": gettext_noop("Later than expected"),
    "stage": gettext_noop("Preparing delayed"),
}


def message_content(*, order: Order, reason: str = "", new_eta: datetime.datetime | None = None) -> tuple[dict[str, str], bool]:
    """Template values for the order's current state, and whether they carry location and ETA
    or an explanation (the customer-perceived-delay measure counts those). `new_eta` is a
    predicted delivery time that replaces the carrier's (the delay push)."""
    # Every parcel the order travels in now (a replaced waybill no longer counts).
    active = order.shipments.filter(replaced_at__isnull=True)
    shipment: Shipment | None = active.order_by("-created_at", "-pk").first() or order.shipments.order_by("-created_at").first()
    parcels = active.count()
    state = shipment.tracking_state if shipment else ""
    meaning = TRACKING_MEANINGS.get(state)
    with translation.override(settings.LANGUAGE_CODE):
        if shipment and meaning:
            status = _(meaning.text)
        elif shipment:
            status = _("Shipped by %(carrier)s") % {"carrier": shipment.get_carrier_code_display()}
        else:
            status = str(order.get_status_display())
        if parcels > 1:
            status = _("%(count)d parcels: %(status)s") % {"count": parcels, "status": status}
        explanation = reason or (_(meaning.note) if meaning and meaning.note else "")
        location = shipment.last_location if shipment else ""
        eta = new_eta or (shipment.eta if shipment and shipment.eta else None)
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


def contact_channel(customer: Customer) -> str:
    """The customer's chosen channel; AUTO when they never chose."""
    chosen = ContactPreference.objects.filter(customer=customer).values_list("channel", flat=True).first()
    return chosen or ContactChannel.AUTO


def contact_channel_set(*, customer: Customer, channel: str, by=None) -> ContactPreference:
    """Record the customer's choice (service staff on the phone, or 退订 from any channel)."""
    preference, _created = ContactPreference.objects.update_or_create(
        customer=customer, defaults={"channel": ContactChannel(channel), "updated_at": timezone.now(), "updated_by": by}
    )
    return preference


def quiet_until(now: datetime.datetime) -> datetime.datetime | None:
    """The end of the customers' night (CUSTOMER_QUIET_HOURS, local time) when `now` is inside
    it, else None. Non-urgent pushes detected at night wait until then."""
    start, end = settings.CUSTOMER_QUIET_HOURS
    if start == end:
        return None
    local = timezone.localtime(now)
    quiet = (local.hour >= start or local.hour < end) if start > end else (start <= local.hour < end)
    if not quiet:
        return None
    until = local.replace(hour=end, minute=0, second=0, microsecond=0)
    return until if until > local else until + datetime.timedelta(days=1)


def sms_values(*, event_key: str, content: dict[str, str], link: str) -> tuple[str, dict[str, str]]:
    """The approved SMS template for a push, and its values (taken from the WeChat values, so
    both channels say the same thing)."""
    eta = content.get(wechat.FIELD_ETA, "")[5:16] or "-"  # "2024-06-21 16:34:24" → "06-21 16:34"
    common = {
        "order": content.get(wechat.FIELD_ORDER, "-"),
        "note": content.get(wechat.FIELD_NOTE, "-"),
        "eta": eta,
        "link": link or "-",
    }
    if event_key.startswith(DELAY_PREFIX):
        return settings.SMS["TEMPLATE_DELAY"], common
    return settings.SMS["TEMPLATE_STATUS"], {
        **common,
        "status": content.get(wechat.FIELD_STATUS, "-"),
        "location": content.get(wechat.FIELD_LOCATION, "-"),
    }


def _sms_push(
    *, order: Order, event_key: str, content: dict[str, str], carries_location: bool, link: str, not_before=None
) -> SmsMessage | None:
    phone = order.customer.phone
    if not phone:
        return None
    template_code, params = sms_values(event_key=event_key, content=content, link=link)
    return sms.sms_queue(
        order=order,
        phone=phone,
        event_key=event_key,
        template_code=template_code,
        params=params,
        carries_location=carries_location,
        not_before=not_before,
    )


def problem_push() -> Q:
    """Pushes that tell the customer of a problem: the delay pushes (workflows/delays.py) and the
    tracking states whose meaning carries a note (a problem, a return, a refusal, tracking lost).
    The proactive-reach measure counts them."""
    states = [state for state, meaning in TRACKING_MEANINGS.items() if meaning.note]
    return Q(event_key__startswith=DELAY_PREFIX) | Q(
        event_key__regex=r"^tracking:[0-9]+:(" + "|".join([*states, "abort"]) + r")$"
    )


def push_exists(*, order: Order, event_key: str) -> bool:
    return bool(wechat.message_exists(order=order, event_key=event_key) or sms.message_exists(order=order, event_key=event_key))


def customer_push_order_status(
    *,
    order: Order,
    event_key: str,
    reason: str = "",
    new_eta: datetime.datetime | None = None,
    hold_at_night: bool = False,
) -> CustomerMessage | SmsMessage | None:
    """Queue one push about `order` for `event_key` (e.g. "shipped", "tracking:12:5",
    f"inquiry:{inquiry.pk}"); the same order and event never make a second message. `reason`
    (≤ 20 characters shown) explains a problem to the customer, `new_eta` replaces the carrier's
    ETA. `hold_at_night`: a non-urgent push found during quiet hours waits for the morning.
    Sent after the caller commits; tapping it opens the customer's self-service page.

    The channel: WeChat for a follower; SMS when the customer has no openid (at once) or WeChat
    refuses them (sms_fallback_scan); only WeChat or only SMS when the customer chose so; nothing
    for a customer who unsubscribed. Returns the WeChat row when there is one, else the SMS row,
    else None."""
    if order.source == OrderSource.PLATFORM:
        # A Douyin buyer is the platform's to tell (its rules forbid contacting them outside it),
        # and we hold no number of theirs, only a ciphertext (integrations/douyin).
        return None
    existing = wechat.message_exists(order=order, event_key=event_key) or sms.message_exists(order=order, event_key=event_key)
    if existing:
        return existing
    channel = contact_channel(order.customer)
    if channel == ContactChannel.NONE:
        return None
    content, carries_location = message_content(order=order, reason=reason, new_eta=new_eta)
    not_before = quiet_until(timezone.now()) if hold_at_night else None
    link = link_url(order)
    message = None
    if channel != ContactChannel.SMS:
        message = wechat.customer_message_queue(
            order=order, event_key=event_key, content=content, carries_location=carries_location, link=link, not_before=not_before
        )
        if message.status != MessageStatus.REFUSED or channel == ContactChannel.WECHAT:
            return message
    text = _sms_push(
        order=order, event_key=event_key, content=content, carries_location=carries_location, link=link, not_before=not_before
    )
    return message or text


def sms_fallback_scan(*, now: datetime.datetime | None = None, limit: int = 500) -> int:
    """Beat, every 10 s: a WeChat push the customer could not receive (not following, refused,
    blocked) goes by SMS, once — the SMS outbox's unique key per (order, event) makes a second
    scan, or two racing scans, harmless. Customers who chose WeChat only, unsubscribed, or
    replied 退订 to an SMS are left alone."""
    now = now or timezone.now()
    has_sms = SmsMessage.objects.filter(order_id=OuterRef("order_id"), event_key=OuterRef("event_key"))
    opted_out = SmsOptOut.objects.filter(phone=OuterRef("order__customer__phone"))
    candidates = (
        wechat.unreachable_messages(since=now - FALLBACK_WINDOW)
        .filter(~Exists(has_sms), ~Exists(opted_out))
        .exclude(order__customer__contact_preference__channel__in=[ContactChannel.WECHAT, ContactChannel.NONE])
        .select_related("order__customer")
        .order_by("created_at")[:limit]
    )
    queued = 0
    for message in candidates:
        with transaction.atomic():
            held = message.next_attempt_at if message.next_attempt_at > now and message.attempts == 0 else None
            text = _sms_push(
                order=message.order,
                event_key=message.event_key,
                content=message.content,
                carries_location=message.carries_location,
                link=message.link,
                not_before=held,
            )
        queued += text is not None
    return queued


# --- What staff read about a push ----------------------------------------------------------------


def push_about(event_key: str) -> str:
    """What a push was about, in the reader's language, from the event key it was queued under
    (customer_push_order_status's callers: "shipped", "tracking:<shipment>:<state or abort>",
    "delay:<cause>:…", "waybill:<event>", "inquiry:<id>"; "stalled:<shipment>:<time>" before
    issue 18). The card's panel and the lookup show it."""
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
    if kind == "delay":
        cause = rest.partition(":")[0]
        return _(DELAY_REASONS[cause]) if cause in DELAY_REASONS else _("Delay")
    if kind == "waybill":
        return _("Waybill changed")
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
