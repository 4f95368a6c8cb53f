"""python manage.py bench_erp_import [--lines 100000] [--naive-lines 5000] [--recon-orders 18000]

A benchmark, not a test: prints numbers (docs/benchmarks.md keeps them). Writes BENCH*/NAIVE*/
RECON* orders into the configured database and deletes them afterwards; run it against a
scratch database."""

import datetime
import random
import tempfile
import time
from decimal import Decimal
from pathlib import Path

from django.core.management.base import BaseCommand
from django.db import connection

from integrations.erp.importer import COLUMNS, REQUIRED, import_orders, parse_amount, parse_erp_time
from integrations.erp.models import ReconciliationRun
from integrations.erp.reconciliation import our_side, reconciliation_run
from integrations.erp.spreadsheet import read_table
from orders.models import Customer, Order, OrderLine, OrderSource, Product
from orders.phones import normalize_mobile

HEADER = ["订单号", "下单时间", "付款日期", "应付金额", "已付金额", "运费", "状态", "快递公司", "收货人姓名", "省份", "城市",
          "区县", "地址", "手机", "商品编码", "商品名称", "数量", "商品单价", "是否赠品", "订单退款金额"]
PREFIXES = ("BENCH", "NAIVE", "RECON")


def write_export(path: Path, *, prefix: str, lines: int, day: datetime.date, seed: int) -> int:
    """An ERP-style CSV with `lines` rows, 1–4 lines per order; returns the number of orders."""
    rng = random.Random(seed)
    out, written, number = [",".join(HEADER)], 0, 0
    while written < lines:
        number += 1
        count = min(rng.randint(1, 4), lines - written)
        prices = [Decimal(rng.randint(990, 29900)) / 100 for _ in range(count)]
        total = sum(prices)
        placed = f"{day:%Y-%m-%d} {rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:00"
        phone = f"13{rng.randint(0, 9)}{rng.randint(0, 99_999_999):08d}"
        refund = "10.00" if number % 50 == 0 else "0"
        for index in range(count):
            out.append(",".join([
                f"{prefix}{number:08d}", placed, placed, str(total), str(total), "0", "已付款", "中通", "王丽", "浙江省",
                "杭州市", "萧山区", f"市心北路{number}号", phone, f"BENCH-SKU-{rng.randint(0, 49):02d}", "", "1",
                str(prices[index]), "否", refund,
            ]))
        written += count
    path.write_text("\n".join(out) + "\n", encoding="utf-8-sig")
    return number


def naive_import(path: Path) -> int:
    """The baseline: the same file, one save() per row, no batching."""
    table = read_table(path, COLUMNS, REQUIRED)
    products = {product.sku_code: product for product in Product.objects.filter(sku_code__startswith="BENCH-SKU-")}
    index = table.header
    for _row_number, row in table.rows:
        phone = normalize_mobile(row[index["phone"]])
        customer, _ = Customer.objects.get_or_create(phone=phone, defaults={"name": row[index["receiver_name"]]})
        order = Order.objects.filter(order_number=row[index["order_number"]]).first()
        if order is None:
            order = Order(
                order_number=row[index["order_number"]], source=OrderSource.ERP, customer=customer,
                receiver_name=row[index["receiver_name"]], receiver_phone=phone, province=row[index["province"]],
                city=row[index["city"]], district=row[index["district"]], address=row[index["address"]],
                total_amount=parse_amount(row[index["total_amount"]]), placed_at=parse_erp_time(row[index["placed_at"]]),
            )
            order.save()
        product = products[row[index["sku_code"]]]
        OrderLine(order=order, product=product, sku_code=product.sku_code, product_name=product.name,
                  quantity=int(row[index["quantity"]]), unit_price=parse_amount(row[index["unit_price"]])).save()
    return len(table.rows)


class Command(BaseCommand):
    help = "Benchmark the ERP import (bulk vs one save() per row) and the reconciliation of one day."

    def add_arguments(self, parser):
        parser.add_argument("--lines", type=int, default=100_000)
        parser.add_argument("--naive-lines", type=int, default=5_000)
        parser.add_argument("--recon-orders", type=int, default=18_000)

    def _clean(self):
        for prefix in PREFIXES:
            Order.objects.filter(order_number__startswith=prefix).delete()

    def handle(self, *args, lines: int, naive_lines: int, recon_orders: int, **options):
        self.stdout.write(f"database: {connection.vendor} {connection.settings_dict['NAME']}")
        for n in range(50):
            Product.objects.get_or_create(
                sku_code=f"BENCH-SKU-{n:02d}", defaults={"barcode": f"BENCH-BAR-{n:02d}", "name": f"基准商品{n}", "unit_price": Decimal("59.90")}
            )
        self._clean()
        day = datetime.date(2020, 1, 1)
        with tempfile.TemporaryDirectory() as folder:
            folder = Path(folder)
            bulk_file = folder / "bulk.csv"
            orders = write_export(bulk_file, prefix="BENCH", lines=lines, day=day, seed=1)
            started = time.perf_counter()
            summary = import_orders(path=bulk_file)
            bulk_seconds = time.perf_counter() - started
            assert summary.rejected == 0 and summary.created == orders, summary.headline()
            started = time.perf_counter()
            again = import_orders(path=bulk_file)
            reimport_seconds = time.perf_counter() - started
            assert again.nothing_changed

            naive_file = folder / "naive.csv"
            write_export(naive_file, prefix="NAIVE", lines=naive_lines, day=day, seed=2)
            started = time.perf_counter()
            naive_rows = naive_import(naive_file)
            naive_seconds = time.perf_counter() - started
            self._clean()

            recon_day = datetime.date(2020, 1, 2)
            recon_file = folder / "recon.csv"
            # About 2.5 lines per order, so the ERP file of an 18,000-order day has ~45,000 rows.
            recon_lines = int(recon_orders * 2.5)
            made = write_export(recon_file, prefix="RECON", lines=recon_lines, day=recon_day, seed=3)
            import_orders(path=recon_file)
            started = time.perf_counter()
            run = reconciliation_run(business_date=recon_day, erp_path=recon_file, erp_file_name="bench", by="bench")
            recon_seconds = time.perf_counter() - started
            started = time.perf_counter()
            our_side(recon_day)
            our_seconds = time.perf_counter() - started
            ReconciliationRun.objects.filter(pk=run.pk).delete()
            self._clean()

        self.stdout.write(f"bulk import:   {lines} lines ({orders} orders) in {bulk_seconds:.2f}s = {lines / bulk_seconds:,.0f} lines/s")
        self.stdout.write(f"re-import:     {lines} lines, nothing changed, in {reimport_seconds:.2f}s = {lines / reimport_seconds:,.0f} lines/s")
        self.stdout.write(f"naive import:  {naive_rows} lines, one save() per row, in {naive_seconds:.2f}s = {naive_rows / naive_seconds:,.0f} lines/s")
        self.stdout.write(f"speed-up:      {(lines / bulk_seconds) / (naive_rows / naive_seconds):.1f}x")
        self.stdout.write(
            f"reconciliation: {made} orders / {recon_lines} ERP rows in {recon_seconds:.2f}s end to end "
            f"(our side alone {our_seconds:.2f}s), consistency {run.consistency_rate}%"
        )
