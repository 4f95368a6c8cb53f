"""Logs carry no personal data: mobile numbers are masked wherever they appear in a record, and
LOG_FORMAT=json writes one JSON object per line."""

import json
import logging
import sys

from beile.logging import JsonFormatter, MaskMobileNumbers, logging_config
from orders.privacy import mask_mobile_numbers


def _record(message: str, *args, exc_info=None) -> logging.LogRecord:
    return logging.LogRecord("beile.test", logging.INFO, __file__, 1, message, args, exc_info)


def test_masks_mobile_numbers_but_not_other_digits():
    assert mask_mobile_numbers("lookup 13812345678 done") == "lookup 138****5678 done"
    assert mask_mobile_numbers("+8613812345678") == "+86138****5678"
    assert mask_mobile_numbers("tel 138-1234-5678, 139 8765 4321") == "tel 138****5678, 139****4321"
    # Order numbers, timestamps and landlines are not mobile numbers.
    assert mask_mobile_numbers("order 202611241381234567890") == "order 202611241381234567890"
    assert mask_mobile_numbers("T0013812345") == "T0013812345"
    assert mask_mobile_numbers("12345678901") == "12345678901"


def test_filter_masks_arguments_and_tracebacks():
    record = _record("customer %s asked about %s", "13912345678", "T0000000001")
    assert MaskMobileNumbers().filter(record)
    assert record.getMessage() == "customer 139****5678 asked about T0000000001"

    try:
        raise ValueError("bad phone 15011112222")
    except ValueError:
        failed = _record("import failed", exc_info=sys.exc_info())
    MaskMobileNumbers().filter(failed)
    text = logging.Formatter().format(failed)
    assert "15011112222" not in text and "150****2222" in text


def test_json_lines():
    record = _record("shipped %s", "T0000000001")
    line = JsonFormatter().format(record)
    entry = json.loads(line)
    assert entry["message"] == "shipped T0000000001"
    assert entry["level"] == "INFO" and entry["logger"] == "beile.test"
    assert "\n" not in line


def test_log_format_env_selects_json(monkeypatch):
    monkeypatch.setenv("LOG_FORMAT", "json")
    assert logging_config()["formatters"]["default"] == {"()": JsonFormatter}
    monkeypatch.delenv("LOG_FORMAT")
    assert "format" in logging_config()["formatters"]["default"]
    assert logging_config()["handlers"]["console"]["filters"] == ["mask_mobile_numbers"]


def test_application_logs_go_through_the_mask(capfd, settings):
    logging.config.dictConfig(settings.LOGGING)
    logging.getLogger("orders").warning("service looked up %s", "13700001111")
    err = capfd.readouterr().err
    assert "137****1111" in err and "13700001111" not in err
