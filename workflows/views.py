"""The supervisor's board (/board/), its stage rules (/board/rules/) and the rush link for sales
(/r/). Every htmx action also works as a plain form POST followed by a redirect."""

from __future__ import annotations

import datetime
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime, parse_time
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from orders import rules
from orders import services as order_services
from orders.access import Actor, role_required
from orders.models import Order, OrderStatus, RiskTag, Role, StageRule
from orders.phones import normalize_mobile
from orders.services import OrderError
from workflows import selectors, services
from workflows.models import Alert

# The board is the supervisor's: it carries their actions (acknowledge, assign). Other roles
# see their own stage's clock on each order card and the "overdue" filter of the order list.
BOARD_ROLES = rules.SCREEN_ROLES["board"]
RUSH_ROLES = rules.SCREEN_ROLES["rush"]


def _filters(params) -> selectors.BoardFilters:
    role = params.get("role", "")
    tag = params.get("tag", "")
    sort = params.get("sort", "")
    return selectors.BoardFilters(
        role=role if role in Role.values else "",
        tag=tag if tag in RiskTag.values else "",
        sort=sort if sort in selectors.SORTS else "",
    )


def _board_context(request: HttpRequest, filters: selectors.BoardFilters) -> dict:
    board = selectors.board(filters=filters, counts_may_lag=request.method == "GET")
    # The live region is as old as its oldest part: stage counts counted before the request
    # started (the shared count, maybe one a change made stale while another process recounts)
    # make the screen ask again, rather than keep them until the next change.
    request.live_since = min(request.live_since, int(board.counted_at.timestamp() * 1e9))
    return {
        "board": board,
        "filters": filters,
        "filter_query": urlencode({key: value for key, value in vars(filters).items() if value}),
        # The enums themselves: their options are written once per language and selection.
        "roles": Role,
        "board_tags": RiskTag,  # selectors.BOARD_TAGS: every reason
    }


@require_GET
@role_required(*BOARD_ROLES)
def board(request: HttpRequest) -> HttpResponse:
    context = _board_context(request, _filters(request.GET))
    if request.htmx:
        return render(request, "workflows/board.html#board-body", context)
    return render(request, "workflows/board.html", context)


def _after_board_action(request: HttpRequest, notice: str, error: str) -> HttpResponse:
    filters = _filters(request.POST)
    if request.htmx:
        context = _board_context(request, filters)
        context.update({"notice": notice, "error": error})
        return render(request, "workflows/board.html#board-body", context)
    if error:
        messages.error(request, error)
    else:
        messages.success(request, notice)
    query = urlencode({key: value for key, value in vars(filters).items() if value})
    return redirect(reverse("board") + (f"?{query}" if query else ""))


@require_POST
@role_required(*BOARD_ROLES)
def alert_acknowledge(request: HttpRequest, alert_id: int) -> HttpResponse:
    alert = get_object_or_404(Alert, pk=alert_id)
    error, notice = "", ""
    try:
        services.alert_acknowledge(alert=alert, by=Actor.of(request.user))
        notice = _("Alert acknowledged.")
    except OrderError as exc:
        error = str(exc)
    return _after_board_action(request, notice, error)


@require_POST
@role_required(*BOARD_ROLES)
def order_assign(request: HttpRequest, order_number: str) -> HttpResponse:
    order = get_object_or_404(Order, order_number=order_number)
    error, notice = "", ""
    assignee = (
        User.objects.filter(pk=request.POST.get("assignee") or 0).first()
        if (request.POST.get("assignee") or "").isdigit()
        else None
    )
    if assignee is None:
        error = _("Choose the person who should operate order %(number)s.") % {"number": order_number}
    else:
        try:
            order_services.order_assign(order=order, by=Actor.of(request.user), assignee=assignee)
            notice = _("Order %(number)s assigned to %(name)s.") % {
                "number": order_number,
                "name": assignee.get_full_name() or assignee.username,
            }
        except OrderError as exc:
            error = str(exc)
    return _after_board_action(request, notice, error)


@require_http_methods(["GET", "POST"])
@role_required(*BOARD_ROLES)
def stage_rules(request: HttpRequest) -> HttpResponse:
    rules = list(StageRule.objects.select_related("updated_by").order_by("id"))
    if request.method == "POST":
        rule = get_object_or_404(StageRule, pk=request.POST.get("rule") if (request.POST.get("rule") or "").isdigit() else 0)
        try:
            minutes = int(request.POST.get("limit_minutes", ""))
        except ValueError:
            minutes = 0
        starts = parse_time(request.POST.get("work_starts") or "") if request.POST.get("work_starts") else None
        ends = parse_time(request.POST.get("work_ends") or "") if request.POST.get("work_ends") else None
        try:
            order_services.stage_rule_update(
                rule=rule,
                by=Actor.of(request.user),
                responsible_role=request.POST.get("responsible_role", ""),
                time_limit=datetime.timedelta(minutes=minutes),
                alert_role=request.POST.get("alert_role", ""),
                work_starts=starts,
                work_ends=ends,
            )
            messages.success(
                request,
                _("Rule for %(stage)s saved; open orders in that stage have new due times.")
                % {"stage": OrderStatus(rule.stage).label},
            )
        except OrderError as exc:
            messages.error(request, str(exc))
        return redirect("stage_rules")
    for rule in rules:
        rule.limit_minutes = int(rule.time_limit.total_seconds() // 60)
    return render(request, "workflows/rules.html", {"rules": rules, "roles": Role.choices})


# --- Rush ----------------------------------------------------------------------------------


def _parse_deadline(raw: str) -> tuple[datetime.datetime | None, str]:
    if not raw.strip():
        return None, ""
    value = parse_datetime(raw.strip().replace(" ", "T"))
    if value is None:
        return None, _("Enter the time like 2026-11-24 18:00.")
    return (timezone.make_aware(value) if timezone.is_naive(value) else value), ""


@require_http_methods(["GET", "POST"])
@role_required(*RUSH_ROLES)
def rush(request: HttpRequest) -> HttpResponse:
    context: dict = {"values": {}, "errors": {}, "candidates": [], "new_order": order_services.NEW_ORDER}
    if request.method == "POST":
        values = {key: request.POST.get(key, "") for key in ("phone", "reason", "deadline", "order")}
        deadline, deadline_error = _parse_deadline(values["deadline"])
        try:
            if deadline_error:
                raise order_services.RushInvalid({"deadline": deadline_error})
            order = order_services.rush_file(
                by=Actor.of(request.user),
                phone=values["phone"],
                reason=values["reason"],
                deadline=deadline,
                order_choice=values["order"],
            )
        except order_services.RushInvalid as exc:
            mobile = normalize_mobile(values["phone"])
            context.update(
                values=values, errors=exc.errors, candidates=order_services.open_orders_of_phone(mobile) if mobile else []
            )
            return render(request, "workflows/rush.html", context, status=422 if not request.htmx else 200)
        except OrderError as exc:
            context.update(values=values, errors={"form": str(exc)})
            return render(request, "workflows/rush.html", context, status=422 if not request.htmx else 200)
        messages.success(
            request,
            _("🔥 Rush filed for order %(number)s; it is at the top of the supervisor's board.") % {"number": order.order_number},
        )
        return redirect(reverse("rush") + f"?filed={order.order_number}")
    filed = request.GET.get("filed", "")
    context["filed"] = Order.objects.filter(order_number=filed).first() if filed else None
    return render(request, "workflows/rush.html", context)


@require_GET
@role_required(*RUSH_ROLES)
def rush_candidates(request: HttpRequest) -> HttpResponse:
    """As sales type the phone: its open orders to choose from (htmx fragment)."""
    raw = request.GET.get("phone", "")
    mobile = normalize_mobile(raw)
    context = {
        "candidates": order_services.open_orders_of_phone(mobile) if mobile else [],
        "phone_complete": mobile is not None,
        "phone_typed": bool(raw.strip()),
        "values": {"order": request.GET.get("order", "")},
        "new_order": order_services.NEW_ORDER,
    }
    return render(request, "workflows/rush.html#rush-orders", context)
