"""`make demo`: migrate, load demo data, then run web + Celery worker + beat + the local fakes of
the outside systems as child processes, print where to go and how to log in, and stop them all
together on Ctrl-C or SIGTERM. A child that dies (a worker killed by a hostile upload, a crashed
fake) is reported and restarted with a growing delay; the others keep running."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections import deque
from collections.abc import Callable
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
    return {
        "kuaidi100": available_port(8101),
        "wechat": available_port(8102),
        "sms": available_port(8103),
        "wecom": available_port(8104),
        "douyin": available_port(8105),
    }


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
    # One fake WeChat serves the service account and the mini-program (each its own appid).
    if settings.WECHAT["SANDBOX"] or settings.WECHAT_MINIPROGRAM["SANDBOX"]:
        commands["fake-wechat"] = [
            python,
            "-m",
            "integrations.wechat.fake_server",
            "--port",
            str(fakes["wechat"]),
            "--report-url",
            f"http://{host}:{port}/integrations/wechat/callback/",
        ]
    if settings.SMS["SANDBOX"]:
        token = settings.SMS["CALLBACK_TOKEN"]
        commands["fake-sms"] = [
            python,
            "-m",
            "integrations.sms.fake_server",
            "--port",
            str(fakes["sms"]),
            "--report-url",
            f"http://{host}:{port}/integrations/sms/report/?token={token}",
            "--reply-url",
            f"http://{host}:{port}/integrations/sms/reply/?token={token}",
        ]
    if settings.WECOM["SANDBOX"]:
        commands["fake-wecom"] = [python, "-m", "integrations.wecom.fake_server", "--port", str(fakes["wecom"])]
    if settings.DOUYIN["SANDBOX"] and settings.DOUYIN["ENABLED"]:
        # The demo's three shops (seed_demo) get a new order every FAKE_DOUYIN_STREAM_SECONDS.
        commands["fake-douyin"] = [
            python,
            "-m",
            "integrations.douyin.fake_server",
            "--port",
            str(fakes["douyin"]),
            "--push-url",
            f"http://{host}:{port}/integrations/douyin/push/",
            "--stream",
            os.environ.get("FAKE_DOUYIN_STREAM_SECONDS", "30"),
        ]
    return commands


def exit_description(code: int) -> str:
    """`exit 1`, or `exit -9, SIGKILL` for a child killed by a signal."""
    if code < 0:
        try:
            return f"exit {code}, {signal.Signals(-code).name}"
        except ValueError:
            pass
    return f"exit {code}"


class Supervisor:
    """Keeps the cockpit's children running. A child that exits while the cockpit runs is
    restarted after a delay that starts at `first_delay` and doubles up to `max_delay` (back to
    `first_delay` once a child has run `window` seconds); after `give_up_after` exits within
    `window` seconds it is left stopped, except web, without which there is no cockpit: then
    the supervisor raises and the cockpit stops. Every exit, restart and give-up is one line."""

    def __init__(
        self,
        commands: dict[str, list[str]],
        *,
        say: Callable[[str], None],
        first_delay: float = 1.0,
        max_delay: float = 30.0,
        give_up_after: int = 5,
        window: float = 60.0,
        essential: tuple[str, ...] = ("web",),
    ):
        self.commands = commands
        self.say = say
        self.first_delay, self.max_delay, self.give_up_after, self.window = first_delay, max_delay, give_up_after, window
        self.essential = essential
        self.processes: dict[str, subprocess.Popen] = {}
        self.started_at: dict[str, float] = {}
        self.delay = dict.fromkeys(commands, first_delay)
        self.exits: dict[str, deque[float]] = {name: deque() for name in commands}
        self.restart_at: dict[str, float] = {}
        self.given_up: set[str] = set()

    def start_all(self) -> None:
        for name in self.commands:
            self._start(name)

    def _start(self, name: str) -> None:
        # Each child in its own session: Ctrl-C reaches only the cockpit, which stops them in order.
        self.processes[name] = subprocess.Popen(self.commands[name], cwd=ROOT, env=os.environ.copy(), start_new_session=True)
        self.started_at[name] = time.monotonic()

    def check(self) -> None:
        """One round: note the children that exited, restart those whose delay is over."""
        now = time.monotonic()
        for name, process in self.processes.items():
            if name in self.given_up:
                continue
            if name in self.restart_at:
                if now >= self.restart_at[name]:
                    del self.restart_at[name]
                    self._start(name)
                    self.say(f"{name} restarted (pid {self.processes[name].pid}).")
                continue
            code = process.poll()
            if code is not None:
                self._exited(name, process, code, now)

    def _exited(self, name: str, process: subprocess.Popen, code: int, now: float) -> None:
        # The child's own children (Celery's pool, gunicorn's workers) notice their parent's death
        # only between tasks: a pool process busy with a long import would live on as an orphan
        # beside the restarted worker. End the whole process group.
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if now - self.started_at[name] >= self.window:
            self.delay[name] = self.first_delay
        exits = self.exits[name]
        exits.append(now)
        while exits and now - exits[0] > self.window:
            exits.popleft()
        if len(exits) >= self.give_up_after:
            message = (
                f"{name} exited {len(exits)} times within {self.window:g} s (last: {exit_description(code)}); giving up on it"
            )
            if name in self.essential:
                raise CommandError(f"{message}; stopping the cockpit.")
            self.given_up.add(name)
            self.say(f"{message}. The rest of the cockpit keeps running; fix the cause and start it again.")
            return
        delay = self.delay[name]
        self.say(f"{name} exited unexpectedly ({exit_description(code)}); restarting it in {delay:g} s.")
        self.restart_at[name] = now + delay
        self.delay[name] = min(delay * 2, self.max_delay)

    def stop_all(self) -> None:
        # Each child's main process stops its own workers (gunicorn's arbiter, celery's pool);
        # signalling the whole group would kill those workers mid-task. The group gets
        # SIGKILL only if a child does not stop in time.
        running = [process for process in self.processes.values() if process.poll() is None]
        for process in running:
            process.terminate()
        for process in running:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


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
            os.environ["KUAIDI100_API_BASE_URL"] = f"http://127.0.0.1:{fakes['kuaidi100']}"
        if settings.WECHAT["SANDBOX"]:
            os.environ["WECHAT_BASE_URL"] = f"http://127.0.0.1:{fakes['wechat']}"
        if settings.WECHAT_MINIPROGRAM["SANDBOX"]:
            os.environ["WECHAT_MINIPROGRAM_BASE_URL"] = f"http://127.0.0.1:{fakes['wechat']}"
        if settings.SMS["SANDBOX"]:
            os.environ["SMS_BASE_URL"] = f"http://127.0.0.1:{fakes['sms']}"
        if settings.WECOM["SANDBOX"]:
            # Every role's robot posts to the fake (beile/settings.py builds the webhooks from it).
            os.environ["WECOM_FAKE_URL"] = f"http://127.0.0.1:{fakes['wecom']}"
        if settings.DOUYIN["SANDBOX"]:
            os.environ["DOUYIN_BASE_URL"] = f"http://127.0.0.1:{fakes['douyin']}"
        supervisor = Supervisor(processes(host, port, fakes), say=self._say)
        supervisor.start_all()

        url = f"http://{host}:{port}/"
        try:
            self._wait_until_up(url, supervisor)
            self._banner(url, exit_when_ready, fakes)
            if exit_when_ready:
                return
            while True:
                supervisor.check()
                time.sleep(0.5)
        except KeyboardInterrupt:
            self.stdout.write("\nStopping …")
        finally:
            supervisor.stop_all()

    def _say(self, line: str) -> None:
        self.stdout.write(self.style.WARNING(f"[cockpit] {line}"))
        self.stdout.flush()

    def _wait_until_up(self, url: str, supervisor: Supervisor) -> None:
        deadline = time.monotonic() + 60
        web = supervisor.processes["web"]
        while time.monotonic() < deadline:
            # web not starting is a configuration fault (a port taken, a broken setting): say so
            # at once. The others are already supervised.
            if web.poll() is not None:
                raise CommandError(f"web failed to start ({exit_description(web.returncode)}).")
            supervisor.check()
            try:
                with urllib.request.urlopen(url + "login/", timeout=2) as response:  # noqa: S310 - our own http:// address
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
        if settings.SMS["SANDBOX"]:
            self.stdout.write(
                f"SMS sandbox, texts to customers who do not follow the service account: http://127.0.0.1:{fakes['sms']}/"
            )
        if settings.WECOM["SANDBOX"]:
            self.stdout.write(f"WeCom sandbox, each role's group robot: http://127.0.0.1:{fakes['wecom']}/")
        if settings.DOUYIN["SANDBOX"] and settings.DOUYIN["ENABLED"]:
            self.stdout.write(
                f"Douyin shop sandbox, three shops streaming orders to the push endpoint: http://127.0.0.1:{fakes['douyin']}/"
            )
        if not exit_when_ready:
            self.stdout.write("Press Ctrl-C to stop.\n")
