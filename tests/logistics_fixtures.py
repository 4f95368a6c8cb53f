"""Fixtures for the logistics tests: the fake Kuaidi100 and fake WeChat servers on loopback
(port 0, real HTTP), settings pointing at them, and helpers to ship orders."""

from __future__ import annotations

import pytest
from django.core.cache import cache

from integrations.kuaidi100.fake_server import FakeKuaidi100
from integrations.wechat import client as wechat_client
from integrations.wechat.fake_server import FakeWeChat, sandbox_openid
from orders.access import Actor
from orders.models import Customer, Order
from orders.services import order_ship
from tests.conftest import make_order
from workflows import reactions

SALT = "test-salt-9f2"


@pytest.fixture
def fake_kuaidi100(settings):
    fake = FakeKuaidi100(customer="TESTCUSTOMER", key="test-key").start()
    settings.KUAIDI100 = {
        "SANDBOX": True,
        "BASE_URL": fake.url,
        "CUSTOMER": "TESTCUSTOMER",
        "KEY": "test-key",
        "CALLBACK_SALT": SALT,
    }
    yield fake
    fake.stop()


@pytest.fixture
def fake_wechat(settings):
    fake = FakeWeChat(app_id="wxtest", app_secret="test-secret", template_id="test-template", callback_token="test-token").start()
    settings.WECHAT = {
        "SANDBOX": True,
        "BASE_URL": fake.url,
        "APP_ID": "wxtest",
        "APP_SECRET": "test-secret",
        "CALLBACK_TOKEN": "test-token",
        "TEMPLATE_ID": "test-template",
    }
    cache.delete(wechat_client.TOKEN_KEY)
    cache.delete(wechat_client.TOKEN_LOCK_KEY)
    yield fake
    fake.stop()
    cache.delete(wechat_client.TOKEN_KEY)


def bind_customer(order: Order) -> str:
    openid = sandbox_openid(order.customer.phone)
    Customer.objects.filter(pk=order.customer_id).update(wechat_openid=openid)
    order.customer.wechat_openid = openid
    return openid


def shipped_order(
    *, tracking_number: str, phone: str = "13800138000", carrier_code: str = "zhongtong", bound: bool = True
) -> Order:
    """A packed order shipped through the real service. Its reactions (subscription, push) run
    as the reactions relay runs them: the tests have no worker to receive the after-commit nudge."""
    order = make_order(status="packed", phone=phone, carrier_code=carrier_code)
    if bound:
        bind_customer(order)
    order = order_ship(order=order, by=Actor.system("WMS"), carrier_code=carrier_code, tracking_number=tracking_number)
    reactions.reactions_relay()
    return order


@pytest.fixture
def role_groups(transactional_db):
    """transactional_db flushes the role groups the migration created; put them back."""
    from django.contrib.auth.models import Group

    from orders.rules import ALL_ROLES

    for role in ALL_ROLES:
        Group.objects.get_or_create(name=role)
