"""Customer-perceived delay: from the first open "where is my order" to the first push that
carries location/ETA or an exception explanation; plus the count of status queries behind the
self-service share (the health self-check's measures on top of these are in test_health_measures)."""

import datetime

import pytest
import time_machine
from django.utils import timezone

from integrations.wechat.models import CustomerMessage
from integrations.wechat.services import customer_message_send
from orders.access import Actor
from tests.conftest import make_order
from tests.frontline_fixtures import fast_passwords, ship  # noqa: F401
from tests.logistics_fixtures import bind_customer, fake_wechat  # noqa: F401
from workflows.frontline.measures import perceived_delays, status_queries
from workflows.frontline.models import Inquiry, SelfServiceQuery
from workflows.frontline.services import inquiry_record

pytestmark = pytest.mark.django_db
T0 = datetime.datetime(2026, 1, 22, 10, 0, tzinfo=datetime.UTC)


def minutes(n):
    return T0 + datetime.timedelta(minutes=n)


def ask(order, at, people):
    return Inquiry.objects.create(
        order=order, customer=order.customer, channel="phone", question="到哪了", recorded_by=people["service"], asked_at=at
    )


def push(order, at, *, carries_location=True, key=None):
    """A push WeChat accepted at `at` (CPD stops when the customer gets it, not when it is queued)."""
    return CustomerMessage.objects.create(
        order=order,
        recipient="o",
        event_key="x",
        idempotency_key=key or f"k{at.timestamp()}{carries_location}",
        carries_location=carries_location,
        created_at=at,
        status="sent",
        sent_at=at,
    )


def test_cpd_runs_from_the_first_open_inquiry_to_the_first_push_with_location(people):
    order = make_order(status="shipped")
    ask(order, minutes(0), people)
    ask(order, minutes(30), people)
    push(order, minutes(40), carries_location=False)  # "shipped" without location does not count
    push(order, minutes(142))
    report = perceived_delays(start=minutes(-10), end=minutes(200))
    # The second call belongs to the same wait: the customer has been waiting since the first.
    assert [(episode.asked_at, episode.delay) for episode in report.episodes] == [(minutes(0), datetime.timedelta(minutes=142))]
    assert report.delays == [datetime.timedelta(minutes=142)] and report.unanswered == 0
    # Counted from the window holding the first question only, not again from the second.
    assert perceived_delays(start=minutes(20), end=minutes(200)).episodes == []


def test_a_wait_that_began_before_the_window_is_not_counted_again_inside_it(people):
    """A customer who asked at 23:50 and again at 00:10, answered at 00:30, waited 40 minutes once:
    yesterday's measure counts it; today's has no new wait (not a second one of 20 minutes)."""
    order = make_order(status="shipped")
    ask(order, minutes(-20), people)
    ask(order, minutes(0), people)
    push(order, minutes(20))
    assert perceived_delays(start=minutes(-60), end=minutes(-10)).delays == [datetime.timedelta(minutes=40)]
    today = perceived_delays(start=minutes(-10), end=minutes(200))
    assert (today.episodes, today.unanswered) == ([], 0)


def test_a_new_question_after_an_answer_starts_a_new_wait(people):
    order = make_order(status="shipped")
    ask(order, minutes(0), people)
    push(order, minutes(10))
    ask(order, minutes(60), people)
    report = perceived_delays(start=minutes(-10), end=minutes(200))
    assert (report.delays, report.unanswered) == ([datetime.timedelta(minutes=10)], 1)
    push(order, minutes(63))
    report = perceived_delays(start=minutes(-10), end=minutes(200))
    assert sorted(report.delays) == [datetime.timedelta(minutes=3), datetime.timedelta(minutes=10)]
    assert report.median == datetime.timedelta(minutes=6, seconds=30)
    assert perceived_delays(start=minutes(30), end=minutes(200)).delays == [datetime.timedelta(minutes=3)]


def test_unanswered_waits_are_counted_not_hidden(people):
    order = make_order(status="shipped")
    ask(order, minutes(0), people)
    report = perceived_delays(start=minutes(-10), end=minutes(200))
    assert report.delays == [] and report.unanswered == 1 and report.median is None


def test_queued_but_unsent_answer_does_not_stop_the_clock(people):
    order = make_order(status="shipped")
    ask(order, minutes(0), people)
    CustomerMessage.objects.create(
        order=order, recipient="o", event_key="x", idempotency_key="queued", carries_location=True, created_at=minutes(1)
    )
    report = perceived_delays(start=minutes(-10), end=minutes(200))
    assert (report.delays, report.unanswered) == ([], 1)


def test_recorded_inquiry_with_tracking_is_answered_within_seconds(people, fake_wechat, django_capture_on_commit_callbacks):
    """Recording the inquiry queues the answer; sending it through the (fake) WeChat server over
    HTTP, as the worker does, ends the customer's wait within seconds."""
    order = make_order(status="shipped", phone="13900001111")
    openid = bind_customer(order)
    ship(order, eta=timezone.now() + datetime.timedelta(hours=20))
    with django_capture_on_commit_callbacks() as callbacks:
        inquiry = inquiry_record(order=order, by=Actor.of(people["service"]), channel="wechat")
    window = {"start": inquiry.asked_at, "end": inquiry.asked_at + datetime.timedelta(minutes=1)}
    assert perceived_delays(**window).unanswered == 1  # queued, not yet with the customer
    assert callbacks, "the answer is sent after commit"
    assert customer_message_send(message_id=inquiry.answer_message_id) == "sent"
    [delay] = perceived_delays(**window).delays
    assert delay < datetime.timedelta(seconds=5)
    assert [m["data"]["thing3"] for m in fake_wechat.messages_for(openid)] == ["广东,深圳市"]
    assert fake_wechat.messages_for(openid)[0]["url"].startswith("http"), "the push links to the self-service page"


def test_status_queries_count_self_service_views_and_recorded_inquiries(people):
    with time_machine.travel(minutes(0), tick=False):
        order = make_order(status="shipped")
        for _ in range(3):
            SelfServiceQuery.objects.create(order=order, via="link")
        ask(order, minutes(0), people)
    queries = status_queries(start=minutes(-1), end=minutes(1))
    assert (queries.self_served, queries.assisted, queries.share) == (3, 1, 0.75)
    assert status_queries(start=minutes(5), end=minutes(6)).share is None
