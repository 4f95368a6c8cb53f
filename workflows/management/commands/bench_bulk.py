"""Benchmark (not a test: it prints numbers) of a bulk approve and of the view exports (issue 17).

    python manage.py bench_bulk --orders 5000 --export 100000

Writes its own orders (prefix BB…/BX…), runs a bulk approve through workflows/bulk.py as the task
would (mixed outcomes: 1 in 25 held, another 1 in 50 with a fuzzy address, 1 in 100 changed after the
selection), then streams the CSV and writes the .xlsx of the export set; prints wall time, CPU
time, the process's peak RSS growth and the load average; deletes what it wrote.
"""

from __future__ import annotations

import os
import resource
import tempfile
import time
from pathlib import Path

from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand
from django.db import connection, transaction

from orders import selectors, services
from orders.access import Actor
from orders.models import Customer, Order, Product
from workflows import bulk, exports
from workflows.models import BulkAction, BulkBatch


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _insert(prefix: str, count: int, customer_id: int, source: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO orders_order (order_number, source, customer_id, receiver_name, receiver_phone, province, city, district,
              address, total_amount, paid_amount, shipping_fee, refund_amount, carrier_code, requires_cold_chain, buyer_message,
              status, version, stage_entered_at, cancel_reason, is_held, hold_reason, hold_note, is_rush, rush_reason, placed_at,
              created_at, updated_at, stage_paused_seconds, packed_unverified)
            SELECT %(prefix)s || lpad(i::text, 10, '0'), %(source)s, %(customer)s, '收货人' || i, '139' || lpad(i::text, 8, '0'),
              '浙江省', '杭州市', '萧山区', '市心北路' || i || '号', 199.90, 199.90, 0, 0, 'zhongtong', false, '',
              'pending_review', 1, now(), '', i %% 25 = 0, CASE WHEN i %% 25 = 0 THEN 'stock_shortage' ELSE '' END, '', false, '',
              now() - i * interval '1 second', now(), now(), 0, false
            FROM generate_series(1, %(count)s) AS i
            """,
            {"prefix": prefix, "source": source, "customer": customer_id, "count": count},
        )


class Command(BaseCommand):
    help = "Time a bulk approve over N orders and the CSV/xlsx export of M orders."

    def add_arguments(self, parser):
        parser.add_argument("--orders", type=int, default=5000)
        parser.add_argument("--export", type=int, default=100_000)

    def handle(self, *args, **options):
        reviewer, _created = User.objects.get_or_create(username="bench-bulk-reviewer", defaults={"first_name": "批量审核"})
        reviewer.groups.add(Group.objects.get_or_create(name="reviewer")[0])
        customer, _created = Customer.objects.get_or_create(phone="13900009999", defaults={"name": "批量基准"})
        product, _created = Product.objects.get_or_create(
            sku_code="BENCH-BULK", defaults={"barcode": "6900000099999", "name": "基准商品", "unit_price": 99}
        )
        try:
            self._bulk(options["orders"], reviewer, customer, product)
            self._export(options["export"], reviewer, customer)
        finally:
            with transaction.atomic():
                BulkBatch.objects.filter(created_by=reviewer).delete()
                Order.objects.filter(order_number__regex=r"^(BB|BX)\d{10}$").delete()

    def _report(self, what: str, started: float, cpu: float, rss_before: float, extra: str = "") -> None:
        load = os.getloadavg()
        self.stdout.write(
            f"{what}: wall {time.perf_counter() - started:.1f} s, CPU {time.process_time() - cpu:.1f} s, "
            f"peak RSS +{_rss_mb() - rss_before:.1f} MiB (peak {_rss_mb():.0f} MiB), "
            f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}{extra}"
        )

    def _bulk(self, count: int, reviewer, customer, product) -> None:
        _insert("BB", count, customer.pk, "manual")
        with connection.cursor() as cursor:
            cursor.execute(
                """INSERT INTO orders_orderline (sku_code, product_name, quantity, unit_price, is_gift, cold_chain, order_id, product_id)
                   SELECT %s, %s, 1, 99, false, false, id, %s FROM orders_order WHERE order_number ~ '^BB[0-9]{10}$'""",
                [product.sku_code, product.name, product.pk],
            )
            cursor.execute(
                """INSERT INTO orders_ordertag (tag, opened_at, order_id, resolution)
                   SELECT 'fuzzy_address', now(), id, '' FROM orders_order
                   WHERE order_number ~ '^BB[0-9]{10}$' AND substr(order_number, 3)::int % 50 = 7"""
            )
        numbers = list(Order.objects.filter(order_number__regex=r"^BB\d{10}$").values_list("order_number", flat=True))
        batch = bulk.batch_create(user=reviewer, action=BulkAction.APPROVE, params={}, order_numbers=numbers)
        someone = Actor.system("bench")
        for order in Order.objects.filter(order_number__in=numbers[::100]):
            services.order_add_note(order=order, by=someone, body="选中后有人改过")
        rss, started, cpu = _rss_mb(), time.perf_counter(), time.process_time()
        batch = bulk.batch_execute(batch_id=batch.pk)
        self._report(
            f"bulk approve of {batch.total:,} orders",
            started,
            cpu,
            rss,
            f" — done {batch.done_count:,}, refused {batch.refused_count:,}, changed by someone else {batch.conflict_count:,}",
        )

    def _export(self, count: int, user, customer) -> None:
        _insert("BX", count, customer.pk, "platform")
        filters = selectors.OrderFilters(source="platform")
        rss, started, cpu = _rss_mb(), time.perf_counter(), time.process_time()
        lines = sum(chunk.count("\n") for chunk in exports.csv_stream(user=user, filters=filters)) - 1
        self._report(f"CSV export of {lines:,} orders (streamed)", started, cpu, rss)
        with tempfile.TemporaryDirectory() as folder:
            rss, started, cpu = _rss_mb(), time.perf_counter(), time.process_time()
            rows = exports.write_xlsx(user=user, filters=filters, out=Path(folder) / "bench.xlsx")
            size = (Path(folder) / "bench.xlsx").stat().st_size / 1024 / 1024
            self._report(f".xlsx export of {rows:,} orders (write-only)", started, cpu, rss, f" — {size:.1f} MiB file")
