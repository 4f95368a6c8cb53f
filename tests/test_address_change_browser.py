"""Issue 13 in a real browser: one address change through each rung of the ladder — the reviewer
fixes a fuzzy address on the card; the customer asks on the self-service page while the order is
picked and the packer acknowledges at the PDA and reprints the waybill; a shipped ZTO parcel is
rerouted and another fails (the fake Kuaidi100's signed callbacks); an SF parcel becomes the
courier's hotline ticket; a delivered order is refused with after-sales offered. The customer's
pushes and the health measure are checked."""

from __future__ import annotations

import pytest

from integrations.wechat.models import CustomerMessage
from orders import services
from orders.access import Actor
from orders.models import AddressChangeRequest, Order
from tests.conftest import log_in, make_order
from tests.logistics_fixtures import fake_kuaidi100, shipped_order  # noqa: F401 - fixtures
from workflows import reactions
from workflows.frontline import selfservice
from workflows.models import Ticket

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
NEW = {
    "receiver_name": "李娜",
    "receiver_phone": "13912345678",
    "province": "上海市",
    "city": "上海市",
    "district": "浦东新区",
    "address": "世纪大道1号",
}


def _ask(order: Order, people) -> AddressChangeRequest:
    """Customer service takes the customer's call (the lookup's form calls this service)."""
    return services.address_change_request(order=order, by=Actor.of(people["service"]), **NEW)


def _handle_in_inbox(page, live_server, change: AddressChangeRequest) -> None:
    page.goto(f"{live_server.url}/address-changes/")
    row = page.locator(f"#address-change-{change.pk}")
    assert "世纪大道1号" in row.inner_text() and "市心北路100号" in row.inner_text()
    page.click(f"#handle-{change.pk}")
    page.wait_for_url(f"{live_server.url}/address-changes/")


def _outcome(change: AddressChangeRequest) -> str:
    return AddressChangeRequest.objects.get(pk=change.pk).status


def test_one_request_through_each_rung(people, live_server, new_page, fake_kuaidi100, settings):
    settings.KUAIDI100 = {**settings.KUAIDI100, "SECRET": fake_kuaidi100.secret}
    settings.PUBLIC_BASE_URL = live_server.url
    reviewer = new_page()
    log_in(reviewer, live_server, "reviewer")

    # 1. The reviewer fixes a fuzzy address on the card; the tag is resolved.
    fuzzy = make_order(status="pending_review")
    services.order_tag_add(order=fuzzy, by=Actor.system("ERP"), tag="fuzzy_address")
    reviewer.goto(f"{live_server.url}/orders/{fuzzy.order_number}/")
    reviewer.fill("#correct-address input[name=address]", "市心北路100号3幢501室")
    reviewer.click("#save-address")
    reviewer.wait_for_selector("#card-notice")
    assert "市心北路100号3幢501室" in reviewer.locator("#receiver-address").inner_text()
    assert not fuzzy.tags.filter(resolved_at__isnull=True).exists()

    # 2. Picking: the customer asks on the self-service page; the reviewer handles it; the packer
    # acknowledges the warning at the PDA and reprints the waybill.
    picking = make_order(status="picking")
    customer = new_page(width=420, height=860, mobile=True)
    customer.goto(f"{live_server.url}/track/s/{selfservice.link_token(picking)}/")
    customer.click("#address-change summary")
    form = customer.locator("#address-change-form")
    for field, value in NEW.items():
        form.locator(f"input[name={field}]").fill(value)
    form.locator("button").click()
    customer.wait_for_selector("#address-change-notice")
    change_picking = AddressChangeRequest.objects.get(order=picking)
    assert change_picking.source == "customer"
    _handle_in_inbox(reviewer, live_server, change_picking)
    assert _outcome(change_picking) == "applied"
    packer = new_page(width=420, height=860, mobile=True)
    log_in(packer, live_server, "packer")
    packer.goto(f"{live_server.url}/pda/{picking.order_number}/")
    note = picking.notes.get(kind="warning")
    assert "世纪大道1号" in packer.locator(f"#pda-note-{note.pk}").inner_text()
    packer.click(f"#pda-ack-{note.pk}")
    packer.wait_for_selector(f"#pda-note-{note.pk}:not(.unacknowledged)")
    assert packer.locator("#reprint-flag").is_visible()
    packer.click("#reprint-done")
    packer.wait_for_selector("#reprint-flag", state="detached")
    assert not picking.address_changes.filter(reprint_pending=True).exists()

    # 3. Shipped with ZTO: Kuaidi100's interception, rerouted by the signed callback …
    rerouted = shipped_order(tracking_number="ZT1300101", carrier_code="zhongtong")
    change_ok = _ask(rerouted, people)
    _handle_in_inbox(reviewer, live_server, change_ok)
    assert _outcome(change_ok) == "with_carrier"
    fake_kuaidi100.intercept_finish(AddressChangeRequest.objects.get(pk=change_ok.pk).carrier_task_id)
    assert _outcome(change_ok) == "rerouted"
    assert Order.objects.get(pk=rerouted.pk).address == "世纪大道1号"
    # … and one the carrier cannot do any more.
    failed = shipped_order(tracking_number="ZT13NOINT02", carrier_code="zhongtong", phone="13800138001")
    change_failed = _ask(failed, people)
    _handle_in_inbox(reviewer, live_server, change_failed)
    fake_kuaidi100.intercept_finish(AddressChangeRequest.objects.get(pk=change_failed.pk).carrier_task_id)
    assert _outcome(change_failed) == "failed"

    # 4. Shipped with SF: a ticket for the courier with the hotline step.
    sf = shipped_order(tracking_number="SF1300103", carrier_code="shunfeng", phone="13800138002")
    change_sf = _ask(sf, people)
    _handle_in_inbox(reviewer, live_server, change_sf)
    ticket = Ticket.objects.get(order=sf, kind="address_change")
    courier = new_page()
    log_in(courier, live_server, "courier")
    courier.goto(f"{live_server.url}/tickets/{ticket.pk}/")
    assert "95338" in courier.locator("#ticket-detail").inner_text()
    courier.fill("#carrier-answer input[name=resolution]", "顺丰客服已改派")
    courier.click("#carrier-rerouted")
    courier.wait_for_selector("#ticket-resolution")
    assert _outcome(change_sf) == "rerouted"

    # 5. Delivered: refused, with an after-sales case offered.
    delivered = make_order(status="completed", phone="13800138003")
    change_refused = _ask(delivered, people)
    _handle_in_inbox(reviewer, live_server, change_refused)
    assert _outcome(change_refused) == "refused"
    recent = reviewer.locator(f"#address-changes-recent #address-change-{change_refused.pk}")
    assert "发起售后" in recent.inner_text()

    # The customer is told every outcome, once.
    reactions.reactions_relay()
    for change in (change_picking, change_ok, change_failed, change_sf, change_refused):
        assert CustomerMessage.objects.filter(order_id=change.order_id, event_key=f"address_change:{change.pk}").count() == 1

    # The health page shows the address change closure time.
    supervisor = new_page()
    log_in(supervisor, live_server, "supervisor")
    supervisor.goto(f"{live_server.url}/health/")
    assert "改址闭环时长" in supervisor.content()
