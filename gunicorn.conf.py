"""gunicorn settings for production: `gunicorn -c gunicorn.conf.py beile.wsgi` (see README).

Everything a deployment tunes comes from the environment, like the Django settings.
"""

import os
import sys
from pathlib import Path

# gunicorn reads this file before it puts the working directory on sys.path.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from gunicorn.glogging import Logger  # noqa: E402

from beile.logging import LIVE_CHECK_PATH, logging_config  # noqa: E402

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '8000')}"  # noqa: S104 - inside a container
# Synchronous workers with a few threads: the cockpit's requests are short database round
# trips; WEB_CONCURRENCY is the conventional knob (2-4 per core).
workers = int(os.environ.get("WEB_CONCURRENCY", "4"))
threads = int(os.environ.get("WEB_THREADS", "4"))
# A request that runs longer than this is stuck (a lock wait, a hung outside system): kill the
# worker rather than let it hold a database connection. Long work belongs in Celery.
timeout = int(os.environ.get("WEB_TIMEOUT", "30"))
graceful_timeout = 20
keepalive = 5
# Recycle workers now and then so a slow leak cannot grow without bound; jitter keeps them
# from all restarting at once.
max_requests = int(os.environ.get("WEB_MAX_REQUESTS", "5000"))
max_requests_jitter = max_requests // 10
# Trust X-Forwarded-Proto only from the reverse proxy in front (loopback or the compose network).
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")


class AccessLogWithoutLiveChecks(Logger):
    """gunicorn's access log without the live screens' checks that were answered (200, 304):
    every open screen asks once a second (orders/live.py), so 200 screens would write 200 lines
    a second. Left out before gunicorn builds the line's fields (every request header, the time
    formatted) and a log record, which a logging filter would only drop afterwards. Refused
    checks (403, 400, 503) are still logged."""

    def access(self, resp, req, environ, request_time):
        if resp.status_code in (200, 304) and environ.get("PATH_INFO") == LIVE_CHECK_PATH:
            return
        super().access(resp, req, environ, request_time)


logger_class = AccessLogWithoutLiveChecks
accesslog = "-"
# No personal data: no client address, no user agent, no query string (customer-service
# lookups carry phone numbers in it), no referrer. Method, path, status, bytes, milliseconds.
access_log_format = "%(m)s %(U)s %(s)s %(B)s %(M)sms"
logconfig_dict = logging_config(
    loggers={
        "gunicorn.error": {"level": os.environ.get("LOG_LEVEL", "INFO"), "propagate": True},
        "gunicorn.access": {"level": "INFO", "propagate": True},
    }
)

# No runtime control socket: it would live at one per-user path that two cockpits on one
# machine (or a demo beside the tests) would fight over; deployments restart processes instead.
control_socket_disable = True
