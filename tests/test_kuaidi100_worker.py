"""With a real Celery worker on Redis: 200 shipped orders give 200 subscriptions and exactly one
push per order event, also when the worker is killed with SIGKILL mid-batch and restarted
(the relays, as beat runs them, pick up what the dead worker held)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest

from beile.celery import app
from integrations.kuaidi100 import services as tracking
from integrations.kuaidi100.models import SubscriptionState, TrackingSubscription
from integrations.wechat import services as pushes
from integrations.wechat.models import CustomerMessage, MessageStatus
from tests.conftest import ROOT, database_url_for_subprocess, require_postgres, require_redis, wait_for
from tests.logistics_fixtures import SALT, fake_kuaidi100, fake_wechat, role_groups, shipped_order  # noqa: F401 - fixtures

pytestmark = [pytest.mark.celery_worker, pytest.mark.usefixtures("transactional_db", "role_groups")]
ORDERS = 200


def start_worker(env: dict[str, str]) -> subprocess.Popen:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "beile",
            "worker",
            "--pool=threads",
            "--concurrency=2",
            "--without-heartbeat",
            "--without-gossip",
            "--without-mingle",
            "-l",
            "info",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    seen = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        seen.append(line)
        if " ready." in line or process.poll() is not None:
            break
    if process.poll() is not None or not any(" ready." in line for line in seen):
        process.kill()
        pytest.fail("worker did not start:\n" + "".join(seen[-30:]))
    # Keep reading its output so a full pipe never blocks it.
    import threading

    threading.Thread(target=lambda: [None for _line in process.stdout], daemon=True).start()
    return process


def test_200_shipped_orders_survive_a_killed_worker(fake_kuaidi100, fake_wechat, live_server, settings):
    require_postgres()
    require_redis()
    settings.PUBLIC_BASE_URL = live_server.url
    env = {
        **os.environ,
        "DATABASE_URL": database_url_for_subprocess(),
        "PUBLIC_BASE_URL": live_server.url,
        "KUAIDI100_BASE_URL": fake_kuaidi100.url,
        "KUAIDI100_CUSTOMER": "TESTCUSTOMER",
        "KUAIDI100_KEY": "test-key",
        "KUAIDI100_CALLBACK_SALT": SALT,
        "WECHAT_BASE_URL": fake_wechat.url,
        "WECHAT_APP_ID": "wxtest",
        "WECHAT_APP_SECRET": "test-secret",
        "WECHAT_TEMPLATE_ID": "test-template",
        "WECHAT_CALLBACK_TOKEN": "test-token",
        "INTEGRATION_CLAIM_SECONDS": "3",
    }
    settings.INTEGRATION_CLAIM_SECONDS = 3
    app.control.purge()  # tasks other tests left in the queue point at rows that no longer exist

    orders = [shipped_order(tracking_number=f"ZT8{index:05d}", phone=f"139{index:08d}") for index in range(ORDERS)]
    assert TrackingSubscription.objects.count() == ORDERS
    assert CustomerMessage.objects.filter(event_key="shipped", status=MessageStatus.PENDING).count() == ORDERS

    worker = start_worker(env)
    try:
        wait_for(lambda: len(fake_kuaidi100.parcels) >= 30, timeout=60, message="the first subscriptions")
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
        done_at_kill = len(fake_kuaidi100.parcels)
        assert done_at_kill < ORDERS, "the worker finished before it could be killed mid-batch"

        worker = start_worker(env)

        def everything_sent(event_prefix: str, expected: int):
            def check():
                # What beat would do every few seconds.
                tracking.subscriptions_relay()
                pushes.customer_messages_relay()
                sent = CustomerMessage.objects.filter(event_key__startswith=event_prefix, status=MessageStatus.SENT).count()
                return sent == expected and not TrackingSubscription.objects.exclude(state=SubscriptionState.ACTIVE).exists()

            return check

        wait_for(everything_sent("shipped", ORDERS), timeout=180, interval=1.0, message="all subscriptions and shipped pushes")
        assert len(fake_kuaidi100.parcels) == ORDERS

        # Every parcel is picked up: 200 callbacks over HTTP, 200 more pushes through the worker.
        for order in orders:
            assert fake_kuaidi100.push(order.shipments.get().tracking_number).json()["result"] is True
        wait_for(everything_sent("tracking:", ORDERS), timeout=180, interval=1.0, message="all picked-up pushes")
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)

    per_customer = Counter(message["touser"] for message in fake_wechat.messages)
    assert len(per_customer) == ORDERS
    assert set(per_customer.values()) == {2}  # shipped + picked up, each exactly once
    assert len({(m["touser"], m["client_msg_id"]) for m in fake_wechat.messages}) == 2 * ORDERS
    assert CustomerMessage.objects.count() == 2 * ORDERS
