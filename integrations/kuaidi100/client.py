"""Kuaidi100 (快递100): the real-time query API, the subscription API and the callback's
signature, exactly as docs/protocols.md describes them. Nothing outside this folder knows that
`param` is a JSON string inside a form, or that the signature is upper-case MD5."""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
from dataclasses import dataclass

import requests
from django.conf import settings
from django.utils import timezone

# Subscription return codes that will not get better by retrying (docs/protocols.md).
PERMANENT_SUBSCRIBE_CODES = {"600", "601", "700", "701", "702"}
# Query return codes worth asking again later: no result yet, server error, busy.
TRANSIENT_QUERY_CODES = {"500", "501", "502"}
ALREADY_SUBSCRIBED = "501"
SUCCESS_REPLY = {"result": True, "returnCode": "200", "message": "成功"}


class Kuaidi100Error(Exception):
    """One error type for the provider; `permanent` says whether asking again can help."""

    def __init__(self, message: str, *, code: str = "", permanent: bool = False):
        super().__init__(f"{code} {message}".strip())
        self.code = code
        self.message = message
        self.permanent = permanent


def mode() -> str:
    """ "live" with real credentials, "sandbox" against the local fake, "off" without either."""
    config = settings.KUAIDI100
    if config.get("SANDBOX"):
        return "sandbox"
    return "live" if config["KEY"] and config["CUSTOMER"] else "off"


def md5_upper(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest().upper()  # noqa: S324 - the provider's protocol


def query_sign(param: str, key: str, customer: str) -> str:
    return md5_upper(param + key + customer)


def callback_sign(param: str, salt: str) -> str:
    return md5_upper(param + salt)


def callback_signature_valid(param: str, sign: str, salt: str) -> bool:
    # Without a salt the "signature" is MD5(param), which anyone can compute: refuse every push.
    return bool(salt) and hmac.compare_digest(callback_sign(param, salt), (sign or "").upper())


def _post(path: str, form: dict[str, str]) -> dict:
    url = settings.KUAIDI100["BASE_URL"].rstrip("/") + path
    try:
        response = requests.post(url, data=form, timeout=settings.OUTBOUND_HTTP_TIMEOUT)
    except requests.RequestException as exc:
        raise Kuaidi100Error(f"cannot reach Kuaidi100: {exc.__class__.__name__}") from exc
    if response.status_code >= 500:
        raise Kuaidi100Error(f"HTTP {response.status_code}", code=str(response.status_code))
    try:
        return response.json()
    except ValueError as exc:
        raise Kuaidi100Error(f"not JSON (HTTP {response.status_code})") from exc


def _param(payload: dict) -> str:
    # Compact and with Chinese kept as is: the signature covers these exact characters.
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))


def query(*, carrier_code: str, tracking_number: str, phone: str = "") -> dict:
    """The real-time query (`/poll/query.do`): the provider's result dict (see `TrackingResult`)."""
    config = settings.KUAIDI100
    payload = {"com": carrier_code, "num": tracking_number, "resultv2": "8", "show": "0", "order": "desc"}
    if phone:
        payload["phone"] = phone
    param = _param(payload)
    result = _post(
        "/poll/query.do",
        {"customer": config["CUSTOMER"], "sign": query_sign(param, config["KEY"], config["CUSTOMER"]), "param": param},
    )
    if "returnCode" in result or result.get("result") is False:
        code = str(result.get("returnCode", ""))
        raise Kuaidi100Error(result.get("message", ""), code=code, permanent=code not in TRANSIENT_QUERY_CODES)
    return result


def subscribe(*, carrier_code: str, tracking_number: str, callback_url: str, phone: str = "") -> bool:
    """Ask for pushes to `callback_url`. True when newly subscribed, False when already polling."""
    config = settings.KUAIDI100
    parameters = {"callbackurl": callback_url, "salt": config["CALLBACK_SALT"], "resultv2": "8"}
    if phone:
        parameters["phone"] = phone
    param = _param({"company": carrier_code, "number": tracking_number, "key": config["KEY"], "parameters": parameters})
    result = _post("/poll", {"schema": "json", "param": param})
    code = str(result.get("returnCode", ""))
    if result.get("result") is True and code == "200":
        return True
    if code == ALREADY_SUBSCRIBED:
        return False
    raise Kuaidi100Error(result.get("message", ""), code=code, permanent=code in PERMANENT_SUBSCRIBE_CODES)


@dataclass
class TrackingItem:
    occurred_at: datetime.datetime
    context: str
    area_name: str
    area_code: str
    status_name: str


@dataclass
class TrackingResult:
    """The `lastResult` / query shape, parsed: all values arrive as strings."""

    carrier_code: str
    tracking_number: str
    state: str
    items: list[TrackingItem]
    eta: datetime.datetime | None


def parse_time(raw: str) -> datetime.datetime | None:
    """Kuaidi100 times are Beijing local time: "2024-04-27 05:17:36"; arrivalTime may stop at the hour."""
    raw = (raw or "").strip()
    for layout in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d %H", "%Y-%m-%d"):
        try:
            return timezone.make_aware(datetime.datetime.strptime(raw, layout), datetime.timezone(datetime.timedelta(hours=8)))
        except ValueError:
            continue
    return None


def parse_result(result: dict) -> TrackingResult:
    items = []
    for row in result.get("data") or []:
        occurred = parse_time(row.get("ftime") or row.get("time") or "")
        if occurred is None or not row.get("context"):
            continue
        items.append(
            TrackingItem(
                occurred_at=occurred,
                context=str(row["context"])[:300],
                area_name=str(row.get("areaName") or "")[:120],
                area_code=str(row.get("areaCode") or "")[:20],
                status_name=str(row.get("status") or "")[:20],
            )
        )
    return TrackingResult(
        carrier_code=str(result.get("com", "")),
        tracking_number=str(result.get("nu", "")),
        state=str(result.get("state", "")),
        items=items,
        eta=parse_time(result.get("arrivalTime", "")),
    )


# --- Interception / re-address (拦截改址), docs/protocols.md "Additions" ----------------------------

# Carriers Kuaidi100's interceptOrder serves (its parameter dictionary: 德邦, 中通, 极兔, 京东, EMS,
# 邮政). SF is not among them: SF takes an address change only through its own hotline/console.
INTERCEPT_CARRIERS = frozenset({"debangkuaidi", "zhongtong", "jtexpress", "jd", "ems", "youzhengguonei"})
MODIFY_ADDRESS = "MODIFY_ADDR"
RETURN_TO_SENDER = "RETURN_SEND_ADDR"
# What the result callback's `status` says (the fake's and our reading of the provider's result).
INTERCEPT_SUCCESS = "SUCCESS"
INTERCEPT_FAILED = "FAIL"


def supports_interception(carrier_code: str) -> bool:
    return carrier_code in INTERCEPT_CARRIERS


def label_sign(param: str, t: str, key: str, secret: str) -> str:
    """The label/order API's signature: MD5(param + t + key + secret), upper case."""
    return md5_upper(param + t + key + secret)


def intercept_order(
    *,
    carrier_code: str,
    tracking_number: str,
    receiver: dict[str, str],
    callback_url: str,
    reason: str,
    intercept_type: str = MODIFY_ADDRESS,
) -> str:
    """Ask the carrier, through Kuaidi100, to re-address (or return) a parcel in transit. Returns
    Kuaidi100's task id; the outcome arrives later at `callback_url`, signed with our salt."""
    config = settings.KUAIDI100
    payload = {
        "kuaidicom": carrier_code,
        "kuaidinum": tracking_number,
        "interceptType": intercept_type,
        "reason": reason[:50],
        "orderRole": "1",  # we are the sender
        "recManInfo": {
            "name": receiver["receiver_name"],
            "mobile": receiver["receiver_phone"],
            "printAddr": f"{receiver['province']}{receiver['city']}{receiver.get('district', '')}{receiver['address']}",
        },
        "salt": config["CALLBACK_SALT"],
        "callbackUrl": callback_url,
    }
    param = _param(payload)
    t = str(int(timezone.now().timestamp() * 1000))
    base = config.get("API_BASE_URL") or config["BASE_URL"]
    url = base.rstrip("/") + "/label/order"
    form = {
        "method": "interceptOrder",
        "key": config["KEY"],
        "t": t,
        "param": param,
        "sign": label_sign(param, t, config["KEY"], config.get("SECRET", "")),
    }
    try:
        response = requests.post(url, data=form, timeout=settings.OUTBOUND_HTTP_TIMEOUT)
        result = response.json()
    except requests.RequestException as exc:
        raise Kuaidi100Error(f"cannot reach Kuaidi100: {exc.__class__.__name__}") from exc
    except ValueError as exc:
        raise Kuaidi100Error("not JSON") from exc
    code = str(result.get("returnCode", ""))
    if result.get("result") is True and code == "200":
        task_id = str((result.get("data") or {}).get("taskId", ""))
        if not task_id:
            raise Kuaidi100Error("no taskId in the reply", code=code)
        return task_id
    # A refusal (unsupported carrier, parcel signed, bad parameters) will not change by asking again.
    raise Kuaidi100Error(str(result.get("message", "")), code=code, permanent=code not in TRANSIENT_QUERY_CODES)


@dataclass
class InterceptResult:
    task_id: str
    carrier_code: str
    tracking_number: str
    success: bool
    message: str


def parse_intercept_result(param: str) -> InterceptResult:
    """The result callback's `param` (JSON); raises ValueError when it is not that shape."""
    payload = json.loads(param)
    if not isinstance(payload, dict) or not payload.get("taskId"):
        raise ValueError("not an interception result")
    status = str(payload.get("status", ""))
    if status not in (INTERCEPT_SUCCESS, INTERCEPT_FAILED):
        raise ValueError("unknown interception status")
    return InterceptResult(
        task_id=str(payload["taskId"]),
        carrier_code=str(payload.get("kuaidicom", "")),
        tracking_number=str(payload.get("kuaidinum", "")).upper(),
        success=status == INTERCEPT_SUCCESS,
        message=str(payload.get("message", ""))[:300],
    )
