"""The fake Douyin platform over HTTP, the company's three shops, and pushing to our endpoint."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from integrations.douyin import services
from integrations.douyin.fake_server import SANDBOX_SHOPS, FakeDouyin
from integrations.douyin.models import DouyinMessage, DouyinShop


@pytest.fixture
def fake_douyin(settings):
    fake = FakeDouyin(seed=15).start()
    settings.DOUYIN = {**settings.DOUYIN, "ENABLED": True, "SANDBOX": True, "BASE_URL": fake.url}
    yield fake
    fake.stop()


@pytest.fixture
def shops(fake_douyin, db) -> list[DouyinShop]:
    return [
        DouyinShop.objects.create(name=shop["name"], shop_id=shop["shop_id"], app_key=shop["app_key"], app_secret=shop["secret"])
        for shop in SANDBOX_SHOPS
    ]


def push(fake: FakeDouyin, messages: list[dict], *, secret: str | None = None, client: Client | None = None):
    """The platform's push, as it sends it, to our endpoint."""
    body, headers = fake.signed_push(messages, secret=secret)
    return (client or Client()).post(
        reverse("douyin_push"),
        data=body,
        content_type="application/json",
        headers={"app-id": headers["app-id"], "event-sign": headers["event-sign"]},
    )


def apply_all() -> None:
    """What the workers do after the push's commit (the relay does the same on its beat)."""
    for pk in DouyinMessage.objects.order_by("received_at", "pk").values_list("pk", flat=True):
        services.message_apply(message_id=pk)
