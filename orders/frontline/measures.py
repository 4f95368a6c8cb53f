"""The front line's measures for the measures page (BRIEF.md's table): customer-perceived
delay, wrong-shipment rate and self-service query share."""

from __future__ import annotations

import datetime
import statistics
from dataclasses import dataclass

from django.db.models import Max, Min
from django.utils import timezone

from orders.frontline.models import Inquiry, SelfServiceQuery
from orders.models import AfterSalesCase, AfterSalesKind, AfterSalesStatus, Order
from workflows.models import CustomerMessage, MessageStatus


def inquiry_perceived_delay(inquiry: Inquiry) -> datetime.timedelta | None:
    """CPD for one inquiry: from the first inquiry still open on that order (asked after the
    last push that carried a location) to the first push carrying location/ETA or an exception
    explanation delivered after this inquiry. None while no such push has been sent.

    The clock stops when the push is sent (accepted by WeChat), not when it is queued: the
    customer perceives the message, not our intention to send it."""
    answers = CustomerMessage.objects.filter(order_id=inquiry.order_id, carries_location=True, status=MessageStatus.SENT)
    answered_at = answers.filter(sent_at__gte=inquiry.asked_at).aggregate(first=Min("sent_at"))["first"]
    if answered_at is None:
        return None
    previous_answer = answers.filter(sent_at__lt=inquiry.asked_at).aggregate(last=Max("sent_at"))["last"]
    open_inquiries = Inquiry.objects.filter(order_id=inquiry.order_id, asked_at__lte=inquiry.asked_at)
    if previous_answer is not None:
        open_inquiries = open_inquiries.filter(asked_at__gt=previous_answer)
    first_asked = open_inquiries.aggregate(first=Min("asked_at"))["first"]
    return answered_at - first_asked


@dataclass
class PerceivedDelays:
    delays: list[datetime.timedelta]  # one per answered episode (first inquiry → first answer)
    unanswered: int  # episodes still waiting for a push with location

    @property
    def median(self) -> datetime.timedelta | None:
        return statistics.median(self.delays) if self.delays else None


def perceived_delays(*, start: datetime.datetime, end: datetime.datetime) -> PerceivedDelays:
    """CPD over the episodes whose first inquiry falls in [start, end). Repeated questions
    before the answer belong to the same episode, so a customer who asks three times counts once,
    from the first time."""
    inquiries = list(Inquiry.objects.filter(asked_at__gte=start, asked_at__lt=end).order_by("order_id", "asked_at").values_list("order_id", "asked_at"))
    answers: dict[int, list[datetime.datetime]] = {}
    for order_id, sent_at in (
        CustomerMessage.objects.filter(
            order_id__in={order_id for order_id, _ in inquiries}, carries_location=True, status=MessageStatus.SENT, sent_at__gte=start
        )
        .order_by("sent_at")
        .values_list("order_id", "sent_at")
    ):
        answers.setdefault(order_id, []).append(sent_at)
    delays, unanswered = [], 0
    episode_end: dict[int, datetime.datetime | None] = {}
    for order_id, asked_at in inquiries:
        if order_id in episode_end and (episode_end[order_id] is None or asked_at <= episode_end[order_id]):
            continue  # asked again before the answer: same episode
        answer = next((at for at in answers.get(order_id, []) if at >= asked_at), None)
        episode_end[order_id] = answer
        if answer is None:
            unanswered += 1
        else:
            delays.append(answer - asked_at)
    return PerceivedDelays(delays=delays, unanswered=unanswered)


def wrong_shipment_rate(*, start: datetime.datetime, end: datetime.datetime) -> float | None:
    """After-sales cases of kind wrong item or missing gift per order shipped in [start, end).
    A claim rejected after checking was not a wrong shipment, so rejected cases do not count."""
    shipped = Order.objects.filter(shipped_at__gte=start, shipped_at__lt=end).count()
    if not shipped:
        return None
    wrong = (
        AfterSalesCase.objects.filter(
            order__shipped_at__gte=start,
            order__shipped_at__lt=end,
            kind__in=[AfterSalesKind.WRONG_ITEM, AfterSalesKind.MISSING_GIFT],
        )
        .exclude(status=AfterSalesStatus.REJECTED)
        .count()
    )
    return wrong / shipped


def self_service_share(*, start: datetime.datetime, end: datetime.datetime | None = None) -> float | None:
    """Self-service status queries / all status queries (self-service + inquiries recorded by
    customer service) in [start, end)."""
    end = end or timezone.now()
    self_served = SelfServiceQuery.objects.filter(viewed_at__gte=start, viewed_at__lt=end).count()
    assisted = Inquiry.objects.filter(asked_at__gte=start, asked_at__lt=end).count()
    total = self_served + assisted
    return self_served / total if total else None
