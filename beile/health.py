"""GET /healthz for load balancers and orchestrators: 200 when this process can reach the
database and the Celery broker, 503 (naming what failed) when it cannot."""

from __future__ import annotations

from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from beile.celery import app as celery_app
from orders.access import public_endpoint

# A health check must answer quickly even when a dependency hangs: an orchestrator's probe
# times out after a few seconds and would otherwise see no answer at all.
BROKER_TIMEOUT_SECONDS = 2.0


def _database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _broker() -> None:
    with celery_app.connection_for_write(connect_timeout=BROKER_TIMEOUT_SECONDS) as broker:
        broker.ensure_connection(max_retries=1, timeout=BROKER_TIMEOUT_SECONDS)


CHECKS = {"database": _database, "broker": _broker}


@require_GET
@never_cache
@public_endpoint("health check for load balancers; reveals only whether dependencies answer")
def healthz(request: HttpRequest) -> JsonResponse:
    results = {}
    for name, check in CHECKS.items():
        try:
            check()
        except Exception as exc:  # noqa: BLE001 - any failure means "not healthy"; the type says which
            results[name] = f"error: {type(exc).__name__}"
        else:
            results[name] = "ok"
    healthy = all(result == "ok" for result in results.values())
    return JsonResponse({"status": "ok" if healthy else "error", "checks": results}, status=200 if healthy else 503)
