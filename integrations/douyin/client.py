"""Douyin shop (抖店) open platform: the request signature, the token refresh, the order methods
the cockpit uses, and the push's signature. Nothing outside this folder knows a `code`.

A request is `POST {BASE_URL}/{path}?app_key=…&method=…&timestamp=…&v=2&sign=…&sign_method=hmac-sha256
&access_token=…` with the parameters as the body, where
`sign = hex(HMAC_SHA256(secret, secret + "app_key"+k + "method"+m + "param_json"+p + "timestamp"+t + "v2" + secret))`
and p is the parameters as sorted, compact JSON (the same text is sent as the body). Success is
`code == 10000`; amounts are in fen.

Pushes (消息推送) carry the headers `app-id` (the app key) and
`event-sign = hex(MD5(app_key + raw body + secret))`: the scheme of the platform's published SDKs
(e.g. the doudian Python SDK's `callback`); an assumption to confirm against the console.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

import requests
from django.conf import settings
from django.utils import timezone

if TYPE_CHECKING:  # the fake platform (fake_server.py) imports the signatures without Django set up
    from integrations.douyin.models import DouyinShop

SUCCESS = 10000
# The platform's own trouble and its flow control: worth another try, later.
TRANSIENT_CODES = {20000, 20001, 90000}
# The access token is unknown or expired: refresh once, then ask again.
TOKEN_CODES = {30001, 30002}
ACCESS_TOKEN_LIFE = datetime.timedelta(days=7)
REFRESH_TOKEN_LIFE = datetime.timedelta(days=14)
# Refreshed this long before it expires, so a call never races the expiry.
REFRESH_MARGIN = datetime.timedelta(minutes=30)
BATCH = 50  # order.batchDecrypt and order.BatchSearchIndex take at most 50 items per call
SEARCH_PAGE_SIZE = 100
# order.BatchSearchIndex's types.
INDEX_ADDRESS, INDEX_NAME, INDEX_PHONE = 1, 2, 3


class DouyinError(Exception):
    """One error type for the provider; `permanent` says whether asking again can help."""

    def __init__(self, code: str, message: str, *, permanent: bool):
        super().__init__(f"{code} {message}".strip())
        self.code = code
        self.message = message
        self.permanent = permanent


def mode() -> str:
    """ "off" when disabled, "sandbox" against the local fake (the demo), "live" otherwise."""
    config = settings.DOUYIN
    if not config["ENABLED"]:
        return "off"
    return "sandbox" if config["SANDBOX"] else "live"


def param_json(params: dict) -> str:
    return json.dumps(params, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def sign(*, app_key: str, secret: str, method: str, param: str, timestamp: str) -> str:
    text = f"{secret}app_key{app_key}method{method}param_json{param}timestamp{timestamp}v2{secret}"
    return hmac.new(secret.encode(), text.encode(), hashlib.sha256).hexdigest()


def push_sign(*, app_key: str, secret: str, body: bytes) -> str:
    return hashlib.md5(app_key.encode() + body + secret.encode()).hexdigest()  # noqa: S324 - the platform's scheme


def push_signature_valid(*, app_key: str, secret: str, body: bytes, given: str) -> bool:
    return bool(secret) and hmac.compare_digest(push_sign(app_key=app_key, secret=secret, body=body), (given or "").lower())


def _post(shop: DouyinShop, method: str, params: dict, *, with_token: bool = True) -> dict:
    param = param_json(params)
    timestamp = str(int(time.time()))
    query = {
        "app_key": shop.app_key,
        "method": method,
        "timestamp": timestamp,
        "v": "2",
        "sign_method": "hmac-sha256",
        "sign": sign(app_key=shop.app_key, secret=shop.app_secret, method=method, param=param, timestamp=timestamp),
    }
    if with_token:
        query["access_token"] = shop.access_token
    url = settings.DOUYIN["BASE_URL"].rstrip("/") + "/" + method.replace(".", "/")
    try:
        response = requests.post(
            url,
            params=query,
            data=param.encode(),
            headers={"Content-Type": "application/json"},
            timeout=settings.OUTBOUND_HTTP_TIMEOUT,
        )
        result = response.json()
    except (requests.RequestException, ValueError) as exc:
        raise DouyinError("unreachable", f"cannot reach the Douyin platform: {exc.__class__.__name__}", permanent=False) from exc
    if not isinstance(result, dict):
        raise DouyinError("bad_answer", "not a JSON object", permanent=False)
    code = result.get("code")
    if code == SUCCESS:
        return result.get("data") or {}
    message = str(result.get("sub_msg") or result.get("msg") or "")[:200]
    if response.status_code >= 500 or code in TRANSIENT_CODES:
        raise DouyinError(str(code or response.status_code), message, permanent=False)
    raise DouyinError(str(code), message, permanent=code not in TOKEN_CODES)


def _store_token(shop: DouyinShop, data: dict) -> None:
    now = timezone.now()
    shop.access_token = str(data.get("access_token", ""))
    shop.access_token_expires_at = now + datetime.timedelta(
        seconds=int(data.get("expires_in") or ACCESS_TOKEN_LIFE.total_seconds())
    )
    shop.refresh_token = str(data.get("refresh_token", ""))
    shop.refresh_token_expires_at = now + REFRESH_TOKEN_LIFE
    shop.save(update_fields=["access_token", "access_token_expires_at", "refresh_token", "refresh_token_expires_at"])


def token_refresh(shop: DouyinShop) -> None:
    """token.refresh while the refresh token lives; token.create (a self-use app's
    authorization_self for its shop) when there is none, it has expired, or the platform no
    longer knows it (revoked, re-authorised elsewhere)."""
    now = timezone.now()
    data = None
    if shop.refresh_token and shop.refresh_token_expires_at and shop.refresh_token_expires_at > now:
        try:
            data = _post(
                shop, "token.refresh", {"grant_type": "refresh_token", "refresh_token": shop.refresh_token}, with_token=False
            )
        except DouyinError as exc:
            if not exc.permanent:
                raise
    if data is None:
        data = _post(
            shop, "token.create", {"code": "", "grant_type": "authorization_self", "shop_id": shop.shop_id}, with_token=False
        )
    _store_token(shop, data)


def call(shop: DouyinShop, method: str, params: dict) -> dict:
    """One API call with a live access token: refreshed before it expires, and once more when the
    platform says it is no longer valid."""
    if (
        not shop.access_token
        or not shop.access_token_expires_at
        or shop.access_token_expires_at - REFRESH_MARGIN < timezone.now()
    ):
        token_refresh(shop)
    try:
        return _post(shop, method, params)
    except DouyinError as exc:
        if exc.code not in {str(code) for code in TOKEN_CODES}:
            raise
    token_refresh(shop)
    return _post(shop, method, params)


# --- The order methods ---------------------------------------------------------------------------


def search_list(shop: DouyinShop, *, updated_from: int, updated_to: int, page: int = 0) -> tuple[list[dict], int]:
    """order.searchList by update time (Unix seconds, inclusive), oldest update first: one page of
    orders and the total."""
    data = call(
        shop,
        "order.searchList",
        {
            "update_time_start": updated_from,
            "update_time_end": updated_to,
            "order_by": "update_time",
            "order_asc": True,
            "page": page,
            "size": SEARCH_PAGE_SIZE,
        },
    )
    return list(data.get("shop_order_list") or []), int(data.get("total") or 0)


def order_detail(shop: DouyinShop, order_id: str) -> dict:
    return call(shop, "order.orderDetail", {"shop_order_id": order_id}).get("shop_order_detail") or {}


@dataclass
class Decrypted:
    cipher_text: str
    text: str
    virtual_expires_at: datetime.datetime | None


def batch_decrypt(shop: DouyinShop, items: list[tuple[str, str]]) -> dict[str, Decrypted]:
    """order.batchDecrypt of (order id, ciphertext) pairs (≤ 50): plaintext by ciphertext. A phone
    may come back as a virtual number (main-extension) that works until its expiry."""
    if len(items) > BATCH:
        raise ValueError("at most 50 ciphertexts per call")
    data = call(shop, "order.batchDecrypt", {"cipher_infos": [{"auth_id": auth, "cipher_text": text} for auth, text in items]})
    found: dict[str, Decrypted] = {}
    for info in data.get("decrypt_infos") or []:
        if info.get("err_no") not in (0, None):
            raise DouyinError(str(info.get("err_no")), str(info.get("err_msg", ""))[:200], permanent=True)
        expires = info.get("expire_time")
        found[str(info.get("cipher_text", ""))] = Decrypted(
            cipher_text=str(info.get("cipher_text", "")),
            text=str(info.get("decrypt_text", "")),
            virtual_expires_at=datetime.datetime.fromtimestamp(int(expires), tz=datetime.UTC) if expires else None,
        )
    return found


def batch_search_index(shop: DouyinShop, items: list[tuple[str, int]]) -> dict[str, str]:
    """order.BatchSearchIndex of (plaintext, type) pairs (≤ 50): the platform's index by plaintext."""
    if len(items) > BATCH:
        raise ValueError("at most 50 texts per call")
    data = call(
        shop, "order.BatchSearchIndex", {"plain_text_list": [{"plain_text": text, "encrypt_type": kind} for text, kind in items]}
    )
    return {
        str(item.get("plain_text", "")): str(item.get("search_index", ""))
        for item in data.get("plain_to_search_index_list") or []
    }


def logistics_add(shop: DouyinShop, *, order_id: str, company_code: str, tracking_number: str) -> None:
    """order.logisticsAdd: the order shipped with this waybill (the platform's ship write-back)."""
    call(shop, "order.logisticsAdd", {"order_id": order_id, "company_code": company_code, "logistics_code": tracking_number})


def address_confirm(shop: DouyinShop, *, order_id: str, approved: bool) -> None:
    """order.addressConfirm: the answer to the buyer's address-change request."""
    call(shop, "order.addressConfirm", {"order_id": order_id, "is_approved": 1 if approved else 0})


def fen_to_yuan(fen: int | str) -> Decimal:
    """Fen (whole numbers) to exact yuan: 1999 → Decimal("19.99"); never through a float."""
    return (Decimal(int(fen)) / 100).quantize(Decimal("0.01"))
