"""Nothing lost when the machine is: `manage.py backup` writes the database and the media files
into one archive; `manage.py restore`, run on a "new machine" (a fresh database, an empty var/),
brings back every row of every table — orders, events, the outbox rows of a shipped order — and
the daily export file, and refuses to overwrite a database that already holds orders."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import tarfile
import uuid
from pathlib import Path

import psycopg
import pytest
from django.apps import apps
from django.core.management import call_command
from django.db import connection

from integrations.erp.exporter import daily_export_produce, today
from integrations.erp.models import DailyExport
from integrations.kuaidi100.models import TrackingSubscription
from integrations.wechat.models import CustomerMessage
from orders.access import Actor
from orders.models import Order, OrderEvent
from orders.services import order_add_note
from tests.conftest import ROOT, make_order, require_postgres
from tests.logistics_fixtures import fake_kuaidi100, fake_wechat, shipped_order  # noqa: F401 (fixtures)


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)


def tables() -> list[str]:
    return sorted({model._meta.db_table for model in apps.get_models() if model._meta.managed and not model._meta.proxy})


def postgres_rows(conninfo: dict, table: str) -> list[str]:
    """Every row of `table` as PostgreSQL's text form of the whole row: equal lists, equal data."""
    with psycopg.connect(**conninfo) as db:
        return sorted(row[0] for row in db.execute(f'SELECT t::text FROM "{table}" t'))  # noqa: S608 - our own table names


def sqlite_rows(path: Path, table: str) -> list[tuple]:
    with sqlite3.connect(path) as db:
        return sorted(db.execute(f'SELECT * FROM "{table}"').fetchall(), key=repr)  # noqa: S608 - our own table names


@pytest.mark.postgres
def test_a_postgres_backup_restores_into_a_fresh_database_with_every_row_and_file(
    transactional_db,
    fake_kuaidi100,
    fake_wechat,
    settings,
    tmp_path,  # noqa: F811
):
    require_postgres()
    settings.MEDIA_ROOT = tmp_path / "media"
    waiting = make_order(status="pending_review")
    order_add_note(order=waiting, by=Actor.system("ERP"), body="请周末送货")
    shipped = shipped_order(tracking_number="ZT7001001")
    export = daily_export_produce(business_date=today())
    # What a machine loss must not take: the shipped order's push and subscription (outbox rows),
    # the events of both orders, the daily export file.
    assert CustomerMessage.objects.filter(order=shipped).exists()
    assert TrackingSubscription.objects.filter(shipment__order=shipped).exists()
    assert OrderEvent.objects.filter(order=waiting).count() >= 1
    export_bytes = Path(export.file.path).read_bytes()

    call_command("backup", output_dir=str(tmp_path / "backups"), stdout=open(os.devnull, "w"))
    (archive,) = (tmp_path / "backups").glob("beile-backup-*.tar")
    with tarfile.open(archive) as tar:
        manifest = json.loads(tar.extractfile("manifest.json").read())
    assert manifest["engine"] == "postgresql" and manifest["counts"]["orders"] == 2
    assert manifest["media"] == [export.file.name]

    fresh = f"hf_restore_{uuid.uuid4().hex[:12]}"
    with connection.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{fresh}"')
    source = connection.settings_dict
    conninfo = {"host": source["HOST"] or "127.0.0.1", "port": source["PORT"] or 5432, "user": source["USER"]}
    if source["PASSWORD"]:
        conninfo["password"] = source["PASSWORD"]
    auth = source["USER"] + (f":{source['PASSWORD']}" if source["PASSWORD"] else "")
    new_machine = tmp_path / "new-machine"
    env = {
        **os.environ,
        "DEBUG": "1",
        "BEILE_VAR_DIR": str(new_machine),
        "DATABASE_URL": f"postgres://{auth}@{conninfo['host']}:{conninfo['port']}/{fresh}",
    }
    try:
        restored = manage("restore", str(archive), env=env)
        assert restored.returncode == 0, restored.stderr[-3000:]
        assert "postgresql database (2 orders" in restored.stdout

        for table in tables():
            original = postgres_rows({**conninfo, "dbname": source["NAME"]}, table)
            assert postgres_rows({**conninfo, "dbname": fresh}, table) == original, table
        with psycopg.connect(**conninfo, dbname=fresh) as db:
            numbers = {row[0] for row in db.execute("SELECT order_number FROM orders_order")}
            (file_name,) = db.execute("SELECT file FROM erp_dailyexport").fetchone()
        assert numbers == {waiting.order_number, shipped.order_number}
        assert (new_machine / "media" / file_name).read_bytes() == export_bytes

        # A second restore would replace the orders now there: refused, and nothing changed.
        again = manage("restore", str(archive), env=env)
        assert again.returncode != 0
        assert f"The database {fresh} already holds 2 orders" in again.stderr
        assert "--force" in again.stderr
        forced = manage("restore", str(archive), "--force", env=env)
        assert forced.returncode == 0, forced.stderr[-3000:]
        assert postgres_rows({**conninfo, "dbname": fresh}, "orders_orderevent") == postgres_rows(
            {**conninfo, "dbname": source["NAME"]}, "orders_orderevent"
        )
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{fresh}" WITH (FORCE)')
    assert DailyExport.objects.count() == 1 and Order.objects.count() == 2  # the source is untouched


def test_an_embedded_sqlite_backup_restores_on_a_new_machine(tmp_path):
    """The embedded mode (no DATABASE_URL): SQLite's online backup API, then a restore into an
    empty var/ elsewhere finds every row and the media file; a populated database is refused."""
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "REDIS_URL")}
    old, new = tmp_path / "old-machine", tmp_path / "new-machine"
    old_env, new_env = {**env, "DEBUG": "1", "BEILE_VAR_DIR": str(old)}, {**env, "DEBUG": "1", "BEILE_VAR_DIR": str(new)}
    for step in (["migrate", "-v0"], ["seed_demo", "--orders", "20"]):
        finished = manage(*step, env=old_env)
        assert finished.returncode == 0, finished.stderr[-3000:]
    upload = old / "media" / "erp" / "imports" / "2026" / "01" / "订单.csv"
    upload.parent.mkdir(parents=True)
    upload.write_text("订单号,数量\nE1,1\n", encoding="utf-8")

    backup = manage("backup", env=old_env)
    assert backup.returncode == 0, backup.stderr[-3000:]
    (archive,) = (old / "backups").glob("beile-backup-*.tar")
    restored = manage("restore", str(archive), env=new_env)
    assert restored.returncode == 0, restored.stderr[-3000:]
    with sqlite3.connect(old / "beile.sqlite3") as db:
        (orders,) = db.execute("SELECT count(*) FROM orders_order").fetchone()
    assert orders >= 20  # the demo's orders, plus the few it stages for its tour
    assert f"sqlite database ({orders} orders" in restored.stdout

    with sqlite3.connect(old / "beile.sqlite3") as db:
        names = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    assert "orders_order" in names and "orders_orderevent" in names
    for table in names:
        assert sqlite_rows(new / "beile.sqlite3", table) == sqlite_rows(old / "beile.sqlite3", table), table
    assert sqlite_rows(new / "beile.sqlite3", "orders_orderevent")  # not two empty lists
    assert (new / "media" / "erp" / "imports" / "2026" / "01" / "订单.csv").read_text(encoding="utf-8") == upload.read_text(
        encoding="utf-8"
    )

    again = manage("restore", str(archive), env=new_env)
    assert again.returncode != 0 and f"already holds {orders} orders" in again.stderr
