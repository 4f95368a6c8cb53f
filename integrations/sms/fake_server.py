"""A local Alibaba Cloud SMS endpoint over HTTP (docs/protocols.md), for the demo and tests.

- `POST /` with `Action=SendSms`: checks the signature (HMAC-SHA1 over the canonical query), the
  AccessKeyId, a fresh SignatureNonce, the sign name, an approved TemplateCode, its parameters
  and the phone number; applies the per-phone flow control (`isv.BUSINESS_LIMIT_CONTROL`);
  answers `{"Code": "OK", "BizId": …}` and pushes the delivery receipt (SmsReport) to
  `--report-url`.
- `GET /` and `GET /phone/<number>`: what each phone received (the demo's "customer's phone").
- `POST /_fake/reply` (phone, content): the customer replies, e.g. "TD", pushed as SmsUp to
  `--reply-url`.

Run: `python -m integrations.sms.fake_server --port 8103 --report-url http://127.0.0.1:8000/integrations/sms/report/?token=…`.
"""

from __future__ import annotations

import argparse
import datetime
import html
import itertools
import json
import re
import secrets
import threading
import time
from urllib.parse import parse_qs, urlsplit

import requests

from integrations.fake_http import FakeHandler, FakeServer
from integrations.sms.client import signature

SANDBOX_ACCESS_KEY_ID = "LTAIsandboxbeile"
SANDBOX_ACCESS_KEY_SECRET = "sandbox-sms-secret"  # noqa: S105 - the sandbox's published value
SANDBOX_SIGN_NAME = "贝乐母婴"
SANDBOX_CALLBACK_TOKEN = "sandbox-sms-token"  # noqa: S105
# The approved templates (only these can be sent), with the texts the carriers approved.
TEMPLATES = {
    "SMS_BEILE_STATUS": "您的订单${order}：${status}，${location}，${eta}。${note} 详情${link} 回T退订",
    "SMS_BEILE_DELAY": "抱歉，您的订单${order}${note}，新的预计送达时间${eta}。详情${link} 回T退订",
}
PHONE = re.compile(r"^1\d{10}$")
VARIABLE = re.compile(r"\$\{(\w+)\}")


def _error(code: str, message: str) -> dict:
    return {"Code": code, "Message": message, "RequestId": secrets.token_hex(8).upper()}


def render(template_code: str, params: dict[str, str], sign_name: str) -> str:
    return f"【{sign_name}】" + VARIABLE.sub(lambda m: str(params.get(m.group(1), "")), TEMPLATES[template_code])


class FakeSms(FakeServer):
    def __init__(
        self,
        *,
        access_key_id: str = SANDBOX_ACCESS_KEY_ID,
        access_key_secret: str = SANDBOX_ACCESS_KEY_SECRET,
        sign_name: str = SANDBOX_SIGN_NAME,
        report_url: str = "",
        reply_url: str = "",
        limits: dict[str, int] | None = None,
    ):
        self.access_key_id, self.access_key_secret, self.sign_name = access_key_id, access_key_secret, sign_name
        self.report_url, self.reply_url = report_url, reply_url
        self.limits = limits if limits is not None else {"minute": 1, "hour": 5, "day": 10}
        self.requests = 0
        self.messages: list[dict] = []
        self.nonces: set[str] = set()
        self.failures: list[dict] = []
        self.undeliverable: set[str] = set()  # phones whose carrier reports failure
        self.reports: list[tuple[str, int]] = []
        self._biz_ids = itertools.count(900_100_000)
        self.lock = threading.RLock()

    def fail_next(self, code: str, message: str = "error") -> None:
        with self.lock:
            self.failures.append(_error(code, message))

    def messages_for(self, phone: str) -> list[dict]:
        with self.lock:
            return [m for m in self.messages if m["phone"] == phone]

    # --- The API ----------------------------------------------------------------------------
    def send_sms(self, params: dict[str, str]) -> tuple[int, dict]:
        with self.lock:
            self.requests += 1
            given = params.pop("Signature", "")
            if params.get("AccessKeyId") != self.access_key_id:
                return 404, _error("InvalidAccessKeyId.NotFound", "Specified access key is not found.")
            if signature(params, self.access_key_secret) != given:
                return 400, _error("SignatureDoesNotMatch", "Specified signature is not matched with our calculation.")
            nonce = params.get("SignatureNonce", "")
            if not nonce or nonce in self.nonces:
                return 400, _error("SignatureNonceUsed", "Specified signature nonce was used already.")
            self.nonces.add(nonce)
            try:
                stamp = datetime.datetime.strptime(params.get("Timestamp", ""), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC)
            except ValueError:
                return 400, _error("InvalidTimeStamp.Format", "Specified time stamp is not valid.")
            if abs((datetime.datetime.now(datetime.UTC) - stamp).total_seconds()) > 900:
                return 400, _error("InvalidTimeStamp.Expired", "Specified time stamp or date header is expired.")
            if params.get("Action") != "SendSms" or params.get("Version") != "2017-05-25":
                return 400, _error("InvalidAction.NotFound", "Specified api is not found")
            if self.failures:
                return 200, self.failures.pop(0)
            phone = params.get("PhoneNumbers", "")
            if not PHONE.match(phone):
                return 200, _error("isv.MOBILE_NUMBER_ILLEGAL", "非法手机号")
            if params.get("SignName") != self.sign_name:
                return 200, _error("isv.SMS_SIGNATURE_ILLEGAL", "该账号下找不到对应签名")
            code = params.get("TemplateCode", "")
            if code not in TEMPLATES:
                return 200, _error("isv.SMS_TEMPLATE_ILLEGAL", "该账号下找不到对应模板")
            try:
                values = json.loads(params.get("TemplateParam") or "{}")
            except ValueError:
                return 200, _error("isv.INVALID_JSON_PARAM", "JSON参数不合法")
            missing = [name for name in VARIABLE.findall(TEMPLATES[code]) if not str(values.get(name, ""))]
            if missing:
                return 200, _error("isv.TEMPLATE_MISSING_PARAMETERS", f"模板变量缺少对应参数值: {missing[0]}")
            now = time.time()
            sent = [m["at"] for m in self.messages if m["phone"] == phone]
            for window, span in (("minute", 60), ("hour", 3600), ("day", 86400)):
                limit = self.limits.get(window)
                if limit and sum(1 for at in sent if now - at < span) >= limit:
                    return 200, _error("isv.BUSINESS_LIMIT_CONTROL", f"触发{window}级流控Permits:{limit}")
            biz_id = f"{next(self._biz_ids)}^0"
            content = render(code, values, self.sign_name)
            size = 1 if len(content) <= 70 else -(-len(content) // 67)
            self.messages.append(
                {
                    "biz_id": biz_id,
                    "phone": phone,
                    "template_code": code,
                    "params": values,
                    "content": content,
                    "out_id": params.get("OutId", ""),
                    "sms_size": size,
                    "at": now,
                    "received_at": datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S"),
                }
            )
            success = phone not in self.undeliverable
        if self.report_url:
            threading.Thread(
                target=self._report, args=(phone, biz_id, size, success, params.get("OutId", "")), daemon=True
            ).start()
        return 200, {"Code": "OK", "Message": "OK", "BizId": biz_id, "RequestId": secrets.token_hex(8).upper()}

    def _post(self, url: str, items: list[dict]) -> int:
        try:
            return requests.post(url, json=items, timeout=10).status_code
        except requests.RequestException:
            return 0

    def _report(self, phone: str, biz_id: str, size: int, success: bool, out_id: str) -> None:
        status = self._post(self.report_url, [self.receipt(phone, biz_id, size, success, out_id)])
        with self.lock:
            self.reports.append((biz_id, status))

    def receipt_of(self, message: dict) -> dict:
        """The SmsReport item the platform pushes for one sent message."""
        success = message["phone"] not in self.undeliverable
        return self.receipt(message["phone"], message["biz_id"], message["sms_size"], success, message["out_id"])

    @staticmethod
    def receipt(phone: str, biz_id: str, size: int, success: bool, out_id: str) -> dict:
        now = datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S")
        return {
            "phone_number": phone,
            "send_time": now,
            "report_time": now,
            "success": success,
            "err_code": "DELIVERED" if success else "MK:0001",
            "err_msg": "用户接收成功" if success else "空号",
            "sms_size": str(size),
            "biz_id": biz_id,
            "out_id": out_id,
        }

    def reply(self, phone: str, content: str) -> int:
        """The customer answers an SMS (e.g. "TD"): pushed as SmsUp."""
        item = {
            "phone_number": phone,
            "send_time": datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S"),
            "content": content,
            "sign_name": self.sign_name,
            "dest_code": "1234",
            "sequence_id": int(time.time() * 1000),
        }
        return self._post(self.reply_url, [item]) if self.reply_url else 0

    # --- The pages --------------------------------------------------------------------------
    def index_page(self) -> str:
        with self.lock:
            counts: dict[str, int] = {}
            for message in self.messages:
                counts[message["phone"]] = counts.get(message["phone"], 0) + 1
        rows = "".join(f"<li><a href='/phone/{html.escape(p)}'>{html.escape(p)}</a> · {n} SMS</li>" for p, n in counts.items())
        return (
            "<!doctype html><meta charset=utf-8><meta http-equiv=refresh content=5><title>Fake SMS</title>"
            f"<h1>Fake SMS platform (sandbox)</h1><p>{len(self.messages)} SMS sent.</p><ul>{rows}</ul>"
        )

    def phone_page(self, phone: str) -> str:
        bubbles = "".join(
            f"<div class=msg><small>{m['received_at']} · {html.escape(m['template_code'])}</small><div>{html.escape(m['content'])}</div></div>"
            for m in reversed(self.messages_for(phone))
        )
        return (
            "<!doctype html><meta charset=utf-8><meta name=viewport content='width=device-width'><meta http-equiv=refresh content=3>"
            "<title>Customer phone (SMS)</title><style>body{font-family:sans-serif;max-width:380px;margin:auto;background:#ededed}"
            ".msg{background:#fff;border-radius:8px;padding:10px;margin:10px 0}small{color:#888}</style>"
            f"<h2>📱 {html.escape(phone)}</h2>" + (bubbles or "<p>No SMS yet.</p>")
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
                return self._send(404, json.dumps(_error("NotFound", "not found")))

            def do_POST(self):
                parts = urlsplit(self.path)
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                form = {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}
                if parts.path == "/_fake/reply":
                    return self._send(200, json.dumps({"status": fake.reply(form.get("phone", ""), form.get("content", ""))}))
                if parts.path != "/":
                    return self._send(404, json.dumps(_error("NotFound", "not found")))
                status, reply = fake.send_sms(form)
                return self._send(status, json.dumps(reply, ensure_ascii=False))

        return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8103)
    parser.add_argument("--report-url", default="", help="where delivery receipts (SmsReport) are pushed")
    parser.add_argument("--reply-url", default="", help="where customers' replies (SmsUp) are pushed")
    args = parser.parse_args()
    fake = FakeSms(report_url=args.report_url, reply_url=args.reply_url)
    fake.start(args.host, args.port)
    print(f"Fake SMS on {fake.url} (customer phones at {fake.url}/)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        fake.stop()


if __name__ == "__main__":
    main()
