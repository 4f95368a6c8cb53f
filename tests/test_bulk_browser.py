"""In a real browser, with a real Celery worker: a reviewer opens the shared view "待我处理",
selects with the keyboard, and approves the whole view in bulk; the progress bar runs, the held
orders are refused with the guard's reason, and each approved order's timeline names the batch."""

from __future__ import annotations

import pytest

from orders import services
from orders.access import Actor
from orders.models import Order, OrderStatus
from tests.conftest import log_in, make_order
from workflows.models import BulkBatch, SavedView

pytestmark = [pytest.mark.browser]


def test_reviewer_approves_a_saved_view_in_bulk(
    transactional_db, default_saved_views, celery_worker, people, new_page, live_server
):
    orders = [make_order(status="pending_review") for _ in range(12)]
    for order in orders[:2]:
        services.order_hold(order=order, by=Actor.of(people["supervisor"]), reason="stock_shortage", until=None)
    make_order(status="picking")  # not the reviewer's work: outside the view
    view = SavedView.objects.get(shared_with_role="reviewer", name="待我处理")

    page = new_page()
    log_in(page, live_server, "reviewer")
    page.goto(f"{live_server.url}/orders/")
    page.wait_for_selector(f"#saved-view-count-{view.pk}")
    assert page.inner_text(f"#saved-view-count-{view.pk}") == "12"
    page.click(f"#saved-view-{view.pk} a")
    page.wait_for_url(lambda url: f"view={view.pk}" in url)
    assert page.locator("tr.order-row").count() == 12

    # The keyboard: "/" is the search box, j moves down the list, x selects, b is the bulk bar.
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "q"
    page.keyboard.press("Escape")
    page.keyboard.press("j")
    page.keyboard.press("j")
    page.keyboard.press("x")
    assert page.locator("input.row-select:checked").count() == 1
    assert page.inner_text("#bulk-selected-count") == "（1）"
    page.keyboard.press("b")
    assert page.evaluate("document.activeElement.id") == "bulk-action"
    assert page.input_value("#bulk-action") == "approve"
    # The whole view, not just the one selected: every order waiting for review.
    page.keyboard.press("Shift+Tab")  # to the radio group (the checked "selected orders")
    page.keyboard.press("ArrowDown")
    assert page.is_checked("#scope-view")
    page.focus("#bulk-run")
    page.keyboard.press("Enter")

    page.wait_for_selector("#bulk-bar")
    page.wait_for_selector("#retry-refused", timeout=30_000)
    assert page.inner_text("#count-done") == "10"
    assert page.inner_text("#count-refused") == "2"
    assert "挂起" in page.inner_text("#bulk-results")
    assert page.get_attribute("#bulk-bar", "value") == "100"
    batch = BulkBatch.objects.get()
    assert batch.saved_view == view
    assert Order.objects.filter(status=OrderStatus.PAID).count() == 10

    # The timeline of an approved order names the batch.
    page.goto(f"{live_server.url}/orders/{orders[5].order_number}/")
    assert f"#{batch.pk}" in page.inner_text("#timeline")
