"""Front-line journeys in headless Chromium: customer service on the phone with a customer, a
packer at the bench with a keyboard-wedge scanner on a 400 px PDA."""

import datetime

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone
from playwright.sync_api import expect

from orders import services
from orders.access import Actor
from orders.models import Order
from orders.rules import ALL_ROLES
from tests.conftest import log_in, make_order, make_product
from tests.frontline_fixtures import fast_passwords, rejected_return, ship  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def role_groups(transactional_db):
    """A transactional test's flush also empties the groups the roles migration created."""
    for role in ALL_ROLES:
        Group.objects.get_or_create(name=role)


def test_service_agent_finds_the_rejected_return_by_a_phone_typed_with_spaces(new_page, live_server, people):
    order = make_order(status="completed", phone="13900001111")
    ship(order)
    rejected_return(
        order,
        decided_at=timezone.now() - datetime.timedelta(days=8),
        by=people["service"],
        department="技术部",
        reason="已拆封影响二次销售",
    )
    make_order(status="picking", phone="13900001111")
    page = new_page()
    log_in(page, live_server, "service")
    page.click("#nav-lookup")
    page.fill("#lookup-q", "139 0000 1111")
    page.press("#lookup-q", "Enter")
    timeline = page.locator("#lookup-timeline")
    rejected = timeline.locator(".entry.decision-rejected")
    rejected.wait_for()
    # Readable at once, without opening anything: who decided, which department, why.
    assert rejected.locator("summary").is_visible()
    summary = rejected.locator("summary").inner_text()
    assert "技术部" in summary and "已拆封影响二次销售" in summary and "小服" in summary
    assert page.locator(".order-block").count() == 2
    assert "q=139" in page.url  # the lookup is a shareable URL


def test_packer_on_a_pda_sees_the_fresh_note_is_stopped_on_a_wrong_item_and_packs(new_page, live_server, people):
    milk, gift, stranger = make_product(), make_product(), make_product()
    order = make_order(status="picking", lines=[(milk, 2)], gift=gift)
    page = new_page(width=400, height=800, mobile=True)
    log_in(page, live_server, "packer")
    page.goto(f"{live_server.url}/pda/")
    # Customer service adds a note moments before the packer scans.
    services.order_add_note(
        order=order, by=Actor.of(people["service"]), body="客户要求明日12点前送达", kind="customer_request", audience="warehouse"
    )

    def scan(code):
        # A keyboard-wedge scanner types into whatever has focus, then presses Enter.
        page.keyboard.type(code)
        page.keyboard.press("Enter")

    scan(order.order_number)
    note = page.locator("#pda-notes .pda-note.unacknowledged")
    note.wait_for()
    assert "客户要求明日12点前送达" in note.inner_text()
    assert page.locator("#gift-flag").is_visible()

    scan(stranger.barcode)
    page.locator("#scan-result.bad").wait_for()
    refusal = page.locator("#scan-result").inner_text()
    assert "错货" in refusal and stranger.name in refusal
    assert "flash-refused" in (page.locator("body").get_attribute("class") or "")
    assert page.locator("#pack-button").is_disabled()

    for product, count in ((milk, "1/2"), (milk, "2/2"), (gift, "1/1")):
        scan(product.barcode)
        expect(page.locator(f"#item-{product.sku_code} .count")).to_have_text(count)
    page.locator(f"#item-{gift.sku_code}.done").wait_for()
    assert page.locator("#pack-button").is_disabled()  # the note is not acknowledged yet
    page.locator("#pda-notes .ack-button").click()
    page.locator("#pda-notes .acked").wait_for()
    assert page.evaluate("document.activeElement.id") == "scan-input"
    page.locator("#pack-button").click()
    page.locator("#pda-order .status-packed").wait_for()
    assert Order.objects.get(pk=order.pk).status == "packed"
    # No page width overflow at 400 px.
    assert page.evaluate("document.documentElement.scrollWidth") <= 400
