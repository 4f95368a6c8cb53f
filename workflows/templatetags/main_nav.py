"""The top bar's links. They are the same for everyone with the same screens and language, so
they are written once per screens, language and script prefix: as ~35 template nodes they cost
~0.3 ms of every signed-in page (issue 14). The status-check badge is the user's own and is read
on every page."""

import html

from django import template
from django.urls import get_script_prefix, reverse
from django.utils.safestring import mark_safe
from django.utils.translation import get_language, gettext

from workflows.health.models import ConsistencyTask

register = template.Library()

# (the screen that shows the link, or None for everyone; URL name; element id; label)
BEFORE_BADGE = (
    (None, "order_list", "", "Orders"),
    ("health", "health:page", "nav-health", "Health"),
)
AFTER_BADGE = (
    ("erp", "erp_home", "nav-erp", "ERP bridge"),
    ("products", "product_list", "nav-products", "Products"),
    ("lookup", "lookup", "nav-lookup", "Customer lookup"),
    ("pda", "pda", "nav-pda", "Packing station"),
    ("tickets", "ticket_list", "nav-tickets", "Tickets"),
    ("board", "board", "nav-board", "Board"),
    ("rush", "rush", "nav-rush", "Rush"),
    ("address_changes", "address_change_inbox", "nav-address-changes", "Address changes"),
)
# Written once per key; the keys are few (role sets × languages × script prefixes).
_written: dict[tuple, tuple[str, str]] = {}


def _links(links, screens: frozenset[str]) -> str:
    written = []
    for screen, name, element_id, label in links:
        if screen is None or screen in screens:
            id_attribute = f' id="{element_id}"' if element_id else ""
            flame = "🔥" if name == "rush" else ""
            written.append(f'<a href="{html.escape(reverse(name))}"{id_attribute}>{flame}{html.escape(gettext(label))}</a>')
    return "\n      ".join(written)


def _open_status_checks(user) -> int:
    """The badge: status checks waiting for this user (served by the open_status_checks index)."""
    return ConsistencyTask.objects.filter(assignee=user, answered_at__isnull=True).count()


@register.simple_tag(takes_context=True)
def main_nav(context) -> str:
    screens = context["my_screens"]
    key = (screens, get_language(), get_script_prefix())
    if key not in _written:
        _written[key] = (_links(BEFORE_BADGE, screens), _links(AFTER_BADGE, screens))
    before, after = _written[key]
    badge = ""
    if "status_check" in screens and (count := _open_status_checks(context["request"].user)):
        badge = (
            f'\n      <a href="{html.escape(reverse("health:checks"))}" id="nav-status-checks">'
            f'{html.escape(gettext("Status check"))} <span class="chip warn">{count}</span></a>'
        )
    return mark_safe(before + badge + ("\n      " + after if after else ""))  # noqa: S308 - every part escaped above
