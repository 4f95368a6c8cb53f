"""The production processes start as docker-compose.yml declares them (the machines here have no
Docker engine, so they run as plain processes): web under gunicorn with DEBUG off, answering
/healthz and /login/ with WhiteNoise serving the hashed static files; a Celery worker and beat.
And Django's deployment checklist passes with the production settings."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import ROOT, database_url_for_subprocess

COMPOSE = ROOT / "docker-compose.yml"
STARTUP_SECONDS = 60


def compose_commands() -> dict[str, list[str]]:
    """{service: command} from docker-compose.yml, whose commands are one-line JSON arrays."""
    commands: dict[str, list[str]] = {}
    service = None
    for line in COMPOSE.read_text(encoding="utf-8").splitlines():
        if match := re.match(r"^  ([a-z][a-z0-9_-]*):\s*$", line):
            service = match[1]
        elif match := re.match(r"^    command:\s*(\[.*\])\s*$", line):
            commands[service] = json.loads(match[1])
    return commands


def executable(command: list[str]) -> list[str]:
    """The compose command with its program taken from this virtual environment."""
    program = command[0]
    if program == "python":
        return [sys.executable, *command[1:]]
    local = Path(sys.executable).parent / program
    found = str(local) if local.exists() else shutil.which(program)
    assert found, f"{program} (from docker-compose.yml) is not installed"
    return [found, *command[1:]]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def production_base_env() -> dict[str, str]:
    """This process's environment minus what only the test run needs: the browser tests allow
    synchronous ORM calls beside Playwright's loop, which `check --deploy` rightly refuses."""
    return {key: value for key, value in os.environ.items() if key != "DJANGO_ALLOW_ASYNC_UNSAFE"}


@pytest.fixture
def production_env(transactional_db, tmp_path) -> dict[str, str]:
    env = {
        **production_base_env(),
        "DEBUG": "0",
        "SECRET_KEY": "production-process-test-" + "k" * 40,
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "0",
        "DATABASE_URL": database_url_for_subprocess(),
        "BEILE_VAR_DIR": str(tmp_path / "var"),
        "LOG_FORMAT": "json",
        "WEB_CONCURRENCY": "2",
        "WORKER_CONCURRENCY": "1",
    }
    # Static files are collected per release, before the web starts (README, Dockerfile).
    subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"], cwd=ROOT, env=env, check=True, timeout=120)
    return env


class Processes:
    """Processes started by a test, each logging to a file; all stopped at the end."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.running: dict[str, subprocess.Popen] = {}

    def start(self, name: str, command: list[str], env: dict[str, str]) -> None:
        log = open(self.folder / f"{name}.log", "w", encoding="utf-8")  # noqa: SIM115 - closed with the process
        self.running[name] = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)

    def log(self, name: str) -> str:
        return (self.folder / f"{name}.log").read_text(encoding="utf-8", errors="replace")

    def wait_for_log(self, name: str, pattern: str) -> None:
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if re.search(pattern, self.log(name)):
                return
            if self.running[name].poll() is not None:
                pytest.fail(f"{name} exited with {self.running[name].returncode}:\n{self.log(name)[-3000:]}")
            time.sleep(0.2)
        pytest.fail(f"{name} did not log {pattern!r} within {STARTUP_SECONDS}s:\n{self.log(name)[-3000:]}")

    def stop_all(self) -> None:
        for process in self.running.values():
            if process.poll() is None:
                process.terminate()
        for process in self.running.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def processes(tmp_path):
    started = Processes(tmp_path)
    yield started
    started.stop_all()


class NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


OPENER = urllib.request.build_opener(NoRedirects)


def get(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with OPENER.open(url, timeout=5) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def wait_for_http(url: str, processes: Processes) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if processes.running["web"].poll() is not None:
            pytest.fail(f"gunicorn exited:\n{processes.log('web')[-3000:]}")
        try:
            get(url)
            return
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"gunicorn did not answer at {url}:\n{processes.log('web')[-3000:]}")


def test_compose_declares_every_process():
    commands = compose_commands()
    assert commands["web"] == ["gunicorn", "-c", "gunicorn.conf.py", "beile.wsgi"]
    assert commands["worker"][:4] == ["celery", "-A", "beile", "worker"]
    assert commands["beat"][:4] == ["celery", "-A", "beile", "beat"]
    assert commands["migrate"] == ["python", "manage.py", "migrate", "--noinput"]
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for service in ("web", "worker", "beat", "migrate"):
        assert " ".join(commands[service]) in readme, f"README does not document the {service} command"


def test_web_worker_and_beat_start_with_the_compose_commands(production_env, processes):
    commands = compose_commands()
    port = free_port()
    processes.start("web", executable(commands["web"]), {**production_env, "PORT": str(port), "HOST": "127.0.0.1"})
    processes.start("worker", executable(commands["worker"]), production_env)
    processes.start("beat", executable(commands["beat"]), production_env)
    base = f"http://127.0.0.1:{port}"
    wait_for_http(f"{base}/healthz", processes)

    status, headers, body = get(f"{base}/healthz")
    assert status == 200, body
    assert json.loads(body) == {"status": "ok", "checks": {"database": "ok", "broker": "ok"}}
    assert "no-store" in headers["Cache-Control"]

    # A customer-service style query string with a phone number must not reach the access log.
    status, headers, body = get(f"{base}/login/?q=13912345678")
    assert status == 200
    assert "unsafe-inline" not in headers["Content-Security-Policy"]
    page = body.decode()
    assert "DEBUG" not in page and "Traceback" not in page
    stylesheet = re.search(r'href="(/static/css/cockpit\.[0-9a-f]{12}\.css)"', page)
    assert stylesheet, "the login page does not link the hashed stylesheet (CompressedManifestStaticFilesStorage)"
    status, headers, body = get(base + stylesheet[1])
    assert status == 200 and body.strip()
    assert "max-age=315360000" in headers["Cache-Control"], "WhiteNoise serves hashed files as immutable"
    status, headers, _ = get(f"{base}/orders/")
    assert status == 302 and headers["Location"].startswith("/login/")

    processes.wait_for_log("worker", r"celery@\S+ ready\.")
    processes.wait_for_log("beat", r"beat: Starting")

    web_log = processes.log("web")
    access = [json.loads(line) for line in web_log.splitlines() if '"gunicorn.access"' in line]
    assert any(entry["message"].startswith("GET /login/ 200") for entry in access), web_log[-2000:]
    assert "13912345678" not in web_log and "q=" not in web_log
    assert "127.0.0.1 -" not in web_log  # no client address in the access log


def test_deployment_checklist_passes_with_production_settings():
    env = {
        **production_base_env(),
        "DEBUG": "0",
        "SECRET_KEY": "check-deploy-" + "a-long-random-looking-secret-key-value" * 2,
        "ALLOWED_HOSTS": "cockpit.example.com",
    }
    env.pop("SECURE_SSL_REDIRECT", None)
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout
