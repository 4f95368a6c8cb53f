"""The import's writer has two paths, chosen by the database: COPY on PostgreSQL (the CI and
production), bulk_create elsewhere (SQLite in the embedded mode). The same assertions run on
whichever database DATABASE_URL names; each test first checks which path it really took."""

from __future__ import annotations

import datetime
from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from integrations.erp.importer import import_orders, insert_rows
from orders.models import Customer, EventKind, Order, OrderEvent, OrderLine
from tests.conftest import make_product
from tests.erp_fixtures import fast_passwords, line, write_csv  # noqa: F401 (autouse)

pytestmark = pytest.mark.django_db


def took_vendor_path(queries: CaptureQueriesContext, table: str) -> bool:
    """COPY itself bypasses Django's query log; its id query (nextval) does not. SQLite inserts
    with a plain INSERT."""
    sql = " ".join(query["sql"] for query in queries.captured_queries)
    inserted = f'INSERT INTO "{table}"' in sql
    if connection.vendor == "postgresql":
        return "nextval" in sql and not inserted
    return inserted and "nextval" not in sql


def test_insert_rows_returns_ids_in_order_and_fills_defaults():
    moment = timezone.make_aware(datetime.datetime(2024, 5, 1, 10, 20, 30))
    with CaptureQueriesContext(connection) as queries:
        ids = insert_rows(
            Customer, ("phone", "name", "created_at"), [("13800000001", "王丽", moment), ("13800000002", "李娜\t\\n", moment)]
        )
    assert took_vendor_path(queries, "orders_customer")
    customers = Customer.objects.in_bulk(ids)
    assert [customers[pk].phone for pk in ids] == ["13800000001", "13800000002"]
    assert customers[ids[1]].name == "李娜\t\\n"  # text that COPY must escape arrives as written
    assert customers[ids[0]].membership_level == "regular" and customers[ids[0]].wechat_openid == ""
    assert customers[ids[0]].created_at == moment
    # The next ordinary save takes an id after ours: the sequence was advanced, not bypassed.
    assert Customer.objects.create(phone="13800000003", name="张伟").pk > max(ids)


def test_a_duplicate_is_an_integrity_error_so_the_chunk_is_retried():
    insert_rows(Customer, ("phone", "name"), [("13800000001", "王丽")])
    with pytest.raises(IntegrityError), transaction.atomic():
        insert_rows(Customer, ("phone", "name"), [("13800000001", "王丽")])


def test_import_writes_every_field_through_the_vendor_path(tmp_path):
    products = {"NUK-AFZ-02": make_product(sku="NUK-AFZ-02", cold_chain=True), "GIFT-KSJ-01": make_product(sku="GIFT-KSJ-01")}
    Customer.objects.create(phone="13900139000", name="李娜")  # an existing customer is reused
    rows = [
        line("W1", "NUK-AFZ-02", quantity=2, price="59.90", total="119.80", message="请放门口"),
        line("W2", "NUK-AFZ-02", phone="139 0013 9000", name="李娜", status="已发货") | {"快递单号": "zt123456"},
        line("W1", "GIFT-KSJ-01", price="0", gift="是", total="119.80", message="请放门口"),
        line("W3", "NUK-AFZ-02", status="已取消", refund="59.90"),
        line("W4", "NOPE-404"),
    ]
    path = write_csv(tmp_path / "export.csv", rows)
    with CaptureQueriesContext(connection) as queries:
        summary = import_orders(path=path, run_id=7)
    assert all(
        took_vendor_path(queries, table) for table in ("orders_order", "orders_orderline", "orders_orderevent", "orders_customer")
    )
    assert (summary.created, summary.rejected) == (3, 1)

    first = Order.objects.get(order_number="W1")
    placed = timezone.make_aware(datetime.datetime(2024, 5, 1, 10, 20, 30))
    paid = timezone.make_aware(datetime.datetime(2024, 5, 1, 10, 21))
    assert (first.source, first.status, first.version) == ("erp", "paid", 1)
    assert (first.receiver_name, first.receiver_phone, first.province, first.city, first.district, first.address) == (
        "王丽",
        "13800138000",
        "浙江省",
        "杭州市",
        "萧山区",
        "市心北路100号",
    )
    assert (first.total_amount, first.paid_amount, first.shipping_fee, first.refund_amount) == (
        Decimal("119.80"),
        Decimal("119.80"),
        Decimal("0.00"),
        Decimal("0.00"),
    )
    assert (first.carrier_code, first.buyer_message, first.requires_cold_chain) == ("zhongtong", "请放门口", True)
    assert (first.placed_at, first.pending_review_at, first.paid_at, first.source_updated_at) == (placed, placed, paid, paid)
    assert first.shipped_at is None and first.cancelled_at is None and first.updated_at is not None
    assert (first.is_held, first.is_rush, first.hold_reason, first.stage_paused_seconds, first.claimed_by_id) == (
        False,
        False,
        "",
        0,
        None,
    )
    # The stage clock runs from the arrival here: paid's rule is 60 minutes (migration defaults).
    assert first.stage_due_at == first.stage_entered_at + datetime.timedelta(minutes=60) and first.sla_breached_at is None
    assert first.customer.phone == "13800138000" and first.customer.name == "王丽"
    assert sorted(first.lines.values_list("sku_code", "product_name", "quantity", "unit_price", "is_gift", "cold_chain")) == [
        ("GIFT-KSJ-01", products["GIFT-KSJ-01"].name, 1, Decimal("0.00"), True, False),
        ("NUK-AFZ-02", products["NUK-AFZ-02"].name, 2, Decimal("59.90"), False, True),
    ]
    event = OrderEvent.objects.get(order=first)
    assert (event.kind, event.actor_name, event.actor_user_id, event.source_time) == (EventKind.CREATED, "ERP", None, paid)
    assert event.payload == {"source": "erp", "import_run": 7, "erp_status": "已付款"}  # events.created's shape

    shipped = Order.objects.get(order_number="W2")
    assert shipped.status == "shipped" and shipped.customer.name == "李娜"
    assert Customer.objects.filter(phone="13900139000").count() == 1
    assert shipped.shipments.get().tracking_number == "ZT123456"
    # No 发货日期 in the file: shipped on arrival here, never a shipped order without shipped_at.
    assert shipped.shipped_at is not None and shipped.stage_due_at is None
    cancelled = Order.objects.get(order_number="W3")
    assert cancelled.status == "cancelled" and cancelled.cancelled_at is not None and cancelled.refund_amount == Decimal("59.90")
    assert cancelled.stage_due_at is None
    assert not Order.objects.filter(order_number="W4").exists()

    # Again: nothing changes. Then one changed line updates the order with an ERP event.
    again = import_orders(path=path)
    assert (again.created, again.updated, again.unchanged, again.rejected) == (0, 0, 3, 1)
    assert OrderEvent.objects.count() == 3 and OrderLine.objects.count() == 4
    rows[0]["数量"] = 3
    summary = import_orders(path=write_csv(tmp_path / "v2.csv", rows))
    assert (summary.created, summary.updated, summary.unchanged) == (0, 1, 2)
    update = OrderEvent.objects.get(order=first, kind=EventKind.IMPORT_UPDATE)
    assert update.actor_name == "ERP" and update.payload["fields"] == ["lines"]
    assert first.lines.get(sku_code="NUK-AFZ-02").quantity == 3
    assert Order.objects.get(pk=first.pk).version == 2
