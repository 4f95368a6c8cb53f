"""`make demo`: migrate, load demo data, then run web + Celery worker + beat + the local fakes of
the outside systems as child processes, print where to go and how to log in, and stop them all
together on Ctrl-C (or when one of them dies)."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from beile.management.commands.seed_demo import DEMO_USERS, demo_password
from orders.models import Order

ROOT = Path(settings.BASE_DIR)


def available_port(preferred: int) -> int:
    """`preferred` when it is free (stable addresses for the demo), else any free port, so a
    second cockpit or a leftover process never stops the demo from starting."""
    for candidate in (preferred, 0):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            return probe.getsockname()[1]
    raise CommandError("No free port for the fake outside systems.")


def fake_ports() -> dict[str, int]:
    return {"kuaidi100": available_port(8101), "wechat": available_port(8102)}


def processes(host: str, port: int, fakes: dict[str, int]) -> dict[str, list[str]]:
    python = sys.executable
    commands = {
        # The production gunicorn.conf.py (log format, no control socket), sized for a laptop.
        "web": [
            python,
            "-m",
            "gunicorn",
            "-c",
            "gunicorn.conf.py",
            "beile.wsgi",
            "--bind",
            f"{host}:{port}",
            "--workers",
            "2",
            "--threads",
            "4",
            "--graceful-timeout",
            "5",
        ],
        "worker": [python, "-m", "celery", "-A", "beile", "worker", "-l", "info", "--concurrency", "2"],
        "beat": [python, "-m", "celery", "-A", "beile", "beat", "-l", "info"],
    }
    # The local fakes stand in for a provider only while it has no real credentials (sandbox).
    if settings.KUAIDI100["SANDBOX"]:
        commands["fake-kuaidi100"] = [
            python,
            "-m",
            "integrations.kuaidi100.fake_server",
            "--port",
            str(fakes["kuaidi100"]),
            "--step-seconds",
            os.environ.get("FAKE_KUAIDI100_STEP_SECONDS", "8"),
            "--first-push-seconds",
            "3",
        ]
    if settings.WECHAT["SANDBOX"]:
        commands["fake-wechat"] = [
            python,
            "-m",
            "integrations.wechat.fake_server",
            "--port",
            str(fakes["wechat"]),
            "--report-url",
            f"http://{host}:{port}/integrations/wechat/callback/",
        ]
    return commands


class Command(BaseCommand):
    help = "Run the whole cockpit locally: web, worker, beat and the fake outside systems."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--orders", type=int, default=2000, help="demo orders to create on an empty database")
        parser.add_argument(
            "--exit-when-ready", action="store_true", help="start everything, check it answers, stop (smoke test)"
        )

    def handle(self, *args, host: str, port: int, orders: int, exit_when_ready: bool, **options):
        # The demo shows a stalled parcel opening a ticket within minutes, not after 24 h, and
        # sends Kuaidi100's callbacks to this cockpit. Both only for the demo's own processes.
        os.environ.setdefault("KUAIDI100_STALL_HOURS", "0.05")
        os.environ.setdefault("PUBLIC_BASE_URL", f"http://{host}:{port}")
        call_command("migrate", interactive=False, verbosity=0)
        if not Order.objects.exists():
            self.stdout.write(f"Loading {orders} demo orders …")
            call_command("seed_demo", orders=orders, verbosity=0, stdout=open(os.devnull, "w"))
        else:
            call_command("seed_demo", orders=0, verbosity=0, stdout=open(os.devnull, "w"))  # refresh logins

        # The children run in their own sessions (so Ctrl-C reaches only us); a plain `kill` or a
        # container stop must still stop them through the `finally` below, not orphan them.
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
        fakes = fake_ports()
        # Every child (web, worker, beat) talks to the fakes wherever they were started.
        if settings.KUAIDI100["SANDBOX"]:
            os.environ["KUAIDI100_BASE_URL"] = f"http://127.0.0.1:{fakes['kuaidi100']}"
        if settings.WECHAT["SANDBOX"]:
            os.environ["WECHAT_BASE_URL"] = f"http://127.0.0.1:{fakes['wechat']}"
        children: dict[str, subprocess.Popen] = {}
        for name, command in processes(host, port, fakes).items():
            children[name] = subprocess.Popen(command, cwd=ROOT, env=os.environ.copy(), start_new_session=True)

        url = f"http://{host}:{port}/"
        try:
            self._wait_until_up(url, children)
            self._banner(url, exit_when_ready, fakes)
            if exit_when_ready:
                return
            while True:
                for name, child in children.items():
                    if child.poll() is not None:
                        raise CommandError(f"{name} stopped (exit {child.returncode}); stopping the cockpit.")
                time.sleep(1)
        except KeyboardInterrupt:
            self.stdout.write("\nStopping …")
        finally:
            # Each child's main process stops its own workers (gunicorn's arbiter, celery's pool);
            # signalling the whole group would kill those workers mid-task. The group gets
            # SIGKILL only if a child does not stop in time.
            for child in children.values():
                if child.poll() is None:
                    child.terminate()
            for child in children.values():
                try:
                    child.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(child.pid, signal.SIGKILL)

    def _wait_until_up(self, url: str, children: dict[str, subprocess.Popen]) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for name, child in children.items():
                if child.poll() is not None:
                    raise CommandError(f"{name} failed to start (exit {child.returncode}).")
            try:
                with urllib.request.urlopen(url + "login/", timeout=2) as response:  # noqa: S310 - our own http://127.0.0.1 web process
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        raise CommandError(f"The web process did not answer at {url} within 60 s.")

    def _banner(self, url: str, exit_when_ready: bool, fakes: dict[str, int]) -> None:
        mode = "PostgreSQL" if settings.DATABASES["default"]["ENGINE"].endswith("postgresql") else "SQLite (embedded)"
        broker = "Redis" if settings.REDIS_URL else "filesystem broker (embedded)"
        self.stdout.write(self.style.SUCCESS(f"\n贝乐订单驾驶舱 is running at {url}  [{mode}, {broker}]"))
        self.stdout.write("Demo logins (username / password):")
        for role, name in DEMO_USERS:
            self.stdout.write(f"  {role:<11} {demo_password(role):<24} {name}")
        if settings.KUAIDI100["SANDBOX"]:
            self.stdout.write(
                f"Kuaidi100 sandbox: http://127.0.0.1:{fakes['kuaidi100']}/ "
                "(ship a tracking number containing STALL, PROB, REFUSE or LOST to see trouble)"
            )
        if settings.WECHAT["SANDBOX"]:
            self.stdout.write(f"WeChat sandbox, the customers' phones: http://127.0.0.1:{fakes['wechat']}/")
        if not exit_when_ready:
            self.stdout.write("Press Ctrl-C to stop.\n")
