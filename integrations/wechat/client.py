"""WeChat service account (服务号): the access token, template messages and the callback
signature; and the company's mini-program (小程序): its shipping information upload
(docs/protocols.md). Nothing outside this folder knows an errcode.

One central token per app (the service account and the mini-program have their own appid,
secret and token): every process reads it from the shared cache (django.core.cache) and only
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
MINIPROGRAM_TOKEN_KEY = "wechat:miniprogram:access_token"  # noqa: S105 - a cache key name
MINIPROGRAM_TOKEN_LOCK_KEY = "wechat:miniprogram:access_token:lock"  # noqa: S105 - a cache key name
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


def _mode(config: dict) -> str:
    if config.get("SANDBOX"):
        return "sandbox"
    return "live" if config["APP_ID"] and config["APP_SECRET"] else "off"


def mode() -> str:
    return _mode(settings.WECHAT)


def miniprogram_mode() -> str:
    return _mode(settings.WECHAT_MINIPROGRAM)


def _error_from(result: dict) -> WeChatError:
    errcode = int(result.get("errcode", SYSTEM_BUSY))
    # Only "system busy" and token trouble are worth another try; anything else (the list
    # above, or a code we do not know) would fail the same way again.
    return WeChatError(errcode, str(result.get("errmsg", "")), permanent=errcode != SYSTEM_BUSY and errcode not in TOKEN_INVALID)


def _post_json(path: str, body: dict, params: dict | None = None, config: dict | None = None) -> dict:
    url = (config or settings.WECHAT)["BASE_URL"].rstrip("/") + path
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


def _access_token(config: dict, key: str, lock_key: str, rejected: str) -> str:
    token = _fresh(cache.get(key), rejected)
    if token:
        return token
    deadline = time.monotonic() + LOCK_SECONDS
    while not cache.add(lock_key, "1", timeout=LOCK_SECONDS):
        # Another process is refreshing: wait for its token rather than fetch a second one.
        time.sleep(0.05)
        token = _fresh(cache.get(key), rejected)
        if token:
            return token
        if time.monotonic() > deadline:
            raise WeChatError(None, "timed out waiting for the access token refresh", permanent=False)
    try:
        token = _fresh(cache.get(key), rejected)
        if token:
            return token
        result = _post_json(
            "/cgi-bin/stable_token",
            {
                "grant_type": "client_credential",
                "appid": config["APP_ID"],
                "secret": config["APP_SECRET"],
                "force_refresh": False,
            },
            config=config,
        )
        if "access_token" not in result:
            raise _error_from(result)
        lifetime = int(result.get("expires_in", 7200))
        now = time.time()
        cache.set(key, {"token": result["access_token"], "refresh_at": now + lifetime * REFRESH_AT_FRACTION}, timeout=lifetime)
        return result["access_token"]
    finally:
        cache.delete(lock_key)


def access_token(*, rejected: str = "") -> str:
    """The service account's current token; `rejected` is a token WeChat just refused, which
    forces a refresh unless another process has already replaced it."""
    return _access_token(settings.WECHAT, TOKEN_KEY, TOKEN_LOCK_KEY, rejected)


def miniprogram_access_token(*, rejected: str = "") -> str:
    """The mini-program's own token (its appid and secret), kept the same way."""
    return _access_token(settings.WECHAT_MINIPROGRAM, MINIPROGRAM_TOKEN_KEY, MINIPROGRAM_TOKEN_LOCK_KEY, rejected)


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


# --- The mini-program's shipping information (发货信息管理) --------------------------------------

# The mini-program's delivery company ids, by the cockpit's carrier codes (Kuaidi100's).
EXPRESS_COMPANY = {
    "shunfeng": "SF",
    "shunfenglengyun": "SF",
    "zhongtong": "ZTO",
    "yuantong": "YTO",
    "yunda": "YD",
    "shentong": "STO",
    "ems": "EMS",
    "jd": "JD",
    "jtexpress": "JTSD",
    "huitongkuaidi": "HTKY",
    "debangkuaidi": "DBL",
    "youzhengguonei": "YZPY",
}
# docs/protocols.md: at most 15 packages per upload; item_desc at most 120 characters.
MAX_PACKAGES = 15
ITEM_DESC_LIMIT = 120
# "System error, try again": the upload was not taken (besides -1 and token trouble).
SHIPPING_RETRIED = {SYSTEM_BUSY, 10060012, 10060019}


def _miniprogram_post(path: str, body: dict) -> dict:
    config = settings.WECHAT_MINIPROGRAM
    token = miniprogram_access_token()
    result = _post_json(path, body, params={"access_token": token}, config=config)
    if result.get("errcode") in TOKEN_INVALID:
        # As for template messages: refresh once, try once more.
        token = miniprogram_access_token(rejected=token)
        result = _post_json(path, body, params={"access_token": token}, config=config)
    if result.get("errcode", 0) != 0:
        errcode = int(result.get("errcode", SYSTEM_BUSY))
        raise WeChatError(errcode, str(result.get("errmsg", "")), permanent=errcode not in SHIPPING_RETRIED | TOKEN_INVALID)
    return result


def upload_shipping_info(body: dict) -> None:
    """POST /wxa/sec/order/upload_shipping_info: the payment's shipping information (the first
    upload, or its one update). Raises WeChatError; `permanent` when trying again cannot help."""
    _miniprogram_post("/wxa/sec/order/upload_shipping_info", body)


def shipped_tracking_numbers(*, out_trade_no: str) -> set[str]:
    """The tracking numbers WeChat holds for a payment (POST /wxa/sec/order/get_order): after an
    upload whose answer was lost, whether it was taken."""
    result = _miniprogram_post(
        "/wxa/sec/order/get_order",
        {"merchant_id": settings.WECHAT_MINIPROGRAM["MCH_ID"], "merchant_trade_no": out_trade_no},
    )
    shipping = (result.get("order") or {}).get("shipping") or {}
    return {str(package.get("tracking_no", "")) for package in shipping.get("shipping_list") or []}
