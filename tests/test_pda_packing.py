"""The PDA packing station: opening by order number or waybill, verification by barcode
(wrong item, missing gift, double scan), notes to acknowledge, the STOP on interception."""

import pytest

from orders import services
from orders.access import Actor
from orders.models import AfterSalesCase, Note, PackScan, ScanOutcome
from tests.conftest import PASSWORD, make_order, make_product
from tests.frontline_fixtures import fast_passwords  # noqa: F401
from workflows.frontline import packing

pytestmark = pytest.mark.django_db


@pytest.fixture
def bench(people):
    milk, wipes, gift = make_product(), make_product(), make_product()
    order = make_order(status="picking", lines=[(milk, 2), (wipes, 1)], gift=gift)
    return {"order": order, "milk": milk, "wipes": wipes, "gift": gift, "packer": Actor.of(people["packer"]), "people": people}


def scan(bench, code, current="order"):
    current = bench["order"] if current == "order" else current
    return packing.pack_scan(code=code, by=bench["packer"], current=current.order_number if current else "")


def scan_everything(bench):
    for product, times in ((bench["milk"], 2), (bench["wipes"], 1), (bench["gift"], 1)):
        for _ in range(times):
            assert scan(bench, product.barcode)[1].outcome == ScanOutcome.MATCH


@pytest.mark.parametrize("role", ["packer", "supervisor"])
def test_packing_roles_reach_the_station(client, people, role):
    client.login(username=role, password=PASSWORD)
    assert client.get("/pda/").status_code == 200


def test_an_unknown_order_number_in_the_station_url_is_not_found(client, people):
    client.login(username="packer", password=PASSWORD)
    assert client.get("/pda/NOPE/").status_code == 404


def test_an_empty_scan_keeps_the_open_order_on_the_station(client, bench):
    client.login(username="packer", password=PASSWORD)
    number = bench["order"].order_number
    response = client.post("/pda/scan/", {"code": " ", "order": number}, HTTP_HX_REQUEST="true")
    assert f'data-order="{number}"'.encode() in response.content and b'id="station-error"' in response.content
    assert not PackScan.objects.exists()


@pytest.mark.parametrize("role", ["service", "courier", "outsider"])
def test_other_roles_do_not(client, people, role):
    client.login(username=role, password=PASSWORD)
    assert client.get("/pda/").status_code == 403


def test_order_number_or_waybill_opens_the_order(bench):
    order, opened = scan(bench, bench["order"].order_number, current=None)
    assert order == bench["order"] and opened.outcome == ScanOutcome.OPENED
    shipped = make_order(status="shipped")
    services_shipment = shipped.shipments.create(carrier_code="zhongtong", tracking_number="ZT0000123")
    order, _ = scan(bench, services_shipment.tracking_number.lower(), current=None)
    assert order == shipped


def test_unknown_code_without_an_order_is_refused(bench):
    order, refused = scan(bench, "NOPE", current=None)
    assert order is None and refused.outcome == ScanOutcome.UNKNOWN


def test_wrong_item_is_refused_and_not_counted(bench):
    stranger = make_product()
    order, refused = scan(bench, stranger.barcode)
    assert refused.outcome == ScanOutcome.WRONG_ITEM and refused.product == stranger
    assert "错货" in packing.scan_message(refused)
    state = packing.packing_state(order=order, user=bench["people"]["packer"])
    assert sum(line.scanned for line in state.lines) == 0


def test_double_scan_of_the_last_item_is_refused(bench):
    assert scan(bench, bench["wipes"].barcode)[1].outcome == ScanOutcome.MATCH
    assert scan(bench, bench["wipes"].barcode)[1].outcome == ScanOutcome.OVER_COUNT
    state = packing.packing_state(order=bench["order"], user=bench["people"]["packer"])
    assert next(line for line in state.lines if line.product == bench["wipes"]).scanned == 1


def test_missing_gift_blocks_packing(bench):
    for _ in range(2):
        scan(bench, bench["milk"].barcode)
    scan(bench, bench["wipes"].barcode)
    with pytest.raises(services.TransitionBlocked, match=bench["gift"].sku_code):
        packing.packing_finish(order=bench["order"], by=bench["packer"])
    scan(bench, bench["gift"].barcode)
    assert packing.packing_finish(order=bench["order"], by=bench["packer"]).status == "packed"


def test_every_note_must_be_acknowledged_by_the_packer(bench):
    people = bench["people"]
    note = services.order_add_note(
        order=bench["order"],
        by=Actor.of(people["service"]),
        body="客户要求明日12点前送达",
        kind="customer_request",
        audience="warehouse",
    )
    scan_everything(bench)
    with pytest.raises(services.TransitionBlocked, match="备注你尚未确认"):
        packing.packing_finish(order=bench["order"], by=bench["packer"])
    services.note_acknowledge(note=note, by=bench["packer"])
    assert packing.packing_finish(order=bench["order"], by=bench["packer"]).status == "packed"


def test_notes_for_customer_service_only_need_no_acknowledgement(bench):
    services.order_add_note(order=bench["order"], by=Actor.of(bench["people"]["service"]), body="客户脾气急", audience="service")
    scan_everything(bench)
    assert packing.packing_finish(order=bench["order"], by=bench["packer"]).status == "packed"


def test_restart_makes_every_item_count_again(bench):
    scan_everything(bench)
    packing.packing_restart(order=bench["order"], by=bench["packer"])
    with pytest.raises(services.TransitionBlocked):
        packing.packing_finish(order=bench["order"], by=bench["packer"])


def test_open_refund_shows_stop_and_refuses_scans(client, bench):
    people = bench["people"]
    services.after_sales_open(order=bench["order"], by=Actor.of(people["service"]), kind="refund", reason="不要了")
    client.login(username="packer", password=PASSWORD)
    response = client.post("/pda/scan/", {"code": bench["order"].order_number}, HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert 'id="stop"' in html and '<p class="stop-word">停止</p>' in html
    _, refused = scan(bench, bench["milk"].barcode)
    assert refused.outcome == ScanOutcome.INTERCEPTED
    case = AfterSalesCase.objects.get()
    services.after_sales_decide(case=case, by=Actor.of(people["service"]), approve=False, reason="已发出前客户撤回")
    scan_everything(bench)
    assert packing.packing_finish(order=bench["order"], by=bench["packer"]).status == "packed"


def test_open_address_change_shows_stop(client, bench):
    order = bench["order"]
    services.address_change_request(
        order=order,
        by=Actor.of(bench["people"]["service"]),
        receiver_name="王丽",
        receiver_phone="13800138000",
        province="浙江省",
        city="杭州市",
        address="改送：滨江区1号",
    )
    client.login(username="packer", password=PASSWORD)
    html = client.get(f"/pda/{order.order_number}/").content.decode()
    assert 'id="stop"' in html and "滨江区1号" in html


def test_station_over_http_every_scan_is_recorded(client, bench):
    client.login(username="packer", password=PASSWORD)
    order = bench["order"]
    note = Note.objects.create(
        order=order,
        author=bench["people"]["service"],
        author_role="service",
        body="赠品口水巾不要漏放",
        audience="warehouse",
        kind="warning",
    )
    html = client.post("/pda/scan/", {"code": order.order_number}, HTTP_HX_REQUEST="true").content.decode()
    assert "赠品口水巾不要漏放" in html and "unacknowledged" in html and 'id="gift-flag"' in html
    html = client.post(
        "/pda/scan/", {"code": make_product().barcode, "order": order.order_number}, HTTP_HX_REQUEST="true"
    ).content.decode()
    assert 'data-outcome="refused"' in html and "scan-result bad" in html
    for product, times in ((bench["milk"], 2), (bench["wipes"], 1), (bench["gift"], 1)):
        for _ in range(times):
            html = client.post(
                "/pda/scan/", {"code": product.barcode, "order": order.order_number}, HTTP_HX_REQUEST="true"
            ).content.decode()
    assert 'id="pack-button" disabled' in html
    client.post(f"/pda/{order.order_number}/acknowledge/", {"note_id": note.pk})
    response = client.post(f"/pda/{order.order_number}/pack/")
    assert response.status_code == 302
    order.refresh_from_db()
    assert order.status == "packed"
    assert PackScan.objects.filter(order=order).count() == 6
    assert order.events.filter(kind="status", actor_user=bench["people"]["packer"]).exists()


def test_plain_post_scan_without_htmx_redirects_to_the_order(client, bench):
    client.login(username="packer", password=PASSWORD)
    response = client.post("/pda/scan/", {"code": bench["order"].order_number})
    assert response.status_code == 302 and response["Location"] == f"/pda/{bench['order'].order_number}/"
