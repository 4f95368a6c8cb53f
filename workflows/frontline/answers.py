"""What we tell a customer who asks "where is my order": status, location, ETA and any
exception explanation. The instant push, the self-service page and the lookup page all say the
same thing because they all read it from here (and what a tracking state means, from
workflows/notifications.py)."""

from __future__ import annotations

import datetime
import functools
from dataclasses import dataclass

from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import get_language
from django.utils.translation import gettext as _

from orders.models import AddressChangeStatus, AfterSalesKind, AfterSalesStatus, Carrier, Order, OrderStatus, TrackingState
from workflows.notifications import STALLED, TRACKING_MEANINGS, is_stalled


@dataclass(frozen=True)
class Parcel:
    """One parcel of the order, as the customer sees it (the self-service page lists them all)."""

    carrier: str
    tracking_number: str
    state: str
    location: str
    eta: datetime.datetime | None
    replaced: bool


@dataclass
class CustomerAnswer:
    status: str
    location: str
    eta: datetime.datetime | None
    explanation: str
    carrier: str = ""
    tracking_number: str = ""
    parcels: tuple[Parcel, ...] = ()

    def as_text(self) -> str:
        parts = [self.status]
        if self.location:
            parts.append(_("Location: %(location)s") % {"location": self.location})
        if self.eta:
            parts.append(_("Expected delivery: %(eta)s") % {"eta": date_format(timezone.localtime(self.eta), "m-d H:i")})
        if self.explanation:
            parts.append(self.explanation)
        return "；".join(parts)


def order_answer(
    order: Order,
    *,
    now: datetime.datetime | None = None,
    shipments=None,
    address_changes=None,
    after_sales=None,
    with_parcels: bool = True,
) -> CustomerAnswer:
    """Reads order.shipments, order.address_changes and order.after_sales, or the rows given (the
    lookup reads them for all its orders at once, as plain rows: workflows/frontline/lookup.py).
    Without parcels (the lookup shows only the answer's text), no parcel's words are translated."""
    now = now or timezone.now()
    shipments = order.shipments.all() if shipments is None else shipments
    address_changes = order.address_changes.all() if address_changes is None else address_changes
    after_sales = order.after_sales.all() if after_sales is None else after_sales
    # Not get_status_display(): the lookup page answers for up to 100 orders at once.
    status = choice_label(OrderStatus, order.status)
    shipments = sorted(shipments, key=lambda shipment: (shipment.created_at, shipment.id))
    active = [shipment for shipment in shipments if shipment.replaced_at is None]
    latest = (active or shipments)[-1] if shipments else None
    explanations = []
    if order.is_held:
        explanations.append(
            _("Your order is paused: %(reason)s%(note)s.")
            % {"reason": order.get_hold_reason_display(), "note": f"（{order.hold_note}）" if order.hold_note else ""}
        )
    if any(change.status == AddressChangeStatus.OPEN for change in address_changes):
        explanations.append(_("Your address change is being applied; the parcel waits until it is done."))
    if any(change.status == AddressChangeStatus.WITH_CARRIER for change in address_changes):
        explanations.append(
            _("We have asked the carrier to deliver to your new address; you will get a message with the answer.")
        )
    if any(case.kind == AfterSalesKind.REFUND and case.status == AfterSalesStatus.OPEN for case in after_sales):
        explanations.append(_("Your refund request is being handled; the parcel waits until it is decided."))

    if latest is None:
        if order.status == OrderStatus.CANCELLED:
            return CustomerAnswer(status=status, location="", eta=None, explanation=order.cancel_reason)
        location = _("In our warehouse (%(stage)s)") % {"stage": status}
        return CustomerAnswer(status=status, location=location, eta=None, explanation=" ".join(explanations))

    # What the parcel's state means, or its silence: workflows/notifications.py, as the pushes say it.
    meaning = TRACKING_MEANINGS.get(latest.tracking_state)
    if meaning is not None and meaning.explanation:
        explanations.append(_(meaning.explanation))
    elif order.status == OrderStatus.SHIPPED and is_stalled(latest, now=now):
        explanations.append(_(STALLED.explanation))
    state = _parcel_state(latest)
    return CustomerAnswer(
        status=f"{status} · {state}",
        location=latest.last_location,
        eta=latest.eta,
        explanation=" ".join(explanations),
        carrier=_carrier(latest),
        tracking_number=latest.tracking_number,
        parcels=tuple(
            Parcel(
                carrier=_carrier(shipment),
                tracking_number=shipment.tracking_number,
                state=_parcel_state(shipment),
                location=shipment.last_location,
                eta=shipment.eta,
                replaced=shipment.replaced_at is not None,
            )
            for shipment in (shipments if with_parcels else ())
        ),
    )


def choice_label(choices, value: str) -> str:
    """The choice's label in the reader's language, or the value when it is none of them (what
    get_FOO_display() says, without it: Django's version translates every choice of the field on
    each call). Each label is translated once per language: the lookup names the same few
    statuses, carriers and kinds dozens of times a page (issue 14)."""
    return _choice_label(get_language(), choices, value)


@functools.lru_cache(maxsize=1024)
def _choice_label(language: str | None, choices, value: str) -> str:
    # try/except, not `in choices.values`: that builds the list of values on every call.
    try:
        return str(choices(value).label)
    except ValueError:
        return value


def _carrier(shipment) -> str:
    return choice_label(Carrier, shipment.carrier_code)


def _parcel_state(shipment) -> str:
    code = shipment.tracking_state
    if not code:
        return _("Handed to the carrier")
    return choice_label(TrackingState, code)
