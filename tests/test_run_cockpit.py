"""`make demo` on a fresh machine: run_cockpit on the embedded defaults (SQLite, filesystem
broker) migrates, seeds, starts web + worker + beat, answers, prints where to go and how to log in."""

import os
import signal
import socket
import subprocess
import sys
import time

from beile.management.commands.seed_demo import DEMO_USERS, demo_password
from tests.conftest import ROOT


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_run_cockpit_starts_on_the_embedded_defaults(tmp_path):
    port = free_port()
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "REDIS_URL")}
    env.update({"DEBUG": "1", "BEILE_VAR_DIR": str(tmp_path / "var")})
    finished = subprocess.run(
        [sys.executable, "manage.py", "run_cockpit", "--exit-when-ready", "--port", str(port), "--orders", "50"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    output = finished.stdout + finished.stderr
    assert finished.returncode == 0, output[-3000:]
    assert f"is running at http://127.0.0.1:{port}/  [SQLite (embedded), filesystem broker (embedded)]" in finished.stdout
    for role, _name in DEMO_USERS:
        assert f"{role:<11} {demo_password(role)}" in finished.stdout
    assert (tmp_path / "var" / "beile.sqlite3").exists()


def test_stopping_run_cockpit_stops_its_children(tmp_path):
    """`kill` (or a container stop) sends SIGTERM: web, worker, beat and the fakes must not live on."""
    port = free_port()
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "REDIS_URL")}
    env.update({"DEBUG": "1", "BEILE_VAR_DIR": str(tmp_path / "var"), "PYTHONUNBUFFERED": "1"})
    cockpit = subprocess.Popen(
        [sys.executable, "manage.py", "run_cockpit", "--port", str(port), "--orders", "50"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert cockpit.stdout is not None
        deadline = time.monotonic() + 180
        while "is running at" not in cockpit.stdout.readline():
            assert time.monotonic() < deadline and cockpit.poll() is None, "run_cockpit did not come up"
        children = [
            int(pid) for pid in subprocess.run(["pgrep", "-P", str(cockpit.pid)], capture_output=True, text=True).stdout.split()
        ]
        assert len(children) == 5  # web, worker, beat and the two fake outside systems
        cockpit.send_signal(signal.SIGTERM)
        cockpit.wait(timeout=40)
        stopped = lambda pid: not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"  # noqa: E731
        deadline = time.monotonic() + 20
        while not all(stopped(pid) for pid in children) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert all(stopped(pid) for pid in children), children
    finally:
        if cockpit.poll() is None:
            cockpit.kill()
