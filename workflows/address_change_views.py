"""The address-change inbox (reviewer, customer service, supervisor) and Kuaidi100's signed
interception result. The ladder and its rules: workflows/address_changes.py and orders/services.py."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from integrations.kuaidi100 import callback
from orders import rules, services
from orders.access import Actor, public_endpoint, role_required
from orders.models import AddressChangeRequest
from workflows import address_changes

ROLES = rules.SCREEN_ROLES["address_changes"]


@require_GET
@role_required(*ROLES)
def inbox(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    waiting = list(address_changes.inbox_waiting())
    for change in waiting:
        change.overdue = address_changes.is_overdue(change, now=now)
    context = {"waiting": waiting, "recent": address_changes.inbox_recent(), "now": now}
    return render(request, "workflows/address_changes.html", context)


@require_POST
@role_required(*ROLES)
def handle(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    change = get_object_or_404(AddressChangeRequest, pk=pk)
    actor = Actor.of(request.user)
    try:
        if action == "handle":
            change = address_changes.address_change_handle(change=change, by=actor)
            messages.success(
                request,
                _("Request for %(number)s: %(status)s.")
                % {"number": change.order.order_number, "status": change.get_status_display()},
            )
        elif action == "refuse":
            services.address_change_refuse(change=change, by=actor, reason=request.POST.get("reason", ""))
            messages.success(request, _("Request refused."))
        else:
            return HttpResponse(status=404)
    except services.OrderError as exc:
        messages.error(request, str(exc))
    return redirect("address_change_inbox")


@csrf_exempt
@require_POST
@public_endpoint("Kuaidi100 posts the interception result here; authenticated by the MD5(param + salt) signature")
def kuaidi100_intercept_callback(request: HttpRequest) -> JsonResponse:
    try:
        result = callback.intercept_result_read(request)
    except callback.PushRefused as refused:
        return callback.refusal(refused)
    try:
        address_changes.intercept_result_record(result=result)
    except LookupError:
        return callback.refusal(callback.PushRefused("未知的拦截任务", http_status=404))
    except services.OrderError as exc:
        return callback.refusal(callback.PushRefused(str(exc), http_status=409))
    return callback.acknowledgement()
