import os
from http import HTTPStatus
from urllib.parse import parse_qs

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "beile.settings")
django_application = get_wsgi_application()

# Imported once Django is set up (get_wsgi_application above).
from django.conf import settings  # noqa: E402
from django.http import parse_cookie  # noqa: E402
from django.urls import reverse  # noqa: E402

from beile.middleware import live_check_headers  # noqa: E402
from orders import live  # noqa: E402

LIVE_CHECK_PATH = reverse("live_check")
# Read once: settings do not change in a running process.
SESSION_COOKIE_NAME = settings.SESSION_COOKIE_NAME
CHECK_HEADERS = live_check_headers()


def application(environ, start_response):
    """Django, except the live screens' check (orders/live.py): every open screen asks once a
    second, so under gunicorn it is answered here, before Django builds a request, runs its
    signals and its handler: half of a check's CPU at 200 open screens (docs/benchmarks.md).
    The same answer as the view's (live.answer); no session, user or database is involved."""
    if environ.get("PATH_INFO") != LIVE_CHECK_PATH or environ.get("REQUEST_METHOD") != "GET":
        return django_application(environ, start_response)
    status, token = live.answer(
        cookie=parse_cookie(environ.get("HTTP_COOKIE", "")).get(SESSION_COOKIE_NAME, ""),
        key=environ.get("HTTP_X_LIVE_KEY", ""),
        watch=parse_qs(environ.get("QUERY_STRING", "")).get("watch", [""])[0],
        seen=environ.get("HTTP_IF_NONE_MATCH", ""),
    )
    body = token.encode() if status == 200 else b""
    headers = [*live.answer_headers(status, token), *CHECK_HEADERS, ("Content-Length", str(len(body)))]
    if status == 200:
        headers.append(("Content-Type", "text/html; charset=utf-8"))
    start_response(f"{status} {HTTPStatus(status).phrase}", headers)
    return [body]
