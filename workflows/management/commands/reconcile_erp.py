"""python manage.py reconcile_erp --date YYYY-MM-DD --erp FILE

Prints the comparison and keeps the run; exit 1 when any measure is over the 0.5% tolerance,
2 when the ERP file cannot be read."""

import datetime
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from integrations.erp.reconciliation import TOLERANCE_PCT
from integrations.erp.spreadsheet import UnreadableFile
from workflows.erp_bridge import erp_sync_check


class Command(BaseCommand):
    help = "ERP sync check: compare a business day's orders with the ERP's export or day summary."

    def add_arguments(self, parser):
        parser.add_argument("--date", required=True)
        parser.add_argument("--erp", required=True, help="The ERP's order export or day summary (CSV or .xlsx)")

    def handle(self, *args, date: str, erp: str, **options):
        try:
            day = datetime.date.fromisoformat(date)
        except ValueError as exc:
            raise CommandError(f"--date must look like 2024-05-01, not {date!r}") from exc
        try:
            run = erp_sync_check(business_date=day, erp_path=erp, erp_file_name=Path(erp).name, by="command line")
        except UnreadableFile as exc:
            self.stderr.write(f"{erp}: {exc}")
            sys.exit(2)
        rows = [
            ("orders", run.our_order_count, run.erp_order_count, run.order_count_diff_pct),
            ("total amount", run.our_total_amount, run.erp_total_amount, run.total_amount_diff_pct),
            ("refunds", run.our_refund_count, run.erp_refund_count, run.refund_count_diff_pct),
        ]
        self.stdout.write(f"ERP sync check {day.isoformat()} (run {run.pk})")
        self.stdout.write(f"{'measure':<14}{'cockpit':>16}{'ERP':>16}{'diff %':>10}")
        for name, ours, theirs, pct in rows:
            self.stdout.write(f"{name:<14}{ours!s:>16}{theirs!s:>16}{pct!s:>10}")
        self.stdout.write(f"consistency {run.consistency_rate}%")
        for label, numbers in (("only in cockpit", run.only_ours), ("only in ERP", run.only_erp)):
            if numbers:
                self.stdout.write(f"{label} ({len(numbers)}): {' '.join(numbers[:50])}")
        for item in run.amount_mismatches[:50]:
            self.stdout.write(f"amount differs {item['order_number']}: cockpit {item['ours']} / ERP {item['erp']}")
        if run.over_tolerance:
            self.stdout.write(f"OVER TOLERANCE ({TOLERANCE_PCT}%)" + (": finance and supervisors alerted" if run.alerted else ""))
            sys.exit(1)
        self.stdout.write(f"within tolerance ({TOLERANCE_PCT}%)")
