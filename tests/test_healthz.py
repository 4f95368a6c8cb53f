"""/healthz: 200 with JSON when the database and the broker answer, 503 naming the broker when
it does not; no login needed, never cached."""

import pytest

from beile.celery import app as celery_app

pytestmark = pytest.mark.django_db


def test_healthy(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "broker": "ok"}}
    assert "no-store" in response["Cache-Control"]


def test_unreachable_broker_is_503(client, monkeypatch):
    # Port 1 on loopback: nothing listens, the connection is refused at once.
    monkeypatch.setitem(celery_app.conf, "broker_url", "redis://127.0.0.1:1/0")
    monkeypatch.setitem(celery_app.conf, "broker_write_url", None)
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "error"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["broker"].startswith("error: ")


def test_only_get(client):
    assert client.post("/healthz").status_code in (403, 405)  # CSRF or method: never an action
