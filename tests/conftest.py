"""Shared test fixtures: one named person per role plus an outsider, order builders, a real
Celery worker process, and headless Chromium through Playwright."""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
import time
from decimal import Decimal
from importlib import import_module
from pathlib import Path

import pytest
from django.contrib.auth.models import Group, User
from django.db import connection
from django.utils import timezone

from orders import clock
from orders.models import Customer, Order, OrderLine, Product

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
PASSWORD = "test-password-123"

# Names a reader can follow: 小审 is the reviewer, 小包 the packer …
PEOPLE = {
    "sales": "小销",
    "reviewer": "小审",
    "dispatcher": "小调",
    "packer": "小包",
    "courier": "小递",
    "service": "小服",
    "finance": "小财",
    "supervisor": "老郑",
}


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """`people` creates nine users per test; the production hasher would make that ~2 s each."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def fresh_board_counts():
    """The board keeps its stage counts a few seconds in the shared cache, which outlives a test."""
    from django.core.cache import cache

    from workflows.selectors import STAGE_COUNTS_KEY

    cache.delete(STAGE_COUNTS_KEY)


@pytest.fixture(autouse=True)
def reference_data_after_flush(request, django_db_blocker):
    """A transactional test ends with a flush that also empties what the data migrations made
    (the role groups, the default stage rules); put it back for the tests that follow."""
    yield
    marker = request.node.get_closest_marker("django_db")
    flushed = {"transactional_db", "live_server"} & set(request.fixturenames) or (marker and marker.kwargs.get("transaction"))
    if flushed:
        from django.apps import apps

        with django_db_blocker.unblock():
            import_module("orders.migrations.0002_roles").create_roles(apps, None)
            from orders.models import StageRule

            for stage, role, limit in import_module("workflows.migrations.0002_stage_rules").DEFAULT_RULES:
                StageRule.objects.get_or_create(stage=stage, defaults={"responsible_role": role, "time_limit": limit})


@pytest.fixture
def people(db) -> dict[str, User]:
    """{role: user} for the eight roles, plus "outsider": signed in but in no role."""
    users = {}
    for role, name in PEOPLE.items():
        user = User.objects.create_user(username=role, password=PASSWORD, first_name=name)
        # get_or_create: a transactional test's flush also empties the groups the migration made.
        user.groups.add(Group.objects.get_or_create(name=role)[0])
        users[role] = user
    users["outsider"] = User.objects.create_user(username="outsider", password=PASSWORD, first_name="路人")
    return users


_numbers = itertools.count(1)


def make_product(*, sku: str | None = None, cold_chain: bool = False, price: str = "99.00") -> Product:
    n = next(_numbers)
    sku = sku or f"SKU-{n:05d}"
    product, _ = Product.objects.get_or_create(
        sku_code=sku,
        defaults={"barcode": f"69{n:011d}", "name": f"测试商品{n}", "cold_chain": cold_chain, "unit_price": Decimal(price)},
    )
    return product


def make_order(
    *,
    status: str = "pending_review",
    phone: str = "13800138000",
    lines: list[tuple[Product, int]] | None = None,
    gift: Product | None = None,
    carrier_code: str = "zhongtong",
    **fields,
) -> Order:
    """An order created directly at `status` (test set-up; every later change goes through services)."""
    customer, _ = Customer.objects.get_or_create(phone=phone, defaults={"name": "王丽"})
    lines = lines or [(make_product(), 1)]
    now = timezone.now()
    order = Order.objects.create(
        order_number=fields.pop("order_number", f"T{next(_numbers):010d}"),
        status=status,
        customer=customer,
        receiver_name=customer.name,
        receiver_phone=phone,
        province="浙江省",
        city="杭州市",
        district="萧山区",
        address="市心北路100号",
        total_amount=sum((p.unit_price * q for p, q in lines), Decimal("0.00")),
        carrier_code=carrier_code,
        requires_cold_chain=any(p.cold_chain for p, _ in lines),
        stage_entered_at=fields.pop("stage_entered_at", now),
        **fields,
    )
    for product, quantity in lines:
        OrderLine.objects.create(
            order=order,
            product=product,
            sku_code=product.sku_code,
            product_name=product.name,
            quantity=quantity,
            unit_price=product.unit_price,
            cold_chain=product.cold_chain,
        )
    if gift is not None:
        OrderLine.objects.create(
            order=order,
            product=gift,
            sku_code=gift.sku_code,
            product_name=gift.name,
            quantity=1,
            unit_price=Decimal("0.00"),
            is_gift=True,
        )
    # Bulk-style creation skips the services, so give the order its stage clock as they would.
    order.save(update_fields=clock.clock_refresh(order))
    return order


def require_postgres() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (set DATABASE_URL): SQLite has no row locks")


def require_redis() -> None:
    if not os.environ.get("REDIS_URL"):
        pytest.skip("needs Redis (set REDIS_URL)")


def database_url_for_subprocess() -> str:
    """The URL of the database this test run created, for processes the test starts."""
    settings = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{settings['NAME']}"
    auth = settings["USER"] + (f":{settings['PASSWORD']}" if settings["PASSWORD"] else "")
    return f"postgres://{auth}@{settings['HOST'] or '127.0.0.1'}:{settings['PORT'] or 5432}/{settings['NAME']}"


@pytest.fixture
def celery_worker(transactional_db):
    """A real `celery worker` process on the configured broker, reading the test database."""
    env = {**os.environ, "DATABASE_URL": database_url_for_subprocess()}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "beile",
            "worker",
            "--pool=threads",
            "--concurrency=4",
            "--purge",
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
    deadline = time.monotonic() + 60
    seen = []
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        seen.append(line)
        if " ready." in line:
            break
        if process.poll() is not None:
            break
    else:
        process.kill()
        pytest.fail("Celery worker did not start:\n" + "".join(seen[-30:]))
    if process.poll() is not None:
        pytest.fail("Celery worker exited:\n" + "".join(seen[-30:]))
    yield process
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()


def wait_for(condition, *, timeout: float = 20.0, interval: float = 0.2, message: str = "condition"):
    """Poll `condition` until it returns something truthy (background work finishing)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout}s waiting for {message}")


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        pytest.skip(f"needs Chromium at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop running in this thread, which makes Django refuse
    # ORM calls from the test body ("async context"); the test body is plain synchronous code.
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield instance
        instance.close()


@pytest.fixture
def new_page(browser, live_server):
    """A factory for browser pages (one per person in a journey); closed at the end of the test."""
    contexts = []

    def make(*, width: int = 1280, height: int = 900, mobile: bool = False):
        context = browser.new_context(
            viewport={"width": width, "height": height},
            locale="zh-CN",
            is_mobile=mobile,
            has_touch=mobile,
            timezone_id="Asia/Shanghai",
        )
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(10_000)
        return page

    yield make
    for context in contexts:
        context.close()


def log_in(page, live_server, username: str, password: str = PASSWORD) -> None:
    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("#login-submit")
    page.wait_for_url(lambda url: "/login/" not in url)


@pytest.fixture
def default_saved_views(db) -> None:
    """The shared saved views each role starts with (workflows/migrations/0009_default_saved_views.py),
    again: a transactional test earlier in the run flushes what the data migration made."""
    from django.apps import apps

    import_module("workflows.migrations.0009_default_saved_views").create_default_views(apps, None)
