"""A local WeChat service-account API over HTTP (docs/protocols.md), for the demo and tests.

- `POST /cgi-bin/stable_token`: checks appid/secret, hands out one token per lifetime.
- `POST /cgi-bin/message/template/send?access_token=…`: checks the token (40001/42001), the
  openid (40003; 43004 unsubscribed, 43101 refused), the template id, the value limits (47003)
  and the quota (45009); the same openid + client_msg_id is delivered once within 10 minutes.
  Each delivered message is reported back as a signed `TEMPLATESENDJOBFINISH` XML event.
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

    def fail_next(self, errcode: int, errmsg: str = "system error") -> None:
        with self.lock:
            self.failures.append(_error(errcode, errmsg))

    def expire_token(self) -> None:
        """The current token stops working now (it expired mid-batch)."""
        with self.lock:
            self.token_expires = 0.0

    def set_follower(self, openid: str, state: str) -> None:
        with self.lock:
            self.followers[openid] = state

    def messages_for(self, openid: str) -> list[dict]:
        with self.lock:
            return [m for m in self.messages if m["touser"] == openid]

    # --- The API ----------------------------------------------------------------------------
    def stable_token(self, body: dict) -> dict:
        with self.lock:
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
