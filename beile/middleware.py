import time
from collections.abc import Callable

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import Resolver404, resolve, reverse
from django.utils.cache import add_never_cache_headers
from django.views.defaults import page_not_found

from orders import live

# No inline script or style anywhere: htmx and our own JS are files under static/, so the policy
# can refuse 'unsafe-inline' and 'unsafe-eval' outright. htmx's indicator CSS is disabled in
# base.html (htmx.config.includeIndicatorStyles) for the same reason.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; media-src 'self' data:; object-src 'none'; base-uri 'self'; "
    "form-action 'self'; frame-ancestors 'none'"
)


class LiveMiddleware:
    """First in the stack, for the live screens (orders/live.py).

    Notes when each request started, before any view reads the database: a live region's
    `since`, so a change committed while the page was being read makes the screen refresh.

    Answers the live check itself, before the rest of the stack: every open screen asks once a
    second, and the check reads no session, user, language, message or CSRF token (a GET), while
    the stack was a third of its CPU (issue 14: at most half the login page's). It adds the
    headers the stack would have: the content security policy, nosniff, the referrer policy and
    the frame refusal."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.check_path = ""

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.live_since = time.time_ns()
        if not self.check_path:
            self.check_path = reverse("live_check")  # not at start-up: the URLconf imports the views
        # Any other method goes through the stack like every request (CSRF refuses a POST).
        if request.method != "GET" or request.path_info != self.check_path:
            return self.get_response(request)
        response = live.check(request)
        for header, value in live_check_headers():
            response[header] = value
        return response


def live_check_headers() -> list[tuple[str, str]]:
    """What the stack would have added to the live check's answer, which skips it (here and in
    beile/wsgi.py): the content security policy, nosniff, the referrer policy, the frame refusal."""
    return [
        ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
        ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", settings.SECURE_REFERRER_POLICY),
        ("X-Frame-Options", settings.X_FRAME_OPTIONS),
    ]


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        return response


class NoStoreForSignedInMiddleware:
    """Pages for a signed-in person (orders, phones, addresses) are never kept by the browser's
    back/forward cache, a shared computer's disk cache or a proxy: `Cache-Control: no-store`.
    Static files are answered by WhiteNoise before this runs; anonymous pages (the login page,
    the public /track/ page, /healthz) keep their own caching."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            add_never_cache_headers(response)
        return response


class CockpitNotFoundInDebugMiddleware:
    """With DEBUG on (the demo), Django answers an unknown address with its English technical
    page, bypassing handler404. This shows the cockpit's own Chinese 404 page instead, for an
    address no URL matches and for a view's Http404 alike. It sits after CommonMiddleware, which
    still turns a 404 for a missing trailing slash into its redirect."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if settings.DEBUG:
            try:
                resolve(request.path_info, getattr(request, "urlconf", None))
            except Resolver404 as exc:
                return page_not_found(request, exc)
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if settings.DEBUG and isinstance(exception, Http404):
            return page_not_found(request, exception)
        return None
