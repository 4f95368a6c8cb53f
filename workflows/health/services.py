"""Writes of the health self-check: storing a day's measures, sampling the day's status checks
and recording an answer."""

from __future__ import annotations

import datetime
import logging
import random

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from orders.models import ACTIVE_STATUSES, Order, OrderStatus
from orders.services import NotAllowed, OrderConflict, OrderError
from workflows.health.measures import MEASURES, Measure
from workflows.health.models import CheckerGroup, ConsistencySample, ConsistencyTask, DailyMeasure

logger = logging.getLogger(__name__)

SAMPLES_PER_DAY = 5
# docs/brief.md: "sales, warehouse and service each state the status"; the warehouse side is a
# dispatcher or a packer.
GROUP_ROLES = {
    CheckerGroup.SALES: ["sales"],
    CheckerGroup.WAREHOUSE: ["dispatcher", "packer"],
    CheckerGroup.SERVICE: ["service"],
}


def measure_store(*, measure: Measure, day: datetime.date) -> DailyMeasure:
    """Compute one measure for `day` and store it; running it again replaces the value.

    update_or_create is safe with two beat processes: the unique (key, day) constraint lets only
    one insert win, and Django's get_or_create re-reads the row the other one created."""
    result = measure.compute(day=day)
    row, _created = DailyMeasure.objects.update_or_create(
        key=measure.key,
        day=day,
        defaults={
            "value": result.value,
            "sample_size": result.sample_size,
            "detail": result.detail,
            "computed_at": timezone.now(),
        },
    )
    return row


def measures_store_day(*, day: datetime.date) -> list[DailyMeasure]:
    """Compute every measure for `day` and store it."""
    return [measure_store(measure=measure, day=day) for measure in MEASURES]


def measures_store_night(*, yesterday: datetime.date) -> list[DailyMeasure]:
    """The nightly store: yesterday's values, and again the recent days of measures that settle
    later (a wrong-shipment claim arrives days after the parcel)."""
    stored = measures_store_day(day=yesterday)
    for measure in MEASURES:
        for offset in range(1, measure.settles_days):
            stored.append(measure_store(measure=measure, day=yesterday - datetime.timedelta(days=offset)))
    return stored


def consistency_sample_day(*, day: datetime.date, rng: random.Random | None = None) -> list[ConsistencySample]:
    """Sample up to five active orders and give one person of each side a "which status?" task
    per order. A day is sampled once: a second run (a second beat, a retry) returns the first's."""
    existing = list(ConsistencySample.objects.filter(day=day))
    if existing:
        return existing
    rng = rng or random.SystemRandom()
    candidates = list(Order.objects.filter(status__in=ACTIVE_STATUSES).values_list("pk", flat=True))
    chosen = rng.sample(candidates, min(SAMPLES_PER_DAY, len(candidates)))
    checkers = {}
    for group, roles in GROUP_ROLES.items():
        people = list(User.objects.filter(is_active=True, groups__name__in=roles).distinct().order_by("pk"))
        if people:
            checkers[group] = rng.choice(people)
        else:
            logger.warning("No active %s user: the %s status checks of %s are not assigned.", group, group, day)
    try:
        with transaction.atomic():
            # Locked so the status recorded is the one the order has while the tasks are created.
            orders = Order.objects.select_for_update().filter(pk__in=chosen).order_by("pk")
            samples = []
            for slot, order in enumerate(orders, start=1):
                sample = ConsistencySample.objects.create(day=day, slot=slot, order=order, system_state=order.status)
                ConsistencyTask.objects.bulk_create(
                    ConsistencyTask(sample=sample, group=group, assignee=person) for group, person in checkers.items()
                )
                samples.append(sample)
    except IntegrityError:
        # Another sampler won the (day, slot) race; its samples are the day's.
        return list(ConsistencySample.objects.filter(day=day))
    return samples


def consistency_answer(*, task: ConsistencyTask, by: User, answer: str) -> ConsistencyTask:
    if answer not in OrderStatus.values:
        raise OrderError(_("Choose the status you believe the order is in."))
    with transaction.atomic():
        task = ConsistencyTask.objects.select_for_update().get(pk=task.pk)
        if task.assignee_id != by.pk:
            raise NotAllowed(_("This status check was given to someone else."))
        if task.answered_at is not None:
            raise OrderConflict(_("You already answered this status check; answers cannot be changed."))
        task.answer = answer
        task.answered_at = timezone.now()
        task.save(update_fields=["answer", "answered_at"])
    return task
