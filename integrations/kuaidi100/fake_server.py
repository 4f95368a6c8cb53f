"""A local Kuaidi100 that speaks the real protocol over HTTP (docs/protocols.md), for the demo and tests.

- `POST /poll/query.do`: form `customer`, `sign`, `param`; checks the upper-case MD5 signature
  and answers with the real error codes and messages.
- `POST /poll`: form `schema=json`, `param` (with `key` and `parameters.callbackurl/salt`);
  a subscription later pushes callbacks (`param` + `sign = MD5(param + salt)`) with
  `status` polling/shutdown/abort and `lastResult`, and retries a push the receiver did not
  acknowledge with exactly `{"result":true,"returnCode":"200","message":"成功"}`.
- `GET /` lists subscriptions; `POST /_fake/script` (number, scenario) and `POST /_fake/advance`
  (number) let the demo steer a parcel by hand.

What a parcel does is its scenario, chosen by the tracking number unless scripted:
numbers containing STALL are picked up and then go silent, PROB hit a problem (state 2),
REFUSE are refused (state 14), LOST never get records (`abort`); every other one is delivered.

- `POST /label/order` with `method=interceptOrder` (form `key`, `t`, `param`, `sign = MD5(param + t +
  key + secret)`): interception / re-address for the carriers in INTERCEPT_CARRIERS, only for a
  parcel not yet signed; answers a `taskId` at once and the result later, by a signed callback
  (`param` JSON with taskId, kuaidicom, kuaidinum, interceptType, status SUCCESS/FAIL, message;
  `sign = MD5(param + salt)`). A waybill containing NOINT fails at the carrier. Tests call
  `intercept_finish(task_id)`; with --step-seconds the fake answers by itself after one step.
  (The callback's field names are this fake's reading of the provider's result; the request's
  fields follow the provider's demo SDK.)

Run: `python -m integrations.kuaidi100.fake_server --port 8101 --step-seconds 5`.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import html
import json
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qs

import requests

from integrations.fake_http import FakeHandler, FakeServer

# The sandbox credentials beile/settings.py uses when DEBUG is on and no real ones are set.
SANDBOX_CUSTOMER = "SANDBOXCUSTOMER0001"
SANDBOX_KEY = "sandbox-kuaidi100-key"
SANDBOX_SECRET = "sandbox-kuaidi100-secret"
# interceptOrder (拦截改址) serves these carriers only (docs/protocols.md): SF is not among them.
INTERCEPT_CARRIERS = {"debangkuaidi", "zhongtong", "jtexpress", "jd", "ems", "youzhengguonei"}
KNOWN_CARRIERS = {
    "shunfeng",
    "shunfenglengyun",
    "zhongtong",
    "yuantong",
    "yunda",
    "shentong",
    "ems",
    "jd",
    "jtexpress",
    "huitongkuaidi",
    "debangkuaidi",
    "youzhengguonei",
}
# A carrier that refuses subscriptions, so the 701 path can be exercised.
REFUSING_CARRIERS = {"youzhengguonei"}
SF_CODES = {"shunfeng", "shunfenglengyun"}
BEIJING = datetime.timezone(datetime.timedelta(hours=8))

# (state, status name, context, area name, area code)
DELIVERED = [
    ("1", "揽收", "[杭州市]【杭州萧山仓】的快递员已揽收", "浙江,杭州市", "CN330109000000"),
    ("0", "在途", "[杭州市]快件已发往【上海转运中心】", "浙江,杭州市", "CN330109000000"),
    ("0", "在途", "[上海市]快件已到达【上海转运中心】", "上海,上海市", "CN310000000000"),
    ("5", "派件", "[上海市]快递员正在派件，请保持电话畅通", "上海,上海市", "CN310000000000"),
    ("3", "签收", "[上海市]已签收，签收人：本人，感谢使用", "上海,上海市", "CN310000000000"),
]
SCENARIOS = {
    "delivered": DELIVERED,
    "stall": DELIVERED[:1],
    "problem": DELIVERED[:2] + [("2", "疑难", "[上海市]收件地址不详，快递员无法联系收件人", "上海,上海市", "CN310000000000")],
    "refused": DELIVERED[:4] + [("14", "拒签", "[上海市]收件人拒收，快件将退回", "上海,上海市", "CN310000000000")],
    "lost": [],
}
FINAL_STATES = {"3", "4", "14"}


def scenario_for(number: str) -> str:
    for marker, scenario in (("STALL", "stall"), ("PROB", "problem"), ("REFUSE", "refused"), ("LOST", "lost")):
        if marker in number.upper():
            return scenario
    return "delivered"


def md5_upper(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest().upper()  # noqa: S324 - the provider's protocol


def error(code: str, message: str) -> dict:
    return {"result": False, "returnCode": code, "message": message}


@dataclass
class Parcel:
    company: str
    number: str
    scenario: str
    phone: str = ""
    callback_url: str = ""
    salt: str = ""
    events: list[dict] = field(default_factory=list)  # newest first, as the provider sends them
    step: int = 0
    # The subscription's push status as Kuaidi100 names it: polling, shutdown or abort.
    push_status: str = "polling"
    next_push_at: float | None = None
    pending_retry: dict | None = None
    pushes: list[dict] = field(default_factory=list)  # what was sent and how the receiver answered


class FakeKuaidi100(FakeServer):
    def __init__(
        self,
        *,
        customer: str = SANDBOX_CUSTOMER,
        key: str = SANDBOX_KEY,
        secret: str = SANDBOX_SECRET,
        step_seconds: float | None = None,
        first_push_seconds: float | None = None,
        retry_seconds: float = 1800.0,
    ):
        self.customer = customer
        self.key = key
        self.secret = secret
        self.intercepts: dict[str, dict] = {}  # taskId → the request and what became of it
        # None: nothing is pushed by itself (tests call push()); a number: the demo's pace.
        self.step_seconds = step_seconds
        self.first_push_seconds = step_seconds if first_push_seconds is None else first_push_seconds
        self.retry_seconds = retry_seconds
        self.parcels: dict[str, Parcel] = {}
        self.scripted: dict[str, str] = {}
        self.failures: list[tuple[str, dict]] = []  # (path, reply) served once, in order
        self.requests: list[tuple[str, dict]] = []
        self.lock = threading.RLock()
        self._stop = threading.Event()

    # --- Serving --------------------------------------------------------------------------
    def start(self, host: str = "127.0.0.1", port: int = 0) -> FakeKuaidi100:
        super().start(host, port)
        threading.Thread(target=self._pusher, daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()
        super().stop()

    def fail_next(self, path: str, code: str, message: str) -> None:
        """The next request to `path` gets this error reply (busy, expired key …)."""
        with self.lock:
            self.failures.append((path, error(code, message)))

    def script(self, number: str, scenario: str) -> None:
        if scenario not in SCENARIOS:
            raise ValueError(f"unknown scenario {scenario!r}; one of {sorted(SCENARIOS)}")
        with self.lock:
            self.scripted[number] = scenario
            if number in self.parcels:
                self.parcels[number].scenario = scenario

    def _handler(self):
        fake = self

        class Handler(FakeHandler):
            content_type = "application/json;charset=UTF-8"

            def _form(self) -> dict[str, str]:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode("utf-8", "replace")
                if "application/x-www-form-urlencoded" not in (self.headers.get("Content-Type") or ""):
                    return {}
                return {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}

            def do_GET(self):
                if self.path.split("?")[0] == "/":
                    return self._send(200, fake.page(), "text/html;charset=UTF-8")
                return self._send(404, json.dumps(error("404", "not found")))

            def do_POST(self):
                path = self.path.split("?")[0]
                form = self._form()
                with fake.lock:
                    fake.requests.append((path, form))
                    injected = next((reply for p, reply in fake.failures if p == path), None)
                    if injected is not None:
                        fake.failures.remove((path, injected))
                if injected is not None:
                    return self._send(200, json.dumps(injected, ensure_ascii=False))
                if path == "/poll/query.do":
                    reply = fake.handle_query(form)
                elif path == "/poll":
                    reply = fake.handle_subscribe(form)
                elif path == "/label/order":
                    reply = fake.handle_label(form, self.path)
                elif path in ("/_fake/script", "/_fake/advance"):
                    number = form.get("number", "").strip().upper()
                    if path == "/_fake/script":
                        fake.script(number, form.get("scenario", "stall"))
                    elif number in fake.parcels:
                        fake.push(number)
                    self.send_response(303)
                    self.send_header("Location", "/")
                    self.end_headers()
                    return None
                else:
                    return self._send(404, json.dumps(error("404", "not found")))
                return self._send(200, json.dumps(reply, ensure_ascii=False))

        return Handler

    # --- The two APIs ---------------------------------------------------------------------
    def handle_query(self, form: dict[str, str]) -> dict:
        if not {"customer", "sign", "param"} <= form.keys():
            return error("400", "找不到对应公司或参数不完整")
        try:
            param = json.loads(form["param"])
        except ValueError:
            return error("400", "找不到对应公司或参数不完整")
        if form["sign"] != md5_upper(form["param"] + self.key + form["customer"]):
            return error("503", "验证签名失败")
        if form["customer"] != self.customer:
            return error("601", "key已过期或查询额度不足")
        company, number = str(param.get("com", "")), str(param.get("num", "")).upper()
        if company not in KNOWN_CARRIERS or not number or len(number) > 32:
            return error("400", "找不到对应公司或参数不完整")
        with self.lock:
            parcel = self.parcels.get(number)
            if company in SF_CODES and (
                not parcel
                or not parcel.phone
                or not str(param.get("phone", ""))
                or not parcel.phone.endswith(str(param.get("phone", ""))[-4:])
            ):
                return error("408", "快递公司参数异常：电话号码校验不通过")
            if parcel is None or not parcel.events:
                return error("500", "查询无结果，请隔段时间再查")
            return self._result(parcel, with_eta="8" in str(param.get("resultv2", "")))

    def handle_subscribe(self, form: dict[str, str]) -> dict:
        if form.get("schema") != "json" or "param" not in form:
            return error("700", "订阅参数错误")
        try:
            param = json.loads(form["param"])
        except ValueError:
            return error("700", "订阅参数错误")
        if param.get("key") != self.key:
            return error("600", "您不是合法的订阅者（即授权Key出错）")
        company, number = str(param.get("company", "")), str(param.get("number", "")).upper()
        parameters = param.get("parameters") or {}
        if not company:
            return error("702", "POLL:识别不到该单号对应的快递公司")
        if company not in KNOWN_CARRIERS or not number or not parameters.get("callbackurl"):
            return error("700", "订阅参数错误：不支持的快递公司或单号")
        if company in REFUSING_CARRIERS:
            return error("701", "拒绝订阅的快递公司")
        with self.lock:
            existing = self.parcels.get(number)
            if existing and existing.push_status != "abort":
                return error("501", "POLL:重复订阅")
            scenario = self.scripted.get(number, scenario_for(number))
            parcel = Parcel(
                company=company,
                number=number,
                scenario=scenario,
                phone=str(parameters.get("phone", "")),
                callback_url=parameters["callbackurl"],
                salt=str(parameters.get("salt", "")),
            )
            if self.first_push_seconds is not None:
                parcel.next_push_at = time.monotonic() + self.first_push_seconds
            self.parcels[number] = parcel
        return {"result": True, "returnCode": "200", "message": "提交成功"}

    def handle_label(self, form: dict[str, str], full_path: str = "") -> dict:
        method = form.get("method") or parse_qs(full_path.partition("?")[2]).get("method", [""])[0]
        if method != "interceptOrder":
            return error("400", "不支持的接口方法")
        if not {"key", "t", "param", "sign"} <= form.keys():
            return error("400", "参数不完整")
        if form["key"] != self.key or form["sign"] != md5_upper(form["param"] + form["t"] + self.key + self.secret):
            return error("503", "验证签名失败")
        try:
            param = json.loads(form["param"])
        except ValueError:
            return error("400", "参数不完整")
        company, number = str(param.get("kuaidicom", "")), str(param.get("kuaidinum", "")).upper()
        receiver = param.get("recManInfo") or {}
        if param.get("interceptType") not in ("MODIFY_ADDR", "RETURN_SEND_ADDR", "RETURN_SEND_STATION"):
            return error("400", "拦截类型错误")
        if param.get("interceptType") == "MODIFY_ADDR" and not (
            receiver.get("name") and receiver.get("mobile") and receiver.get("printAddr")
        ):
            return error("400", "改址需要完整的收件人信息")
        if not param.get("callbackUrl"):
            return error("400", "缺少回调地址")
        if company not in INTERCEPT_CARRIERS:
            return error("30001", "该快递公司暂不支持拦截改址")
        with self.lock:
            parcel = self.parcels.get(number)
            if parcel is not None and parcel.events and parcel.events[0]["_state"] in FINAL_STATES:
                return error("30002", "快件已签收或已退回，无法拦截")
            task_id = f"INT{len(self.intercepts) + 1:06d}{number[-4:]}"
            self.intercepts[task_id] = {
                "company": company,
                "number": number,
                "type": param["interceptType"],
                "callback_url": param["callbackUrl"],
                "salt": str(param.get("salt", "")),
                "result": None,
                "due_at": time.monotonic() + self.step_seconds if self.step_seconds is not None else None,
            }
        return {"result": True, "returnCode": "200", "message": "提交成功", "data": {"taskId": task_id}}

    def intercept_payload(self, task_id: str, *, success: bool | None = None) -> dict:
        """The result of an interception: success unless told otherwise or the waybill says NOINT."""
        with self.lock:
            task = self.intercepts[task_id]
            if success is None:
                success = "NOINT" not in task["number"]
            task["result"] = "SUCCESS" if success else "FAIL"
            return {
                "taskId": task_id,
                "kuaidicom": task["company"],
                "kuaidinum": task["number"],
                "interceptType": task["type"],
                "status": task["result"],
                "message": "拦截改址成功" if success else "快递员已出发派件，拦截失败",
            }

    def intercept_deliver(self, task_id: str, payload: dict, *, sign: str | None = None) -> requests.Response:
        task = self.intercepts[task_id]
        param = json.dumps(payload, ensure_ascii=False)
        form = {"param": param, "sign": sign if sign is not None else md5_upper(param + task["salt"])}
        return requests.post(task["callback_url"], data=form, timeout=10)

    def intercept_finish(self, task_id: str, *, success: bool | None = None) -> requests.Response:
        return self.intercept_deliver(task_id, self.intercept_payload(task_id, success=success))

    def _result(self, parcel: Parcel, *, with_eta: bool = True) -> dict:
        state = parcel.events[0]["_state"] if parcel.events else "0"
        result = {
            "message": "ok",
            "nu": parcel.number,
            "ischeck": "1" if state in FINAL_STATES else "0",
            "com": parcel.company,
            "status": "200",
            "state": state,
            "condition": "00",
            "data": [{k: v for k, v in event.items() if not k.startswith("_")} for event in parcel.events],
        }
        if with_eta and state not in FINAL_STATES and parcel.events:
            eta = datetime.datetime.now(BEIJING) + datetime.timedelta(days=1)
            result["arrivalTime"] = eta.strftime("%Y-%m-%d %H")
        return result

    # --- Pushing --------------------------------------------------------------------------
    def advance(self, number: str) -> dict:
        """Reveal the parcel's next tracking step and build the callback it causes."""
        with self.lock:
            parcel = self.parcels[number]
            steps = SCENARIOS[parcel.scenario]
            if not steps and parcel.push_status != "abort":
                parcel.push_status = "abort"
                return {
                    "status": "abort",
                    "billstatus": "check",
                    "message": "3天查询无记录",
                    "autoCheck": "0",
                    "comOld": "",
                    "comNew": "",
                    "lastResult": {**self._result(parcel), "message": "3天查询无记录"},
                }
            if parcel.step < len(steps):
                state, status_name, context, area, code = steps[parcel.step]
                parcel.step += 1
                moment = datetime.datetime.now(BEIJING).replace(microsecond=0)
                if parcel.events:  # a carrier's scans are at least a second apart
                    previous = datetime.datetime.strptime(parcel.events[0]["time"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=BEIJING)
                    moment = max(moment, previous + datetime.timedelta(seconds=1))
                now = moment.strftime("%Y-%m-%d %H:%M:%S")
                parcel.events.insert(
                    0,
                    {
                        "time": now,
                        "ftime": now,
                        "context": context,
                        "areaCode": code,
                        "areaName": area,
                        "status": status_name,
                        "_state": state,
                    },
                )
                if state in FINAL_STATES:
                    parcel.push_status = "shutdown"
            return {
                "status": parcel.push_status,
                "billstatus": "polling" if parcel.push_status == "polling" else "check",
                "message": "",
                "autoCheck": "0",
                "comOld": "",
                "comNew": "",
                "lastResult": self._result(parcel),
            }

    def deliver(self, number: str, payload: dict, *, sign: str | None = None) -> requests.Response | None:
        """POST one callback to the subscriber, signed with its salt unless `sign` is given; a push
        the receiver does not acknowledge exactly (or cannot be reached for) is retried later."""
        parcel = self.parcels[number]
        param = json.dumps(payload, ensure_ascii=False)
        form = {"param": param}
        if parcel.salt or sign is not None:
            form["sign"] = sign if sign is not None else md5_upper(param + parcel.salt)
        response = None
        try:
            response = requests.post(parcel.callback_url, data=form, timeout=10)
            acknowledged = response.json() == {"result": True, "returnCode": "200", "message": "成功"}
        except (requests.RequestException, ValueError):
            acknowledged = False
        with self.lock:
            parcel.pushes.append(
                {"payload": payload, "http": response.status_code if response is not None else None, "acknowledged": acknowledged}
            )
            tries = (parcel.pending_retry or {}).get("tries", 0) + 1
            parcel.pending_retry = None if acknowledged else {"payload": payload, "tries": tries}
        return response

    def push(self, number: str) -> requests.Response | None:
        return self.deliver(number, self.advance(number))

    def _pusher(self) -> None:
        while not self._stop.wait(0.2):
            now = time.monotonic()
            with self.lock:
                due = [p for p in self.parcels.values() if p.next_push_at is not None and p.next_push_at <= now]
                for parcel in due:
                    parcel.next_push_at = None
                intercepts = [t for t, task in self.intercepts.items() if task["due_at"] is not None and task["due_at"] <= now]
                for task_id in intercepts:
                    self.intercepts[task_id]["due_at"] = None
            for task_id in intercepts:
                try:
                    self.intercept_finish(task_id)
                except requests.RequestException:
                    pass  # the demo's cockpit was down: the interception stays unanswered
            for parcel in due:
                steps = SCENARIOS[parcel.scenario]
                # The provider retries an unacknowledged push about 3 times, then moves on.
                if parcel.pending_retry and parcel.pending_retry["tries"] <= 3:
                    self.deliver(parcel.number, parcel.pending_retry["payload"])
                elif parcel.push_status == "polling" and (not steps or parcel.step < len(steps)):
                    self.push(parcel.number)
                with self.lock:
                    if parcel.pending_retry and parcel.pending_retry["tries"] <= 3:
                        parcel.next_push_at = time.monotonic() + self.retry_seconds
                    elif parcel.push_status == "polling" and self.step_seconds is not None and parcel.step < len(steps):
                        parcel.next_push_at = time.monotonic() + self.step_seconds

    # --- The page ---------------------------------------------------------------------------
    def page(self) -> str:
        rows = []
        with self.lock:
            for parcel in self.parcels.values():
                last = parcel.events[0]["context"] if parcel.events else "—"
                rows.append(
                    f"<tr><td>{html.escape(parcel.company)}</td><td>{html.escape(parcel.number)}</td><td>{parcel.scenario}</td>"
                    f"<td>{parcel.push_status}</td><td>{html.escape(last)}</td><td>{len(parcel.pushes)}</td>"
                    f"<td><form method=post action=/_fake/advance><input type=hidden name=number value='{html.escape(parcel.number)}'>"
                    f"<button>next step</button></form></td></tr>"
                )
        options = "".join(f"<option>{name}</option>" for name in SCENARIOS)
        return (
            "<!doctype html><meta charset=utf-8><title>Fake Kuaidi100</title><h1>Fake Kuaidi100 (sandbox)</h1>"
            "<form method=post action=/_fake/script>Script a tracking number: <input name=number required> "
            f"<select name=scenario>{options}</select> <button>script</button></form>"
            "<table border=1 cellpadding=4><tr><th>carrier</th><th>number</th><th>scenario</th><th>status</th><th>latest</th>"
            "<th>pushes</th><th></th></tr>" + "".join(rows) + "</table>"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8101)
    parser.add_argument("--customer", default=SANDBOX_CUSTOMER)
    parser.add_argument("--key", default=SANDBOX_KEY)
    parser.add_argument("--secret", default=SANDBOX_SECRET)
    parser.add_argument("--step-seconds", type=float, default=5.0, help="time between a parcel's tracking steps")
    parser.add_argument("--first-push-seconds", type=float, default=3.0, help="time from subscription to the first push")
    parser.add_argument("--retry-seconds", type=float, default=15.0, help="when to retry an unacknowledged push (real: ~30 min)")
    args = parser.parse_args()
    fake = FakeKuaidi100(
        customer=args.customer,
        key=args.key,
        secret=args.secret,
        step_seconds=args.step_seconds,
        first_push_seconds=args.first_push_seconds,
        retry_seconds=args.retry_seconds,
    )
    fake.start(args.host, args.port)
    print(f"Fake Kuaidi100 on {fake.url}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        fake.stop()


if __name__ == "__main__":
    main()
