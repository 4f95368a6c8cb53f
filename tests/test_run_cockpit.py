"""`make demo` on a fresh machine: run_cockpit on the embedded defaults (SQLite, filesystem
broker) migrates, seeds, starts web + worker + beat, answers, prints where to go and how to log in;
it restarts a child that dies and stops them all on SIGTERM."""

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import pytest
from django.core.management.base import CommandError

from beile.management.commands.run_cockpit import Supervisor
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
        # web, worker, beat and the five fake outside systems (Kuaidi100, WeChat, SMS, WeCom, Douyin)
        assert len(children) == 8
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


def test_a_killed_worker_is_restarted_while_web_keeps_answering(tmp_path):
    """A hostile upload that kills the Celery worker (MemoryError, the OOM killer: SIGKILL) must
    not stop the demo: the cockpit reports the exit, restarts the worker (and ends the dead
    worker's pool, which would otherwise hold its tasks), web keeps its pid and answers."""
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
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in cockpit.stdout], daemon=True).start()  # type: ignore[union-attr]

    def wait_for_line(fragment: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=0.5)
            except queue.Empty:
                assert cockpit.poll() is None, f"run_cockpit stopped (exit {cockpit.returncode}) waiting for {fragment!r}"
                continue
            if fragment in line:
                return line
        raise AssertionError(f"no line with {fragment!r} within {timeout} s")

    def child_pids() -> dict[str, int]:
        found = {}
        for pid in subprocess.run(["pgrep", "-P", str(cockpit.pid)], capture_output=True, text=True).stdout.split():
            command = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode()
            for name, marker in (("web", "gunicorn"), ("worker", "celery -A beile worker"), ("beat", "celery -A beile beat")):
                if marker in command:
                    found[name] = int(pid)
        return found

    def children(pid: int) -> list[int]:
        return [int(child) for child in subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()]

    gone = lambda pid: not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] == "Z"  # noqa: E731
    try:
        wait_for_line("is running at", 180)
        before = child_pids()
        worker = before["worker"]
        # "is running at" means web answers; the worker may still be forking its pool (seen in CI).
        deadline = time.monotonic() + 60
        while not (pool := children(worker)):
            assert time.monotonic() < deadline, "the worker's prefork pool never started"
            time.sleep(0.5)
        os.kill(worker, signal.SIGKILL)

        assert "worker exited unexpectedly (exit -9, SIGKILL); restarting it in 1 s." in wait_for_line("worker exited", 20)
        restarted = wait_for_line("worker restarted (pid ", 20)
        new_worker = int(restarted.split("(pid ")[1].split(")")[0])
        assert new_worker != worker
        wait_for_line(" ready.", 60)  # the new worker's Celery banner: it consumes again
        after = child_pids()
        assert after["worker"] == new_worker
        assert after["web"] == before["web"] and after["beat"] == before["beat"]  # the others were left alone
        assert all(gone(pid) for pid in pool), "the dead worker's pool processes live on"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/login/", timeout=5) as response:
            assert response.status == 200
        assert cockpit.poll() is None

        children = list(after.values())
        cockpit.send_signal(signal.SIGTERM)  # and stopping still stops everything, the new worker too
        cockpit.wait(timeout=40)
        deadline = time.monotonic() + 20
        while not all(gone(pid) for pid in children) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert all(gone(pid) for pid in children), children
    finally:
        if cockpit.poll() is None:
            cockpit.kill()


def test_a_child_that_keeps_crashing_is_restarted_with_backoff_then_given_up(tmp_path):
    """The supervisor's rule, with real processes and short delays: delays double, a crash loop
    ends in one clear give-up line for that child while the others keep running; a web that keeps
    crashing stops the cockpit (there is nothing to use without it)."""
    said: list[str] = []
    supervisor = Supervisor(
        {
            "fake-wechat": [sys.executable, "-c", "raise SystemExit(3)"],
            "beat": [sys.executable, "-c", "import time; time.sleep(60)"],
        },
        say=said.append,
        first_delay=0.1,
        max_delay=0.4,
        give_up_after=4,
        window=60,
    )
    supervisor.start_all()
    steady = supervisor.processes["beat"].pid
    try:
        deadline = time.monotonic() + 20
        while "fake-wechat" not in supervisor.given_up and time.monotonic() < deadline:
            supervisor.check()
            time.sleep(0.02)
        assert said[0:6:2] == [
            f"fake-wechat exited unexpectedly (exit 3); restarting it in {delay} s." for delay in ("0.1", "0.2", "0.4")
        ]
        assert all(line.startswith("fake-wechat restarted (pid ") for line in said[1:6:2])
        assert said[6:] == [
            "fake-wechat exited 4 times within 60 s (last: exit 3); giving up on it. "
            "The rest of the cockpit keeps running; fix the cause and start it again."
        ]
        supervisor.check()
        assert len(said) == 7  # given up: no more restarts
        assert supervisor.processes["beat"].pid == steady and supervisor.processes["beat"].poll() is None
    finally:
        supervisor.stop_all()

    web = Supervisor(
        {"web": [sys.executable, "-c", "raise SystemExit(1)"]}, say=said.append, first_delay=0.05, give_up_after=2, window=60
    )
    web.start_all()
    deadline = time.monotonic() + 10
    with pytest.raises(CommandError, match="web exited 2 times within 60 s .*stopping the cockpit"):
        while time.monotonic() < deadline:
            web.check()
            time.sleep(0.02)
