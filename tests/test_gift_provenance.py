"""Gift provenance and the gift-missing check (issue 16): every gift line says which person or
rule added it; an order whose buyer message or notes promise a gift but has no gift line gets the
"missing gift" exception when it is approved or sent to picking, and cannot be packed until the
gift is added or someone decides none is due."""

from __future__ import annotations

import html

import pytest
from django.test import Client
from django.utils import translation

from integrations.erp.importer import import_orders
from orders import rules, services
from orders.access import Actor
from orders.models import EventKind, Note, Order, OrderEvent, OrderTag, RiskTag
from tests.conftest import PASSWORD, make_order, make_product
from tests.erp_fixtures import line, write_csv
from tests.packing_fixtures import scan_every_item

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def chinese():
    with translation.override("zh-hans"):
        yield


@pytest.mark.parametrize(
    ("text", "promised"),
    [
        ("记得送冰袋", True),
        ("客服说送个小礼物", True),
        ("买二送一", True),
        ("要赠品！", True),
        ("附赠勺子", True),
        ("送货上门，请送到门卫", False),
        ("不要赠品", False),
        ("尽快发货", False),
        ("", False),
    ],
)
def test_what_counts_as_a_promised_gift(text, promised):
    order = make_order(buyer_message=text)
    assert bool(rules.gift_promise(order)) is promised


def test_a_note_can_promise_the_gift_too(people):
    order = make_order()
    Note.objects.create(order=order, author=people["service"], body="电话里答应客户赠送试用装")
    assert rules.gift_promise(order) == "电话里答应客户赠送试用装"


def test_a_promised_gift_without_a_gift_line_is_flagged_before_packing_and_blocks_the_pack(people):
    order = make_order(status="paid", buyer_message="记得送冰袋")
    services.order_transition(order=order, name="start_picking", by=Actor.of(people["dispatcher"]))
    tag = OrderTag.objects.get(order=order, tag=RiskTag.MISSING_GIFT, resolved_at__isnull=True)
    event = OrderEvent.objects.get(order=order, kind=EventKind.TAG)
    assert event.actor_name == "gift check" and event.payload["note"] == "记得送冰袋"
    scan_every_item(order, people["packer"])
    with pytest.raises(services.TransitionBlocked) as blocked:
        services.order_transition(order=Order.objects.get(pk=order.pk), name="pack", by=Actor.of(people["packer"]))
    assert "赠品" in str(blocked.value) and "记得送冰袋" in str(blocked.value)

    # Customer service adds the gift: the line says who and by which rule, the exception closes.
    ice = make_product(sku="GIFT-ICE")
    gift = services.order_add_gift(order=order, by=Actor.of(people["service"]), product=ice, rule="满199送冰袋")
    assert (gift.is_gift, gift.unit_price, gift.gift_added_by, gift.gift_rule) == (True, 0, "小服", "满199送冰袋")
    tag.refresh_from_db()
    assert tag.resolved_at is not None and "GIFT-ICE" not in tag.resolution and ice.name in tag.resolution
    assert OrderEvent.objects.filter(order=order, kind=EventKind.GIFT, payload__rule="满199送冰袋").exists()
    scan_every_item(order, people["packer"])
    packed = services.order_transition(order=Order.objects.get(pk=order.pk), name="pack", by=Actor.of(people["packer"]))
    assert packed.status == "packed"


def test_deciding_that_no_gift_is_due_releases_the_guard(people):
    order = make_order(status="pending_review", buyer_message="要赠品")
    services.order_transition(order=order, name="approve", by=Actor.of(people["reviewer"]))
    assert OrderTag.objects.filter(order=order, tag=RiskTag.MISSING_GIFT, resolved_at__isnull=True).exists()
    services.order_tag_resolve(
        order=order, by=Actor.of(people["service"]), tag=RiskTag.MISSING_GIFT, resolution="活动已结束，客户同意"
    )
    order = Order.objects.get(pk=order.pk)
    assert rules.GUARDS["gift_missing"][1](order) == []


def test_an_order_without_a_promise_or_with_a_gift_is_not_flagged(people):
    plain = make_order(status="paid", buyer_message="尽快发货")
    with_gift = make_order(status="paid", buyer_message="记得送冰袋", gift=make_product())
    for order in (plain, with_gift):
        services.order_transition(order=order, name="start_picking", by=Actor.of(people["dispatcher"]))
    assert not OrderTag.objects.filter(tag=RiskTag.MISSING_GIFT).exists()


def test_who_may_add_a_gift_and_when(people):
    order = make_order(status="packed")
    with pytest.raises(services.OrderError):
        services.order_add_gift(order=order, by=Actor.of(people["service"]), product=make_product())
    open_order = make_order(status="paid")
    with pytest.raises(services.OrderError):
        services.order_add_gift(order=open_order, by=Actor.of(people["packer"]), product=make_product())
    # A system's gift rule records itself.
    line_ = services.order_add_gift(order=open_order, by=Actor.system("ERP"), product=make_product(), rule="新客礼")
    assert (line_.gift_added_by, line_.gift_rule) == ("ERP", "新客礼")


def test_an_erp_import_gift_line_records_the_erp(tmp_path):
    make_product(sku="NUK-1")
    make_product(sku="GIFT-1")
    rows = [
        line("G1", "NUK-1", total="59.90"),
        line("G1", "GIFT-1", price="0", gift="是", total="59.90"),
    ]
    import_orders(path=write_csv(tmp_path / "erp.csv", rows))
    lines = {row.sku_code: row for row in Order.objects.get(order_number="G1").lines.all()}
    assert (lines["GIFT-1"].gift_added_by, lines["NUK-1"].gift_added_by) == ("ERP", "")


def test_the_card_shows_the_promise_and_adds_a_gift_with_its_provenance(people):
    order = make_order(status="paid", buyer_message="记得送冰袋")
    make_product(sku="GIFT-ICE")
    client = Client()
    client.login(username="service", password=PASSWORD)
    client.cookies["django_language"] = "zh-hans"
    page = html.unescape(client.get(f"/orders/{order.order_number}/").content.decode())
    assert 'id="gift-promise"' in page and 'id="add-gift-form"' in page
    response = client.post(
        f"/orders/{order.order_number}/add_gift/",
        {"version": order.version, "sku_code": "GIFT-ICE", "quantity": "1", "rule": "满199送冰袋"},
        HTTP_HX_REQUEST="true",
    )
    body = html.unescape(response.content.decode())
    assert 'id="card-error"' not in body and "满199送冰袋" in body and "小服" in body
    assert 'id="gift-promise"' not in body
    refused = client.post(f"/orders/{order.order_number}/add_gift/", {"sku_code": "NOPE"}, HTTP_HX_REQUEST="true")
    assert 'id="card-error"' in refused.content.decode()
