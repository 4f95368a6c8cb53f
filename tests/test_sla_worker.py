"""The sweep as beat runs it: a task on the real broker, executed by a real worker process."""

import datetime

import pytest
from django.utils import timezone

from integrations.wechat.models import CustomerMessage
from orders.models import Order
from tests.conftest import make_order, require_redis, wait_for
from tests.logistics_fixtures import bind_customer
from workflows import tasks
from workflows.models import Alert

pytestmark = [pytest.mark.celery_worker, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def test_sweep_task_runs_on_a_celery_worker_through_redis(celery_worker):
    require_redis()
    order = make_order(status="picking")
    bind_customer(order)
    Order.objects.filter(pk=order.pk).update(stage_due_at=timezone.now() - datetime.timedelta(seconds=30))

    tasks.sla_sweep.delay()

    alert = wait_for(lambda: Alert.objects.filter(order=order).first(), message="the worker's sweep to alert")
    assert alert.kind == "sla_breach"
    order.refresh_from_db()
    assert order.sla_breached_at is not None
    # The customer's delay push, by the task the sweep hands it to.
    push = wait_for(lambda: CustomerMessage.objects.filter(order=order).first(), message="the delay push task")
    assert push.event_key.startswith("delay:stage:")
    # A second sweep (proved to have run by the breach it finds) does not alert the first again.
    second = make_order(status="packed")
    Order.objects.filter(pk=second.pk).update(stage_due_at=timezone.now() - datetime.timedelta(seconds=5))
    tasks.sla_sweep.delay()
    wait_for(lambda: Alert.objects.filter(order=second).exists(), message="the second sweep")
    assert Alert.objects.filter(order=order).count() == 1
