"""Stage clocks with time driven by time_machine: breaches are alerted exactly once, holds pause
the clock, rush deadlines override, working hours stretch it."""

import datetime

import pytest
import time_machine
from django.core import mail
from django.core.management import call_command
from django.utils import timezone

from orders import clock, services
from orders.access import Actor
from orders.models import EventKind, Order, StageRule
from orders.selectors import OrderFilters, order_list
from orders.services import rush_file
from tests.conftest import make_order
from tests.packing_fixtures import scan_every_item
from workflows import sla
from workflows.models import Alert

pytestmark = pytest.mark.django_db
START = datetime.datetime(2026, 11, 24, 9, 0, tzinfo=datetime.timezone(datetime.timedelta(hours=8)))


@pytest.fixture
def supervisor_mail(people, settings):
    people["supervisor"].email = "zheng@beile.example"
    people["supervisor"].save()
    settings.ALERT_EMAILS = ["ops@beile.example"]
    return people


def _at(delta: datetime.timedelta):
    return time_machine.travel(START + delta, tick=False)


def _picking_order(people) -> Order:
    order = make_order(status="paid")
    return services.order_transition(order=order, name="start_picking", by=Actor.of(people["dispatcher"]))


def test_picking_over_four_hours_alerts_once_in_app_and_by_mail(supervisor_mail):
    people = supervisor_mail
    with _at(datetime.timedelta()):
        order = _picking_order(people)
    assert order.stage_due_at == START + datetime.timedelta(hours=4)
    with _at(datetime.timedelta(hours=3, minutes=59)):
        assert sla.sla_sweep().breached == 0
    assert Alert.objects.count() == 0 and len(mail.outbox) == 0

    with _at(datetime.timedelta(hours=4, seconds=30)):  # the beat runs every minute
        result = sla.sla_sweep()
    assert result.breached == 1
    alert = Alert.objects.get()
    assert alert.order == order and alert.for_role == "supervisor" and alert.emailed_at is not None
    assert order.order_number in alert.message and "打包员" in alert.message
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["ops@beile.example", "zheng@beile.example"]
    assert order.order_number in mail.outbox[0].subject
    order.refresh_from_db()
    assert order.sla_breached_at == START + datetime.timedelta(hours=4, seconds=30)
    assert order.events.filter(kind=EventKind.SLA_BREACH, actor_name="system").count() == 1

    with _at(datetime.timedelta(hours=4, minutes=1, seconds=30)):
        assert sla.sla_sweep().breached == 0
    assert Alert.objects.count() == 1 and len(mail.outbox) == 1
    assert order.events.filter(kind=EventKind.SLA_BREACH).count() == 1


def test_a_new_stage_is_a_new_breach(supervisor_mail):
    people = supervisor_mail
    with _at(datetime.timedelta()):
        order = _picking_order(people)
    with _at(datetime.timedelta(hours=5)):
        sla.sla_sweep()
        scan_every_item(order, people["packer"])
        order = services.order_transition(order=order, name="pack", by=Actor.of(people["packer"]))
    assert order.sla_breached_at is None
    assert order.stage_due_at == START + datetime.timedelta(hours=7)
    with _at(datetime.timedelta(hours=7, seconds=10)):
        assert sla.sla_sweep().breached == 1
    assert list(Alert.objects.order_by("created_at").values_list("order_id", flat=True)) == [order.pk, order.pk]
    assert len(mail.outbox) == 2


def test_hold_pauses_the_clock_and_release_resumes_it(supervisor_mail):
    people = supervisor_mail
    dispatcher = Actor.of(people["dispatcher"])
    with _at(datetime.timedelta()):
        order = _picking_order(people)
    with _at(datetime.timedelta(hours=1)):
        order = services.order_hold(order=order, by=dispatcher, reason="stock_shortage", until=None)
    assert order.stage_due_at is None
    with _at(datetime.timedelta(hours=5)):  # past the original 4 h, but on hold
        assert sla.sla_sweep().breached == 0
        assert not order_list(user=people["supervisor"], filters=OrderFilters(overdue=True)).orders
    with _at(datetime.timedelta(hours=6)):
        order = services.order_release(order=order, by=dispatcher)
    # 3 h of the 4 h limit were left when the hold began: due 3 h after the release.
    assert order.stage_due_at == START + datetime.timedelta(hours=9)
    with _at(datetime.timedelta(hours=8, minutes=59)):
        assert sla.sla_sweep().breached == 0
    with _at(datetime.timedelta(hours=9, seconds=20)):
        assert sla.sla_sweep().breached == 1
        assert [o.pk for o in order_list(user=people["supervisor"], filters=OrderFilters(overdue=True)).orders] == [order.pk]


def test_rush_deadline_overrides_the_stage_limit_when_sooner(supervisor_mail):
    people = supervisor_mail
    sales = Actor.of(people["sales"])
    with _at(datetime.timedelta()):
        soon = _picking_order(people)
        later = make_order(status="paid", phone="13900139000")
        later = services.order_transition(order=later, name="start_picking", by=Actor.of(people["dispatcher"]))
        rush_file(
            by=sales,
            phone=soon.receiver_phone,
            reason="客户明早出国",
            deadline=START + datetime.timedelta(hours=1),
            order_choice=soon.order_number,
        )
        rush_file(
            by=sales,
            phone=later.receiver_phone,
            reason="尽快",
            deadline=START + datetime.timedelta(hours=10),
            order_choice=later.order_number,
        )
    soon.refresh_from_db()
    later.refresh_from_db()
    assert soon.stage_due_at == START + datetime.timedelta(hours=1)
    assert later.stage_due_at == START + datetime.timedelta(hours=4)  # the later deadline does not extend the limit
    with _at(datetime.timedelta(hours=1, seconds=5)):
        assert sla.sla_sweep().breached == 1
    alert = Alert.objects.get()
    assert alert.order == soon and "已错过期望完成时间" in alert.message


def test_working_hours_stop_the_clock_overnight(supervisor_mail):
    people = supervisor_mail
    StageRule.objects.filter(stage="picking").update(work_starts=datetime.time(9), work_ends=datetime.time(18))
    with _at(datetime.timedelta(hours=8)):  # 17:00: one working hour left today
        order = _picking_order(people)
    # 1 h today (17–18) + 3 h tomorrow from 09:00.
    assert order.stage_due_at == START + datetime.timedelta(days=1, hours=3)
    with _at(datetime.timedelta(days=1, hours=2)):
        assert clock.stage_clock(order).elapsed == datetime.timedelta(hours=3)


def test_the_card_shows_time_in_stage_against_the_limit(client, supervisor_mail):
    people = supervisor_mail
    with _at(datetime.timedelta()):
        order = _picking_order(people)
    client.force_login(people["dispatcher"])
    with _at(datetime.timedelta(hours=4, minutes=30)):
        page = client.get(f"/orders/{order.order_number}/").content.decode()
    clock = page[page.index('id="stage-clock"') :][:400]
    assert 'class="over"' in clock and "4小时30分 / 4小时0分" in clock


def test_sla_sweep_command_runs_one_sweep(supervisor_mail):
    order = make_order(status="picking")
    Order.objects.filter(pk=order.pk).update(stage_due_at=timezone.now() - datetime.timedelta(minutes=1))
    call_command("sla_sweep")
    assert Alert.objects.filter(order=order).count() == 1
    call_command("sla_sweep")
    assert Alert.objects.filter(order=order).count() == 1


def test_a_stage_entry_alerts_once_even_when_its_clock_is_reset_without_a_new_entry(supervisor_mail):
    # The sweep writes events and alerts as plain rows (COPY on PostgreSQL, which has no "ignore
    # conflicts"): an entry that alerted already is skipped before the insert, not refused by it.
    people = supervisor_mail
    with _at(datetime.timedelta()):
        order = _picking_order(people)
    with _at(datetime.timedelta(hours=4, seconds=30)):
        assert sla.sla_sweep().breached == 1
    Order.objects.filter(pk=order.pk).update(sla_breached_at=None)
    with _at(datetime.timedelta(hours=4, minutes=1, seconds=30)):
        assert sla.sla_sweep().breached == 1
    assert Alert.objects.count() == 1 and len(mail.outbox) == 1
    breaches = order.events.filter(kind=EventKind.SLA_BREACH).order_by("occurred_at")
    assert [event.payload for event in breaches] == [
        {"stage": "picking", "due_at": order.stage_due_at.isoformat(), "responsible_role": "packer", "rush": False}
    ] * 2
    assert breaches[1].occurred_at == START + datetime.timedelta(hours=4, minutes=1, seconds=30)
