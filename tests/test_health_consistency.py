"""The daily cross-role status check: five active orders sampled, one task per order for a sales,
a warehouse and a service person, answered independently, compared with the system's status at
sampling time; unanswered tasks are shown and never counted as matches."""

import datetime
import random

import pytest

from orders import services as order_services
from orders.access import Actor
from tests.conftest import make_order
from tests.packing_fixtures import scan_every_item
from workflows.health.measures import business_today, measure_cross_role_consistency
from workflows.health.models import ConsistencySample, ConsistencyTask
from workflows.health.services import consistency_sample_day
from workflows.health.tasks import sample_status_checks

pytestmark = pytest.mark.django_db


@pytest.fixture
def active_and_finished_orders():
    active = [
        make_order(status=status) for status in ("pending_review", "paid", "paid", "picking", "picking", "packed", "packed")
    ]
    finished = [make_order(status="shipped"), make_order(status="completed"), make_order(status="cancelled")]
    return active, finished


def test_sampling_picks_five_active_orders_and_gives_each_side_a_task(people, active_and_finished_orders):
    active, _finished = active_and_finished_orders
    day = business_today()

    samples = consistency_sample_day(day=day, rng=random.Random(7))

    assert len(samples) == 5
    assert {sample.order_id for sample in samples} <= {order.pk for order in active}
    for sample in samples:
        assert sample.system_state == sample.order.status
        tasks = {task.group: task.assignee for task in sample.tasks.all()}
        assert tasks.keys() == {"sales", "warehouse", "service"}
        assert tasks["sales"] == people["sales"]
        assert tasks["warehouse"] in (people["dispatcher"], people["packer"])
        assert tasks["service"] == people["service"]
    assert ConsistencyTask.objects.count() == 15


def test_sampling_runs_once_a_day_however_often_the_task_fires(people, active_and_finished_orders):
    first = sample_status_checks()
    second = sample_status_checks()
    assert first == second == 5
    assert ConsistencySample.objects.count() == 5
    assert ConsistencyTask.objects.count() == 15


def test_sampling_with_fewer_active_orders_samples_what_there_is(people):
    make_order(status="picking")
    make_order(status="shipped")
    samples = consistency_sample_day(day=business_today())
    assert len(samples) == 1
    assert samples[0].system_state == "picking"


def _answer(client, user, task, answer):
    client.force_login(user)
    return client.post(f"/health/checks/{task.pk}/answer/", {"answer": answer})


def test_three_people_answer_independently_and_the_rate_compares_with_the_status_at_sampling(
    client, people, active_and_finished_orders
):
    day = business_today()
    samples = consistency_sample_day(day=day, rng=random.Random(3))
    truth = {sample.pk: sample.system_state for sample in samples}

    # After sampling an order moves on; the answers are judged against the status at sampling.
    moved = next(sample for sample in samples if sample.system_state == "paid" or sample.system_state == "picking")
    name = "start_picking" if moved.system_state == "paid" else "pack"
    if name == "pack":
        scan_every_item(moved.order, people["supervisor"])
    order_services.order_transition(order=moved.order, name=name, by=Actor.of(people["supervisor"]))

    # Each person sees only their own five tasks, and no system status on the page.
    for role in ("sales", "packer", "dispatcher", "service"):
        client.force_login(people[role])
        page = client.get("/health/checks/")
        mine = ConsistencyTask.objects.filter(assignee=people[role], answered_at__isnull=True)
        assert page.status_code == 200
        assert [task.pk for task in page.context["open_tasks"]] == [task.pk for task in mine.order_by("sample__slot")]
        assert "system_state" not in page.content.decode()
        assert " selected" not in page.content.decode()  # no answer is suggested

    sales_tasks = ConsistencyTask.objects.filter(group="sales")
    warehouse_tasks = list(ConsistencyTask.objects.filter(group="warehouse").order_by("sample__slot"))
    for task in sales_tasks:
        assert _answer(client, people["sales"], task, truth[task.sample_id]).status_code == 302
    wrong = warehouse_tasks[0]
    wrong_answer = "shipped" if truth[wrong.sample_id] != "shipped" else "paid"
    _answer(client, wrong.assignee, wrong, wrong_answer)
    for task in warehouse_tasks[1:]:
        _answer(client, task.assignee, task, truth[task.sample_id])
    # service answers nothing.

    result = measure_cross_role_consistency(day=day)
    assert result.value == 90.0  # 9 matches ÷ 10 answers
    assert result.detail == {"answered": 10, "matches": 9, "unanswered": 5}

    # The supervisor sees the unanswered tasks listed behind the number.
    client.force_login(people["supervisor"])
    page = client.get("/health/cross_role_consistency/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert page.count("not answered yet") == 5
    assert page.count('class="off-target"') == 1


def test_an_answer_is_given_once_by_its_assignee_only(client, people, active_and_finished_orders):
    consistency_sample_day(day=business_today())
    task = ConsistencyTask.objects.filter(group="sales").first()

    assert _answer(client, people["service"], task, "paid").status_code == 404  # not theirs
    client.force_login(people["sales"])
    response = client.post(f"/health/checks/{task.pk}/answer/", {"answer": ""}, follow=True, HTTP_ACCEPT_LANGUAGE="en")
    task.refresh_from_db()
    assert task.answered_at is None
    assert "Choose the status you believe the order is in." in response.content.decode()

    _answer(client, people["sales"], task, "paid")
    response = client.post(f"/health/checks/{task.pk}/answer/", {"answer": "packed"}, follow=True, HTTP_ACCEPT_LANGUAGE="en")
    task.refresh_from_db()
    assert task.answer == "paid"
    assert "You already answered this status check" in response.content.decode()


def test_the_nav_shows_a_badge_with_the_open_checks(client, people, active_and_finished_orders):
    consistency_sample_day(day=business_today() - datetime.timedelta(days=1))
    client.force_login(people["sales"])
    page = client.get("/orders/").content.decode()
    assert 'id="nav-status-checks"' in page
    assert '<span class="chip warn">5</span>' in page
    client.force_login(people["reviewer"])
    assert 'id="nav-status-checks"' not in client.get("/orders/").content.decode()


def test_status_check_pages_are_for_the_checking_roles(client, people):
    for role, allowed in {
        "sales": True,
        "dispatcher": True,
        "packer": True,
        "service": True,
        "supervisor": False,
        "finance": False,
        "reviewer": False,
        "courier": False,
        "outsider": False,
    }.items():
        client.force_login(people[role])
        assert client.get("/health/checks/").status_code == (200 if allowed else 403), role
    client.logout()
    assert client.get("/health/checks/").status_code == 302
