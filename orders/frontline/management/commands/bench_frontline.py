"""Benchmark (not a test): the lookup page and PDA scans at scale, beside a naive baseline
measured in the same run. Run it on a throw-away database:

    createdb beile_bench
    DATABASE_URL=postgres://root@127.0.0.1:5432/beile_bench python manage.py migrate
    DATABASE_URL=postgres://root@127.0.0.1:5432/beile_bench python manage.py bench_frontline --orders 1000000

Data is generated in PostgreSQL itself (INSERT … SELECT generate_series), then reused by later
runs. Prints p50/p95 server time (the view through Django's test client: middleware, queries,
template) and the query count.
"""

from __future__ import annotations

import datetime
import statistics
import time
from decimal import Decimal

from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction
from django.db.models import Q
from django.test import Client, override_settings
from django.utils import timezone

from orders.models import AfterSalesCase, Customer, Note, Order, OrderEvent, OrderLine, Product, Shipment, TrackingEvent

TARGET_PHONE = "17000000001"
PREFIX = "BN"


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]


def count_queries(call) -> int:
    """Queries one call runs (a wrapper, because a request resets Django's own query log)."""
    count = 0

    def counter(execute, sql, params, many, context):
        nonlocal count
        count += 1
        return execute(sql, params, many, context)

    with connection.execute_wrapper(counter):
        call()
    return count


class Command(BaseCommand):
    help = "Benchmark the customer-service lookup and PDA scans at scale (PostgreSQL)."

    def add_arguments(self, parser):
        parser.add_argument("--orders", type=int, default=1_000_000)
        parser.add_argument("--customers", type=int, default=0, help="default: 40% of --orders")
        parser.add_argument("--runs", type=int, default=200)

    def handle(self, *args, orders: int, customers: int, runs: int, **options):
        if connection.vendor != "postgresql":
            raise CommandError("The benchmark needs PostgreSQL (set DATABASE_URL).")
        customers = customers or int(orders * 0.4)
        if not Order.objects.filter(order_number__startswith=PREFIX).exists():
            with transaction.atomic():
                self._generate(orders, customers)
        total_orders, total_customers = Order.objects.count(), Customer.objects.count()
        self.stdout.write(f"Data: {total_orders:,} orders, {total_customers:,} customers; target customer has "
                          f"{Order.objects.filter(customer__phone=TARGET_PHONE).count()} orders.")
        service, packer = self._users()
        # Production semantics: no query log (DEBUG's cursor wrapper), cached templates.
        with override_settings(DEBUG=False):
            self._bench_lookup(service, runs)
            self._bench_scan(packer, runs)

    # --- Data ---------------------------------------------------------------------------------

    def _generate(self, orders: int, customers: int) -> None:
        started = time.perf_counter()
        product = Product.objects.get_or_create(sku_code="BENCH-1", defaults={"barcode": "6999000000001", "name": "基准商品", "unit_price": Decimal("99.00")})[0]
        with connection.cursor() as cursor:
            cursor.execute(
                """INSERT INTO orders_customer (phone, name, membership_level, wechat_openid, created_at)
                   SELECT '17' || lpad(i::text, 9, '0'), '客户' || i, 'regular', '', now() - (i %% 900) * interval '1 day'
                   FROM generate_series(1, %s) AS i""",
                [customers],
            )
            cursor.execute("SELECT min(id) FROM orders_customer WHERE phone LIKE '17%%'")
            first_customer = cursor.fetchone()[0]
            # Customer 1 (the target) gets no generated orders: it gets 20 full ones below.
            cursor.execute(
                """INSERT INTO orders_order (order_number, source, receiver_name, receiver_phone, province, city, district, address,
                       total_amount, paid_amount, shipping_fee, refund_amount, carrier_code, requires_cold_chain, buyer_message,
                       status, version, stage_entered_at, cancel_reason, is_held, hold_reason, hold_note, is_rush, rush_reason,
                       placed_at, created_at, updated_at, customer_id, shipped_at)
                   SELECT %s || lpad(i::text, 10, '0'), 'erp', '客户', '17' || lpad((2 + i %% (%s - 1))::text, 9, '0'),
                       '浙江省', '杭州市', '萧山区', '市心北路' || (i %% 999) || '号', 99, 99, 0, 0, 'zhongtong', false, '',
                       'completed', 1, now() - (i %% 365) * interval '1 day', '', false, '', '', false, '',
                       now() - (i %% 365) * interval '1 day', now(), now(), %s + 1 + i %% (%s - 1), now() - (i %% 365) * interval '1 day'
                   FROM generate_series(1, %s) AS i""",
                [PREFIX, customers, first_customer, customers, orders],
            )
            cursor.execute(
                """INSERT INTO orders_orderline (sku_code, product_name, quantity, unit_price, is_gift, cold_chain, order_id, product_id)
                   SELECT 'BENCH-1', '基准商品', 1, 99, false, false, id, %s FROM orders_order WHERE order_number LIKE %s""",
                [product.pk, PREFIX + "%"],
            )
            cursor.execute(
                """INSERT INTO orders_shipment (carrier_code, tracking_number, channel, tracking_state, last_location, created_at, order_id)
                   SELECT 'zhongtong', 'ZB' || lpad(id::text, 12, '0'), 'zhongtong', '3', '浙江,杭州市', placed_at, id
                   FROM orders_order WHERE order_number LIKE %s""",
                [PREFIX + "%"],
            )
            cursor.execute("ANALYZE")
        self._target_customer()
        self.stdout.write(f"Generated {orders:,} orders and {customers:,} customers in {time.perf_counter() - started:.0f} s.")

    def _target_customer(self) -> None:
        """The customer on the phone: 20 orders, each with lines, a shipment with tracking, events,
        a note and an after-sales case, so every part of the lookup has rows to load."""
        customer = Customer.objects.get(phone=TARGET_PHONE)
        product = Product.objects.get(sku_code="BENCH-1")
        now = timezone.now()
        for n in range(20):
            placed = now - datetime.timedelta(days=n * 7)
            order = Order.objects.create(
                order_number=f"{PREFIX}T{n:04d}", customer=customer, receiver_name=customer.name, receiver_phone=TARGET_PHONE,
                province="浙江省", city="杭州市", district="萧山区", address="市心北路1号", total_amount=Decimal("99.00"),
                carrier_code="zhongtong", status="completed", placed_at=placed, stage_entered_at=placed, shipped_at=placed,
            )
            OrderLine.objects.create(order=order, product=product, sku_code=product.sku_code, product_name=product.name, quantity=2, unit_price=product.unit_price)
            shipment = Shipment.objects.create(order=order, carrier_code="zhongtong", tracking_number=f"ZT{n:010d}", tracking_state="3", last_location="浙江,杭州市", created_at=placed)
            TrackingEvent.objects.bulk_create(
                TrackingEvent(shipment=shipment, occurred_at=placed + datetime.timedelta(hours=h), context=f"[杭州市]快件在途 {h}") for h in range(5)
            )
            OrderEvent.objects.bulk_create(
                OrderEvent(order=order, kind="status", occurred_at=placed + datetime.timedelta(hours=h), actor_name="bench", payload={"from": "paid", "to": "picking"})
                for h in range(5)
            )
            Note.objects.create(order=order, body="客户要求放门口", audience="logistics")
            AfterSalesCase.objects.create(order=order, kind="return", status="rejected", reason="不想要了", decision_reason="已拆封", decided_by_department="技术部", decided_at=placed)

    def _users(self) -> tuple[User, User]:
        users = []
        for role in ("service", "packer"):
            user, _ = User.objects.get_or_create(username=f"bench-{role}")
            user.groups.set([Group.objects.get(name=role)])
            users.append(user)
        return users[0], users[1]

    # --- Measurements -------------------------------------------------------------------------

    def _time(self, runs: int, call) -> tuple[float, float]:
        call()  # warm-up
        samples = []
        for _ in range(runs):
            started = time.perf_counter()
            call()
            samples.append((time.perf_counter() - started) * 1000)
        return percentiles(samples)

    def _report(self, label: str, timing: tuple[float, float], queries: int | str) -> None:
        self.stdout.write(f"  {label:<58} p50 {timing[0]:7.1f} ms   p95 {timing[1]:7.1f} ms   queries {queries}")

    def _bench_lookup(self, service: User, runs: int) -> None:
        client = Client(HTTP_HOST="127.0.0.1")  # an allowed host when started with DEBUG=1
        client.force_login(service)

        def lookup():
            response = client.get("/service/lookup/", {"q": "170 0000 0001"})
            assert response.status_code == 200 and response.content.count(b'class="order-block') == 20

        def naive():
            # What an admin-style search does: icontains on the phone columns (no index can serve
            # it), then every child table loaded order by order.
            found = list(Order.objects.filter(Q(receiver_phone__icontains="17000000001") | Q(customer__phone__icontains="17000000001")).select_related("customer"))
            for order in found:
                list(order.lines.all()), list(order.events.all()), list(order.after_sales.all()), list(order.notes.all())
                for shipment in order.shipments.all():
                    list(shipment.events.all())
            assert len(found) == 20

        captured, naive_captured = count_queries(lookup), count_queries(naive)
        self.stdout.write("Customer-service lookup (customer with 20 orders, phone typed with spaces):")
        self._report("lookup page (GET /service/lookup/, full render)", self._time(runs, lookup), captured)
        self._report("naive baseline (phone__icontains + per-order loads, no render)", self._time(max(runs // 10, 5), naive), naive_captured)

    def _bench_scan(self, packer: User, runs: int) -> None:
        product = Product.objects.get(sku_code="BENCH-1")
        order = Order.objects.filter(order_number="BNPDA").first()
        if order is None:
            customer = Customer.objects.exclude(phone=TARGET_PHONE).filter(phone__startswith="17").first()
            order = Order.objects.create(
                order_number="BNPDA", customer=customer, receiver_name=customer.name, receiver_phone=customer.phone, province="浙江省",
                city="杭州市", address="市心北路1号", carrier_code="zhongtong", status="picking",
            )
            OrderLine.objects.create(order=order, product=product, sku_code=product.sku_code, product_name=product.name, quantity=1_000_000, unit_price=product.unit_price)
        waybill = Shipment.objects.filter(order__order_number__startswith=PREFIX).order_by("-id").values_list("tracking_number", flat=True).first()
        client = Client(HTTP_HOST="127.0.0.1")  # an allowed host when started with DEBUG=1
        client.force_login(packer)

        def open_by_waybill():
            assert client.post("/pda/scan/", {"code": waybill}, HTTP_HX_REQUEST="true").status_code == 200

        def item():
            assert client.post("/pda/scan/", {"code": product.barcode, "order": order.order_number}, HTTP_HX_REQUEST="true").status_code == 200

        def naive_open():
            found = list(Order.objects.filter(Q(order_number__icontains=waybill) | Q(shipments__tracking_number__icontains=waybill)).distinct()[:1])
            assert found

        open_queries, item_queries = count_queries(open_by_waybill), count_queries(item)
        self.stdout.write("PDA packing station:")
        self._report("scan a waybill: open the order (POST /pda/scan/)", self._time(runs, open_by_waybill), open_queries)
        self._report("scan an item barcode: verify + re-render station", self._time(runs, item), item_queries)
        self._report("naive baseline (icontains on order number / waybill)", self._time(max(runs // 10, 5), naive_open), "1")
