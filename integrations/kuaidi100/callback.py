"""The Kuaidi100 push callback's protocol (docs/protocols.md): verify `sign = MD5(param + salt)`, read
the push, find our shipment, and answer exactly `{"result":true,"returnCode":"200","message":"成功"}`;
any other answer makes Kuaidi100 push again later, which is what we want when we could not take
the push. The view that records the push and reacts to it is workflows/tracking.py's."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from django.conf import settings
from django.http import HttpRequest, JsonResponse

from integrations.kuaidi100 import client
from orders.models import Shipment

logger = logging.getLogger(__name__)


class PushRefused(Exception):
    """A push we will not take: answered with a failure, so Kuaidi100 pushes again later."""

    def __init__(self, message: str, *, http_status: int = 400):
        super().__init__(message)
        self.message = message
        self.http_status = http_status


@dataclass
class Push:
    result: client.TrackingResult
    status: str  # "polling", "shutdown", "abort", "updateall"
    message: str
    shipment: Shipment | None  # None: not ours (or deleted)


def push_read(request: HttpRequest) -> Push:
    """The signed push in a callback request; raises PushRefused."""
    param = request.POST.get("param", "")
    if not param:
        raise PushRefused("missing param")
    if not client.callback_signature_valid(param, request.POST.get("sign", ""), settings.KUAIDI100["CALLBACK_SALT"]):
        logger.warning("Kuaidi100 callback with a bad signature refused")
        raise PushRefused("bad sign", http_status=403)
    try:
        payload = json.loads(param)
        result = client.parse_result(payload.get("lastResult") or {})
    except (ValueError, AttributeError, TypeError) as exc:
        raise PushRefused("param is not the push JSON") from exc
    shipment = _shipment_for(request.GET.get("shipment", ""), result)
    if shipment is None:
        logger.warning("Kuaidi100 push for unknown shipment %s %s", result.carrier_code, result.tracking_number)
    return Push(result=result, status=str(payload.get("status", "")), message=str(payload.get("message", "")), shipment=shipment)


def refusal(exc: PushRefused) -> JsonResponse:
    return JsonResponse(
        {"result": False, "returnCode": "500", "message": exc.message},
        status=exc.http_status,
        json_dumps_params={"ensure_ascii": False},
    )


def acknowledgement() -> JsonResponse:
    return JsonResponse(client.SUCCESS_REPLY, json_dumps_params={"ensure_ascii": False})


def _shipment_for(shipment_id: str, result: client.TrackingResult) -> Shipment | None:
    shipment = Shipment.objects.filter(pk=int(shipment_id)).first() if shipment_id.isdigit() else None
    if shipment is not None and result.tracking_number and shipment.tracking_number != result.tracking_number.upper():
        return None  # the query says one parcel, the push another: trust neither
    if shipment is None and result.tracking_number:
        shipment = Shipment.objects.filter(
            tracking_number=result.tracking_number.upper(), carrier_code=result.carrier_code
        ).first()
    return shipment


def intercept_result_read(request: HttpRequest) -> client.InterceptResult:
    """The signed interception result (`param` + `sign = MD5(param + salt)`, like the tracking
    push); raises PushRefused for a missing, unsigned or wrongly signed one."""
    param = request.POST.get("param", "")
    if not param:
        raise PushRefused("缺少 param 参数")
    if not client.callback_signature_valid(param, request.POST.get("sign", ""), settings.KUAIDI100["CALLBACK_SALT"]):
        logger.warning("Kuaidi100 interception result with a bad signature refused")
        raise PushRefused("签名校验失败，结果未被接受", http_status=403)
    try:
        return client.parse_intercept_result(param)
    except (ValueError, TypeError) as exc:
        raise PushRefused("param 不是拦截结果") from exc
