"""The front line's raw measures, read by the health self-check (workflows/health/measures.py):
customer-perceived delay and the self-service share of status queries."""

from __future__ import annotations

import datetime
import statistics
from dataclasses import dataclass

from integrations.wechat.models import CustomerMessage, MessageStatus
from workflows.frontline.models import Inquiry, SelfServiceQuery


@dataclass(frozen=True)
class Episode:
    """One customer's wait: from the first "where is my order" to the first push with location."""

    order_id: int
    asked_at: datetime.datetime
    answered_at: datetime.datetime | None  # None while no such push has been sent

    @property
    def delay(self) -> datetime.timedelta | None:
        return None if self.answered_at is None else self.answered_at - self.asked_at


@dataclass
class PerceivedDelays:
    episodes: list[Episode]

    @property
    def delays(self) -> list[datetime.timedelta]:
        """One per answered episode."""
        return [episode.delay for episode in self.episodes if episode.delay is not None]

    @property
    def unanswered(self) -> int:
        """Episodes still waiting for a push with location."""
        return sum(1 for episode in self.episodes if episode.answered_at is None)

    @property
    def median(self) -> datetime.timedelta | None:
        return statistics.median(self.delays) if self.delays else None


def perceived_delays(*, start: datetime.datetime, end: datetime.datetime) -> PerceivedDelays:
    """Customer-perceived delay (CPD) over the episodes whose first inquiry falls in [start, end):
    from the first "where is my order" to the first push carrying location/ETA or an exception
    explanation sent at or after it. Repeated questions before the answer belong to the same
    episode, so a customer who asks three times counts once, from the first time; a question
    asked before `start` and repeated inside the window is an episode of the earlier day, not a
    new one. The clock stops when the push is sent (accepted by WeChat), not when it is queued:
    the customer perceives the message, not our intention to send it. The one definition of CPD
    (the health self-check and the front line read it here)."""
    order_ids = set(Inquiry.objects.filter(asked_at__gte=start, asked_at__lt=end).values_list("order_id", flat=True))
    # The orders' earlier inquiries and answers too: an episode may have begun before the window.
    inquiries = (
        Inquiry.objects.filter(order_id__in=order_ids, asked_at__lt=end)
        .order_by("order_id", "asked_at")
        .values_list("order_id", "asked_at")
    )
    answers: dict[int, list[datetime.datetime]] = {}
    for order_id, sent_at in (
        CustomerMessage.objects.filter(
            order_id__in=order_ids, carries_location=True, status=MessageStatus.SENT, sent_at__isnull=False
        )
        .order_by("sent_at")
        .values_list("order_id", "sent_at")
    ):
        answers.setdefault(order_id, []).append(sent_at)
    episodes = []
    episode_end: dict[int, datetime.datetime | None] = {}
    for order_id, asked_at in inquiries:
        if order_id in episode_end and (episode_end[order_id] is None or asked_at <= episode_end[order_id]):
            continue  # asked again before the answer: same episode
        answer = next((at for at in answers.get(order_id, []) if at >= asked_at), None)
        episode_end[order_id] = answer
        if asked_at >= start:
            episodes.append(Episode(order_id, asked_at, answer))
    return PerceivedDelays(episodes)


@dataclass(frozen=True)
class StatusQueries:
    self_served: int  # views of the self-service status page
    assisted: int  # inquiries recorded by customer service

    @property
    def total(self) -> int:
        return self.self_served + self.assisted

    @property
    def share(self) -> float | None:
        return self.self_served / self.total if self.total else None


def status_queries(*, start: datetime.datetime, end: datetime.datetime) -> StatusQueries:
    """Status queries in [start, end): self-service views and inquiries recorded by customer service."""
    return StatusQueries(
        self_served=SelfServiceQuery.objects.filter(viewed_at__gte=start, viewed_at__lt=end).count(),
        assisted=Inquiry.objects.filter(asked_at__gte=start, asked_at__lt=end).count(),
    )
