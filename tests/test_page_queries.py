"""Issue 14: each budgeted page runs the same number of queries whatever the data behind it,
measured at two sizes and pinned exactly, so a change that adds a query (or a per-row query)
fails here and says so. The bench (beile/management/commands/bench.py) measures the CPU."""

import datetime

import pytest
from django.core.cache import cache
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from orders import selectors, services
from orders.access import Actor
from orders.models import AddressChangeRequest, Note, Order, OrderTag, TrackingEvent
from tests.conftest import PASSWORD, make_order, make_product
from tests.frontline_fixtures import customer_with_orders, fast_passwords, rejected_return, ship  # noqa: F401
from workflows import sla
from workflows.frontline import packing
from workflows.frontline.lookup import RELATIONS
from workflows.models import Ticket
from workflows.selectors import LANE_SIZE, STAGE_COUNTS_KEY

pytestmark = pytest.mark.django_db


def signed_in(role: str) -> Client:
    client = Client()
    assert client.login(username=role, password=PASSWORD)
    # The first request reads the user and their roles into the cache (beile/auth.py); every page
    # after it reads neither, as in production, where the session and the user are both cached.
    assert client.get("/").status_code == 302
    return client


def queries(call) -> tuple[int, list[str]]:
    with CaptureQueriesContext(connection) as captured:
        response = call()
    assert response.status_code == 200, response.status_code
    return len(captured), [query["sql"][:150] for query in captured.captured_queries]


def assert_pinned(small: tuple[int, list[str]], large: tuple[int, list[str]], pinned: int) -> None:
    assert small[0] == large[0], (
        f"grows with the data: {small[0]} → {large[0]}\n" + "\n".join(small[1]) + "\n--\n" + "\n".join(large[1])
    )
    assert large[0] == pinned, f"{large[0]} queries, pinned at {pinned}:\n" + "\n".join(large[1])


def orders_with_something_everywhere(count: int, people) -> None:
    for index in range(count):
        order = make_order(status="picking", is_rush=index % 3 == 0)
        if index % 2 == 0:
            services.order_tag_add(order=order, by=Actor.system("ERP"), tag="invoice_pending")
        if index % 5 == 0:
            services.order_claim(order=order, by=Actor.of(people["dispatcher"]))


def test_order_list_first_and_deep_page(people):
    client = signed_in("dispatcher")
    orders_with_something_everywhere(3, people)
    small_first = queries(lambda: client.get("/orders/"))
    orders_with_something_everywhere(120, people)
    large_first = queries(lambda: client.get("/orders/"))
    # the page of orders (customer and operator joined), their open tags, the nav's count of my
    # open status checks (the session, the user and their roles come from the cache)
    assert_pinned(small_first, large_first, 3)
    body = client.get("/orders/").content.decode()
    # The rows are written in Python (orders/templatetags/cockpit.py order_rows): an operator by
    # name, nobody as an empty cell.
    assert f"<td>{people['dispatcher'].first_name}</td></tr>" in body and "<td></td></tr>" in body and "None" not in body
    cursor = body.split("cursor=")[1].split('"')[0]
    deep = queries(lambda: client.get("/orders/", {"cursor": cursor}))
    assert_pinned(small_first, deep, 3)


def busy_card(people, *, times: int):
    """An order with `times` of everything the card shows: lines, notes read by someone,
    questions, tags, shipments with tracking, after-sales decisions, events."""
    service, dispatcher = Actor.of(people["service"]), Actor.of(people["dispatcher"])
    order = make_order(status="shipped", lines=[(make_product(), 1) for _ in range(times)], gift=make_product())
    for index in range(times):
        note = services.order_add_note(order=order, by=service, body=f"第{index}条", kind="warning", audience="warehouse")
        services.note_acknowledge(note=note, by=dispatcher)
        services.feedback_request(order=order, by=service, to_role="dispatcher", question=f"问题{index}")
        shipment = ship(order)
        TrackingEvent.objects.create(shipment=shipment, occurred_at=timezone.now(), context="[杭州市]派送中")
        rejected_return(order, decided_at=timezone.now() - datetime.timedelta(days=index + 1), by=people["service"])
    services.order_tag_add(order=order, by=service, tag="invoice_pending")
    return order


def test_order_card(people):
    client = signed_in("supervisor")
    small, large = busy_card(people, times=1), busy_card(people, times=6)
    # the order, its customer (the session, the user and their roles come from the cache)
    # and every child list as JSON with the people and products they name and the repeat-purchase
    # count (one plain-SQL query: orders/selectors.py order_card), which
    # of tickets and the customer pushes (WeChat, SMS) hold rows (one plain-SQL query; this order
    # has none, so none is read). SQLite reads the lists through the ORM's prefetches: a query
    # each, as many whatever the order holds.
    assert_pinned(
        queries(lambda: client.get(f"/orders/{small.order_number}/")),
        queries(lambda: client.get(f"/orders/{large.order_number}/")),
        2 if connection.vendor == "postgresql" else 13,
    )


def test_lookup_of_a_customer(people):
    customer_with_orders(2, phone="13900001111", people=people)
    customer_with_orders(20, phone="13900002222", people=people)
    client = signed_in("service")
    assert_pinned(
        queries(lambda: client.get("/service/lookup/", {"q": "13900001111"})),
        queries(lambda: client.get("/service/lookup/", {"q": "13900002222"})),
        # The health badge's count, then on PostgreSQL one query: the customer, their orders with the
        # people claiming them and their child rows (json-aggregated), their contact preference and
        # whether a Douyin shop is enabled (whose search index finds an encrypted receiver by this
        # phone). On SQLite: the customer, the Douyin shops, the contact preference, the orders and
        # one query per relation.
        2 if connection.vendor == "postgresql" else 5 + len(RELATIONS),
    )


def board_orders(count: int) -> None:
    for minutes in range(1, count + 1):
        order = make_order(
            status="picking",
            stage_entered_at=timezone.now() - datetime.timedelta(hours=5, minutes=minutes),
            is_rush=minutes % 2 == 0,
            rush_deadline=timezone.now() + datetime.timedelta(hours=minutes),
        )
        OrderTag.objects.create(order=order, tag="high_risk_refund")
        # The ticket and address-change lanes read only some columns: none may load lazily.
        Ticket.objects.create(order=order, kind="stalled", summary="24 小时无物流更新")
        AddressChangeRequest.objects.create(
            order=order,
            receiver_name="王五",
            receiver_phone="13900000000",
            province="浙江省",
            city="杭州市",
            address="文一路 1 号",
            due_at=timezone.now() + datetime.timedelta(minutes=minutes),
        )
        if minutes % 3 == 0:
            services.order_hold(order=order, by=Actor.system("ERP"), reason="stock_shortage", until=None)
    sla.sla_sweep()


def test_board(people):
    client = signed_in("supervisor")

    def board():
        # The stage counts are shared through the cache until an order changes
        # (workflows/selectors.py): counted here on every request, as after any change.
        cache.delete(STAGE_COUNTS_KEY)
        return client.get("/board/")

    # Both sizes overflow the rush lane (LANE_SIZE), whose total then costs one count.
    board_orders(2 * LANE_SIZE + 2)
    small = queries(board)
    board_orders(40)
    # (the session, the user and their roles come from the cache) stage rules, one
    # statement for the four order lanes (rush, red, platform deadlines, holds) and the rush
    # total, the stage counts, one for the exceptions (cards and groups), tickets and address
    # changes, one for the cards' open tags and alerts, the people to assign with their roles
    assert_pinned(small, queries(board), 6)


def test_pda_scans(people):
    client = signed_in("packer")
    small_products, large_products = [make_product()], [make_product() for _ in range(8)]
    small = make_order(status="picking", lines=[(product, 1) for product in small_products], gift=make_product())
    large = make_order(status="picking", lines=[(product, 2) for product in large_products], gift=make_product())
    for order in (small, large):
        ship(order)
        Note.objects.create(order=order, author=people["service"], body="轻拿轻放", audience="warehouse")
    waybill = {order: order.shipments.get().tracking_number for order in (small, large)}
    # (the user and their roles come from the cache) the order by number or waybill with what the station and every guard read
    # and the item counts since the last restart, in one query on PostgreSQL
    # (workflows/frontline/packing.py station_order; on SQLite the order by number, by waybill, a
    # query per STATION_ROWS relation and the counts), the scan row
    postgresql = connection.vendor == "postgresql"
    assert_pinned(
        queries(lambda: client.post("/pda/scan/", {"code": waybill[small]}, HTTP_HX_REQUEST="true")),
        queries(lambda: client.post("/pda/scan/", {"code": waybill[large]}, HTTP_HX_REQUEST="true")),
        2 if postgresql else 9,
    )

    def scan_item(order, product):
        return lambda: client.post("/pda/scan/", {"code": product.barcode, "order": order.order_number}, HTTP_HX_REQUEST="true")

    # (the user and roles come from the cache) in a savepoint the open order locked with what the station reads (which
    # the scan's own check reads too) and the counts before the scan, the scan row
    assert_pinned(
        queries(scan_item(small, small_products[0])), queries(scan_item(large, large_products[0])), 4 if postgresql else 10
    )


def test_the_pda_station_reads_the_rows_the_orm_reads(people):
    """The station's order and what its guards read come from one JSON query
    (workflows/frontline/packing.py station_order), by number or by waybill: every field of every
    row and of the products and people they name must be what the ORM reads, with the item counts
    since the last restart and no query left to make."""
    order = busy_card(people, times=2)
    Order.objects.filter(pk=order.pk).update(status="picking")
    product, packer = order.lines.first().product, Actor.of(people["packer"])
    for step in ("scan", "restart", "scan"):
        if step == "scan":
            assert packing.pack_scan(code=product.barcode, by=packer, current=order.order_number)[1].outcome == "match"
        else:
            packing.packing_restart(order=order, by=packer)
    services.address_change_request(
        order=Order.objects.get(pk=order.pk),
        by=Actor.of(people["service"]),
        receiver_name="李四",
        receiver_phone="13800138000",
        province="浙江省",
        city="杭州市",
        district="西湖区",
        address="文三路 1 号",
    )
    order = Order.objects.get(pk=order.pk)

    def values(row):
        return None if row is None else [getattr(row, field.attname) for field in row._meta.concrete_fields]

    lists = {"lines": "product", "after_sales": None, "address_changes": None, "notes": "author"}
    waybill = order.shipments.first().tracking_number
    for found_by in ({"number": order.order_number}, {"code": waybill}, {"number": order.order_number, "lock": True}):
        with transaction.atomic(), CaptureQueriesContext(connection) as captured:
            station = packing.station_order(**found_by)
            with CaptureQueriesContext(connection) as afterwards:
                shown = {
                    name: [
                        (values(row), values(getattr(row, related)) if related else None) for row in getattr(station, name).all()
                    ]
                    for name, related in lists.items()
                }
                acks = [[(values(ack), values(ack.user)) for ack in note.acknowledgements.all()] for note in station.notes.all()]
        if connection.vendor == "postgresql":  # SQLite's ORM queries are pinned by test_pda_scans
            assert len(captured) == 1
        assert len(afterwards) == 0, [query["sql"][:80] for query in afterwards.captured_queries]
        assert values(station) == values(order)
        for name, related in lists.items():
            rows = getattr(order, name).all().order_by(*getattr(order, name).model._meta.ordering or ["id"])
            assert shown[name] == [(values(row), values(getattr(row, related)) if related else None) for row in rows], name
            assert shown[name], f"the busy order has {name}"
        assert acks == [
            [(values(ack), values(ack.user)) for ack in note.acknowledgements.order_by("id")] for note in order.notes.all()
        ]
        assert all(acks)
        assert station.scan_counts == packing.verification.scanned_counts(order) == {product.pk: 1}


def test_the_card_reads_the_rows_the_orm_reads(people):
    """The card's child lists come from one JSON query (orders/selectors.py order_card): every field
    of every row and of the people and products they name must be what the ORM reads, in the
    order the card showed them, with no query left to make."""
    order = busy_card(people, times=2)
    services.address_change_request(
        order=order,
        by=Actor.of(people["service"]),
        receiver_name="李四",
        receiver_phone="13800138000",
        province="浙江省",
        city="杭州市",
        district="西湖区",
        address="文三路 1 号",
    )
    services.order_tag_resolve(order=order, by=Actor.of(people["supervisor"]), tag="invoice_pending", resolution="开好了")
    services.order_claim(order=order, by=Actor.of(people["dispatcher"]))
    order = Order.objects.get(pk=order.pk)

    def values(row):
        return None if row is None else [getattr(row, field.attname) for field in row._meta.concrete_fields]

    def related(row, *names):
        return [values(getattr(row, name, None)) for name in names]  # None: a shipment without subscription

    with CaptureQueriesContext(connection) as captured:
        card = selectors.order_card(order_number=order.order_number)
    lists = {
        "lines": ("product",),
        "shipments": ("subscription",),
        "after_sales": ("decided_by",),
        "address_changes": (),
        "tags": ("opened_by", "resolved_by"),
        "notes": ("author",),
        "feedback_requests": ("asked_by", "to_user", "answered_by"),
        "events": (),
    }
    shown = {}
    with CaptureQueriesContext(connection) as afterwards:
        for name, people_and_products in lists.items():
            shown[name] = [(values(row), related(row, *people_and_products)) for row in getattr(card, name).all()]
        tracking = [[values(event) for event in shipment.events.all()] for shipment in card.shipments.all()]
        acks = [[(values(ack), values(ack.user)) for ack in note.acknowledgements.all()] for note in card.notes.all()]
        facts = (values(card), related(card, "customer", "claimed_by", "hold_owner"))
    assert len(afterwards) == 0, [query["sql"][:80] for query in afterwards.captured_queries]
    assert len(captured) == (1 if connection.vendor == "postgresql" else 12)  # SQLite: the ORM's prefetches
    orderings = {"tags": ["-opened_at"]}
    for name, people_and_products in lists.items():
        rows = getattr(order, name).all()
        rows = rows.order_by(*orderings.get(name, rows.model._meta.ordering or ["id"]))
        assert shown[name] == [(values(row), related(row, *people_and_products)) for row in rows], name
        assert shown[name], f"the busy card has {name}"
    assert tracking == [
        [values(event) for event in shipment.events.order_by("-occurred_at")] for shipment in order.shipments.order_by("id")
    ]
    assert acks == [
        [(values(ack), values(ack.user)) for ack in note.acknowledgements.order_by("id")] for note in order.notes.all()
    ]
    assert all(tracking) and all(acks)
    assert facts == (values(order), related(order, "customer", "claimed_by", "hold_owner")) and card.claimed_by
    assert card.repeat_purchase_count == order.customer.orders.exclude(status="cancelled").count() - 1
