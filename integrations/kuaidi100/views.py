"""The Kuaidi100 push callback (PROTOCOLS.md): verify `sign = MD5(param + salt)`, ingest, and
answer exactly `{"result":true,"returnCode":"200","message":"成功"}`; any other answer makes
Kuaidi100 push again later, which is what we want when we could not take the push."""

from __future__ import annotations

import json
import logging

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from integrations.kuaidi100 import client, services
from orders.access import public_endpoint
from orders.models import Shipment

logger = logging.getLogger(__name__)


def _refuse(message: str, status: int = 400) -> JsonResponse:
    return JsonResponse({"result": False, "returnCode": "500", "message": message}, status=status, json_dumps_params={"ensure_ascii": False})


@csrf_exempt
@require_POST
@public_endpoint("Kuaidi100 pushes tracking here; authenticated by the MD5(param + salt) signature")
def callback(request: HttpRequest) -> JsonResponse:
    param = request.POST.get("param", "")
    if not param:
        return _refuse("missing param")
    if not client.callback_signature_valid(param, request.POST.get("sign", ""), settings.KUAIDI100["CALLBACK_SALT"]):
        logger.warning("Kuaidi100 callback with a bad signature refused")
        return _refuse("bad sign", status=403)
    try:
        payload = json.loads(param)
        result = client.parse_result(payload.get("lastResult") or {})
    except (ValueError, AttributeError, TypeError):
        return _refuse("param is not the push JSON")
    shipment = _shipment_for(request.GET.get("shipment", ""), result)
    if shipment is None:
        # Not ours (or deleted): acknowledge, or Kuaidi100 keeps pushing a parcel we cannot use.
        logger.warning("Kuaidi100 push for unknown shipment %s %s", result.carrier_code, result.tracking_number)
        return JsonResponse(client.SUCCESS_REPLY, json_dumps_params={"ensure_ascii": False})
    services.tracking_ingest(
        shipment=shipment, result=result, push_status=str(payload.get("status", "")), via="push", message=str(payload.get("message", ""))
    )
    return JsonResponse(client.SUCCESS_REPLY, json_dumps_params={"ensure_ascii": False})


def _shipment_for(shipment_id: str, result: client.TrackingResult) -> Shipment | None:
    shipment = Shipment.objects.filter(pk=int(shipment_id)).first() if shipment_id.isdigit() else None
    if shipment is not None and result.tracking_number and shipment.tracking_number != result.tracking_number.upper():
        return None  # the query says one parcel, the push another: trust neither
    if shipment is None and result.tracking_number:
        shipment = Shipment.objects.filter(tracking_number=result.tracking_number.upper(), carrier_code=result.carrier_code).first()
    return shipment
