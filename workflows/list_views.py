"""The order list's saved views, bulk actions and exports (issue 17). The list itself is
orders/views.py `order_list`; these pages sit beside it on the floor that may know both."""

from __future__ import annotations

from django.contrib import messages
from django.db import connection
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from orders import rules, selectors
from orders import views as order_views
from orders.access import public_endpoint, role_required, user_roles
from orders.models import Carrier, HoldReason, NoteAudience, NoteKind, RiskTag, Role
from workflows import bulk, exports, saved_views
from workflows.models import BulkBatch, ExportRun, ItemOutcome, SavedView

LIST_ROLES = rules.SCREEN_ROLES["orders"]
RESULTS_SHOWN = 200


def _list_url(view: SavedView) -> str:
    return reverse("order_list") + "?" + urlencode({**view.filters, "view": view.pk})


@require_GET
@public_endpoint("sends anonymous visitors to the login page and everyone else to their pinned view or role's start page")
def landing(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        view = saved_views.pinned_view(request.user)
        if view is not None:
            return redirect(_list_url(view))
    return order_views.home(request)


# --- Saved views ---------------------------------------------------------------------------------


def _view_or_404(request: HttpRequest, view_id: int) -> SavedView:
    try:
        return saved_views.view_of(view_id=view_id, user=request.user)
    except SavedView.DoesNotExist as exc:
        raise Http404(_("No such view.")) from exc


@require_GET
@role_required(*LIST_ROLES)
def saved_view_open(request: HttpRequest, view_id: int) -> HttpResponse:
    return redirect(_list_url(_view_or_404(request, view_id)))


@require_POST
@role_required(*LIST_ROLES)
def saved_view_create(request: HttpRequest) -> HttpResponse:
    filters = selectors.OrderFilters.from_params(request.POST)
    try:
        view = saved_views.saved_view_create(
            user=request.user, name=request.POST.get("name", ""), filters=filters, share_with_role=request.POST.get("share", "")
        )
    except saved_views.ViewRefused as exc:
        messages.error(request, str(exc))
        return redirect(reverse("order_list") + "?" + urlencode(filters.to_params()))
    messages.success(request, _("View “%(name)s” saved.") % {"name": view.name})
    return redirect(_list_url(view))


@require_POST
@role_required(*LIST_ROLES)
def saved_view_delete(request: HttpRequest, view_id: int) -> HttpResponse:
    view = _view_or_404(request, view_id)
    try:
        saved_views.saved_view_delete(view=view, user=request.user)
    except saved_views.ViewRefused as exc:
        messages.error(request, str(exc))
        return redirect(_list_url(view))
    return redirect("order_list")


@require_POST
@role_required(*LIST_ROLES)
def saved_view_pin(request: HttpRequest, view_id: int) -> HttpResponse:
    view = _view_or_404(request, view_id)
    if request.POST.get("unpin"):
        saved_views.saved_view_unpin(user=request.user)
        messages.success(request, _("You land on your role's start page again."))
    else:
        saved_views.saved_view_pin(view=view, user=request.user)
        messages.success(request, _("“%(name)s” is now your landing page.") % {"name": view.name})
    return redirect(_list_url(view))


@require_GET
@role_required(*LIST_ROLES)
def saved_view_counts(request: HttpRequest) -> HttpResponse:
    """The saved-views panel with each view's count (polled by the list page, like the board)."""
    return render(request, "workflows/saved_views.html", panel_context(request))


def panel_context(request: HttpRequest) -> dict:
    pinned = saved_views.pinned_view(request.user)
    current = request.GET.get("view", "") if request.GET.get("view", "").isdigit() else ""
    return {
        "view_counts": saved_views.view_counts(request.user),
        "pinned_id": pinned.pk if pinned else None,
        "current_view": str(current),
    }


# --- Bulk actions --------------------------------------------------------------------------------


@require_POST
@role_required(*LIST_ROLES)
def bulk_start(request: HttpRequest) -> HttpResponse:
    post = request.POST
    filters = selectors.OrderFilters.from_params(post)
    view = None
    if post.get("view", "").isdigit():
        view = saved_views.visible_views(request.user).filter(pk=int(post["view"])).first()
    params = {
        key: post.get(key, "")
        for key in ("reason", "until", "note", "tag", "resolution", "carrier", "body", "kind", "audience", "assignee")
    }
    try:
        batch = bulk.batch_create(
            user=request.user,
            action=post.get("action", ""),
            params=params,
            order_numbers=post.getlist("order") if post.get("scope") != "view" else None,
            filters=filters if post.get("scope") == "view" else None,
            saved_view=view,
        )
    except bulk.BulkRefused as exc:
        messages.error(request, str(exc))
        return redirect(reverse("order_list") + "?" + urlencode({**filters.to_params(), **({"view": view.pk} if view else {})}))
    return redirect("bulk_batch", batch_id=batch.pk)


def _batch_or_404(request: HttpRequest, batch_id: int) -> BulkBatch:
    try:
        return bulk.batch_of(batch_id=batch_id, user=request.user)
    except BulkBatch.DoesNotExist as exc:
        raise Http404(_("No such batch.")) from exc


@require_GET
@role_required(*LIST_ROLES)
def bulk_batch(request: HttpRequest, batch_id: int) -> HttpResponse:
    batch = _batch_or_404(request, batch_id)
    context = {"batch": batch}
    if batch.finished:
        context["problems"] = list(
            batch.items.exclude(outcome=ItemOutcome.DONE).select_related("order").order_by("outcome", "id")[:RESULTS_SHOWN]
        )
    if request.htmx:
        return render(request, "workflows/bulk.html#bulk-progress", context)
    return render(request, "workflows/bulk.html", context)


@require_POST
@role_required(*LIST_ROLES)
def bulk_retry(request: HttpRequest, batch_id: int) -> HttpResponse:
    batch = _batch_or_404(request, batch_id)
    try:
        retry = bulk.batch_retry_refused(batch=batch, user=request.user)
    except bulk.BulkRefused as exc:
        messages.error(request, str(exc))
        return redirect("bulk_batch", batch_id=batch.pk)
    return redirect("bulk_batch", batch_id=retry.pk)


def bulk_bar_context(request: HttpRequest) -> dict:
    """What the bulk bar under the list offers this person."""
    return {
        "bulk_actions": bulk.actions_for(user_roles(request.user)),
        # The enums themselves: their options are written once ({% options %}).
        "hold_reasons": HoldReason,
        "risk_tags": RiskTag,
        "carriers": Carrier,
        "note_kinds": NoteKind,
        "note_audiences": NoteAudience,
        "share_roles": [(value, label) for value, label in Role.choices if value in user_roles(request.user)]
        if rules.SUPERVISOR not in user_roles(request.user)
        else Role,
        "assignees": _assignees() if rules.SUPERVISOR in user_roles(request.user) else [],
    }


def _assignees() -> list[tuple[str, str]]:
    """(username, display name) of every active person in a role, by username. Plain SQL: as an
    ORM query with User instances it was a seventh of the list page's CPU (issue 14)."""
    roles = ", ".join(["%s"] * len(Role.values))
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT DISTINCT u.username, u.first_name, u.last_name FROM auth_user u"  # noqa: S608 - placeholders only
            " JOIN auth_user_groups m ON m.user_id = u.id JOIN auth_group g ON g.id = m.group_id"
            f" WHERE u.is_active AND g.name IN ({roles}) ORDER BY u.username",
            Role.values,
        )
        # User.get_full_name() or the username, as the template showed a person before.
        return [(username, f"{first} {last}".strip() or username) for username, first, last in cursor.fetchall()]


# --- Exports -------------------------------------------------------------------------------------


@require_GET
@role_required(*LIST_ROLES)
def export_csv(request: HttpRequest) -> StreamingHttpResponse:
    filters = selectors.OrderFilters.from_params(request.GET)
    response = StreamingHttpResponse(
        exports.csv_stream(user=request.user, filters=filters), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="{exports.csv_filename()}"'
    return response


@require_POST
@role_required(*LIST_ROLES)
def export_xlsx(request: HttpRequest) -> HttpResponse:
    run = exports.export_start(user=request.user, filters=selectors.OrderFilters.from_params(request.POST))
    return redirect("export_run", export_id=run.pk)


def _export_or_404(request: HttpRequest, export_id: int) -> ExportRun:
    try:
        return exports.export_of(run_id=export_id, user=request.user)
    except ExportRun.DoesNotExist as exc:
        raise Http404(_("No such export.")) from exc


@require_GET
@role_required(*LIST_ROLES)
def export_run(request: HttpRequest, export_id: int) -> HttpResponse:
    run = _export_or_404(request, export_id)
    if request.htmx:
        return render(request, "workflows/export.html#export-progress", {"run": run})
    return render(request, "workflows/export.html", {"run": run})


@require_GET
@role_required(*LIST_ROLES)
def export_download(request: HttpRequest, export_id: int) -> FileResponse:
    run = _export_or_404(request, export_id)
    if not run.file:
        raise Http404(_("The file is not ready."))
    return FileResponse(run.file.open("rb"), as_attachment=True, filename=run.file.name.rsplit("/", 1)[-1])
