"""One settings module for every deployment; everything that differs comes from the environment.

Embedded (the default, `make demo`): SQLite under var/ and kombu's filesystem broker, so a fresh
machine needs no server. Production: DATABASE_URL (PostgreSQL) and REDIS_URL, DEBUG off.
"""

import datetime
import os
from pathlib import Path

import dj_database_url
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

from beile.logging import logging_config

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("BEILE_VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def env_bool(name: str, default: bool = False) -> bool:
    return os.environ.get(name, str(default)).strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DEBUG")
SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.")
    SECRET_KEY = "insecure-development-key-only-for-debug"  # noqa: S105 - DEBUG only
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]" if DEBUG else "")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "template_partials",
    "axes",
    "beile",
    "orders",
    "workflows",
    "workflows.health",
    "integrations.erp",
    "workflows.frontline",
    "integrations.kuaidi100",
    "integrations.wechat",
    "integrations.sms",
    "integrations.wecom",
    "integrations.douyin",
    "integrations.mail",
]

MIDDLEWARE = [
    # First: when a request starts is a live screen's "since"; it answers the live check itself.
    "beile.middleware.LiveMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "beile.middleware.ContentSecurityPolicyMiddleware",
    "beile.middleware.NoStoreForSignedInMiddleware",
    "beile.middleware.CockpitNotFoundInDebugMiddleware",
    # Last, as django-axes requires: it turns a locked-out login into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "beile.urls"
WSGI_APPLICATION = "beile.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.i18n",
                "orders.access.roles_context",
            ],
        },
    },
]

# --- Database ---------------------------------------------------------------------------------
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{VAR_DIR / 'beile.sqlite3'}"),
        conn_max_age=int(os.environ.get("DB_CONN_MAX_AGE", "60")),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web, worker and beat share one file in the embedded mode: WAL lets readers run beside the
    # writer, IMMEDIATE takes the write lock at BEGIN so two writers queue instead of deadlocking.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
    # A file, not memory, so that a Celery worker started by a test opens the same database.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}
elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Parameters bound by the server, so psycopg prepares a statement once a connection has run it
    # prepare_threshold times: an approval's statements are then neither parsed nor planned again
    # (issue 14: PostgreSQL's CPU per transition). Django leaves this off for connection poolers;
    # DB_PREPARE_THRESHOLD=off turns it off for one in transaction mode (pgbouncer < 1.21).
    threshold = os.environ.get("DB_PREPARE_THRESHOLD", "5")
    if threshold != "off":
        DATABASES["default"].setdefault("OPTIONS", {}).update({"server_side_binding": True, "prepare_threshold": int(threshold)})
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Broker and cache -------------------------------------------------------------------------
REDIS_URL = os.environ.get("REDIS_URL", "")
BROKER_DIR = VAR_DIR / "broker"
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    # A request enqueues after commit and, with the broker down, leaves the row to the outbox
    # relay. kombu's default is three connection attempts 2 s and 4 s apart: 6 s added to every
    # such request while Redis is away (tests/test_faults.py). Fail fast; the relay catches up.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2}
    CACHES = {
        "default": {
            # Django's, reusing its Redis client (beile/cache.py).
            "BACKEND": "beile.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "beile",
        }
    }
else:
    # kombu's filesystem transport: web, worker and beat exchange messages through files. Its
    # exchange tables go to control_folder, which defaults to ./control in the working directory;
    # kombu creates only the last level of it, so every folder is made here.
    for folder in ("out", "processed", "control"):
        (BROKER_DIR / folder).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "out"),
        "data_folder_out": str(BROKER_DIR / "out"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
    }
    # A file cache is shared by every local process, which the token cache and locks need.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
        }
    }

CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "Asia/Shanghai"
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_WORKER_CONCURRENCY = int(os.environ.get("WORKER_CONCURRENCY", "4"))
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER")
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
# Periodic work is declared here so that one beat process sees the whole schedule.
CELERY_BEAT_SCHEDULE: dict = {
    "release-expired-holds": {"task": "orders.tasks.release_expired_holds", "schedule": 60.0},
    # Exceptions whose reason releases itself (stock arrived, paid in full, address confirmed, date reached).
    "release-exceptions": {"task": "orders.tasks.release_exceptions", "schedule": 60.0},
    # The health self-check: yesterday's measures frozen after midnight; the day's five
    # cross-role status checks handed out at 10:00, when every side is at work.
    "health-store-yesterday": {
        "task": "workflows.health.tasks.store_yesterdays_measures",
        "schedule": crontab(hour=0, minute=20),
    },
    "health-sample-status-checks": {
        "task": "workflows.health.tasks.sample_status_checks",
        "schedule": crontab(hour=10, minute=0),
    },
    # Yesterday's ERP export, produced and kept shortly after midnight (idempotent per date).
    "erp-daily-export": {"task": "integrations.erp.tasks.produce_daily_export", "schedule": crontab(hour=0, minute=20)},
    # ERP import runs whose worker died (no heartbeat within the lease) are marked failed.
    "erp-reap-import-runs": {"task": "integrations.erp.tasks.reap_import_runs", "schedule": 60.0},
    "kuaidi100-relay-subscriptions": {"task": "integrations.kuaidi100.tasks.relay_subscriptions", "schedule": 30.0},
    "wechat-relay-customer-messages": {"task": "integrations.wechat.tasks.relay_customer_messages", "schedule": 15.0},
    "wechat-relay-shipping-uploads": {"task": "integrations.wechat.tasks.relay_shipping_uploads", "schedule": 15.0},
    "sms-relay": {"task": "integrations.sms.tasks.relay_sms", "schedule": 15.0},
    "wecom-relay": {"task": "integrations.wecom.tasks.relay_robot_messages", "schedule": 15.0},
    # Douyin shop intake (integrations/douyin): the pull that catches what a push missed, the
    # relay of unapplied messages, unsent write-backs and unanswered address changes, and the
    # feed's health (silence, an expiring token) for the supervisor.
    "douyin-pull-orders": {"task": "integrations.douyin.tasks.pull_orders", "schedule": 120.0, "options": {"expires": 110}},
    "douyin-relay": {"task": "integrations.douyin.tasks.relay", "schedule": 30.0, "options": {"expires": 25}},
    "douyin-feed-watch": {"task": "workflows.tasks.douyin_feed_watch", "schedule": 300.0, "options": {"expires": 280}},
    # A WeChat push the customer cannot receive (not following, blocked) goes by SMS
    # (workflows/notifications.py); and the delay push before they ask (workflows/delays.py).
    "notifications-sms-fallback": {"task": "workflows.tasks.sms_fallback", "schedule": 10.0},
    "delays-scan": {"task": "workflows.tasks.delays_scan", "schedule": 30.0, "options": {"expires": 25}},
    # Tracking (workflows/tracking.py): the fallback poll of silent parcels, and the watch scan
    # that opens tickets for stalled parcels and refused subscriptions.
    "tracking-poll-silent-shipments": {"task": "workflows.tasks.poll_silent_shipments", "schedule": 300.0},
    "tracking-watch-shipments": {"task": "workflows.tasks.watch_shipments", "schedule": 60.0},
    # Every minute, so a breach is alerted within 60 s of its due time; a sweep that waited
    # longer than that in the queue is dropped, the next one covers it. It also retries every
    # alert e-mail that failed (workflows/alerts.py).
    "sla-sweep": {"task": "workflows.tasks.sla_sweep", "schedule": 60.0, "options": {"expires": 55}},
    # Reactions a crash or a broker outage left undone after a status change (workflows/reactions.py).
    "workflows-relay-reactions": {"task": "workflows.tasks.relay_reactions", "schedule": 30.0},
    # Ghost orders (workflows/ghosts.py): shipped in one system, no sign of the parcel in another.
    "workflows-ghost-check": {"task": "workflows.tasks.ghost_check", "schedule": 900.0, "options": {"expires": 850}},
    # Bulk batches a lost task or a dead worker left queued or running (workflows/bulk.py).
    "workflows-resume-bulk-batches": {"task": "workflows.tasks.resume_bulk_batches", "schedule": 60.0},
}
# How long the systems may disagree about a shipped order before the ghost check opens an
# exception (shipped 12 h ago and still no carrier pickup scan: a parcel still in the sorting area).
GHOST_ORDER_WINDOW = datetime.timedelta(hours=float(os.environ.get("GHOST_ORDER_WINDOW_HOURS", "12")))

# --- Auth -------------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    "beile.throttling.LoginThrottleBackend",  # refuses a locked-out username + address first
    # Django's ModelBackend, the signed-in user and roles read from the cache (beile/auth.py).
    "beile.auth.CachedModelBackend",
]
# django-axes: 5 wrong passwords for one username from one address lock that pair out for 15
# minutes (a colleague on another machine, or the same person on their phone, is not affected).
AXES_FAILURE_LIMIT = int(os.environ.get("LOGIN_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = datetime.timedelta(minutes=int(os.environ.get("LOGIN_COOLOFF_MINUTES", "15")))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "beile.throttling.lockout_response"
# Behind a reverse proxy REMOTE_ADDR is the proxy: say how many proxies set X-Forwarded-For
# (TRUSTED_PROXY_COUNT=1 behind one nginx) so each person is counted by their own address.
TRUSTED_PROXY_COUNT = int(os.environ.get("TRUSTED_PROXY_COUNT", "0"))
AXES_CLIENT_IP_CALLABLE = "orders.access.client_ip"  # also counts /track/ failures (selfservice.py)
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# --- Language and time ------------------------------------------------------------------------
LANGUAGE_CODE = "zh-hans"
LANGUAGES = [("zh-hans", "简体中文"), ("en", "English")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "Asia/Shanghai"
USE_I18N = True
USE_TZ = True

# --- Static files -----------------------------------------------------------------------------
STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # WhiteNoise warns at start-up about a missing root
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
MEDIA_ROOT = VAR_DIR / "media"
MEDIA_URL = "/media/"

# --- E-mail -----------------------------------------------------------------------------------
EMAIL_BACKEND = os.environ.get(
    "EMAIL_BACKEND",
    "django.core.mail.backends.filebased.EmailBackend" if DEBUG else "django.core.mail.backends.smtp.EmailBackend",
)
EMAIL_FILE_PATH = str(VAR_DIR / "mail")
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = int(os.environ.get("EMAIL_PORT", "25"))
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS")
EMAIL_TIMEOUT = int(os.environ.get("EMAIL_TIMEOUT", "10"))
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "cockpit@beile.example")
ALERT_EMAILS = env_list("ALERT_EMAILS")

# --- Outside systems (each provider reads only its own block) ---------------------------------
# DEBUG without real credentials: the local fakes that run_cockpit starts, shown as "sandbox" in
# the UI (never silently fake). Without DEBUG and without credentials a provider is "off".
# The sandbox values match integrations/<provider>/fake_server.py.
KUAIDI100_SANDBOX = DEBUG and not os.environ.get("KUAIDI100_KEY")
KUAIDI100 = {
    "SANDBOX": KUAIDI100_SANDBOX,
    "BASE_URL": os.environ.get(
        "KUAIDI100_BASE_URL", "http://127.0.0.1:8101" if KUAIDI100_SANDBOX else "https://poll.kuaidi100.com"
    ),
    "CUSTOMER": os.environ.get("KUAIDI100_CUSTOMER", "SANDBOXCUSTOMER0001" if KUAIDI100_SANDBOX else ""),
    "KEY": os.environ.get("KUAIDI100_KEY", "sandbox-kuaidi100-key" if KUAIDI100_SANDBOX else ""),
    "CALLBACK_SALT": os.environ.get("KUAIDI100_CALLBACK_SALT", "sandbox-salt" if KUAIDI100_SANDBOX else ""),
    # The label/order API (interceptOrder) lives on another host and signs with key + secret.
    "API_BASE_URL": os.environ.get(
        "KUAIDI100_API_BASE_URL", "http://127.0.0.1:8101" if KUAIDI100_SANDBOX else "https://api.kuaidi100.com"
    ),
    "SECRET": os.environ.get("KUAIDI100_SECRET", "sandbox-kuaidi100-secret" if KUAIDI100_SANDBOX else ""),
}
# Issue 5: no new tracking event for 24 h is an exception (a ticket, a push, the answer says so);
# read by workflows/notifications.py only. The demo shortens it (run_cockpit sets the variable,
# which keeps the name it had when Kuaidi100's block held it).
TRACKING_STALL_HOURS = float(os.environ.get("KUAIDI100_STALL_HOURS", "24"))
# Issue 13: an address-change request is due this many minutes after it arrives (the inbox's
# clock); the health measure's target for open → outcome is separate (2 h).
ADDRESS_CHANGE_DUE_MINUTES = int(os.environ.get("ADDRESS_CHANGE_DUE_MINUTES", "30"))
# How long a worker's claim on an outbox or subscription row lasts before another may retry it
# (a worker killed mid-send). Under WeChat's 10-minute client_msg_id window, so a resend after
# a crash is deduplicated by WeChat.
INTEGRATION_CLAIM_SECONDS = float(os.environ.get("INTEGRATION_CLAIM_SECONDS", "120"))
WECHAT_SANDBOX = DEBUG and not os.environ.get("WECHAT_APP_SECRET")
WECHAT = {
    "SANDBOX": WECHAT_SANDBOX,
    "BASE_URL": os.environ.get("WECHAT_BASE_URL", "http://127.0.0.1:8102" if WECHAT_SANDBOX else "https://api.weixin.qq.com"),
    "APP_ID": os.environ.get("WECHAT_APP_ID", "wxsandbox00000beile" if WECHAT_SANDBOX else ""),
    "APP_SECRET": os.environ.get("WECHAT_APP_SECRET", "sandbox-wechat-secret" if WECHAT_SANDBOX else ""),
    "CALLBACK_TOKEN": os.environ.get("WECHAT_CALLBACK_TOKEN", "sandbox-wechat-token" if WECHAT_SANDBOX else ""),
    "TEMPLATE_ID": os.environ.get("WECHAT_TEMPLATE_ID", "sandbox-order-status-template" if WECHAT_SANDBOX else ""),
}
# The company's WeChat mini-program storefront (its own appid, secret and access token; the
# merchant id its payments were made under): shipping information upload (integrations/wechat).
WECHAT_MINIPROGRAM_SANDBOX = DEBUG and not os.environ.get("WECHAT_MINIPROGRAM_APP_SECRET")
WECHAT_MINIPROGRAM = {
    "SANDBOX": WECHAT_MINIPROGRAM_SANDBOX,
    "BASE_URL": os.environ.get(
        "WECHAT_MINIPROGRAM_BASE_URL", "http://127.0.0.1:8102" if WECHAT_MINIPROGRAM_SANDBOX else "https://api.weixin.qq.com"
    ),
    "APP_ID": os.environ.get("WECHAT_MINIPROGRAM_APP_ID", "wxminisandbox0beile" if WECHAT_MINIPROGRAM_SANDBOX else ""),
    "APP_SECRET": os.environ.get(
        "WECHAT_MINIPROGRAM_APP_SECRET", "sandbox-miniprogram-secret" if WECHAT_MINIPROGRAM_SANDBOX else ""
    ),
    "MCH_ID": os.environ.get("WECHAT_MINIPROGRAM_MCH_ID", "1900000109" if WECHAT_MINIPROGRAM_SANDBOX else ""),
}
# Inbound status events (POST /api/v1/events): one HMAC secret per source system,
# INBOUND_EVENT_SECRETS="WMS=…,ERP=…". DEBUG has fixed demo secrets so the README's curl works.
INBOUND_EVENT_SECRETS = dict(item.split("=", 1) for item in env_list("INBOUND_EVENT_SECRETS") if "=" in item)
if DEBUG and not INBOUND_EVENT_SECRETS:
    INBOUND_EVENT_SECRETS = {"WMS": "demo-wms-secret", "ERP": "demo-erp-secret"}
# Where links in messages and e-mails point to (the public address of this cockpit).
# SMS (Alibaba Cloud SendSms, integrations/sms): the second channel to customers.
SMS_SANDBOX = DEBUG and not os.environ.get("SMS_ACCESS_KEY_SECRET")
SMS = {
    "SANDBOX": SMS_SANDBOX,
    "BASE_URL": os.environ.get("SMS_BASE_URL", "http://127.0.0.1:8103" if SMS_SANDBOX else "https://dysmsapi.aliyuncs.com"),
    "ACCESS_KEY_ID": os.environ.get("SMS_ACCESS_KEY_ID", "LTAIsandboxbeile" if SMS_SANDBOX else ""),
    "ACCESS_KEY_SECRET": os.environ.get("SMS_ACCESS_KEY_SECRET", "sandbox-sms-secret" if SMS_SANDBOX else ""),
    "SIGN_NAME": os.environ.get("SMS_SIGN_NAME", "贝乐母婴" if SMS_SANDBOX else ""),
    # The approved template codes: the order-status push and the delay push.
    "TEMPLATE_STATUS": os.environ.get("SMS_TEMPLATE_STATUS", "SMS_BEILE_STATUS"),
    "TEMPLATE_DELAY": os.environ.get("SMS_TEMPLATE_DELAY", "SMS_BEILE_DELAY"),
    "CALLBACK_TOKEN": os.environ.get("SMS_CALLBACK_TOKEN", "sandbox-sms-token" if SMS_SANDBOX else ""),
    # CNY per billed segment (the health page's SMS cost per day).
    "PRICE_PER_SEGMENT": float(os.environ.get("SMS_PRICE_PER_SEGMENT", "0.045")),
    # The carriers' per-phone limits for notification SMS.
    "RATE_LIMITS": {
        "minute": int(os.environ.get("SMS_LIMIT_PER_MINUTE", "1")),
        "hour": int(os.environ.get("SMS_LIMIT_PER_HOUR", "5")),
        "day": int(os.environ.get("SMS_LIMIT_PER_DAY", "10")),
    },
}
# The health page's target for the SMS cost per day, in yuan.
SMS_DAILY_BUDGET = float(os.environ.get("SMS_DAILY_BUDGET", "50"))
# WeCom group robots (integrations/wecom): one webhook per role, WECOM_WEBHOOK_<ROLE> (the key in
# the URL is the credential). In DEBUG without any, every role posts to the local fake robot.
WECOM_SANDBOX = DEBUG and not any(key.startswith("WECOM_WEBHOOK_") for key in os.environ)
WECOM_FAKE_URL = os.environ.get("WECOM_FAKE_URL", "http://127.0.0.1:8104")
WECOM = {
    "SANDBOX": WECOM_SANDBOX,
    "WEBHOOKS": {
        role: os.environ.get(f"WECOM_WEBHOOK_{role.upper()}")
        or (f"{WECOM_FAKE_URL}/cgi-bin/webhook/send?key=sandbox-{role}" if WECOM_SANDBOX else "")
        for role in ("sales", "reviewer", "dispatcher", "packer", "courier", "service", "finance", "supervisor")
    },
    # About 20 messages per minute per robot (docs/protocols.md): we keep under it, batching.
    "PER_MINUTE": int(os.environ.get("WECOM_PER_MINUTE", "18")),
}
# Douyin shop intake (integrations/douyin). Each shop's credentials (app key, secret, tokens) are
# a DouyinShop row (admin, seed_demo), several per company. Off unless enabled; in DEBUG without
# DOUYIN_LIVE it is the sandbox: the local fake platform (make demo starts it).
DOUYIN_SANDBOX = DEBUG and not env_bool("DOUYIN_LIVE")
DOUYIN = {
    "ENABLED": env_bool("DOUYIN_ENABLED") or DOUYIN_SANDBOX,
    "SANDBOX": DOUYIN_SANDBOX,
    "BASE_URL": os.environ.get(
        "DOUYIN_BASE_URL", "http://127.0.0.1:8105" if DOUYIN_SANDBOX else "https://openapi-fxg.jinritemai.com"
    ),
    # Feed health: a shop that usually gets messages and has had none for this long is "silent";
    # a token this close to its expiry (the pull refreshes a day ahead) is alerted.
    "SILENCE_MINUTES": int(os.environ.get("DOUYIN_SILENCE_MINUTES", "30")),
    "TOKEN_WARN_HOURS": int(os.environ.get("DOUYIN_TOKEN_WARN_HOURS", "12")),
}
# The delay push before they ask (workflows/delays.py): no pushes at night, urgent ones excepted.
CUSTOMER_QUIET_HOURS = (
    int(os.environ.get("CUSTOMER_QUIET_FROM_HOUR", "21")),
    int(os.environ.get("CUSTOMER_QUIET_UNTIL_HOUR", "8")),
)
# A parcel's new ETA after a delay is the old one (or now) plus this many hours.
DELAY_ETA_SLACK_HOURS = float(os.environ.get("DELAY_ETA_SLACK_HOURS", "24"))
# A parcel normally travels this long after shipping (a stage breach's new ETA).
CARRIER_TRANSIT_HOURS = float(os.environ.get("CARRIER_TRANSIT_HOURS", "48"))
PUBLIC_BASE_URL = os.environ.get("PUBLIC_BASE_URL", "http://127.0.0.1:8000")
# A platform's own deadline (latest ship time, after-sales response) closer than this alerts the
# supervisor like a stage breach, and shows "near" on the card and the board (orders/clock.py).
PLATFORM_DEADLINE_ALERT_MINUTES = int(os.environ.get("PLATFORM_DEADLINE_ALERT_MINUTES", "60"))
OUTBOUND_HTTP_TIMEOUT = float(os.environ.get("OUTBOUND_HTTP_TIMEOUT", "5"))

# --- Security ---------------------------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
# Read from the cache, kept in the database; a cache outage falls back to the database (beile/sessions.py).
SESSION_ENGINE = "beile.sessions"
CSRF_COOKIE_HTTPONLY = False  # htmx reads nothing from it: the token is rendered into hx-headers
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if not DEBUG:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", "31536000"))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True

# Plain text, or JSON lines with LOG_FORMAT=json; mobile numbers are masked in every record.
LOGGING = logging_config(
    loggers={
        "django.db.backends": {"level": "WARNING"},
        # A 403/400 is logged as one line, not a traceback (beile/logging.py).
        "django.request": {"filters": ["expected_refusals_on_one_line"]},
    }
)
