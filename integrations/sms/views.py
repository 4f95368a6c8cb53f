"""The SMS platform's pushes: delivery receipts (SmsReport) and customers' replies (SmsUp),
each a JSON array POSTed to a URL that carries our callback token."""

from __future__ import annotations

import json

from django.http import HttpRequest, HttpResponseForbidden, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from integrations.sms import client, services
from orders.access import public_endpoint

MAX_BODY = 1_000_000


def _read(request: HttpRequest) -> list[dict] | None:
    if len(request.body) > MAX_BODY:
        return None
    try:
        items = json.loads(request.body or b"[]")
    except ValueError:
        return None
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        return None
    return items


# The platform expects {"code": 0, "msg": "成功"}; anything else makes it push again.
def _ok() -> JsonResponse:
    return JsonResponse({"code": 0, "msg": "成功"}, json_dumps_params={"ensure_ascii": False})


@csrf_exempt
@require_POST
@public_endpoint("The SMS platform pushes delivery receipts here; authenticated by the token in the URL")
def report(request: HttpRequest):
    if not client.callback_token_valid(request.GET.get("token", "")):
        return HttpResponseForbidden("bad token")
    items = _read(request)
    if items is None:
        return JsonResponse({"code": 1, "msg": "bad body"}, status=400)
    services.receipts_record(items)
    return _ok()


@csrf_exempt
@require_POST
@public_endpoint("The SMS platform pushes customers' replies (退订) here; authenticated by the token in the URL")
def reply(request: HttpRequest):
    if not client.callback_token_valid(request.GET.get("token", "")):
        return HttpResponseForbidden("bad token")
    items = _read(request)
    if items is None:
        return JsonResponse({"code": 1, "msg": "bad body"}, status=400)
    services.replies_record(items)
    return _ok()
