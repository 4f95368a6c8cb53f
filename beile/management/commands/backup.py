"""`make backup`: one timestamped archive holding a consistent copy of the database and the media
files (ERP imports as uploaded, daily exports), for `manage.py restore` on the same or a new machine.

The archive is a plain tar (the dump is already compressed, the spreadsheets are zips):
  manifest.json      what was saved: engine, time, row counts, media files
  database.dump      PostgreSQL: `pg_dump -Fc`, one snapshot of the whole database
  database.sqlite3   embedded mode: SQLite's online backup API, consistent while others write
  media/…            MEDIA_ROOT, copied after the database: every file a saved row names was
                     written before that row committed, so it is in the archive too
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction

ARCHIVE_FORMAT = 1
PG_DUMP = os.environ.get("PG_DUMP", "pg_dump")
# Counted into the manifest so that a restore can say what it brought back.
COUNTED_TABLES = {"orders": "orders_order", "events": "orders_orderevent", "customer messages": "workflows_customermessage"}


def postgres_environment(database: dict) -> tuple[list[str], dict[str, str]]:
    """libpq connection arguments for pg_dump / pg_restore from Django's settings (the password
    travels in the environment, never on a command line that `ps` shows)."""
    arguments = ["--dbname", database["NAME"]]
    if database.get("HOST"):
        arguments += ["--host", database["HOST"]]
    if database.get("PORT"):
        arguments += ["--port", str(database["PORT"])]
    if database.get("USER"):
        arguments += ["--username", database["USER"]]
    environment = {**os.environ}
    if database.get("PASSWORD"):
        environment["PGPASSWORD"] = database["PASSWORD"]
    return arguments, environment


def table_counts(cursor=None) -> dict[str, int]:
    """Rows of the COUNTED_TABLES seen through `cursor` (default: the configured database)."""
    if cursor is None:
        with connection.cursor() as own:
            return table_counts(own)
    if isinstance(cursor, sqlite3.Cursor):
        existing = {row[0] for row in cursor.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    else:
        existing = set(connection.introspection.table_names(cursor))
    counts = {}
    for label, table in COUNTED_TABLES.items():
        if table in existing:
            cursor.execute(f'SELECT COUNT(*) FROM "{table}"')  # noqa: S608 - our own table names
            counts[label] = cursor.fetchone()[0]
    return counts


class Command(BaseCommand):
    help = "Write a consistent copy of the database and the media files into one timestamped archive."

    def add_arguments(self, parser):
        parser.add_argument(
            "--output-dir", default=None, help="where the archive goes (default: var/backups under BEILE_VAR_DIR)"
        )

    def handle(self, *args, output_dir: str | None, **options):
        folder = Path(output_dir) if output_dir else Path(settings.VAR_DIR) / "backups"
        folder.mkdir(parents=True, exist_ok=True)
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
        archive = folder / f"beile-backup-{stamp}.tar"
        media_root = Path(settings.MEDIA_ROOT)

        with tempfile.TemporaryDirectory(prefix="beile-backup-") as work:
            work_dir = Path(work)
            if connection.vendor == "postgresql":
                database_member = "database.dump"
                tool_version, counts = self._dump_postgres(work_dir / database_member)
            elif connection.vendor == "sqlite":
                database_member = "database.sqlite3"
                tool_version, counts = self._copy_sqlite(work_dir / database_member)
            else:
                raise CommandError(f"No backup method for the {connection.vendor} database.")
            # Media after the database (see the module docstring); the backups folder may live
            # under var/, never under MEDIA_ROOT, but skip it anyway rather than archive archives.
            media_files = (
                sorted(
                    path for path in media_root.rglob("*") if path.is_file() and folder.resolve() not in path.resolve().parents
                )
                if media_root.exists()
                else []
            )
            manifest = {
                "format": ARCHIVE_FORMAT,
                "created_at": datetime.datetime.now(datetime.UTC).isoformat(),
                "engine": connection.vendor,
                "database": database_member,
                "tool": tool_version,
                "counts": counts,
                "media": [path.relative_to(media_root).as_posix() for path in media_files],
            }
            (work_dir / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")

            # Written beside the final name, then renamed: a half-written archive never looks complete.
            partial = archive.with_name(archive.name + ".part")
            try:
                with tarfile.open(partial, "w") as tar:
                    tar.add(work_dir / "manifest.json", arcname="manifest.json")
                    tar.add(work_dir / database_member, arcname=database_member)
                    for path in media_files:
                        tar.add(path, arcname=f"media/{path.relative_to(media_root).as_posix()}")
                os.replace(partial, archive)
            finally:
                partial.unlink(missing_ok=True)

        summary = ", ".join(f"{count} {label}" for label, count in counts.items())
        self.stdout.write(self.style.SUCCESS(f"Backup written: {archive}"))
        self.stdout.write(f"  {connection.vendor} database ({summary}), {len(media_files)} media files")

    def _dump_postgres(self, target: Path) -> tuple[str, dict[str, int]]:
        if not shutil.which(PG_DUMP):
            raise CommandError(f"{PG_DUMP} is not installed (PostgreSQL client tools, the server's major version or newer).")
        arguments, environment = postgres_environment(connection.settings_dict)
        # pg_dump reads one snapshot for the whole run. It is exported from this transaction, so
        # the manifest's counts are of exactly the rows the dump holds, while others keep writing.
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            cursor.execute("SELECT pg_export_snapshot()")
            snapshot = cursor.fetchone()[0]
            counts = table_counts(cursor)
            # -Fc: the compressed custom format that pg_restore reads.
            finished = subprocess.run(
                [PG_DUMP, "--format=custom", "--snapshot", snapshot, "--file", str(target), *arguments],
                env=environment,
                capture_output=True,
                text=True,
            )
        if finished.returncode != 0:
            raise CommandError(f"pg_dump failed (exit {finished.returncode}): {finished.stderr.strip()}")
        return subprocess.run([PG_DUMP, "--version"], capture_output=True, text=True).stdout.strip(), counts

    def _copy_sqlite(self, target: Path) -> tuple[str, dict[str, int]]:
        source = sqlite3.connect(str(connection.settings_dict["NAME"]), timeout=30)
        copy = sqlite3.connect(str(target))
        try:
            # The online backup API copies a consistent state even while web and worker write.
            with copy:
                source.backup(copy)
            counts = table_counts(copy.cursor())  # of the copy itself
        finally:
            copy.close()
            source.close()
        return f"sqlite {sqlite3.sqlite_version}", counts
