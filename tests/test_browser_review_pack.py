"""In a real browser: a reviewer approves an order (the card updates in place via htmx); later a
packer sees the warehouse warning on the card, cannot pack until acknowledging it and scanning
every item at the packing station (the card links there), then packs from the card."""

import pytest
from playwright.sync_api import expect

from orders import services
from orders.access import Actor
from tests.conftest import log_in, make_order, make_product

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WARNING = "赠品口水巾不要漏放，客户上次投诉过"


def open_card(page, live_server, order):
    page.goto(f"{live_server.url}/orders/{order.order_number}/")
    # Mark the document: if an action reloaded the page instead of swapping the card, the mark is gone.
    page.evaluate("window.notReloaded = true")


def test_reviewer_approves_then_packer_acknowledges_the_warning_and_packs(people, live_server, new_page):
    # The warning speaks of the gift, so the order has its gift line (else the gift_missing guard speaks too).
    order = make_order(status="pending_review", phone="13812345678", gift=make_product())
    note = services.order_add_note(
        order=order, by=Actor.of(people["service"]), body=WARNING, kind="warning", audience="warehouse"
    )

    reviewer = new_page()
    log_in(reviewer, live_server, "reviewer")
    open_card(reviewer, live_server, order)
    assert reviewer.locator("#order-status").get_attribute("class") == "status status-pending_review"
    reviewer.click("#transition-approve button")
    reviewer.wait_for_selector("#order-status.status-paid")
    assert reviewer.locator("#card-notice").is_visible()
    assert reviewer.evaluate("window.notReloaded") is True
    assert reviewer.locator("#timeline .event-status .actor").first.inner_text().startswith("小审")

    order.refresh_from_db()
    assert order.status == "paid"
    services.order_transition(order=order, name="start_picking", by=Actor.of(people["dispatcher"]))

    packer = new_page(width=420, height=860, mobile=True)  # the PDA browser
    log_in(packer, live_server, "packer")
    open_card(packer, live_server, order)
    assert WARNING in packer.locator(f"#note-{note.pk} .note-body").inner_text()
    assert "138****5678" in packer.locator("#receiver-phone").inner_text()
    pack_button = packer.locator("#transition-pack button")
    assert pack_button.is_disabled()
    blocker = packer.locator("#transition-pack .blocker", has_text=WARNING)
    assert blocker.is_visible()

    packer.click(f"#ack-{note.pk}")
    packer.wait_for_selector(f"#note-{note.pk}:not(.unacknowledged)")
    # Read, but nothing scanned yet: the card sends the packer to the bench (orders/packing.py).
    assert packer.locator("#transition-pack button").is_disabled()
    assert WARNING not in packer.locator("#transition-pack").inner_text()
    assert "扫码核验" in packer.locator("#transition-pack .blocker").first.inner_text()

    packer.click("#verify-at-station")
    packer.wait_for_selector(f"#pda-order:has-text('{order.order_number}')")
    for line in order.lines.select_related("product"):
        for scanned in range(1, line.quantity + 1):
            # A keyboard-wedge scanner types into the focused scan box, then presses Enter.
            packer.keyboard.type(line.product.barcode)
            packer.keyboard.press("Enter")
            expect(packer.locator(f"#item-{line.sku_code} .count")).to_have_text(f"{scanned}/{line.quantity}")
    packer.wait_for_selector("#pack-button:not([disabled])")

    open_card(packer, live_server, order)
    assert packer.locator("#transition-pack button").is_enabled()
    assert packer.locator("#transition-pack .blocker").count() == 0

    packer.click("#transition-pack button")
    packer.wait_for_selector("#order-status.status-packed")
    assert packer.evaluate("window.notReloaded") is True
    order.refresh_from_db()
    assert order.status == "packed"
    assert order.notes.get().acknowledgements.get().user == people["packer"]
