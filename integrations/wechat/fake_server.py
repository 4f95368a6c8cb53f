"""A local WeChat service-account API over HTTP (docs/protocols.md), for the demo and tests.

- `POST /cgi-bin/stable_token`: checks appid/secret, hands out one token per lifetime.
- `POST /cgi-bin/message/template/send?access_token=…`: checks the token (40001/42001), the
  openid (40003; 43004 unsubscribed, 43101 refused), the template id, the value limits (47003)
  and the quota (45009); the same openid + client_msg_id is delivered once within 10 minutes.
  Each delivered message is reported back as a signed `TEMPLATESENDJOBFINISH` XML event.
- The mini-program (its own appid, secret and token): `POST /wxa/sec/order/upload_shipping_info`
  checks the token, the order key (merchant id + out_trade_no; 10060001 unknown payment, 10060004
  a payment that cannot ship, e.g. refunded), logistics_type (10060005), delivery_mode and
  is_all_delivered (10060007), the shipping list (1–15 packages, tracking_no, express_company,
  item_desc ≤ 120 characters: 10060008/10060009, the receiver contact masked: 10060014) and the
  payer's openid; a payment takes one upload and one update (10060003 after that).
  `POST /wxa/sec/order/get_order` answers what it holds. `outage(n)` answers the next n calls with
  HTTP 503; `lose_next_reply()` takes the next upload but answers 503 (a reply lost on the way).
- `GET /` and `GET /phone/<openid>`: what each customer's phone received (the demo's
  "customer's phone"). `POST /_fake/users` (openid, state) binds or changes a follower.

Every well-formed openid (`o` + 27 letters, digits, `-` or `_`) is a subscribed follower unless
set otherwise: the demo's customers carry `sandbox_openid(phone)`.

Run: `python -m integrations.wechat.fake_server --port 8102 --report-url http://127.0.0.1:8000/integrations/wechat/callback/`.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import html
import itertools
import json
import re
import secrets
import threading
import time
from urllib.parse import parse_qs, urlencode, urlsplit

import requests

from integrations.fake_http import FakeHandler, FakeServer

# The sandbox credentials beile/settings.py uses when DEBUG is on and no real ones are set.
SANDBOX_APP_ID = "wxsandbox00000beile"
SANDBOX_APP_SECRET = "sandbox-wechat-secret"
SANDBOX_CALLBACK_TOKEN = "sandbox-wechat-token"
SANDBOX_TEMPLATE_ID = "sandbox-order-status-template"
SANDBOX_MINIPROGRAM_APP_ID = "wxminisandbox0beile"
SANDBOX_MINIPROGRAM_APP_SECRET = "sandbox-miniprogram-secret"
SANDBOX_MCH_ID = "1900000109"
MASKED_CONTACT = re.compile(r"^\d{3}\*{4}\d{4}$")
OPENID = re.compile(r"^o[A-Za-z0-9_-]{27}$")
TIME_VALUE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}(:\d{2})?$")
DEDUPE_SECONDS = 600


def sandbox_openid(phone: str) -> str:
    """The openid the sandbox gives a demo customer: stable, 28 characters, like a real one."""
    return "oBL" + hashlib.sha1(f"beile-sandbox:{phone}".encode()).hexdigest()[:25]  # noqa: S324 - an identifier, not security


def _error(code: int, message: str) -> dict:
    return {"errcode": code, "errmsg": f"{message} rid: {secrets.token_hex(4)}-{secrets.token_hex(4)}"}


def _value_problem(key: str, value: str) -> str:
    kind = key.rstrip("0123456789")
    if kind == "thing" and (not value or len(value) > 20):
        return "thing"
    if kind == "character_string" and (len(value) > 32 or not value.isascii()):
        return "character_string"
    if kind == "phrase" and len(value) > 5:
        return "phrase"
    if kind == "time" and not TIME_VALUE.match(value):
        return "time"
    return ""


class FakeWeChat(FakeServer):
    def __init__(
        self,
        *,
        app_id: str = SANDBOX_APP_ID,
        app_secret: str = SANDBOX_APP_SECRET,
        template_id: str = SANDBOX_TEMPLATE_ID,
        callback_token: str = SANDBOX_CALLBACK_TOKEN,
        report_url: str = "",
        token_seconds: int = 7200,
        quota: int = 100_000,
        miniprogram_app_id: str = SANDBOX_MINIPROGRAM_APP_ID,
        miniprogram_app_secret: str = SANDBOX_MINIPROGRAM_APP_SECRET,
        mch_id: str = SANDBOX_MCH_ID,
    ):
        self.app_id, self.app_secret, self.template_id = app_id, app_secret, template_id
        self.callback_token, self.report_url = callback_token, report_url
        self.token_seconds, self.quota = token_seconds, quota
        self.token = ""
        self.token_expires = 0.0
        self.token_requests = 0
        self.send_requests = 0
        self.followers: dict[str, str] = {}  # openid → subscribed | unsubscribed | refused | blocked
        self.messages: list[dict] = []
        self.recent: dict[tuple[str, str], tuple[float, str]] = {}  # (openid, client_msg_id) → (time, msgid)
        self.failures: list[dict] = []
        self.reports: list[tuple[str, int]] = []
        self._msgids = itertools.count(200228332)
        self.lock = threading.RLock()
        # The mini-program: its token, the payments' shipping information, and its faults.
        self.miniprogram_app_id, self.miniprogram_app_secret, self.mch_id = miniprogram_app_id, miniprogram_app_secret, mch_id
        self.miniprogram_token = ""
        self.miniprogram_token_expires = 0.0
        self.miniprogram_token_requests = 0
        self.shipping_requests = 0
        self.shipping: dict[str, dict] = {}  # out_trade_no → {"uploads": [body, …], "updates": n}
        self.payments: dict[str, str] = {}  # out_trade_no → "missing" | "refunded" (else paid)
        self.shipping_failures: list[dict] = []
        self.outages = 0
        self.lose_reply = False

    def fail_next(self, errcode: int, errmsg: str = "system error") -> None:
        with self.lock:
            self.failures.append(_error(errcode, errmsg))

    def expire_token(self) -> None:
        """The current token stops working now (it expired mid-batch)."""
        with self.lock:
            self.token_expires = 0.0

    def fail_next_shipping(self, errcode: int, errmsg: str = "system error") -> None:
        with self.lock:
            self.shipping_failures.append(_error(errcode, errmsg))

    def outage(self, requests_: int) -> None:
        """The next `requests_` mini-program calls get HTTP 503 (the API is down)."""
        with self.lock:
            self.outages = requests_

    def lose_next_reply(self) -> None:
        """The next upload is taken, but its answer never arrives (HTTP 503)."""
        with self.lock:
            self.lose_reply = True

    def set_payment(self, out_trade_no: str, state: str) -> None:
        with self.lock:
            self.payments[out_trade_no] = state

    def uploads_for(self, out_trade_no: str) -> list[dict]:
        """Every upload WeChat took for the payment (the first, then its update)."""
        with self.lock:
            return list(self.shipping.get(out_trade_no, {}).get("uploads", []))

    def set_follower(self, openid: str, state: str) -> None:
        with self.lock:
            self.followers[openid] = state

    def messages_for(self, openid: str) -> list[dict]:
        with self.lock:
            return [m for m in self.messages if m["touser"] == openid]

    # --- The API ----------------------------------------------------------------------------
    def stable_token(self, body: dict) -> dict:
        with self.lock:
            if body.get("appid") == self.miniprogram_app_id:
                return self._miniprogram_token(body)
            self.token_requests += 1
            if body.get("grant_type") != "client_credential":
                return _error(40002, "invalid grant_type")
            if body.get("appid") != self.app_id:
                return _error(40013, "invalid appid")
            if body.get("secret") != self.app_secret:
                return _error(40125, "invalid appsecret")
            now = time.time()
            if body.get("force_refresh") or not self.token or now >= self.token_expires:
                self.token = secrets.token_urlsafe(48)
                self.token_expires = now + self.token_seconds
            return {"access_token": self.token, "expires_in": int(self.token_expires - now)}

    def _miniprogram_token(self, body: dict) -> dict:
        self.miniprogram_token_requests += 1
        if body.get("secret") != self.miniprogram_app_secret:
            return _error(40125, "invalid appsecret")
        now = time.time()
        if body.get("force_refresh") or not self.miniprogram_token or now >= self.miniprogram_token_expires:
            self.miniprogram_token = secrets.token_urlsafe(48)
            self.miniprogram_token_expires = now + self.token_seconds
        return {"access_token": self.miniprogram_token, "expires_in": int(self.miniprogram_token_expires - now)}

    def _miniprogram_token_problem(self, token: str) -> dict | None:
        if not token:
            return _error(41001, "access_token missing")
        if token != self.miniprogram_token:
            return _error(40001, "invalid credential, access_token is invalid or not latest")
        if time.time() >= self.miniprogram_token_expires:
            return _error(42001, "access_token expired")
        return None

    def _shipping_problem(self, body: dict) -> dict | None:
        key = body.get("order_key") or {}
        if key.get("order_number_type") != 1 or key.get("mchid") != self.mch_id or not key.get("out_trade_no"):
            return _error(10060014, "参数错误：order_key")
        state = self.payments.get(str(key["out_trade_no"]), "paid")
        if state == "missing":
            return _error(10060001, "支付单不存在")
        if state == "refunded":
            return _error(10060004, "支付单处于不可发货的状态")
        if body.get("logistics_type") not in (1, 2, 3, 4):
            return _error(10060005, "物流类型有误")
        packages = body.get("shipping_list") or []
        if body.get("delivery_mode") not in (1, 2) or (body.get("delivery_mode") == 1 and len(packages) != 1):
            return _error(10060014, "参数错误：delivery_mode")
        if body.get("delivery_mode") == 2 and "is_all_delivered" not in body:
            return _error(10060007, "分拆发货模式下必须填写is_all_delivered")
        if not 1 <= len(packages) <= 15:
            return _error(10060014, "参数错误：shipping_list 长度须为 1 到 15")
        for package in packages:
            if not package.get("tracking_no") or not package.get("express_company"):
                return _error(10060014, "参数错误：tracking_no / express_company")
            if not package.get("item_desc"):
                return _error(10060008, "商品描述字段不能为空")
            if len(package["item_desc"]) > 120:
                return _error(10060009, "商品描述字段长度超过限制")
            contact = (package.get("contact") or {}).get("receiver_contact", "")
            if contact and not MASKED_CONTACT.match(contact):
                return _error(10060014, "参数错误：receiver_contact 须掩码")
            if package["express_company"] == "SF" and not contact:
                return _error(10060014, "参数错误：顺丰须填写 receiver_contact")
        if not OPENID.match(str((body.get("payer") or {}).get("openid", ""))):
            return _error(10060014, "参数错误：payer.openid")
        if not body.get("upload_time"):
            return _error(10060014, "参数错误：upload_time")
        return None

    def _down(self) -> bool:
        with self.lock:
            if self.outages:
                self.outages -= 1
                return True
            return False

    def upload_shipping_info(self, token: str, body: dict) -> dict:
        with self.lock:
            self.shipping_requests += 1
            if self.shipping_failures:
                return self.shipping_failures.pop(0)
            problem = self._miniprogram_token_problem(token) or self._shipping_problem(body)
            if problem:
                return problem
            record = self.shipping.setdefault(str(body["order_key"]["out_trade_no"]), {"uploads": [], "updates": 0})
            if record["uploads"]:
                # docs/protocols.md: the shipping information "can be updated once".
                if record["updates"] >= 1:
                    return _error(10060003, "支付单已使用重新发货机会")
                record["updates"] += 1
            record["uploads"].append(body)
            return {"errcode": 0, "errmsg": "ok"}

    def get_order(self, token: str, body: dict) -> dict:
        with self.lock:
            problem = self._miniprogram_token_problem(token)
            if problem:
                return problem
            if body.get("merchant_id") != self.mch_id:
                return _error(10060001, "支付单不存在")
            out_trade_no = str(body.get("merchant_trade_no", ""))
            uploads = self.shipping.get(out_trade_no, {}).get("uploads", [])
            last = uploads[-1] if uploads else {}
            shipping = {
                "delivery_mode": last.get("delivery_mode", 1),
                "logistics_type": last.get("logistics_type", 1),
                "finish_shipping": bool(uploads),
                "shipping_list": [
                    {"tracking_no": p["tracking_no"], "express_company": p["express_company"]}
                    for p in last.get("shipping_list", [])
                ],
            }
            return {
                "errcode": 0,
                "errmsg": "ok",
                "order": {
                    "merchant_id": self.mch_id,
                    "merchant_trade_no": out_trade_no,
                    "order_state": 2 if uploads else 1,
                    "shipping": shipping,
                },
            }

    def template_send(self, token: str, body: dict) -> dict:
        with self.lock:
            self.send_requests += 1
            if self.failures:
                return self.failures.pop(0)
            if not token:
                return _error(41001, "access_token missing")
            if token != self.token:
                return _error(40001, "invalid credential, access_token is invalid or not latest")
            if time.time() >= self.token_expires:
                return _error(42001, "access_token expired")
            openid = str(body.get("touser", ""))
            if not OPENID.match(openid):
                return _error(40003, "invalid openid")
            state = self.followers.get(openid, "subscribed")
            if state == "unsubscribed":
                return _error(43004, "require subscribe")
            if state == "refused":
                return _error(43101, "user refuse to accept the msg")
            if body.get("template_id") != self.template_id:
                return _error(40037, "invalid template_id")
            data = body.get("data") or {}
            for key, item in data.items():
                problem = _value_problem(key, str((item or {}).get("value", "")))
                if problem:
                    return _error(47003, f"argument invalid! data.{key}.value invalid")
            now = time.time()
            key = (openid, str(body.get("client_msg_id", "")))
            if key[1] and key in self.recent and now - self.recent[key][0] < DEDUPE_SECONDS:
                return {"errcode": 0, "errmsg": "ok", "msgid": int(self.recent[key][1])}
            if len(self.messages) >= self.quota:
                return _error(45009, "reach max api daily quota limit")
            msgid = next(self._msgids)
            self.recent[key] = (now, str(msgid))
            self.messages.append(
                {
                    "msgid": msgid,
                    "touser": openid,
                    "client_msg_id": key[1],
                    "url": body.get("url", ""),
                    "data": {k: (v or {}).get("value", "") for k, v in data.items()},
                    "received_at": datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S"),
                }
            )
            status = "failed:user block" if state == "blocked" else "success"
        if self.report_url:
            threading.Thread(target=self._report, args=(openid, msgid, status), daemon=True).start()
        return {"errcode": 0, "errmsg": "ok", "msgid": msgid}

    def _report(self, openid: str, msgid: int, status: str) -> None:
        """The TEMPLATESENDJOBFINISH event, signed the way WeChat signs callbacks."""
        timestamp, nonce = str(int(time.time())), secrets.token_hex(5)
        signature = hashlib.sha1("".join(sorted([self.callback_token, timestamp, nonce])).encode()).hexdigest()  # noqa: S324
        xml = (
            f"<xml><ToUserName><![CDATA[gh_sandbox]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>"
            f"<CreateTime>{timestamp}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
            f"<Event><![CDATA[TEMPLATESENDJOBFINISH]]></Event><MsgID>{msgid}</MsgID><Status><![CDATA[{status}]]></Status></xml>"
        )
        query = urlencode({"signature": signature, "timestamp": timestamp, "nonce": nonce, "openid": openid})
        try:
            response = requests.post(
                f"{self.report_url}?{query}", data=xml.encode(), headers={"Content-Type": "text/xml"}, timeout=10
            )
            with self.lock:
                self.reports.append((str(msgid), response.status_code))
        except requests.RequestException:
            with self.lock:
                self.reports.append((str(msgid), 0))

    # --- The pages --------------------------------------------------------------------------
    def index_page(self) -> str:
        with self.lock:
            counts: dict[str, int] = {}
            for message in self.messages:
                counts[message["touser"]] = counts.get(message["touser"], 0) + 1
        rows = "".join(
            f"<li><a href='/phone/{html.escape(o)}'>{html.escape(o)}</a> · {n} messages</li>" for o, n in counts.items()
        )
        return (
            "<!doctype html><meta charset=utf-8><meta http-equiv=refresh content=5><title>Fake WeChat</title>"
            f"<h1>Fake WeChat service account (sandbox)</h1><p>{len(self.messages)} messages delivered.</p><ul>{rows}</ul>"
            f"<h2>Mini-program shipping information</h2><ul>{self._shipping_rows()}</ul>"
        )

    def _shipping_rows(self) -> str:
        with self.lock:
            items = [(no, list(record["uploads"])) for no, record in self.shipping.items()]
        return "".join(
            f"<li>{html.escape(no)} · "
            + " → ".join(
                html.escape(", ".join(f"{p['express_company']} {p['tracking_no']}" for p in body["shipping_list"]))
                for body in uploads
            )
            + "</li>"
            for no, uploads in items
        )

    def phone_page(self, openid: str) -> str:
        bubbles = []
        for message in reversed(self.messages_for(openid)):
            lines = "".join(
                f"<div><small>{html.escape(k)}</small> {html.escape(str(v))}</div>" for k, v in message["data"].items()
            )
            link = f"<a href='{html.escape(message['url'])}'>详情</a>" if message["url"] else ""
            bubbles.append(f"<div class=msg><b>订单状态通知</b> <small>{message['received_at']}</small>{lines}{link}</div>")
        return (
            "<!doctype html><meta charset=utf-8><meta name=viewport content='width=device-width'><meta http-equiv=refresh content=3>"
            "<title>Customer phone</title><style>body{font-family:sans-serif;max-width:380px;margin:auto;background:#ededed}"
            ".msg{background:#fff;border-radius:8px;padding:10px;margin:10px 0}small{color:#888}</style>"
            f"<h2>📱 {html.escape(openid)}</h2>" + ("".join(bubbles) or "<p>No messages yet.</p>")
        )

    def _handler(self):
        fake = self

        class Handler(FakeHandler):
            def do_GET(self):
                path = urlsplit(self.path).path
                if path == "/":
                    return self._send(200, fake.index_page(), "text/html; charset=utf-8")
                if path.startswith("/phone/"):
                    return self._send(200, fake.phone_page(path.removeprefix("/phone/")), "text/html; charset=utf-8")
                return self._send(404, json.dumps(_error(404, "not found")))

            def do_POST(self):
                parts = urlsplit(self.path)
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if parts.path == "/_fake/users":
                    form = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
                    fake.set_follower(form.get("openid", ""), form.get("state", "subscribed"))
                    return self._send(200, json.dumps({"ok": True}))
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    return self._send(200, json.dumps(_error(47001, "data format error")))
                if parts.path == "/cgi-bin/stable_token":
                    reply = fake.stable_token(body)
                elif parts.path.startswith("/wxa/sec/order/"):
                    if fake._down():
                        return self._send(503, "<html><body>503 Service Unavailable</body></html>", "text/html")
                    token = parse_qs(parts.query).get("access_token", [""])[0]
                    if parts.path.endswith("/upload_shipping_info"):
                        reply = fake.upload_shipping_info(token, body)
                        with fake.lock:
                            lost, fake.lose_reply = fake.lose_reply, False
                        if lost:
                            return self._send(503, "<html><body>503 Service Unavailable</body></html>", "text/html")
                    elif parts.path.endswith("/get_order"):
                        reply = fake.get_order(token, body)
                    else:
                        return self._send(404, json.dumps(_error(404, "not found")))
                elif parts.path == "/cgi-bin/message/template/send":
                    token = parse_qs(parts.query).get("access_token", [""])[0]
                    reply = fake.template_send(token, body)
                else:
                    return self._send(404, json.dumps(_error(404, "not found")))
                return self._send(200, json.dumps(reply, ensure_ascii=False))

        return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8102)
    parser.add_argument("--report-url", default="", help="where delivery reports (TEMPLATESENDJOBFINISH) are posted")
    parser.add_argument("--app-id", default=SANDBOX_APP_ID)
    parser.add_argument("--app-secret", default=SANDBOX_APP_SECRET)
    parser.add_argument("--template-id", default=SANDBOX_TEMPLATE_ID)
    parser.add_argument("--callback-token", default=SANDBOX_CALLBACK_TOKEN)
    args = parser.parse_args()
    fake = FakeWeChat(
        app_id=args.app_id,
        app_secret=args.app_secret,
        template_id=args.template_id,
        callback_token=args.callback_token,
        report_url=args.report_url,
    )
    fake.start(args.host, args.port)
    print(f"Fake WeChat on {fake.url} (customer phones at {fake.url}/)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        fake.stop()


if __name__ == "__main__":
    main()
