"""The order list's saved-views panel and bulk bar, drawn here so the list's own view
(orders/views.py, the ground floor) stays unaware of the floor above it."""

from django import template

from workflows import list_views

register = template.Library()


@register.inclusion_tag("workflows/_saved_views_slot.html", takes_context=True)
def saved_views_panel(context):
    """A slot the panel loads into (and refreshes every 15 s): the counts cost one query per view,
    which the list's own page (its query count is pinned) does not wait for."""
    request = context["request"]
    view = request.GET.get("view", "")
    return {"current_view": view if view.isdigit() else ""}


@register.inclusion_tag("workflows/_bulk_bar.html", takes_context=True)
def bulk_bar(context):
    request = context["request"]
    page = context.get("page")
    return {
        "request": request,
        "csrf_token": context.get("csrf_token"),
        "filter_params": page.filters.to_params() if page else {},
        "current_view": request.GET.get("view", "") if request.GET.get("view", "").isdigit() else "",
        **list_views.bulk_bar_context(request),
    }
