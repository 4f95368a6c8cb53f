"""Live screens in headless Chromium (issue 14): on each screen that shows an order's state, a
change committed elsewhere (here: through the services, as another person's request or a worker
would) appears without a reload; and a form the user is half-way through filling in is not
replaced: the banner says the order changed, what was typed stays, and "refresh" brings the
change. A functional check with a loose bound (10 s), not a timing test: bench_live measures that."""

import pytest
from django.contrib.auth.models import Group
from playwright.sync_api import expect

from orders import services
from orders.access import Actor
from orders.models import Order
from orders.rules import ALL_ROLES
from tests.conftest import log_in, make_order
from tests.frontline_fixtures import ship
from workflows import tickets

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
LIVE_TIMEOUT_MS = 10_000
NEW_ADDRESS = {
    "receiver_name": "李娜",
    "receiver_phone": "13912345678",
    "province": "上海市",
    "city": "上海市",
    "district": "浦东新区",
    "address": "世纪大道1号",
}


@pytest.fixture(autouse=True)
def role_groups(transactional_db):
    """A transactional test's flush also empties the groups the roles migration created."""
    for role in ALL_ROLES:
        Group.objects.get_or_create(name=role)


def open_screen(new_page, live_server, username: str, path: str):
    page = new_page()
    log_in(page, live_server, username)
    page.goto(f"{live_server.url}{path}")
    # Set once: still there at the end proves the page was never reloaded.
    page.evaluate("window.notReloaded = true")
    # The first check (which sets the screen's token) has been answered.
    page.wait_for_timeout(1500)
    return page


def assert_not_reloaded(page) -> None:
    assert page.evaluate("window.notReloaded === true"), "the page was reloaded"


def banner_then_refresh(page, field, typed: str, shown) -> None:
    """The change arrived while `field` held what the user typed: the region was left alone."""
    banner = page.locator("#live-banner")
    expect(banner).to_be_visible(timeout=LIVE_TIMEOUT_MS)
    assert "此页面上的订单已被他人更改" in banner.inner_text()
    expect(field).to_have_value(typed)
    expect(shown).to_have_count(0)
    page.click("#live-refresh")
    expect(shown).to_have_count(1, timeout=LIVE_TIMEOUT_MS)
    expect(banner).to_be_hidden()
    assert_not_reloaded(page)


def hold(order: Order, people, note: str = "等补货") -> None:
    services.order_hold(order=order, by=Actor.of(people["supervisor"]), reason="stock_shortage", until=None, note=note)


def test_board(new_page, live_server, people):
    already_held = make_order(status="picking")
    hold(already_held, people)
    first, second = make_order(status="picking"), make_order(status="picking")
    page = open_screen(new_page, live_server, "supervisor", "/board/")
    hold(first, people)
    expect(page.locator(f"#holds-{first.order_number}")).to_be_visible(timeout=LIVE_TIMEOUT_MS)
    assert_not_reloaded(page)
    # The supervisor picks whom to assign an order to; meanwhile another order is held.
    assignee = page.locator(f"#holds-{already_held.order_number} select[name=assignee]")
    assignee.select_option(label=people["packer"].first_name)
    chosen = assignee.input_value()
    hold(second, people)
    banner_then_refresh(page, assignee, chosen, page.locator(f"#holds-{second.order_number}"))


def test_order_card(new_page, live_server, people):
    order = make_order(status="paid")
    page = open_screen(new_page, live_server, "dispatcher", f"/orders/{order.order_number}/")
    services.order_add_note(order=order, by=Actor.of(people["service"]), body="客户要求周六送达")
    expect(page.locator("#note-list")).to_contain_text("客户要求周六送达", timeout=LIVE_TIMEOUT_MS)
    assert_not_reloaded(page)
    note = page.locator("#note-form textarea[name=body]")
    note.fill("仓库说明天才有")
    services.order_transition(order=order, name="start_picking", by=Actor.of(people["dispatcher"]))
    banner_then_refresh(page, note, "仓库说明天才有", page.locator("#order-status", has_text="配货中"))


def test_order_list(new_page, live_server, people):
    first, second = make_order(status="paid"), make_order(status="paid")
    page = open_screen(new_page, live_server, "supervisor", "/orders/")
    services.order_transition(order=first, name="start_picking", by=Actor.of(people["dispatcher"]))
    expect(page.locator(f"#order-row-{first.order_number} .status")).to_have_text("配货中", timeout=LIVE_TIMEOUT_MS)
    assert_not_reloaded(page)
    # Rows ticked for a bulk action are the user's input too.
    tick = page.locator(f"#order-row-{first.order_number} input.row-select")
    tick.check()
    services.order_transition(order=second, name="start_picking", by=Actor.of(people["dispatcher"]))
    expect(page.locator("#live-banner")).to_be_visible(timeout=LIVE_TIMEOUT_MS)
    expect(tick).to_be_checked()
    expect(page.locator(f"#order-row-{second.order_number} .status")).to_have_text("已付款")
    page.click("#live-refresh")
    expect(page.locator(f"#order-row-{second.order_number} .status")).to_have_text("配货中", timeout=LIVE_TIMEOUT_MS)
    assert_not_reloaded(page)


def test_lookup(new_page, live_server, people):
    first, second = make_order(status="paid", phone="13900003333"), make_order(status="paid", phone="13900003333")
    page = open_screen(new_page, live_server, "service", "/service/lookup/?q=13900003333")
    services.order_transition(order=first, name="start_picking", by=Actor.of(people["dispatcher"]))
    expect(page.locator(f"#order-{first.order_number} .status")).to_have_text("配货中", timeout=LIVE_TIMEOUT_MS)
    assert_not_reloaded(page)
    question = page.locator(f"#order-{second.order_number} input[name=question]")
    question.fill("什么时候能发货")
    services.order_transition(order=second, name="start_picking", by=Actor.of(people["dispatcher"]))
    banner_then_refresh(
        page, question, "什么时候能发货", page.locator(f"#order-{second.order_number} .status", has_text="配货中")
    )


def test_packing_station(new_page, live_server, people):
    order = make_order(status="picking")
    page = open_screen(new_page, live_server, "packer", f"/pda/{order.order_number}/")
    # Half a code typed into the scan field (outside the station): the station refreshes around it.
    page.fill("#scan-input", "6901")
    services.order_add_note(order=order, by=Actor.of(people["service"]), body="客户要求加急", audience="warehouse")
    expect(page.locator("#pda-notes")).to_contain_text("客户要求加急", timeout=LIVE_TIMEOUT_MS)
    expect(page.locator("#scan-input")).to_have_value("6901")
    expect(page.locator("#live-banner")).to_be_hidden()
    assert_not_reloaded(page)


def test_tickets(new_page, live_server, people):
    first, second = make_order(status="shipped"), make_order(status="shipped")
    page = open_screen(new_page, live_server, "courier", "/tickets/")
    ticket, _created = tickets.ticket_open_for_shipment(shipment=ship(first), kind="stalled", summary="24 小时无物流更新")
    expect(page.locator(f"#ticket-row-{ticket.pk}")).to_be_visible(timeout=LIVE_TIMEOUT_MS)
    assert_not_reloaded(page)
    # One ticket, a note half written, and the supervisor hands the ticket to the courier.
    detail = open_screen(new_page, live_server, "courier", f"/tickets/{ticket.pk}/")
    body = detail.locator("#ticket-detail textarea[name=body]")
    body.fill("快递员说明天派送")
    tickets.ticket_take(ticket=ticket, by=Actor.of(people["supervisor"]), owner=people["courier"])
    banner_then_refresh(detail, body, "快递员说明天派送", detail.locator("#ticket-owner", has_text=people["courier"].first_name))
    second_ticket, _created = tickets.ticket_open_for_shipment(shipment=ship(second), kind="problem", summary="派送异常")
    expect(page.locator(f"#ticket-row-{second_ticket.pk}")).to_be_visible(timeout=LIVE_TIMEOUT_MS)


def test_address_change_inbox(new_page, live_server, people):
    first, second = make_order(status="paid"), make_order(status="paid")
    page = open_screen(new_page, live_server, "service", "/address-changes/")
    change = services.address_change_request(order=first, by=Actor.of(people["service"]), **NEW_ADDRESS)
    row = page.locator(f"#address-change-{change.pk}")
    expect(row).to_be_visible(timeout=LIVE_TIMEOUT_MS)
    assert_not_reloaded(page)
    reason = row.locator("input[name=reason]")
    reason.fill("客户已撤回")
    later = services.address_change_request(order=second, by=Actor.of(people["service"]), **NEW_ADDRESS)
    banner_then_refresh(page, reason, "客户已撤回", page.locator(f"#address-changes-waiting #address-change-{later.pk}"))


def test_tabs_of_one_browser_share_the_check(new_page, live_server, people):
    """Two tabs of one browser watching every order ask about once a second between them, not
    once each (static/js/live.js: BroadcastChannel), and both show a change."""
    order = make_order(status="paid")
    page = open_screen(new_page, live_server, "supervisor", "/orders/")
    other = page.context.new_page()
    other.goto(f"{live_server.url}/orders/")
    other.wait_for_timeout(1500)
    checks = []
    page.context.on("request", lambda request: checks.append(request.url) if "/live/" in request.url else None)
    other.wait_for_timeout(4000)
    assert 2 <= len(checks) <= 6, checks  # each tab alone: 8
    services.order_transition(order=order, name="start_picking", by=Actor.of(people["dispatcher"]))
    for tab in (page, other):
        expect(tab.locator(f"#order-row-{order.order_number} .status")).to_have_text("配货中", timeout=LIVE_TIMEOUT_MS)
    assert_not_reloaded(page)
