"""The Douyin platform's push (消息推送), and the receiver decrypted for the waybill."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.utils.cache import add_never_cache_headers
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST

from integrations.douyin import services
from integrations.douyin.models import DouyinOrder
from orders import rules
from orders.access import Actor, public_endpoint, role_required
from orders.services import OrderError

# The platform takes only this answer as "received"; anything else makes it push again.
RECEIVED = {"code": 0, "msg": "success"}
DECRYPT_ROLES = (*sorted(rules.ACTION_ROLES["decrypt_receiver"]), rules.SUPERVISOR)


@csrf_exempt
@require_POST
@public_endpoint(
    "The Douyin platform pushes order messages here; authenticated by the event-sign header (MD5 of app key, body, secret)"
)
def push(request: HttpRequest) -> JsonResponse:
    if int(request.META.get("CONTENT_LENGTH") or 0) > services.MAX_PUSH_BYTES:
        # Refused before the body is read: a push is a few kilobytes.
        return JsonResponse({"code": 413, "msg": "推送内容过大"}, status=413, json_dumps_params={"ensure_ascii": False})
    if not (request.content_type or "").endswith("json"):
        return JsonResponse({"code": 415, "msg": "需要 application/json"}, status=415, json_dumps_params={"ensure_ascii": False})
    try:
        services.push_receive(
            app_id=request.headers.get("app-id", ""), event_sign=request.headers.get("event-sign", ""), body=request.body
        )
    except services.PushRefused as exc:
        return JsonResponse(
            {"code": exc.http_status, "msg": exc.message}, status=exc.http_status, json_dumps_params={"ensure_ascii": False}
        )
    return JsonResponse(RECEIVED)


@require_http_methods(["GET", "POST"])
@role_required(*DECRYPT_ROLES)
def receiver(request: HttpRequest, order_number: str) -> HttpResponse:
    """GET: the masked receiver and who decrypted it before. POST: decrypt it through the
    platform, logged, and show it this once (never stored, never cached)."""
    douyin_order = get_object_or_404(DouyinOrder.objects.select_related("order", "shop"), order__order_number=order_number)
    context = {"douyin_order": douyin_order, "order": douyin_order.order, "decrypts": douyin_order.decrypts.all()[:20]}
    if request.method == "POST":
        try:
            context["plain"] = services.receiver_decrypt(order=douyin_order.order, by=Actor.of(request.user))
        except OrderError as exc:
            context["error"] = str(exc)
    response = render(request, "douyin/receiver.html", context)
    add_never_cache_headers(response)
    return response
