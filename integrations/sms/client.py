"""Alibaba Cloud SMS (dysmsapi, `SendSms`, docs/protocols.md): the RPC signature, template
codes and the provider's error codes. Nothing outside this folder knows a `Code`.

A request is a form POST of the common parameters plus SendSms's own, signed with
HMAC-SHA1 (key `secret + "&"`) over `"POST&%2F&" + percentEncode(canonical query)`, where the
canonical query is the sorted, percent-encoded `key=value` pairs joined by `&`.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
import uuid
from urllib.parse import quote

import requests
from django.conf import settings
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

# Refusals worth another try, later: the provider's own trouble, and its per-phone flow control
# (`isv.BUSINESS_LIMIT_CONTROL` is not retried at once: the caller backs off for an hour).
TRANSIENT = {"isp.SYSTEM_ERROR", "isp.RAM_PERMISSION_DENY", "SignatureNonceUsed", "Throttling.User", "isv.AMOUNT_NOT_ENOUGH"}
RATE_LIMITED = "isv.BUSINESS_LIMIT_CONTROL"


class SmsError(Exception):
    """One error type for the provider; `permanent` says whether trying again can help."""

    def __init__(self, code: str, message: str, *, permanent: bool):
        super().__init__(f"{code} {message}")
        self.code = code
        self.message = message
        self.permanent = permanent

    @property
    def rate_limited(self) -> bool:
        return self.code == RATE_LIMITED


def mode() -> str:
    config = settings.SMS
    if config.get("SANDBOX"):
        return "sandbox"
    return "live" if config["ACCESS_KEY_ID"] and config["ACCESS_KEY_SECRET"] else "off"


def percent_encode(value: str) -> str:
    """RFC 3986 encoding as the RPC signature wants it: space as %20, `*` as %2A, `~` kept."""
    return quote(str(value), safe="~")


def signature(params: dict[str, str], secret: str, method: str = "POST") -> str:
    canonical = "&".join(f"{percent_encode(k)}={percent_encode(v)}" for k, v in sorted(params.items()))
    to_sign = f"{method}&{percent_encode('/')}&{percent_encode(canonical)}"
    digest = hmac.new(f"{secret}&".encode(), to_sign.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def signed_params(action_params: dict[str, str], *, access_key_id: str, secret: str) -> dict[str, str]:
    params = {
        "AccessKeyId": access_key_id,
        "Format": "JSON",
        "SignatureMethod": "HMAC-SHA1",
        "SignatureVersion": "1.0",
        "SignatureNonce": uuid.uuid4().hex,
        "Timestamp": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "Version": "2017-05-25",
        **action_params,
    }
    params["Signature"] = signature(params, secret)
    return params


def send_sms(*, phone: str, template_code: str, template_param: dict[str, str], out_id: str) -> str:
    """Send one templated SMS; returns the provider's BizId (the key of its delivery receipt)."""
    config = settings.SMS
    params = signed_params(
        {
            "Action": "SendSms",
            "PhoneNumbers": phone,
            "SignName": config["SIGN_NAME"],
            "TemplateCode": template_code,
            "TemplateParam": json.dumps(template_param, ensure_ascii=False),
            "OutId": out_id,
        },
        access_key_id=config["ACCESS_KEY_ID"],
        secret=config["ACCESS_KEY_SECRET"],
    )
    try:
        response = requests.post(config["BASE_URL"].rstrip("/") + "/", data=params, timeout=settings.OUTBOUND_HTTP_TIMEOUT)
        result = response.json()
    except (requests.RequestException, ValueError) as exc:
        raise SmsError("unreachable", f"cannot reach the SMS platform: {exc.__class__.__name__}", permanent=False) from exc
    code = str(result.get("Code", ""))
    if code == "OK":
        return str(result.get("BizId", ""))
    if not code and response.status_code >= 500:
        code = "isp.SYSTEM_ERROR"
    # Anything else (a bad number, an unapproved template, a missing parameter, a bad signature)
    # would fail the same way again.
    raise SmsError(code, str(result.get("Message", ""))[:200], permanent=code not in TRANSIENT and code != RATE_LIMITED)


def callback_token_valid(token: str) -> bool:
    """Receipts and replies are pushed to a URL carrying our token (the provider signs nothing)."""
    expected = settings.SMS["CALLBACK_TOKEN"]
    return bool(expected) and hmac.compare_digest(expected, token or "")


# Why an SMS did not reach the phone, for people (the health page's failures by reason).
ERROR_REASONS = {
    "isv.MOBILE_NUMBER_ILLEGAL": gettext_noop("invalid phone number"),
    "isv.SMS_TEMPLATE_ILLEGAL": gettext_noop("template not approved"),
    "isv.SMS_SIGNATURE_ILLEGAL": gettext_noop("signature not approved"),
    "isv.TEMPLATE_MISSING_PARAMETERS": gettext_noop("template values missing"),
    "isv.INVALID_JSON_PARAM": gettext_noop("template values missing"),
    "SignatureDoesNotMatch": gettext_noop("credentials rejected"),
    "InvalidAccessKeyId.NotFound": gettext_noop("credentials rejected"),
    RATE_LIMITED: gettext_noop("over the per-phone limit"),
    "opted_out": gettext_noop("unsubscribed"),
}


def error_text(code: str, *, delivery: bool = False) -> str:
    """A refusal code (or, with `delivery`, a carrier's receipt code) in the reader's language."""
    if code in ERROR_REASONS:
        return _(ERROR_REASONS[code])
    return _("not delivered by the carrier") if delivery else _("refused by the SMS platform")


# Replies that unsubscribe (the templates end with 回T退订): T, TD, 退订, N, 0000.
OPT_OUT_WORDS = {"T", "TD", "退订", "N", "0000", "QX"}


def is_opt_out(content: str) -> bool:
    return (content or "").strip().upper() in OPT_OUT_WORDS
