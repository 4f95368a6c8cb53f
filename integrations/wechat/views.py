"""WeChat's server callback: the URL check (GET echostr) and the template delivery report
(POST XML `TEMPLATESENDJOBFINISH`), both signed with sha1(sorted token, timestamp, nonce)."""

from __future__ import annotations

from defusedxml import DefusedXmlException, ElementTree
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from integrations.wechat import client, services
from orders.access import public_endpoint


@csrf_exempt
@require_http_methods(["GET", "POST"])
@public_endpoint("WeChat calls this with a sha1 signature over our callback token, timestamp and nonce")
def callback(request: HttpRequest) -> HttpResponse:
    if not client.callback_signature_valid(
        signature=request.GET.get("signature", ""), timestamp=request.GET.get("timestamp", ""), nonce=request.GET.get("nonce", "")
    ):
        return HttpResponseForbidden("bad signature")
    if request.method == "GET":
        return HttpResponse(request.GET.get("echostr", ""), content_type="text/plain")
    if not client.callback_signature_first_use(request.GET.get("signature", "")):
        return HttpResponseForbidden("signature already used")
    try:
        # defusedxml refuses DTDs, entities and external references (WeChat never sends them).
        root = ElementTree.fromstring(request.body, forbid_dtd=True)
    except (ElementTree.ParseError, DefusedXmlException):
        return HttpResponse("bad xml", status=400)
    if root.findtext("Event") == "TEMPLATESENDJOBFINISH":
        services.delivery_report_record(
            msgid=(root.findtext("MsgID") or "").strip(), status=(root.findtext("Status") or "").strip()
        )
    # WeChat expects "success" (or an empty body); anything else shows the user an error.
    return HttpResponse("success", content_type="text/plain")
