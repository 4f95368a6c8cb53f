"""The front line's raw measures, read by the health self-check (workflows/health/measures.py):
customer-perceived delay and the self-service share of status queries."""

from __future__ import annotations

import datetime
import statistics
from dataclasses import dataclass

from integrations.sms.models import SmsMessage, SmsStatus
from integrations.wechat.models import CustomerMessage, MessageStatus
from workflows.frontline.models import Inquiry, SelfServiceQuery
from workflows.notifications import problem_push


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
        the customer perceives the message, not our intention to send it. Both channels count: a
    WeChat push or an SMS. The one definition of CPD
        (the health self-check and the front line read it here)."""
    order_ids = set(Inquiry.objects.filter(asked_at__gte=start, asked_at__lt=end).values_list("order_id", flat=True))
    # The orders' earlier inquiries and answers too: an episode may have begun before the window.
    inquiries = (
        Inquiry.objects.filter(order_id__in=order_ids, asked_at__lt=end)
        .order_by("order_id", "asked_at")
        .values_list("order_id", "asked_at")
    )
    answers: dict[int, list[datetime.datetime]] = {}
    # Both channels: a WeChat push or an SMS (issue 18), whichever the platform accepted first.
    for outbox, sent in ((CustomerMessage, MessageStatus.SENT), (SmsMessage, SmsStatus.SENT)):
        for order_id, sent_at in outbox.objects.filter(
            order_id__in=order_ids, carries_location=True, status=sent, sent_at__isnull=False
        ).values_list("order_id", "sent_at"):
            answers.setdefault(order_id, []).append(sent_at)
    for times in answers.values():
        times.sort()
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


@dataclass(frozen=True)
class ProactiveReach:
    """Customers with a problem on their order (a delay push, or a "where is my order"), and
    how many heard of it from us before they asked."""

    problems: int
    reached_first: int

    @property
    def share(self) -> float | None:
        return self.reached_first / self.problems if self.problems else None


def proactive_reach(*, start: datetime.datetime, end: datetime.datetime) -> ProactiveReach:
    """Orders whose first problem push (a delay or an exception explanation, workflows/
    notifications.py problem_push) was sent in [start, end), or whose first inquiry was asked
    then: reached first when such a push was sent before the first inquiry (or none came)."""
    first_push: dict[int, datetime.datetime] = {}
    for outbox, sent in ((CustomerMessage, MessageStatus.SENT), (SmsMessage, SmsStatus.SENT)):
        for order_id, sent_at in outbox.objects.filter(problem_push(), status=sent, sent_at__lt=end).values_list(
            "order_id", "sent_at"
        ):
            if order_id not in first_push or sent_at < first_push[order_id]:
                first_push[order_id] = sent_at
    first_asked: dict[int, datetime.datetime] = {}
    for order_id, asked_at in Inquiry.objects.filter(asked_at__lt=end).order_by("asked_at").values_list("order_id", "asked_at"):
        first_asked.setdefault(order_id, asked_at)
    problems = reached = 0
    for order_id in set(first_push) | set(first_asked):
        pushed, asked = first_push.get(order_id), first_asked.get(order_id)
        began = min(moment for moment in (pushed, asked) if moment is not None)
        if not start <= began < end:
            continue
        problems += 1
        reached += pushed is not None and (asked is None or pushed <= asked)
    return ProactiveReach(problems, reached)
