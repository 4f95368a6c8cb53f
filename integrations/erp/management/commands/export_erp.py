"""python manage.py export_erp --date YYYY-MM-DD --out FILE.xlsx"""

import datetime

from django.core.management.base import BaseCommand, CommandError

from integrations.erp.exporter import write_export


class Command(BaseCommand):
    help = "Write the business day's new and changed orders as the standard ERP .xlsx."

    def add_arguments(self, parser):
        parser.add_argument("--date", required=True, help="Business date (Asia/Shanghai), YYYY-MM-DD")
        parser.add_argument("--out", required=True, help="Where to write the .xlsx")

    def handle(self, *args, date: str, out: str, **options):
        try:
            day = datetime.date.fromisoformat(date)
        except ValueError as exc:
            raise CommandError(f"--date must look like 2024-05-01, not {date!r}") from exc
        orders, lines = write_export(day, out)
        self.stdout.write(f"{out}: {orders} orders, {lines} lines for {day.isoformat()}")
