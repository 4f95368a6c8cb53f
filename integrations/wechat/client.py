"""WeChat service account (服务号): the access token, template messages and the callback
signature (docs/protocols.md). Nothing outside this folder knows an errcode.

One central token: every process reads it from the shared cache (django.core.cache) and only
one refreshes it, under a lock, before it expires — the stable_token endpoint everywhere, so
two fetches never invalidate each other's token.
"""

from __future__ import annotations

import hashlib
import hmac
import time

import requests
from django.conf import settings
from django.core.cache import cache

TOKEN_KEY = "wechat:access_token"  # noqa: S105 - a cache key name, not a secret
TOKEN_LOCK_KEY = "wechat:access_token:lock"  # noqa: S105 - a cache key name
# Refresh when 90 % of the lifetime is gone: before expiry, never on every call.
REFRESH_AT_FRACTION = 0.9
LOCK_SECONDS = 30
TOKEN_INVALID = {40001, 40014, 42001}
SYSTEM_BUSY = -1
# Recorded on the message and never retried (docs/protocols.md): not subscribed, bad openid, user
# refused, bad argument, quota.
NOT_RETRIED = {43004, 40003, 43101, 47003, 45009}
# A callback whose signed timestamp is further than this from our clock is refused as stale
# (the same window as our own inbound events).
CALLBACK_MAX_AGE_SECONDS = 300


class WeChatError(Exception):
    """One error type for the provider; `permanent` says whether trying again can help."""

    def __init__(self, errcode: int | None, errmsg: str, *, permanent: bool):
        super().__init__(f"{errcode} {errmsg}" if errcode is not None else errmsg)
        self.errcode = errcode
        self.errmsg = errmsg
        self.permanent = permanent


def mode() -> str:
    config = settings.WECHAT
    if config.get("SANDBOX"):
        return "sandbox"
    return "live" if config["APP_ID"] and config["APP_SECRET"] else "off"


def _error_from(result: dict) -> WeChatError:
    errcode = int(result.get("errcode", SYSTEM_BUSY))
    # Only "system busy" and token trouble are worth another try; anything else (the list
    # above, or a code we do not know) would fail the same way again.
    return WeChatError(errcode, str(result.get("errmsg", "")), permanent=errcode != SYSTEM_BUSY and errcode not in TOKEN_INVALID)


def _post_json(path: str, body: dict, params: dict | None = None) -> dict:
    url = settings.WECHAT["BASE_URL"].rstrip("/") + path
    try:
        response = requests.post(url, params=params, json=body, timeout=settings.OUTBOUND_HTTP_TIMEOUT)
        response.raise_for_status()
        return response.json()
    except (requests.RequestException, ValueError) as exc:
        raise WeChatError(None, f"cannot reach WeChat: {exc.__class__.__name__}", permanent=False) from exc


def _fresh(cached: dict | None, rejected: str) -> str:
    if cached and cached["token"] != rejected and time.time() < cached["refresh_at"]:
        return cached["token"]
    return ""


def access_token(*, rejected: str = "") -> str:
    """The current token; `rejected` is a token WeChat just refused, which forces a refresh
    unless another process has already replaced it."""
    token = _fresh(cache.get(TOKEN_KEY), rejected)
    if token:
        return token
    deadline = time.monotonic() + LOCK_SECONDS
    while not cache.add(TOKEN_LOCK_KEY, "1", timeout=LOCK_SECONDS):
        # Another process is refreshing: wait for its token rather than fetch a second one.
        time.sleep(0.05)
        token = _fresh(cache.get(TOKEN_KEY), rejected)
        if token:
            return token
        if time.monotonic() > deadline:
            raise WeChatError(None, "timed out waiting for the access token refresh", permanent=False)
    try:
        token = _fresh(cache.get(TOKEN_KEY), rejected)
        if token:
            return token
        config = settings.WECHAT
        result = _post_json(
            "/cgi-bin/stable_token",
            {
                "grant_type": "client_credential",
                "appid": config["APP_ID"],
                "secret": config["APP_SECRET"],
                "force_refresh": False,
            },
        )
        if "access_token" not in result:
            raise _error_from(result)
        lifetime = int(result.get("expires_in", 7200))
        now = time.time()
        cache.set(
            TOKEN_KEY, {"token": result["access_token"], "refresh_at": now + lifetime * REFRESH_AT_FRACTION}, timeout=lifetime
        )
        return result["access_token"]
    finally:
        cache.delete(TOKEN_LOCK_KEY)


def send_template(*, openid: str, data: dict[str, str], client_msg_id: str, url: str = "") -> str:
    """Send one template message; returns WeChat's msgid. The same openid + client_msg_id is
    delivered once within 10 minutes, which makes a resend after a crash harmless."""
    body = {
        "touser": openid,
        "template_id": settings.WECHAT["TEMPLATE_ID"],
        "client_msg_id": client_msg_id,
        "data": {key: {"value": value} for key, value in data.items()},
    }
    if url:
        body["url"] = url
    token = access_token()
    result = _post_json("/cgi-bin/message/template/send", body, params={"access_token": token})
    if result.get("errcode") in TOKEN_INVALID:
        # Refresh once, retry once: a token that expired mid-batch costs one extra call.
        token = access_token(rejected=token)
        result = _post_json("/cgi-bin/message/template/send", body, params={"access_token": token})
    if result.get("errcode", 0) != 0:
        raise _error_from(result)
    return str(result.get("msgid", ""))


def callback_signature_valid(*, signature: str, timestamp: str, nonce: str) -> bool:
    """The signature matches and its timestamp is within CALLBACK_MAX_AGE_SECONDS of our clock
    (the timestamp is signed, so a captured callback cannot be re-dated)."""
    token = settings.WECHAT["CALLBACK_TOKEN"]
    expected = hashlib.sha1("".join(sorted([token, timestamp, nonce])).encode()).hexdigest()  # noqa: S324 - the provider's protocol
    if not (token and hmac.compare_digest(expected, signature or "")):
        return False
    try:
        return abs(time.time() - int(timestamp)) <= CALLBACK_MAX_AGE_SECONDS
    except ValueError:
        return False


def callback_signature_first_use(signature: str) -> bool:
    """True the first time a (valid) signature is seen. In plaintext mode the body is outside the
    signature, so a signature seen once must not carry a second, possibly forged, body."""
    return cache.add(f"wechat:callback-signature:{signature}", 1, timeout=2 * CALLBACK_MAX_AGE_SECONDS)
