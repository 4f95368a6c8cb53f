"""Saved views of the order list (issue 17): a name for a set of the list's filters, private or
shared with one role, and the one a person lands on. Reads and writes both live here; what a
view selects is orders/selectors.py `filtered_orders`, run as the person looking (so "mine" and
"waiting for me" are always the viewer's, and their screen's phone masking applies)."""

from __future__ import annotations

from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils.translation import gettext as _

from orders import rules, selectors
from orders.access import user_roles
from workflows.models import SavedView, ViewPin

MAX_NAME = 60


class ViewRefused(Exception):
    pass


def visible_views(user) -> QuerySet[SavedView]:
    """Views a person may see: their own and those shared with one of their roles. A supervisor
    sees the supervisor's shared views, not every role's (each role's defaults are its own)."""
    return SavedView.objects.filter(Q(owner=user) | Q(shared_with_role__in=user_roles(user)))


def view_of(*, view_id: int, user) -> SavedView:
    """The view, or SavedView.DoesNotExist for one this person may not see (a 404, never a hint)."""
    return visible_views(user).get(pk=view_id)


def filters_of(view: SavedView) -> selectors.OrderFilters:
    return selectors.OrderFilters.from_params(view.filters)


def view_counts(user) -> list[tuple[SavedView, int]]:
    views = list(visible_views(user))
    return [(view, selectors.filtered_orders(user=user, filters=filters_of(view)).count()) for view in views]


def _may_edit(view: SavedView, user) -> bool:
    if view.owner_id == user.pk:
        return True
    roles = user_roles(user)
    # A shared view belongs to the role: a supervisor keeps the shared views in order.
    return bool(view.shared_with_role) and rules.SUPERVISOR in roles


def saved_view_create(*, user, name: str, filters: selectors.OrderFilters, share_with_role: str = "") -> SavedView:
    name = (name or "").strip()
    if not name:
        raise ViewRefused(_("Give the view a name."))
    if len(name) > MAX_NAME:
        raise ViewRefused(_("A view's name has at most %(limit)d characters.") % {"limit": MAX_NAME})
    roles = user_roles(user)
    if share_with_role and share_with_role not in roles and rules.SUPERVISOR not in roles:
        # Sharing with a role one does not hold would push views onto other people's screens.
        raise ViewRefused(_("You can share a view only with a role you have."))
    if share_with_role and share_with_role not in rules.ALL_ROLES:
        raise ViewRefused(_("Choose the role to share with."))
    return SavedView.objects.create(name=name, owner=user, shared_with_role=share_with_role, filters=filters.to_params())


def saved_view_delete(*, view: SavedView, user) -> None:
    if not _may_edit(view, user):
        raise ViewRefused(_("Only the view's owner or a supervisor may delete it."))
    view.delete()


def saved_view_pin(*, view: SavedView, user) -> ViewPin:
    with transaction.atomic():
        pin, _created = ViewPin.objects.update_or_create(user=user, defaults={"view": view})
    return pin


def saved_view_unpin(*, user) -> None:
    ViewPin.objects.filter(user=user).delete()


def pinned_view(user) -> SavedView | None:
    """The person's landing view, if they still may see it (a role taken away unpins in effect)."""
    pin = ViewPin.objects.filter(user=user).select_related("view").first()
    if pin is None or not visible_views(user).filter(pk=pin.view_id).exists():
        return None
    return pin.view
