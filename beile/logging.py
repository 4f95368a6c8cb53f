"""Log records without personal data, as plain text or one JSON object per line (LOG_FORMAT=json).

Standard library only (and orders/privacy.py, which is too): gunicorn.conf.py loads this before Django is set up, so the web server's
own access and error logs go through the same filter and formatter as the application's.
"""

from __future__ import annotations

import datetime
import json
import logging
import os

from orders.privacy import mask_mobile_numbers

PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
# Where beile/urls.py serves the live screens' check, for gunicorn.conf.py's access log (read
# there before URLs can be reversed).
LIVE_CHECK_PATH = "/live/"


class MaskMobileNumbers(logging.Filter):
    """Masks every mobile number in the final message (arguments included) and in the traceback
    text, so that neither `logger.info("lookup %s", phone)` nor an exception quoting a phone
    number writes it to the log."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_mobile_numbers(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_mobile_numbers(record.exc_text)
        return True


class ExpectedRefusalsOnOneLine(logging.Filter):
    """django.request logs a refusal raised as an exception (PermissionDenied → 403, a bad
    request → 400) with that exception's traceback. A refusal is the cockpit working as meant,
    not a fault: its one line (status, path) is kept and the traceback dropped. 5xx records keep
    theirs. Set on the django.request logger (beile/settings.py LOGGING)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "status_code", 500) < 500:
            record.exc_info, record.exc_text = None, None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and the exception if any."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False)


def logging_config(*, loggers: dict | None = None) -> dict:
    """The dictConfig both Django (settings.LOGGING) and gunicorn (logconfig_dict) use.
    LOG_FORMAT=json selects the JSON formatter, LOG_LEVEL the root level."""
    formatter = {"()": JsonFormatter} if os.environ.get("LOG_FORMAT", "").lower() == "json" else {"format": PLAIN_FORMAT}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "mask_mobile_numbers": {"()": MaskMobileNumbers},
            "expected_refusals_on_one_line": {"()": ExpectedRefusalsOnOneLine},
        },
        "formatters": {"default": formatter},
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": "default",
                "filters": ["mask_mobile_numbers"],
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
        "loggers": loggers or {},
    }
