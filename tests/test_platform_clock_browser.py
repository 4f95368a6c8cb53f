"""The supervisor sees both clocks in a browser: the board's platform lane, its sort by minutes to
the platform deadline, and the card with the stage clock beside the platform's."""

import datetime
import os

import pytest
from django.utils import timezone

from orders.models import Order
from tests.conftest import log_in, make_order

# Playwright's sync API keeps an event loop running in the test thread (see test_rush_browser.py).
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def _overdue_platform_order(*, overdue_minutes: int, ship_in: datetime.timedelta | None) -> Order:
    now = timezone.now()
    fields = {"source": "platform", "platform_order_id": "6920000000000009", "platform_shop": "贝乐母婴抖音旗舰店"}
    order = (
        make_order(status="picking", platform_ship_deadline=now + ship_in, **fields) if ship_in else make_order(status="picking")
    )
    Order.objects.filter(pk=order.pk).update(stage_due_at=now - datetime.timedelta(minutes=overdue_minutes))
    return order


def test_the_supervisor_sorts_the_board_by_the_platform_deadline_and_sees_both_clocks(new_page, live_server, people):
    longest_overdue = _overdue_platform_order(overdue_minutes=120, ship_in=None)
    platform_soon = _overdue_platform_order(overdue_minutes=5, ship_in=datetime.timedelta(minutes=20))

    page = new_page()
    log_in(page, live_server, "supervisor")
    page.goto(f"{live_server.url}/board/")
    first_red = page.locator("#lane-red li.board-card").first
    assert first_red.get_attribute("id") == f"red-{longest_overdue.order_number}"
    near = page.locator(f"#platform-{platform_soon.order_number} .platform-clock.platform-near")
    assert "平台最晚发货时间" in near.inner_text() and "剩余" in near.inner_text()

    page.select_option("#board-sort", "platform")
    page.click("#board-filters button[type=submit]")
    page.wait_for_url("**/board/?*sort=platform*")
    assert page.locator("#lane-red li.board-card").first.get_attribute("id") == f"red-{platform_soon.order_number}"

    page.click(f"#platform-{platform_soon.order_number} a.order-link")
    page.wait_for_selector("#platform-clock")
    assert page.locator("#stage-clock").is_visible() and "已超" not in page.inner_text("#platform-clock")
    assert "平台最晚发货时间" in page.inner_text("#platform-clock")
    assert "贝乐母婴抖音旗舰店" in page.inner_text("#platform-clock")
