"""Two people acting on the same order at the same moment (PostgreSQL row locks): exactly one
wins, the other is told who changed the order, and nothing is lost."""

import threading
import time

import pytest
from django.db import connection
from django.db.models.signals import pre_save
from django.utils import translation

from orders import services
from orders.access import Actor
from orders.models import EventKind, Order, OrderEvent
from tests.conftest import make_order, require_postgres

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def postgres_only():
    require_postgres()


@pytest.fixture
def slow_saves():
    """Hold every order save for a moment, inside its transaction: without the row lock both
    actions would read the same version and both would write (the race this file is about)."""

    def pause(sender, **kwargs):
        time.sleep(0.3)

    pre_save.connect(pause, sender=Order)
    yield
    pre_save.disconnect(pause, sender=Order)


def race(*actions):
    """Run the actions in threads released at the same instant; return each one's result or error."""
    start = threading.Barrier(len(actions))
    results: list = [None] * len(actions)

    def run(index, action):
        try:
            with translation.override("en"):
                start.wait()
                results[index] = action()
        except Exception as exc:  # noqa: BLE001 - the outcome is what the test inspects
            results[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(index, action)) for index, action in enumerate(actions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads)
    return results


def test_two_reviewers_approve_at_once_exactly_one_wins(people, slow_saves):
    second_reviewer = people["reviewer"].__class__.objects.create_user(username="reviewer2", first_name="小审二")
    second_reviewer.groups.add(*people["reviewer"].groups.all())
    order = make_order(status="pending_review")
    version = order.version
    actors = {"小审": Actor.of(people["reviewer"]), "小审二": Actor.of(second_reviewer)}

    results = race(
        *[
            (lambda actor=actor: services.order_transition(order=order, name="approve", by=actor, expected_version=version))
            for actor in actors.values()
        ]
    )

    winners = [result for result in results if isinstance(result, Order)]
    losers = [result for result in results if isinstance(result, Exception)]
    assert len(winners) == 1 and len(losers) == 1, results
    [event] = OrderEvent.objects.filter(order=order, kind=EventKind.STATUS)
    assert isinstance(losers[0], services.OrderConflict)
    assert str(losers[0]).startswith(f"{event.actor_name} changed this order at")
    order.refresh_from_db()
    assert (order.status, order.version) == ("paid", version + 1)


def test_hold_and_approve_race_one_wins_the_other_is_told(people, slow_saves):
    order = make_order(status="pending_review")
    version = order.version

    results = race(
        lambda: services.order_hold(
            order=order, by=Actor.of(people["service"]), reason="customer_request", until=None, expected_version=version
        ),
        lambda: services.order_transition(order=order, name="approve", by=Actor.of(people["reviewer"]), expected_version=version),
    )

    held, approved = (isinstance(result, Order) for result in results)
    assert held != approved, results  # exactly one
    loser = results[1] if held else results[0]
    assert isinstance(loser, services.OrderConflict)
    assert str(loser).startswith("小服 changed" if held else "小审 changed")
    order.refresh_from_db()
    assert (order.is_held, order.status) == (held, "paid" if approved else "pending_review")
    assert order.version == version + 1
    assert OrderEvent.objects.filter(order=order, kind__in=[EventKind.HOLD, EventKind.STATUS]).count() == 1


def test_a_note_and_a_claim_at_once_both_land(people, slow_saves):
    """Actions that do not depend on what the user saw (no version) are serialised, not refused."""
    order = make_order(status="picking")
    version = order.version

    results = race(
        lambda: services.order_add_note(
            order=order,
            by=Actor.of(people["service"]),
            body="客户要求明日12点前送达",
            kind="customer_request",
            audience="warehouse",
        ),
        lambda: services.order_claim(order=order, by=Actor.of(people["packer"])),
    )

    assert not [result for result in results if isinstance(result, Exception)], results
    order.refresh_from_db()
    assert order.claimed_by == people["packer"]
    assert order.notes.get().body == "客户要求明日12点前送达"
    assert order.version == version + 2
    kinds = sorted(OrderEvent.objects.filter(order=order).values_list("kind", flat=True))
    assert kinds == [EventKind.CLAIM, EventKind.NOTE]
