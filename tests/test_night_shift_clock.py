"""Working hours that cross midnight (a night shift, 18:00–09:00): the stage clock counts them,
the rules editor and the database accept them (issue 19)."""

import datetime
import threading

import pytest
from django.db import IntegrityError, transaction

from orders import clock, services
from orders.access import Actor
from orders.models import StageRule
from tests.conftest import PASSWORD, make_order

SHANGHAI = datetime.timezone(datetime.timedelta(hours=8))


def at(day: int, hour: int, minute: int = 0) -> datetime.datetime:
    return datetime.datetime(2026, 11, day, hour, minute, tzinfo=SHANGHAI)


def bounded(function, *args):
    """The clock's answer within 5 s: an arithmetic that finds no working window loops forever,
    which must fail the test, not hang it."""
    answer = []
    worker = threading.Thread(target=lambda: answer.append(function(*args)), daemon=True)
    worker.start()
    worker.join(5)
    assert answer, "the stage clock found no working window for a shift across midnight"
    return answer[0]


NIGHT = StageRule(
    stage="picking", time_limit=datetime.timedelta(hours=4), work_starts=datetime.time(18), work_ends=datetime.time(9)
)
DAY = StageRule(
    stage="picking", time_limit=datetime.timedelta(hours=4), work_starts=datetime.time(9), work_ends=datetime.time(18)
)


@pytest.mark.parametrize(
    ("start", "amount", "due"),
    [
        (at(24, 17), 4, at(24, 22)),  # before the shift: from 18:00
        (at(24, 22), 4, at(25, 2)),  # across midnight
        (at(25, 7), 4, at(25, 20)),  # 2 h left this morning, 2 h from 18:00
        # A whole night shift (18:00 on the 25th to 09:00 on the 26th) is 15 h; the 16th is 18–19 on the 26th.
        (at(25, 12), 16, at(26, 19)),
    ],
)
def test_add_working_time_across_midnight(start, amount, due):
    assert bounded(clock.add_working_time, NIGHT, start, datetime.timedelta(hours=amount)) == due


@pytest.mark.parametrize(
    ("start", "end", "hours"),
    [
        (at(24, 17), at(24, 20), 2),
        (at(24, 23), at(25, 1), 2),  # across midnight
        (at(25, 8), at(25, 19), 2),  # 08–09 in the morning, 18–19 in the evening
        (at(24, 12), at(25, 12), 15),  # a whole day holds one whole night shift
        (at(25, 10), at(25, 17), 0),  # the day is off
    ],
)
def test_working_seconds_across_midnight(start, end, hours):
    assert bounded(clock.working_seconds, NIGHT, start, end) == hours * 3600


def test_day_hours_are_unchanged():
    assert clock.add_working_time(DAY, at(24, 17), datetime.timedelta(hours=4)) == at(25, 12)
    assert clock.working_seconds(DAY, at(24, 17), at(25, 10)) == 2 * 3600


@pytest.mark.django_db
def test_the_rules_editor_accepts_a_night_shift_and_due_times_follow_it(client, people):
    rule = StageRule.objects.get(stage="picking")
    order = make_order(status="picking")
    client.login(username="supervisor", password=PASSWORD)
    response = client.post(
        "/board/rules/",
        {
            "rule": rule.pk,
            "responsible_role": "packer",
            "limit_minutes": "240",
            "alert_role": "supervisor",
            "work_starts": "18:00",
            "work_ends": "09:00",
        },
    )
    assert response.status_code == 302
    rule.refresh_from_db()
    assert (rule.work_starts, rule.work_ends) == (datetime.time(18), datetime.time(9))
    order.refresh_from_db()
    assert order.stage_due_at == clock.add_working_time(rule, order.stage_entered_at, datetime.timedelta(hours=4))


@pytest.mark.django_db
def test_a_window_of_no_length_is_refused_by_the_service_and_the_database(people):
    rule = StageRule.objects.get(stage="picking")
    with pytest.raises(services.OrderError):
        services.stage_rule_update(
            rule=rule,
            by=Actor.of(people["supervisor"]),
            responsible_role="packer",
            time_limit=datetime.timedelta(hours=1),
            alert_role="supervisor",
            work_starts=datetime.time(9),
            work_ends=datetime.time(9),
        )
    with pytest.raises(IntegrityError), transaction.atomic():
        StageRule.objects.filter(pk=rule.pk).update(work_starts=datetime.time(9), work_ends=datetime.time(9))
    with pytest.raises(IntegrityError), transaction.atomic():
        StageRule.objects.filter(pk=rule.pk).update(work_starts=datetime.time(9), work_ends=None)
