"""The health page (supervisors, finance), its CSV, the orders behind each number, and the
status-check tasks the sampled people answer."""

from __future__ import annotations

import datetime

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from orders import rules
from orders.access import role_required
from orders.exports import csv_writer
from orders.models import OrderStatus
from orders.services import OrderError
from workflows.health import douyin_feed, selectors, services
from workflows.health.measures import MEASURES_BY_KEY, business_today, describe_detail
from workflows.health.models import ConsistencyTask

HEALTH_ROLES = rules.SCREEN_ROLES["health"]
CHECKER_ROLES = rules.SCREEN_ROLES["status_check"]


@require_GET
@role_required(*HEALTH_ROLES)
def health_page(request: HttpRequest) -> HttpResponse:
    return render(request, "health/page.html", {"rows": selectors.health_rows(), "today": business_today()})


@require_GET
@role_required(*HEALTH_ROLES)
def health_csv(request: HttpRequest) -> HttpResponse:
    today = business_today()
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="health-{today:%Y-%m-%d}.csv"'
    response.write("\ufeff")  # Excel opens UTF-8 Chinese correctly only with the BOM
    writer = csv_writer(response)  # formula-safe (orders/exports.py)
    writer.writerow([_("Measure"), _("Target"), _("Day"), _("Value"), _("Sample size"), _("Details"), _("Status"), _("Method")])
    states = {"good": _("on target"), "bad": _("off target"), "none": _("no data yet")}
    for row in selectors.health_rows():
        writer.writerow(
            [
                row.measure.label,
                row.measure.target_text(),
                today.isoformat(),
                "" if row.today.value is None else row.today.value,
                row.today.sample_size,
                row.detail_text,
                states[row.state],
                row.measure.method,
            ]
        )
    return response


@require_GET
@role_required(*HEALTH_ROLES)
def douyin_feed_page(request: HttpRequest) -> HttpResponse:
    mode, rows = douyin_feed.feed_rows()
    return render(request, "health/douyin_feed.html", {"mode": mode, "rows": rows, "now": timezone.now()})


@require_GET
@role_required(*HEALTH_ROLES)
def health_behind(request: HttpRequest, key: str) -> HttpResponse:
    measure = MEASURES_BY_KEY.get(key)
    if measure is None:
        raise Http404(_("No such measure."))
    if measure.behind is None:
        return redirect(measure.behind_href())
    today = business_today()
    try:
        day = datetime.date.fromisoformat(request.GET["day"]) if request.GET.get("day") else today
    except ValueError as exc:
        raise Http404(_("Give the day as YYYY-MM-DD.")) from exc
    value = selectors.measure_on(measure=measure, day=day, today=today)
    return render(
        request,
        "health/behind.html",
        {
            "measure": measure,
            "day": day,
            "is_today": day == today,
            "value": value,
            "value_text": measure.format(value.value if value else None),
            "detail_text": describe_detail(value.detail) if value else "",
            "rows": measure.behind(day=day),
            "breakdown": measure.breakdown(day=day) if measure.breakdown else None,
            "previous_day": day - datetime.timedelta(days=1),
            "next_day": day + datetime.timedelta(days=1) if day < today else None,
        },
    )


@require_GET
@role_required(*CHECKER_ROLES)
def status_checks(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "health/checks.html",
        {
            "open_tasks": selectors.open_status_checks(user=request.user),
            "answered_tasks": selectors.answered_status_checks(user=request.user),
            "statuses": OrderStatus.choices,
        },
    )


@require_POST
@role_required(*CHECKER_ROLES)
def status_check_answer(request: HttpRequest, task_id: int) -> HttpResponse:
    task = get_object_or_404(ConsistencyTask, pk=task_id, assignee=request.user)
    try:
        services.consistency_answer(task=task, by=request.user, answer=request.POST.get("answer", ""))
    except OrderError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(
            request, _("Thank you: your answer for order %(number)s is recorded.") % {"number": task.sample.order.order_number}
        )
    return redirect("health:checks")
