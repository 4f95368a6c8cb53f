"""The embedded filesystem broker keeps every file under the var folder: kombu's exchange tables
(its control folder) default to ./control in whatever directory a process was started from, which
is how a `control/celery.exchange` once ended up committed."""

import os
import subprocess
import sys

from tests.conftest import ROOT

DECLARE = """
from beile.celery import app
from kombu import Exchange, Queue
with app.connection_for_write() as connection:
    Queue("celery", Exchange("celery"), routing_key="celery").bind(connection.default_channel).declare()
"""


def test_the_filesystem_broker_writes_its_exchange_tables_under_var(tmp_path):
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "REDIS_URL")}
    env.update({"DEBUG": "1", "BEILE_VAR_DIR": str(tmp_path / "var"), "PYTHONPATH": str(ROOT)})
    started_in = tmp_path / "elsewhere"
    started_in.mkdir()
    finished = subprocess.run(
        [sys.executable, "-c", DECLARE], cwd=started_in, env=env, capture_output=True, text=True, timeout=60
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert (tmp_path / "var" / "broker" / "control" / "celery.exchange").exists()
    assert list(started_in.iterdir()) == []
