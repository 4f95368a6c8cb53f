"""Who may do what: roles are auth Groups; every view names the roles it serves."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.http import HttpRequest, HttpResponse

from orders import privacy
from orders.rules import ALL_ROLES, screens_of


def user_roles(user) -> frozenset[str]:
    if not user.is_authenticated:
        return frozenset()
    cached = getattr(user, "_beile_roles", None)
    if cached is None:
        # A signed-in request's user comes with its roles (beile/auth.py keeps both in the cache
        # until a user or group changes); any other user object reads them once.
        cached = user._beile_roles = load_roles(user.pk)
    return cached


def load_roles(user_id: int) -> frozenset[str]:
    # Plain SQL: building the ORM query costs ~1 ms of CPU here, the query itself a tenth of that.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT g.name FROM auth_group g JOIN auth_user_groups m ON m.group_id = g.id WHERE m.user_id = %s",
            [user_id],
        )
        return frozenset(name for (name,) in cursor.fetchall() if name in ALL_ROLES)


def display_phone(user, phone: str) -> str:
    """The number as this user may see it (the rule: orders/privacy.py)."""
    return privacy.display_phone(user_roles(user), phone)


def client_ip(request: HttpRequest) -> str | None:
    """The address failures are counted by (login throttling, the self-service throttle). Behind
    TRUSTED_PROXY_COUNT reverse proxies it is the address the outermost trusted proxy saw
    (X-Forwarded-For counted from the right, so a client cannot choose it by sending its own
    header); otherwise the peer address."""
    proxies = settings.TRUSTED_PROXY_COUNT
    if proxies:
        forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
        if len(forwarded) >= proxies:
            return forwarded[-proxies]
    return request.META.get("REMOTE_ADDR")


def role_required(*roles: str) -> Callable:
    """Anonymous → login page; signed in without one of `roles` → 403."""
    allowed = frozenset(roles or ALL_ROLES)

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @functools.wraps(view)
        def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if not user_roles(request.user) & allowed:
                raise PermissionDenied
            return view(request, *args, **kwargs)

        wrapped.allowed_roles = allowed  # read by the role-matrix test
        return wrapped

    return decorator


def public_endpoint(reason: str) -> Callable:
    """Marks a view that deliberately needs no login (a signed webhook, the customer's
    self-service page, the health check); the role-matrix test reads the reason."""

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        view.public_reason = reason
        return view

    return decorator


@dataclass(frozen=True)
class Actor:
    """Who does something: a signed-in user acting in a role, or a named system ("system", "ERP")."""

    name: str
    role: str = ""
    user: object | None = None

    @classmethod
    def of(cls, user, role: str = "") -> Actor:
        return cls(name=user.get_full_name() or user.get_username(), role=role, user=user)

    @classmethod
    def system(cls, name: str = "system") -> Actor:
        return cls(name=name)

    @property
    def roles(self) -> frozenset[str]:
        return user_roles(self.user) if self.user is not None else frozenset()

    @property
    def is_system(self) -> bool:
        return self.user is None


def roles_context(request: HttpRequest) -> dict:
    roles = user_roles(request.user) if hasattr(request, "user") else frozenset()
    return {"my_roles": roles, "my_screens": screens_of(roles)}
