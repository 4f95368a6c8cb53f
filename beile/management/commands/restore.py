"""`make restore ARCHIVE=…`: put an archive written by `manage.py backup` back — the database
(into a fresh one: a database that already holds orders is refused unless --force), then the
media files into MEDIA_ROOT. Stop web, worker and beat first; start them again afterwards."""

from __future__ import annotations

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
from django.db import connection

from beile.auth import bump_generation
from beile.management.commands.backup import ARCHIVE_FORMAT, postgres_environment, table_counts

PG_RESTORE = os.environ.get("PG_RESTORE", "pg_restore")


def order_count() -> int:
    """Orders in the target database; 0 for a database without tables yet."""
    return table_counts().get("orders", 0)


class Command(BaseCommand):
    help = "Restore an archive from `manage.py backup` into a fresh database, then its media files."

    def add_arguments(self, parser):
        parser.add_argument("archive", help="the beile-backup-….tar file")
        parser.add_argument("--force", action="store_true", help="replace a database that already holds orders (they are lost)")

    def handle(self, *args, archive: str, force: bool, **options):
        path = Path(archive)
        if not path.is_file():
            raise CommandError(f"No such archive: {path}")
        try:
            tar = tarfile.open(path, "r")
        except tarfile.TarError as error:
            raise CommandError(f"{path} is not a backup archive: {error}") from error
        with tar, tempfile.TemporaryDirectory(prefix="beile-restore-") as work:
            manifest = self._manifest(tar, path)
            if manifest["engine"] != connection.vendor:
                raise CommandError(
                    f"The archive holds a {manifest['engine']} database but DATABASE_URL points at {connection.vendor}; "
                    f"restore it into a {manifest['engine']} database."
                )
            existing = order_count()
            if existing and not force:
                raise CommandError(
                    f"The database {connection.settings_dict['NAME']} already holds {existing} orders; restoring would "
                    "replace them. Restore into a fresh database, or pass --force to replace it."
                )
            tar.extract(manifest["database"], path=work, filter="data")
            copy = Path(work) / manifest["database"]
            if connection.vendor == "postgresql":
                self._restore_postgres(copy)
            else:
                self._restore_sqlite(copy)
            media = self._restore_media(tar)
        # The users and roles in the shared cache are the replaced database's (beile/auth.py).
        bump_generation()

        restored = table_counts()
        summary = ", ".join(f"{restored.get(label, 0)} {label}" for label in manifest["counts"])
        self.stdout.write(self.style.SUCCESS(f"Restored {path.name} (written {manifest['created_at']})"))
        self.stdout.write(f"  {connection.vendor} database ({summary}), {media} media files into {settings.MEDIA_ROOT}")
        differing = {
            label: (saved, restored.get(label, 0))
            for label, saved in manifest["counts"].items()
            if restored.get(label, 0) != saved
        }
        if differing:
            raise CommandError(f"The restored database differs from the archive's manifest (saved, found): {differing}")

    def _manifest(self, tar: tarfile.TarFile, path: Path) -> dict:
        try:
            member = tar.extractfile("manifest.json")
        except KeyError:
            member = None
        if member is None:
            raise CommandError(f"{path} has no manifest.json: not written by `manage.py backup`.")
        manifest = json.loads(member.read().decode("utf-8"))
        if manifest.get("format") != ARCHIVE_FORMAT:
            raise CommandError(f"{path} is backup format {manifest.get('format')}; this version reads {ARCHIVE_FORMAT}.")
        return manifest

    def _restore_postgres(self, dump: Path) -> None:
        if not shutil.which(PG_RESTORE):
            raise CommandError(f"{PG_RESTORE} is not installed (PostgreSQL client tools).")
        arguments, environment = postgres_environment(connection.settings_dict)
        connection.close()
        # --clean --if-exists: a database that `migrate` already prepared (empty tables) takes the
        # dump's tables in their place. One transaction: a failure leaves the database as it was.
        # No owners or grants: the new machine's database user owns what it restores.
        finished = subprocess.run(
            [
                PG_RESTORE,
                "--clean",
                "--if-exists",
                "--no-owner",
                "--no-privileges",
                "--single-transaction",
                "--exit-on-error",
                *arguments,
                str(dump),
            ],
            env=environment,
            capture_output=True,
            text=True,
        )
        if finished.returncode != 0:
            raise CommandError(f"pg_restore failed (exit {finished.returncode}); nothing was changed: {finished.stderr.strip()}")

    def _restore_sqlite(self, copy: Path) -> None:
        target = Path(connection.settings_dict["NAME"])
        target.parent.mkdir(parents=True, exist_ok=True)
        connection.close()
        source = sqlite3.connect(str(copy))
        destination = sqlite3.connect(str(target), timeout=30)
        try:
            # The backup API replaces the target's pages in one go, WAL file included.
            with destination:
                source.backup(destination)
        finally:
            destination.close()
            source.close()

    def _restore_media(self, tar: tarfile.TarFile) -> int:
        media_root = Path(settings.MEDIA_ROOT)
        media_root.mkdir(parents=True, exist_ok=True)
        restored = 0
        for member in tar.getmembers():
            if not member.isfile() or not member.name.startswith("media/"):
                continue
            # The "data" filter refuses absolute paths, `..` and links that leave MEDIA_ROOT.
            tar.extract(member.replace(name=member.name.removeprefix("media/")), path=media_root, filter="data")
            restored += 1
        return restored
