"""python manage.py import_orders FILE [--dry-run]

Exit 0: every row imported (or already up to date; warnings, marked "!", do not change it); 1: some
rows were rejected; 2: the file cannot be read (damaged, encrypted, over a limit: see the README)."""

import sys

from django.core.management.base import BaseCommand

from integrations.erp.importer import import_orders
from integrations.erp.spreadsheet import UnreadableFile


class Command(BaseCommand):
    help = "Import an ERP order export (CSV or .xlsx)."

    def add_arguments(self, parser):
        parser.add_argument("file")
        parser.add_argument("--dry-run", action="store_true", help="Show what would change; write nothing.")

    def handle(self, *args, file: str, dry_run: bool, **options):
        try:
            summary = import_orders(path=file, dry_run=dry_run)
        except UnreadableFile as exc:
            self.stderr.write(f"{file}: {exc}")
            sys.exit(2)
        self.stdout.write(summary.headline())
        self.stdout.write(
            f"created={summary.created} updated={summary.updated} unchanged={summary.unchanged} "
            f"rejected={summary.rejected} rows={summary.total_rows} rejected_rows={summary.rejected_rows}"
        )
        for change in summary.changes:
            if change["action"] == "updated":
                self.stdout.write(f"  ~ {change['order_number']}: {', '.join(change['fields'])}")
        for error in summary.errors:
            self.stdout.write(f"  row {error.row} [{error.column}] {error.order_number}: {error.reason}")
        if summary.errors_omitted:
            self.stdout.write(f"  … {summary.errors_omitted} more problems counted, not listed")
        for warning in summary.warnings:
            self.stdout.write(f"  ! row {warning.row} [{warning.column}] {warning.order_number}: {warning.reason}")
        if summary.warnings_omitted:
            self.stdout.write(f"  … {summary.warnings_omitted} more warnings counted, not listed")
        if summary.rejected:
            sys.exit(1)
