"""The rule × entry-path matrix (issue 11): for every guard of the status machine and every path
into the cockpit that can attempt the guarded change, one case that the guard holds and that the
refusal reaches the user in Chinese. Generated from orders/rules.py GUARDS, like the security
matrix is generated from the URL resolver: a new guard without a way to break it here, or a new
path without a driver, fails `test_every_guard_and_path_has_cases`.

Paths that can attempt a transition: the order card (the role's button), the PDA station (pack),
the signed inbound events API (WMS/ERP), a bulk batch from the order list (approve, start picking). Paths that cannot, by construction, are pinned too: the
ERP import never moves an existing order's status, the rush link never changes a status, and
the admin shows orders read-only.
"""

from __future__ import annotations

import html
import json
import time
from decimal import Decimal

import pytest
from django.test import Client
from django.utils import translation

from integrations.erp.importer import import_orders
from integrations.erp.inbound import sign
from orders import packing, rules, services
from orders.access import Actor
from orders.models import EventKind, Order, OrderEvent
from tests.conftest import PASSWORD, make_order, make_product
from tests.erp_fixtures import line, write_csv
from tests.packing_fixtures import scan_every_item
from workflows import bulk

pytestmark = pytest.mark.django_db
WMS_SECRET = "wms-matrix-secret"
SOURCE_STATUS = {"approve": "pending_review", "start_picking": "paid", "pack": "picking", "ship": "packed"}
SHIP_FORM = {"carrier_code": "zhongtong", "tracking_number": "ZT20261202"}


# --- How to break each guard, on an order that is otherwise ready for the transition ------------


def _hold(order, people):
    services.order_hold(order=order, by=Actor.of(people["service"]), reason="customer_request", until=None)


def _no_items(order, people):
    order.lines.all().delete()


def _fuzzy_address(order, people):
    services.order_tag_add(order=order, by=Actor.system("ERP"), tag="fuzzy_address")


def _cold_chain(order, people):
    # A cold-chain item on an order whose carrier (and, at the dock, the shipping form) is not SF cold chain.
    cold = make_product(cold_chain=True)
    order.lines.create(
        product=cold, sku_code=cold.sku_code, product_name=cold.name, quantity=1, unit_price=cold.unit_price, cold_chain=True
    )


def _interception(order, people):
    services.after_sales_open(order=order, by=Actor.of(people["service"]), kind="refund", reason="不要了", amount=Decimal("1.00"))


def _gift_missing(order, people):
    # The buyer was promised a gift; the order has no gift line (and nobody decided none is due).
    order.lines.filter(is_gift=True).delete()
    order.buyer_message = "记得送冰袋"
    order.save(update_fields=["buyer_message"])


def _waybill_reprint(order, people):
    # Issue 13: an address change applied once picking began leaves a label to reprint.
    change = services.address_change_request(
        order=order,
        by=Actor.of(people["service"]),
        receiver_name="李娜",
        receiver_phone="13912345678",
        province="上海市",
        city="上海市",
        district="浦东新区",
        address="世纪大道1号",
    )
    services.address_change_apply(change=change, by=Actor.of(people["reviewer"]))


BREAK = {
    "hold": _hold,
    "no_items": _no_items,
    "fuzzy_address": _fuzzy_address,
    "cold_chain": _cold_chain,
    "interception": _interception,
    "gift_missing": _gift_missing,
    "waybill_reprint": _waybill_reprint,
}


# --- The paths ----------------------------------------------------------------------------------


def _ready(order: Order, people) -> None:
    """What a person must have done at the bench before packing, so only the guard under test blocks."""
    order.refresh_from_db()
    if order.status == "picking":
        scan_every_item(order, people["packer"])


def via_card(order: Order, transition: str, people) -> tuple[bool, str]:
    _ready(order, people)
    role = sorted(rules.TRANSITION_ROLES[transition])[0]
    client = Client()
    client.login(username=role, password=PASSWORD)
    client.cookies["django_language"] = "zh-hans"
    data = {"version": Order.objects.get(pk=order.pk).version, **(SHIP_FORM if transition == "ship" else {})}
    response = client.post(f"/orders/{order.order_number}/{transition}/", data, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    body = html.unescape(response.content.decode())
    return 'id="card-error"' not in body, body


def via_pda(order: Order, transition: str, people) -> tuple[bool, str]:
    _ready(order, people)
    client = Client()
    client.login(username="packer", password=PASSWORD)
    client.cookies["django_language"] = "zh-hans"
    response = client.post(f"/pda/{order.order_number}/pack/", HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    return Order.objects.get(pk=order.pk).status == "packed", html.unescape(response.content.decode())


def via_inbound_event(order: Order, transition: str, people) -> tuple[bool, str]:
    payload = {
        "event_id": f"matrix-{order.pk}-{transition}",
        "order_number": order.order_number,
        "action": transition,
        **(SHIP_FORM if transition == "ship" else {}),
    }
    body = json.dumps(payload).encode()
    timestamp = str(int(time.time()))
    response = Client().post(
        "/api/v1/events",
        data=body,
        content_type="application/json",
        HTTP_X_BEILE_SOURCE="WMS",
        HTTP_X_BEILE_TIMESTAMP=timestamp,
        HTTP_X_BEILE_SIGNATURE=sign(secret=WMS_SECRET, timestamp=timestamp, body=body),
    )
    if response.status_code == 200:
        return True, ""
    assert response.status_code == 409, response.content
    # The refusal is on the order's timeline too, for whoever opens the card.
    refused = OrderEvent.objects.get(order=order, kind=EventKind.SYNC_REFUSED)
    assert refused.payload["action"] == transition
    return False, response.json()["error"]


def via_bulk(order: Order, transition: str, people) -> tuple[bool, str]:
    """A bulk batch of one order (workflows/bulk.py), run as its task would: the per-order result."""
    role = sorted(rules.TRANSITION_ROLES[transition])[0]
    batch = bulk.batch_create(user=people[role], action=transition, params={}, order_numbers=[order.order_number])
    bulk.batch_execute(batch_id=batch.pk)
    item = batch.items.get()
    return item.outcome == "done", item.message


# Each path, and the transitions it can attempt.
PATHS = {
    "card": (via_card, ("approve", "start_picking", "pack", "ship")),
    "bulk": (via_bulk, ("approve", "start_picking")),
    "pda": (via_pda, ("pack",)),
    "inbound_event": (via_inbound_event, ("approve", "start_picking", "pack", "ship")),
}
CASES = [
    (guard, path, transition)
    for guard, (transitions, _check) in rules.GUARDS.items()
    for path, (_drive, attempts) in PATHS.items()
    for transition in transitions
    if transition in attempts
]


@pytest.fixture(autouse=True)
def inbound_secret(settings):
    settings.INBOUND_EVENT_SECRETS = {"WMS": WMS_SECRET}


def test_every_guard_and_path_has_cases():
    assert set(BREAK) == set(rules.GUARDS), "a guard in orders/rules.py GUARDS has no way to break it here"
    for guard, (transitions, _check) in rules.GUARDS.items():
        for transition in transitions:
            assert any(transition in attempts for _drive, attempts in PATHS.values()), f"{guard}/{transition} has no path"
            assert any(case[0] == guard and case[2] == transition for case in CASES)


@pytest.mark.parametrize(("guard", "path", "transition"), CASES, ids=["-".join(case) for case in CASES])
def test_the_guard_holds_on_the_path_and_says_why_in_chinese(people, guard, path, transition):
    order = make_order(status=SOURCE_STATUS[transition])
    BREAK[guard](order, people)
    order = Order.objects.get(pk=order.pk)
    with translation.override("zh-hans"):
        expected = rules.GUARDS[guard][1](order)
    assert expected, f"breaking {guard} did not trip it"
    drive, _attempts = PATHS[path]
    went_through, said = drive(order, transition, people)
    assert not went_through
    assert Order.objects.get(pk=order.pk).status == SOURCE_STATUS[transition]
    for reason in expected:
        assert reason in said, f"{path} did not tell the user: {reason}"
    assert any("\u4e00" <= char <= "\u9fff" for char in said)


# --- A person packing must have verified the parcel: the card and the PDA both check it ----------


@pytest.mark.parametrize("path", ["card", "pda"])
def test_a_person_cannot_pack_unscanned_items_on_any_path(people, path):
    order = make_order(status="picking")
    with translation.override("zh-hans"):
        expected = packing.missing_items(packing.pack_lines(order))[0]
    client = Client()
    client.login(username="packer", password=PASSWORD)
    client.cookies["django_language"] = "zh-hans"
    url = f"/orders/{order.order_number}/pack/" if path == "card" else f"/pda/{order.order_number}/pack/"
    body = html.unescape(client.post(url, {"version": order.version}, HTTP_HX_REQUEST="true").content.decode())
    assert expected in body
    assert Order.objects.get(pk=order.pk).status == "picking"


# --- Paths that cannot attempt a transition at all ------------------------------------------------


def test_the_erp_import_never_moves_an_existing_orders_status(people, tmp_path):
    order = make_order(status="paid")
    _hold(order, people)
    row = line(
        order.order_number,
        order.lines.get().sku_code,
        status="已发货",
        price=str(order.total_amount),
        total=str(order.total_amount),
    ) | {
        "快递单号": "ZT1234567890"  # a valid shipped row: without its waybill the import refuses it before the status question
    }
    import_orders(path=write_csv(tmp_path / "erp.csv", [row]))
    order.refresh_from_db()
    assert order.status == "paid" and order.is_held


def test_the_rush_link_never_changes_a_status(people):
    order = make_order(status="paid")
    _fuzzy_address(order, people)
    services.rush_file(
        by=Actor.of(people["sales"]),
        phone=order.receiver_phone,
        reason="明早出国",
        deadline=order.placed_at.replace(year=2099),
        order_choice=order.order_number,
    )
    order.refresh_from_db()
    assert order.status == "paid" and order.is_rush


def test_the_admin_cannot_change_an_orders_status(people):
    supervisor = people["supervisor"]
    supervisor.is_staff = True
    supervisor.save(update_fields=["is_staff"])
    order = make_order(status="pending_review")
    _fuzzy_address(order, people)
    client = Client()
    client.force_login(supervisor)
    response = client.post(f"/admin/orders/order/{order.pk}/change/", {"status": "shipped", "order_number": order.order_number})
    assert response.status_code in (200, 302, 403, 404)  # read-only form, refused, or not editable here at all
    order.refresh_from_db()
    assert order.status == "pending_review"
