"""A salesperson files a rush on a phone; the supervisor's open board shows it on top by itself."""

import datetime
import os

import pytest
from django.utils import timezone

from orders.models import Order
from tests.conftest import log_in, make_order

# Playwright's sync API keeps an event loop running in the test thread; Django's ORM then refuses
# to run there unless told that this synchronous use is safe (it is: one thread, no async code).
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

# serialized_rollback: the flush after a transactional test would also empty the rows that
# migrations create (role groups, stage rules) for the tests that follow.
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def test_rush_filed_on_a_phone_appears_on_top_of_the_open_board(new_page, live_server, people):
    later = make_order(
        status="paid",
        phone="13811112222",
        is_rush=True,
        rush_reason="早先的加急",
        rush_deadline=timezone.now() + datetime.timedelta(hours=8),
    )
    board = new_page()
    log_in(board, live_server, "supervisor")
    board.goto(f"{live_server.url}/board/")
    board.wait_for_selector(f"#rush-{later.order_number}")
    board.evaluate("window.boardNotReloaded = true")  # lost on a full page load

    phone = new_page(width=390, height=844, mobile=True)
    log_in(phone, live_server, "sales")
    phone.goto(f"{live_server.url}/r/")
    assert phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth")  # fits the phone, no sideways scroll
    phone.fill("#rush-deadline", timezone.localtime(timezone.now() - datetime.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"))
    phone.fill("#rush-phone", "12345")
    phone.fill("#rush-reason", "宝宝奶粉断顿")
    phone.click("#rush-submit")
    assert "不是大陆手机号" in phone.inner_text("#rush-phone-error")
    assert "已经过去" in phone.inner_text("#rush-deadline-error")
    phone.fill("#rush-phone", "13700001111")
    phone.wait_for_selector("#rush-no-orders")  # htmx looked the phone up while typing
    phone.fill("#rush-reason", "宝宝奶粉断顿")
    deadline = timezone.localtime(timezone.now() + datetime.timedelta(hours=2))
    phone.fill("#rush-deadline", deadline.strftime("%Y-%m-%dT%H:%M"))
    phone.click("#rush-submit")
    phone.wait_for_selector("#rush-filed")
    rush = Order.objects.get(source="rush")
    assert rush.is_rush and rush.status == "pending_review"

    # The board polls every 5 s: the new card arrives at the top of the rush lane.
    first_card = board.locator("#lane-rush li.board-card").first
    first_card.wait_for(state="attached")
    board.wait_for_function(
        "n => document.querySelector('#lane-rush li.board-card').id === 'rush-' + n", arg=rush.order_number, timeout=12_000
    )
    assert "🔥" in first_card.inner_text() and "宝宝奶粉断顿" in first_card.inner_text()
    assert board.evaluate("window.boardNotReloaded") is True
