"""Store the health measures for a business day (and the days before it), e.g. after a fix to
past data: `python manage.py compute_measures --date 2026-01-20 --days 7`."""

import datetime

from django.core.management.base import BaseCommand, CommandError

from workflows.health import services
from workflows.health.measures import business_today


class Command(BaseCommand):
    help = "Compute and store the health measures for a day (default: yesterday) and optionally the days before it."

    def add_arguments(self, parser):
        parser.add_argument("--date", help="business day YYYY-MM-DD (Asia/Shanghai); default yesterday")
        parser.add_argument("--days", type=int, default=1, help="how many days, ending with --date")

    def handle(self, *args, date: str | None, days: int, **options):
        try:
            last = datetime.date.fromisoformat(date) if date else business_today() - datetime.timedelta(days=1)
        except ValueError as exc:
            raise CommandError(f"--date must look like 2026-01-20, not {date!r}.") from exc
        if days < 1:
            raise CommandError("--days must be 1 or more.")
        for offset in range(days - 1, -1, -1):
            day = last - datetime.timedelta(days=offset)
            rows = services.measures_store_day(day=day)
            shown = ", ".join(f"{row.key}={'—' if row.value is None else row.value}" for row in rows)
            self.stdout.write(f"{day}: {shown}")
