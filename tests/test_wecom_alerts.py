"""Issue 18, staff alerts where staff look: every alert (stage breach, ERP difference, ticket)
also reaches its role's WeCom group robot, as markdown with the order's link, batched per role so
the robot's ~20 messages a minute hold; through the robot outbox. Over the fake robot's HTTP."""

import datetime

import pytest
import time_machine
from django.utils import timezone

from integrations.wecom import services as wecom
from integrations.wecom.models import RobotMessage, RobotStatus
from orders.models import Order
from tests.conftest import make_order
from tests.reach_fixtures import fake_wecom  # noqa: F401 - fixture
from workflows import alerts, sla
from workflows.models import Alert, AlertKind

pytestmark = pytest.mark.django_db


def breach(count: int) -> list[Order]:
    orders = [make_order(status="picking") for _ in range(count)]
    Order.objects.filter(pk__in=[o.pk for o in orders]).update(stage_due_at=timezone.now() - datetime.timedelta(minutes=1))
    return orders


def send_all() -> list[str]:
    return [wecom.robot_message_send(message_id=pk) for pk in RobotMessage.objects.order_by("pk").values_list("pk", flat=True)]


def test_a_burst_of_breaches_is_one_markdown_message_with_the_order_links(fake_wecom, settings):
    settings.CUSTOMER_QUIET_HOURS = (0, 0)
    orders = breach(25)
    assert sla.sla_sweep().breached == 25
    [message] = RobotMessage.objects.all()
    assert message.role == "supervisor" and message.alert_count == 25
    assert send_all() == ["sent"]
    [received] = fake_wecom.messages_for("key-supervisor")
    assert received["msgtype"] == "markdown"
    shown = [o for o in orders if f"/orders/{o.order_number}/" in received["content"]]
    assert len(shown) == alerts.ROBOT_BATCH
    assert "5" in received["content"].splitlines()[-1]  # "…and 5 more on the board"
    # The next sweep has nothing new for the robot.
    assert sla.sla_sweep().breached == 0
    assert RobotMessage.objects.count() == 1


def test_each_role_hears_on_its_own_robot_and_a_role_without_one_is_skipped(fake_wecom):
    now = timezone.now()
    alerts.alert_raise(
        kind=AlertKind.RECONCILIATION, for_role="finance", dedupe_key="erp:1", message="ERP 差异 0.8%", link="/erp/"
    )
    alerts.alert_raise(kind=AlertKind.TICKET, for_role="courier", dedupe_key="ticket:1", message="停滞包裹", link="/tickets/1/")
    alerts.alert_raise(kind=AlertKind.SYSTEM, for_role="packer", dedupe_key="sys:1", message="no robot for packers")
    assert alerts.alerts_robot_queue(now=now) == 2
    assert alerts.alerts_robot_queue(now=now) == 0
    assert not Alert.objects.filter(robot_queued_at__isnull=True).exists()
    assert send_all() == ["sent", "sent"]
    assert "/erp/" in fake_wecom.messages_for("key-finance")[0]["content"]
    assert "/tickets/1/" in fake_wecom.messages_for("key-courier")[0]["content"]


def test_the_robots_rate_limit_is_kept_by_waiting(fake_wecom, settings):
    settings.WECOM = {**settings.WECOM, "PER_MINUTE": 2}
    for index in range(3):
        alerts.alert_raise(kind=AlertKind.SYSTEM, for_role="supervisor", dedupe_key=f"s:{index}", message=f"alert {index}")
        alerts.alerts_robot_queue()
    assert send_all() == ["sent", "sent", "rate limited"]
    assert fake_wecom.requests == 2  # the robot was never asked to break its limit
    waiting = RobotMessage.objects.get(status=RobotStatus.PENDING)
    with time_machine.travel(waiting.next_attempt_at + datetime.timedelta(seconds=1), tick=False):
        assert wecom.robot_messages_relay() == 1
        assert wecom.robot_message_send(message_id=waiting.pk) == "sent"


def test_the_robots_own_refusals(fake_wecom):
    alerts.alert_raise(kind=AlertKind.SYSTEM, for_role="supervisor", dedupe_key="s:x", message="x")
    alerts.alerts_robot_queue()
    message = RobotMessage.objects.get()
    fake_wecom.fail_next(45009, "api freq out of limit")
    assert wecom.robot_message_send(message_id=message.pk) == "retry"
    message.refresh_from_db()
    assert message.status == RobotStatus.FAILED and message.next_attempt_at > timezone.now()
    with time_machine.travel(message.next_attempt_at, tick=False):
        fake_wecom.fail_next(93000, "invalid webhook url")
        assert wecom.robot_message_send(message_id=message.pk) == "refused"


def test_an_unreachable_robot_never_writes_its_key_into_the_error(settings):
    settings.WECOM = {
        "SANDBOX": False,
        "WEBHOOKS": {"supervisor": "http://127.0.0.1:9/cgi-bin/webhook/send?key=SECRETKEY"},
        "PER_MINUTE": 18,
    }
    alerts.alert_raise(kind=AlertKind.SYSTEM, for_role="supervisor", dedupe_key="s:y", message="y")
    alerts.alerts_robot_queue()
    message = RobotMessage.objects.get()
    assert wecom.robot_message_send(message_id=message.pk) == "retry"
    message.refresh_from_db()
    assert "SECRETKEY" not in message.last_error
