"""Benchmark (not a test): the SLA sweep and the supervisor's board over many orders.

Generates BENCH* orders in bulk SQL (PostgreSQL) into the configured database, replacing any
from an earlier run, then prints the time of one sweep and one board render beside naive
baselines that scan every open order in Python.
"""

import statistics
import time

from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from django.test import Client, override_settings
from django.utils import timezone

from orders.models import ACTIVE_STATUSES, Order
from workflows import sla
from workflows.models import StageRule

CLEANUP = [
    "DELETE FROM workflows_alert WHERE order_id IN (SELECT id FROM orders_order WHERE order_number LIKE 'BENCH%%')",
    "DELETE FROM orders_orderevent WHERE order_id IN (SELECT id FROM orders_order WHERE order_number LIKE 'BENCH%%')",
    "DELETE FROM orders_ordertag WHERE order_id IN (SELECT id FROM orders_order WHERE order_number LIKE 'BENCH%%')",
    "DELETE FROM orders_order WHERE order_number LIKE 'BENCH%%'",
    "DELETE FROM orders_customer WHERE phone LIKE '100%%' AND name = 'bench'",
]

# "100…" is no real mobile prefix, so bench customers never collide with real or demo ones.
CUSTOMERS = """
INSERT INTO orders_customer (phone, name, membership_level, wechat_openid, created_at)
SELECT '100' || lpad(i::text, 8, '0'), 'bench', 'regular', '', now() FROM generate_series(1, %(customers)s) AS i
"""

# Open orders: entered their stage uniformly over the last 6 h (so some are long overdue, some
# fall due every minute), 1 in 50 held, 1 in 40 rushed. The rest are finished, up to a year old.
ORDERS = """
WITH base AS (
  SELECT i,
         i <= %(active)s AS open,
         (ARRAY['pending_review','paid','picking','packed'])[1 + i %% 4] AS stage,
         CASE WHEN i <= %(active)s THEN now() - random() * interval '6 hours'
              ELSE now() - random() * interval '365 days' END AS entered
  FROM generate_series(1, %(orders)s) AS i
), shaped AS (
  SELECT base.*, CASE WHEN open THEN stage ELSE (ARRAY['completed','completed','completed','shipped','cancelled'])[1 + i %% 5] END AS status,
         open AND i %% 50 = 0 AS held, (open AND i %% 40 = 0) OR (NOT open AND i %% 50 = 0) AS rush
  FROM base
), timed AS (
  SELECT shaped.*, CASE WHEN open AND NOT held THEN entered + (SELECT time_limit FROM workflows_stagerule r WHERE r.stage = shaped.stage) END AS due,
         CASE WHEN rush THEN entered + interval '3 hours' END AS deadline
  FROM shaped
)
INSERT INTO orders_order (order_number, source, customer_id, receiver_name, receiver_phone, province, city, district, address,
  total_amount, paid_amount, shipping_fee, refund_amount, carrier_code, requires_cold_chain, buyer_message, status, version,
  stage_entered_at, cancel_reason, is_held, hold_reason, hold_note, held_at, hold_until, is_rush, rush_reason, rush_deadline,
  rush_filed_at, placed_at, created_at, updated_at, stage_paused_seconds, stage_due_at, sla_breached_at)
SELECT 'BENCH' || lpad(i::text, 8, '0'), CASE WHEN rush THEN 'rush' ELSE 'erp' END,
  (SELECT min(id) FROM orders_customer WHERE phone LIKE '100%%' AND name = 'bench') + i %% %(customers)s,
  '张三', '100' || lpad((i %% %(customers)s)::text, 8, '0'), '浙江省', '杭州市', '萧山区', '市心北路1号',
  199.00, 199.00, 0, 0, 'zhongtong', false, '', status, 1,
  entered, '', held, CASE WHEN held THEN 'stock_shortage' ELSE '' END, '', CASE WHEN held THEN entered END,
  CASE WHEN held THEN now() + interval '5 hours' END, rush, CASE WHEN rush THEN '客户急用' ELSE '' END,
  CASE WHEN rush THEN deadline END, CASE WHEN rush THEN entered END,
  entered, entered, entered, 0,
  CASE WHEN rush AND deadline < due THEN deadline ELSE due END,
  -- Steady state: what fell due before the last minute was alerted by earlier sweeps.
  CASE WHEN LEAST(due, deadline) < now() - interval '1 minute' THEN LEAST(due, deadline) + interval '30 seconds' END
FROM timed
"""


class Command(BaseCommand):
    help = "Benchmark the SLA sweep and the supervisor board over generated orders (PostgreSQL)."

    def add_arguments(self, parser):
        parser.add_argument("--orders", type=int, default=1_000_000)
        parser.add_argument("--active", type=int, default=60_000)
        parser.add_argument("--customers", type=int, default=100_000)
        parser.add_argument("--keep", action="store_true", help="Reuse BENCH orders from an earlier run.")

    def handle(self, *args, orders: int, active: int, customers: int, keep: bool, **options):
        if connection.vendor != "postgresql":
            raise CommandError("bench_sla needs PostgreSQL (DATABASE_URL).")
        if not keep:
            self._generate(orders, active, customers)
        total = Order.objects.count()
        open_count = Order.objects.filter(status__in=ACTIVE_STATUSES).count()
        self.stdout.write(f"orders: {total:,}  open: {open_count:,}")

        with override_settings(EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend"):
            started = time.perf_counter()
            first = sla.sla_sweep()
            first_ms = (time.perf_counter() - started) * 1000
            started = time.perf_counter()
            second = sla.sla_sweep()
            second_ms = (time.perf_counter() - started) * 1000
        self.stdout.write(f"sweep (indexed stage_due_at): {first_ms:7.1f} ms  ({first.breached} new breaches, {first.emailed} e-mail)")
        self.stdout.write(f"sweep again, nothing new:     {second_ms:7.1f} ms  ({second.breached} new breaches)")
        self.stdout.write(f"naive sweep (scan open orders in Python, no writes): {self._naive_sweep():7.1f} ms")

        client = Client()
        client.force_login(self._supervisor())
        timings = []
        # Production semantics: no query log (DEBUG's cursor wrapper), cached templates.
        with override_settings(DEBUG=False):
            for _ in range(41):
                started = time.perf_counter()
                response = client.get("/board/", HTTP_HOST="127.0.0.1")
                timings.append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200
        first, timings = timings[0], sorted(timings[1:])
        self.stdout.write(
            f"board /board/ server time: median {statistics.median(timings):6.1f} ms, p95 {timings[int(len(timings) * 0.95)]:6.1f} ms, "
            f"best {timings[0]:6.1f} ms, first {first:6.1f} ms ({len(response.content) // 1024} KiB)"
        )
        self.stdout.write(f"naive board (load open orders, sort in Python, no rendering): {self._naive_board():7.1f} ms")

    def _generate(self, orders: int, active: int, customers: int) -> None:
        started = time.perf_counter()
        with connection.cursor() as cursor:
            for statement in CLEANUP:
                cursor.execute(statement)
            cursor.execute(CUSTOMERS, {"customers": customers})
            cursor.execute(ORDERS, {"orders": orders, "active": active, "customers": customers})
            cursor.execute("VACUUM ANALYZE orders_order")  # autovacuum keeps the visibility map in real life
        self.stdout.write(f"generated {orders:,} orders ({active:,} open) in {time.perf_counter() - started:.1f} s")

    def _naive_sweep(self) -> float:
        """What a sweep without the due column costs: every open order read and checked."""
        started = time.perf_counter()
        now = timezone.now()
        limits = {rule.stage: rule.time_limit for rule in StageRule.objects.all()}
        overdue = [
            order.pk
            for order in Order.objects.filter(status__in=ACTIVE_STATUSES, is_held=False, sla_breached_at__isnull=True)
            .only("pk", "status", "stage_entered_at", "is_rush", "rush_deadline").iterator(chunk_size=5000)
            if order.stage_entered_at + limits[order.status] <= now or (order.is_rush and order.rush_deadline <= now)
        ]
        self.stdout.write(f"  (naive scan found {len(overdue):,} overdue, unalerted open orders)")
        return (time.perf_counter() - started) * 1000

    def _naive_board(self) -> float:
        started = time.perf_counter()
        now = timezone.now()
        rows = list(Order.objects.filter(status__in=ACTIVE_STATUSES).select_related("claimed_by"))
        sorted((o for o in rows if o.is_rush), key=lambda o: o.rush_deadline)[:40]
        sorted((o for o in rows if o.stage_due_at and o.stage_due_at <= now), key=lambda o: o.stage_due_at)[:40]
        return (time.perf_counter() - started) * 1000

    def _supervisor(self) -> User:
        user, _ = User.objects.get_or_create(username="bench_supervisor", defaults={"first_name": "bench"})
        user.groups.add(Group.objects.get(name="supervisor"))
        return user
