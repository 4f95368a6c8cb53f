"""Loaded as a pytest plugin (-p tests.environment) before Django is set up.

It points the test run at its own var/ folder (SQLite file, broker, mail) so tests never touch a
running demo, and implements the CI switch: with BEILE_REQUIRE_SERVICES=1 a test skipped for
lack of PostgreSQL, Redis or a browser fails instead.
"""

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("DEBUG", "1")
os.environ.setdefault("SECRET_KEY", "test-only-secret-key-not-for-production")
os.environ.setdefault("BEILE_VAR_DIR", str(ROOT / "var" / "test"))
os.environ.setdefault("EMAIL_BACKEND", "django.core.mail.backends.locmem.EmailBackend")

STRICT = os.environ.get("BEILE_REQUIRE_SERVICES") == "1"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if STRICT and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"BEILE_REQUIRE_SERVICES=1 and this test was skipped: {report.longrepr}"
