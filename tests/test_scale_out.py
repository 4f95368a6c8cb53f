"""Scale-out: two web processes (gunicorn) and two Celery workers against one PostgreSQL and one
Redis. 200 orders are shipped through the signed inbound events API, alternately on the two web
processes, with some deliveries repeated on the other process at the same moment (a sender's
retry). Every customer push and every tracking subscription happens exactly once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from beile.celery import app
from integrations.erp.inbound import sign
from integrations.kuaidi100.models import SubscriptionState, TrackingSubscription
from integrations.wechat.models import CustomerMessage, MessageStatus
from orders.models import Order, OrderStatus
from tests.conftest import ROOT, database_url_for_subprocess, make_order, require_postgres, require_redis, wait_for
from tests.logistics_fixtures import SALT, bind_customer, fake_kuaidi100, fake_wechat, role_groups  # noqa: F401 - fixtures
from tests.test_production_processes import free_port

pytestmark = [pytest.mark.celery_worker, pytest.mark.usefixtures("transactional_db", "role_groups")]
ORDERS = 200
REPEATED = 20  # deliveries sent to both web processes at once
SECRET = "scale-out-wms-secret"


class Started:
    """The processes this test starts, each logging to a file; all stopped at the end."""

    def __init__(self, folder) -> None:
        self.folder = folder
        self.running: dict[str, subprocess.Popen] = {}

    def start(self, name: str, command: list[str], env: dict[str, str]) -> None:
        log = open(self.folder / f"{name}.log", "w", encoding="utf-8")  # noqa: SIM115 - closed with the process
        self.running[name] = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)

    def log(self, name: str) -> str:
        return (self.folder / f"{name}.log").read_text(encoding="utf-8", errors="replace")

    def wait_for_log(self, name: str, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log(name):
                return
            if self.running[name].poll() is not None:
                pytest.fail(f"{name} exited:\n{self.log(name)[-3000:]}")
            time.sleep(0.2)
        pytest.fail(f"{name} did not log {text!r}:\n{self.log(name)[-3000:]}")

    def stop_all(self) -> None:
        for process in self.running.values():
            if process.poll() is None:
                process.terminate()
        for process in self.running.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def started(tmp_path):
    processes = Started(tmp_path)
    yield processes
    processes.stop_all()


def ship(port: int, payload: dict) -> tuple[int, dict]:
    body = json.dumps(payload).encode()
    timestamp = str(int(time.time()))
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v1/events",
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "X-Beile-Source": "WMS",
            "X-Beile-Timestamp": timestamp,
            "X-Beile-Signature": sign(secret=SECRET, timestamp=timestamp, body=body),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def test_two_web_processes_and_two_workers_push_and_subscribe_each_shipment_once(fake_kuaidi100, fake_wechat, started, settings):
    require_postgres()
    require_redis()
    ports = [free_port(), free_port()]
    env = {
        **os.environ,
        "DATABASE_URL": database_url_for_subprocess(),
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{ports[0]}",
        "INBOUND_EVENT_SECRETS": f"WMS={SECRET}",
        "KUAIDI100_BASE_URL": fake_kuaidi100.url,
        "KUAIDI100_CUSTOMER": "TESTCUSTOMER",
        "KUAIDI100_KEY": "test-key",
        "KUAIDI100_CALLBACK_SALT": SALT,
        "WECHAT_BASE_URL": fake_wechat.url,
        "WECHAT_APP_ID": "wxtest",
        "WECHAT_APP_SECRET": "test-secret",
        "WECHAT_TEMPLATE_ID": "test-template",
        "WECHAT_CALLBACK_TOKEN": "test-token",
        "WEB_CONCURRENCY": "1",
        "WEB_THREADS": "4",
        "HOST": "127.0.0.1",
    }
    app.control.purge()  # tasks other tests left in the queue point at rows that no longer exist
    orders = []
    for index in range(ORDERS):
        order = make_order(status="packed", phone=f"137{index:08d}")
        bind_customer(order)
        orders.append(order)

    gunicorn = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "beile.wsgi"]
    for number, port in enumerate(ports, start=1):
        started.start(f"web{number}", gunicorn, {**env, "PORT": str(port)})
    for number in (1, 2):
        started.start(
            f"worker{number}",
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "beile",
                "worker",
                "--pool=threads",
                "--concurrency=2",
                "-n",
                f"scale{number}@%h",
                "--without-heartbeat",
                "--without-gossip",
                "--without-mingle",
                "-l",
                "info",
            ],
            env,
        )
    for name in ("web1", "web2"):
        started.wait_for_log(name, "Booting worker")
    for name in ("worker1", "worker2"):
        started.wait_for_log(name, " ready.")
    for port in ports:
        wait_for(lambda port=port: _answers(port), timeout=30, message=f"the web process on {port}")

    began = time.monotonic()
    deliveries = [
        (
            ports[index % 2],
            {
                "event_id": f"wms-ship-{index}",
                "order_number": order.order_number,
                "action": "ship",
                "carrier_code": "zhongtong",
                "tracking_number": f"ZT9{index:05d}",
            },
        )
        for index, order in enumerate(orders)
    ]
    # A sender's retry of the same event on the other web process, sent at the same moment.
    deliveries += [(ports[(index + 1) % 2], payload) for index, (_port, payload) in enumerate(deliveries[:REPEATED])]
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda delivery: ship(*delivery), deliveries))
    assert {status for status, _answer in answers} == {200}, Counter(status for status, _answer in answers)
    assert sum(1 for _status, answer in answers if answer.get("duplicate")) == REPEATED
    assert Order.objects.filter(status=OrderStatus.SHIPPED).count() == ORDERS

    def all_sent() -> bool:
        # What beat does every 15-30 s, sent to the workers more often so the test is short.
        for task in (
            "workflows.tasks.relay_reactions",
            "integrations.kuaidi100.tasks.relay_subscriptions",
            "integrations.wechat.tasks.relay_customer_messages",
        ):
            app.send_task(task)
        sent = CustomerMessage.objects.filter(event_key="shipped", status=MessageStatus.SENT).count()
        active = TrackingSubscription.objects.filter(state=SubscriptionState.ACTIVE).count()
        return sent == ORDERS and active == ORDERS

    wait_for(all_sent, timeout=75, interval=2.0, message="every push and subscription")
    elapsed = time.monotonic() - began
    time.sleep(2)  # anything doubled would arrive now

    assert CustomerMessage.objects.filter(event_key="shipped").count() == ORDERS
    # Sent once each: one attempt per row (a second send would count a second attempt, even where
    # WeChat's own client_msg_id dedupe would hide it from the customer).
    assert set(CustomerMessage.objects.values_list("attempts", flat=True)) == {1}
    shipped_pushes = list(fake_wechat.messages)  # nothing but the shipped push is due yet
    assert len({message["client_msg_id"] for message in shipped_pushes}) == ORDERS
    assert len(shipped_pushes) == ORDERS
    assert Counter(message["touser"] for message in shipped_pushes).most_common(1)[0][1] == 1
    subscribes = Counter(json.loads(form["param"])["number"] for path, form in list(fake_kuaidi100.requests) if path == "/poll")
    assert len(subscribes) == ORDERS and set(subscribes.values()) == {1}, subscribes.most_common(3)
    assert TrackingSubscription.objects.count() == ORDERS
    print(f"\n{ORDERS} shipments through 2 web processes and 2 workers: pushed and subscribed in {elapsed:.1f} s")


def _answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:  # noqa: S310 - loopback
            return response.status == 200
    except OSError:
        return False
