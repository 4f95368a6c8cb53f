"""Fixtures for issue 18: the fake SMS platform and the fake WeCom robots on loopback (port 0,
real HTTP), with settings pointing at them."""

from __future__ import annotations

import pytest

from integrations.sms.fake_server import FakeSms
from integrations.wecom.fake_server import FakeWeComRobot

SMS_TOKEN = "test-sms-token"  # noqa: S105 - a test value


@pytest.fixture
def fake_sms(settings):
    fake = FakeSms(access_key_id="LTAItest", access_key_secret="test-sms-secret", sign_name="贝乐母婴").start()
    settings.SMS = {
        **settings.SMS,
        "SANDBOX": True,
        "BASE_URL": fake.url,
        "ACCESS_KEY_ID": "LTAItest",
        "ACCESS_KEY_SECRET": "test-sms-secret",
        "SIGN_NAME": "贝乐母婴",
        "TEMPLATE_STATUS": "SMS_BEILE_STATUS",
        "TEMPLATE_DELAY": "SMS_BEILE_DELAY",
        "CALLBACK_TOKEN": SMS_TOKEN,
        "PRICE_PER_SEGMENT": 0.045,
        "RATE_LIMITS": {"minute": 1, "hour": 5, "day": 10},
    }
    yield fake
    fake.stop()


@pytest.fixture
def fake_wecom(settings):
    fake = FakeWeComRobot(keys={"key-supervisor", "key-finance", "key-courier"}).start()
    settings.WECOM = {
        "SANDBOX": True,
        "WEBHOOKS": {role: fake.webhook(f"key-{role}") for role in ("supervisor", "finance", "courier")},
        "PER_MINUTE": 18,
    }
    yield fake
    fake.stop()


@pytest.fixture
def daytime(settings):
    """Quiet hours that never apply, for tests that are not about them."""
    settings.CUSTOMER_QUIET_HOURS = (0, 0)
