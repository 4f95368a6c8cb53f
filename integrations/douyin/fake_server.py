"""A local Douyin shop (抖店) open platform over HTTP, for the demo and the tests.

- `POST /<method with / for .>?app_key=…&method=…&timestamp=…&v=2&sign=…&access_token=…`, the
  body the parameters' JSON: checks the signature (integrations/douyin/client.py), the app key,
  the timestamp and the access token; answers `{"code": 10000, "data": …}` or an error code.
  Methods: token.create, token.refresh, order.searchList, order.orderDetail, order.batchDecrypt,
  order.BatchSearchIndex, order.logisticsAdd, order.addressConfirm.
- Buyers' names, phones and addresses exist only here in plaintext; orders carry ciphertexts,
  masked values, and the search index order.BatchSearchIndex gives for the same plaintext.
- Messages are pushed to `--push-url` as the platform does: a JSON array of {tag, msg_id, data}
  (data a JSON string), headers `app-id` and `event-sign`.
- `--stream SECONDS`: a steady stream of orders in several shops (created, paid, some address
  change requests, some refunds close to their deadline, some cancelled); now and then a push is
  "lost", for the cockpit's pull to catch.
- `GET /`: what the platform holds (orders, write-backs, address answers).

Run: `python -m integrations.douyin.fake_server --port 8105 --push-url http://127.0.0.1:8000/integrations/douyin/push/ --stream 20`.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import html
import itertools
import json
import random
import secrets
import threading
import time
from urllib.parse import parse_qs, urlsplit

import requests

from integrations.douyin.client import INDEX_ADDRESS, INDEX_NAME, INDEX_PHONE, param_json, push_sign, sign
from integrations.fake_http import FakeHandler, FakeServer

# The demo's shops (seed_demo creates the same rows; beile/settings.py's sandbox knows nothing else).
SANDBOX_SHOPS = [
    {"shop_id": "4463798", "name": "贝乐母婴旗舰店", "app_key": "7100000000000000001", "secret": "sandbox-douyin-secret-1"},
    {"shop_id": "4463799", "name": "贝乐奶粉专营店", "app_key": "7100000000000000002", "secret": "sandbox-douyin-secret-2"},
    {"shop_id": "4463800", "name": "贝乐童车官方店", "app_key": "7100000000000000003", "secret": "sandbox-douyin-secret-3"},
]
CATALOGUE = [
    ("FH-XFF3-800", "飞鹤星飞帆3段幼儿配方奶粉 800g", 29800),
    ("AT-ZZ4-800", "爱他美卓萃4段儿童配方奶粉 800g", 35800),
    ("BBS-YJB-L62", "帮宝适一级帮纸尿裤 L码 62片", 13900),
    ("BQ-KKJ-240", "贝亲宽口径玻璃奶瓶 240ml", 12900),
    ("QZ-SJ-80", "全棉时代婴儿棉柔巾 80抽×6包", 6990),
    ("YN-MFMF-225", "英氏有机高铁米粉 225g", 8800),
    ("HB-ETTC-01", "好孩子轻便婴儿推车", 89900),
    ("NUK-AFZ-02", "NUK硅胶安抚奶嘴 0-6月", 5900),
]
PLACES = [
    ("浙江省", "杭州市", "西湖区", "文三路"),
    ("上海市", "上海市", "浦东新区", "张杨路"),
    ("广东省", "深圳市", "南山区", "科技园南路"),
    ("江苏省", "南京市", "鼓楼区", "中山北路"),
    ("四川省", "成都市", "武侯区", "天府大道"),
    ("北京市", "北京市", "朝阳区", "望京街"),
]
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = ["婷", "静", "敏", "丽", "芳", "娜", "雪", "慧", "晨", "欣然", "子涵", "雨桐"]
# The platform's error answers used here.
BAD_SIGN = (30005, "签名错误")
BAD_TOKEN = (30001, "access_token不存在或已过期")
BAD_PARAM = (40004, "参数错误")
ALREADY_SHIPPED = (50002, "订单已发货，请勿重复发货")
TRADE_TAGS = {"create": "doudian_trade_TradeCreate", "paid": "doudian_trade_TradePaid", "cancel": "doudian_trade_TradeCanceled"}


def mask_name(name: str) -> str:
    return name[0] + "*" * max(len(name) - 1, 1)


def mask_phone(phone: str) -> str:
    return f"{phone[:3]}****{phone[-4:]}"


def search_index(text: str, kind: int) -> str:
    """The platform's search index of a plaintext: the same text gives the same index."""
    return hmac.new(b"fake-douyin-index", f"{kind}:{text}".encode(), hashlib.sha256).hexdigest()[:32]


class FakeDouyin(FakeServer):
    def __init__(self, *, shops: list[dict] | None = None, push_url: str = "", seed: int | None = None):
        self.shops = {shop["shop_id"]: dict(shop) for shop in (shops or SANDBOX_SHOPS)}
        self.push_url = push_url
        self.rng = random.Random(seed)  # noqa: S311 - made-up buyers, not secrets
        self.lock = threading.RLock()
        self.orders: dict[str, dict] = {}
        self.plaintexts: dict[str, str] = {}  # ciphertext → plaintext: only the platform can decrypt
        self.tokens: dict[str, str] = {}  # access token → shop id
        self.refresh_tokens: dict[str, str] = {}
        self.calls: list[tuple[str, dict]] = []
        self.failures: list[tuple[int, int, str]] = []  # (HTTP status, code, message), answered in turn
        self.shipped: list[dict] = []  # accepted order.logisticsAdd calls
        self.address_answers: list[dict] = []
        self.pushes: list[tuple[list[dict], int]] = []
        self.virtual_numbers = True
        # Called once after the next searchList page is served: an order changing between two
        # pages of a pull (the tests' way to move an order under the puller's feet).
        self.after_next_page = None
        self._order_ids = itertools.count(6920000000000000001 + self.rng.randrange(10**6) * 1000)
        self._msg_ids = itertools.count(int(time.time() * 1000))
        self._aftersale_ids = itertools.count(7200000000000000001)
        self._stop = threading.Event()

    # --- Test and demo controls --------------------------------------------------------------
    def fail_next(self, count: int = 1, *, status: int = 500, code: int = 20000, message: str = "服务暂不可用") -> None:
        """The next `count` API calls fail: an outage (HTTP 5xx) or a given error code."""
        with self.lock:
            self.failures.extend([(status, code, message)] * count)

    def calls_of(self, method: str) -> list[dict]:
        with self.lock:
            return [params for name, params in self.calls if name == method]

    def _encrypt(self, plaintext: str, kind: int) -> str:
        """The platform's ciphertext shape: its search index first, `$…$` for a phone and `#…#`
        for a name or an address; a new ciphertext each time, the same index for the same text."""
        mark = "$" if kind == INDEX_PHONE else "#"
        cipher = f"{mark}{search_index(plaintext, kind)}{mark}{secrets.token_urlsafe(24)}{mark}1{mark}"
        self.plaintexts[cipher] = plaintext
        return cipher

    def _buyer(self) -> dict:
        rng = self.rng
        province, city, district, street = rng.choice(PLACES)
        return {
            "name": rng.choice(SURNAMES) + rng.choice(GIVEN),
            "phone": f"1{rng.choice('3578')}{rng.randrange(10**9):09d}",
            "province": province,
            "city": city,
            "district": district,
            "detail": f"{street}{rng.randrange(1, 300)}号{rng.randrange(1, 30)}幢{rng.randrange(101, 2800)}室",
        }

    def _receiver_fields(self, buyer: dict) -> dict:
        return {
            "encrypt_post_receiver": self._encrypt(buyer["name"], INDEX_NAME),
            "encrypt_post_tel": self._encrypt(buyer["phone"], INDEX_PHONE),
            "mask_post_receiver": mask_name(buyer["name"]),
            "mask_post_tel": mask_phone(buyer["phone"]),
            "post_addr": {
                "province": {"name": buyer["province"]},
                "city": {"name": buyer["city"]},
                "town": {"name": buyer["district"]},
                "encrypt_detail": self._encrypt(buyer["detail"], INDEX_ADDRESS),
            },
            "mask_post_addr": {"detail": buyer["detail"][:3] + "****"},
        }

    def new_order(
        self, shop_id: str | None = None, *, buyer: dict | None = None, lines: int | None = None, ship_within_hours: float = 48
    ) -> dict:
        """An order as the buyer places it (status 1, unpaid); nothing is pushed."""
        with self.lock:
            shop_id = shop_id or self.rng.choice(list(self.shops))
            buyer = buyer or self._buyer()
            now = int(time.time())
            skus = []
            for product in self.rng.sample(CATALOGUE, lines or self.rng.choice([1, 1, 2, 3])):
                code, name, price = product
                count = self.rng.choice([1, 1, 2])
                skus.append(
                    {
                        "sku_id": str(self.rng.randrange(10**12)),
                        "code": code,
                        "product_name": name,
                        "item_num": count,
                        "goods_price": price,
                        "origin_amount": price * count,
                        "pay_amount": price * count,
                    }
                )
            goods = sum(sku["pay_amount"] for sku in skus)
            post = 0 if goods >= 9900 else 800
            order = {
                "order_id": str(next(self._order_ids)),
                "shop_id": int(shop_id),
                "order_status": 1,
                "order_status_desc": "待支付",
                "create_time": now,
                "update_time": now,
                "pay_time": 0,
                "exp_ship_time": now + int(ship_within_hours * 3600),
                "order_amount": goods + post,
                "pay_amount": goods + post,
                "post_amount": post,
                "buyer_words": self.rng.choice(["", "", "请尽快发货", "宝宝急用，谢谢"]),
                "pre_sale_type": 0,
                "sku_order_list": skus,
                **self._receiver_fields(buyer),
            }
            order["_buyer"] = buyer
            self.orders[order["order_id"]] = order
            return order

    def _touch(self, order: dict, status: int, desc: str) -> None:
        order["order_status"], order["order_status_desc"] = status, desc
        order["update_time"] = int(time.time())

    def pay(self, order_id: str) -> dict:
        with self.lock:
            order = self.orders[order_id]
            self._touch(order, 2, "备货中")
            order["pay_time"] = order["update_time"]
            return order

    def cancel(self, order_id: str) -> dict:
        with self.lock:
            order = self.orders[order_id]
            self._touch(order, 4, "已取消")
            return order

    def trade_message(self, order_id: str, kind: str) -> dict:
        """The message the platform pushes for an order's step (create, paid, cancel)."""
        order = self.orders[order_id]
        data = {
            "p_id": int(order_id),
            "s_ids": [int(order_id)],
            "shop_id": order["shop_id"],
            "order_status": order["order_status"],
            "order_type": 0,
            "biz": 2,
        }
        if kind == "create":
            data["create_time"] = order["create_time"]
        elif kind == "paid":
            data["pay_time"], data["pay_amount"] = order["pay_time"], order["pay_amount"]
        else:
            data["cancel_time"], data["cancel_reason"] = order["update_time"], "买家取消"
        return self.message(TRADE_TAGS[kind], data)

    def address_change_message(self, order_id: str) -> dict:
        """The buyer asks to change the receiver (TradeAddressChangeApplied): old and new, encrypted."""
        with self.lock:
            order = self.orders[order_id]
            buyer = self._buyer()
            fresh = self._receiver_fields(buyer)
            order["_pending_receiver"] = (buyer, fresh)
            old = {key: order[key] for key in ("encrypt_post_receiver", "encrypt_post_tel", "post_addr")}
            data = {
                "p_id": int(order_id),
                "shop_id": order["shop_id"],
                "apply_time": int(time.time()),
                "receiver_msg": {
                    "encrypt_name": fresh["encrypt_post_receiver"],
                    "encrypt_tel": fresh["encrypt_post_tel"],
                    "mask_name": fresh["mask_post_receiver"],
                    "mask_tel": fresh["mask_post_tel"],
                    "addr": fresh["post_addr"],
                    "mask_detail": fresh["mask_post_addr"]["detail"],
                },
                "post_receiver_msg": {
                    "encrypt_name": old["encrypt_post_receiver"],
                    "encrypt_tel": old["encrypt_post_tel"],
                    "addr": old["post_addr"],
                },
            }
            return self.message("doudian_trade_TradeAddressChangeApplied", data)

    def refund_message(self, order_id: str, *, deadline_in_hours: float = 2, amount: int | None = None) -> dict:
        with self.lock:
            order = self.orders[order_id]
            sku = order["sku_order_list"][0]
            data = {
                "aftersale_id": str(next(self._aftersale_ids)),
                "p_id": int(order_id),
                "s_id": int(order_id),
                "shop_id": order["shop_id"],
                "aftersale_type": 2,  # refund only (仅退款)
                "refund_amount": sku["pay_amount"] if amount is None else amount,
                "reason_text": self.rng.choice(["不想要了", "拍错了/多拍了", "发货太慢"]),
                "apply_time": int(time.time()),
                "status_deadline": int(time.time() + deadline_in_hours * 3600),
                "sku_code": sku["code"],
            }
            return self.message("doudian_refund_RefundCreated", data)

    def refund_deadline_message(self, refund: dict, *, deadline_in_hours: float) -> dict:
        data = {**json.loads(refund["data"]), "status_deadline": int(time.time() + deadline_in_hours * 3600)}
        return self.message("doudian_refund_ExpirationChange", data)

    def message(self, tag: str, data: dict) -> dict:
        return {
            "tag": tag,
            "msg_id": str(next(self._msg_ids)),
            "data": json.dumps(data, ensure_ascii=False, separators=(",", ":")),
        }

    def signed_push(self, messages: list[dict], *, shop_id: str | None = None, secret: str | None = None) -> tuple[bytes, dict]:
        """The body and headers of a push of `messages`, signed with the shop's app (or with a
        given wrong secret)."""
        shop = self.shops[shop_id or str(json.loads(messages[0]["data"])["shop_id"])]
        body = json.dumps(messages, ensure_ascii=False).encode()
        headers = {
            "Content-Type": "application/json",
            "app-id": shop["app_key"],
            "event-sign": push_sign(app_key=shop["app_key"], secret=secret or shop["secret"], body=body),
        }
        return body, headers

    def push(self, messages: list[dict], *, shop_id: str | None = None, secret: str | None = None) -> int:
        """POST messages to the push URL as the platform does; returns the HTTP status (0: unreachable)."""
        body, headers = self.signed_push(messages, shop_id=shop_id, secret=secret)
        try:
            status = requests.post(self.push_url, data=body, headers=headers, timeout=10).status_code
        except requests.RequestException:
            status = 0
        with self.lock:
            self.pushes.append((messages, status))
        return status

    # --- The API -----------------------------------------------------------------------------
    def _error(self, code_msg: tuple[int, str], status: int = 200) -> tuple[int, dict]:
        code, message = code_msg
        return status, {"code": code, "msg": message, "sub_code": "", "sub_msg": message, "log_id": secrets.token_hex(8)}

    def _ok(self, data: dict) -> tuple[int, dict]:
        return 200, {"code": 10000, "msg": "success", "data": data, "log_id": secrets.token_hex(8)}

    def handle(self, path: str, query: dict[str, str], body: str) -> tuple[int, dict]:
        with self.lock:
            method = query.get("method", "")
            if path.strip("/") != method.replace(".", "/"):
                return self._error(BAD_PARAM, 404)
            shop = next((s for s in self.shops.values() if s["app_key"] == query.get("app_key")), None)
            if shop is None:
                return self._error((30002, "app_key不存在"))
            if sign(
                app_key=shop["app_key"], secret=shop["secret"], method=method, param=body, timestamp=query.get("timestamp", "")
            ) != query.get("sign"):
                return self._error(BAD_SIGN)
            try:
                if abs(time.time() - int(query.get("timestamp", "0"))) > 600:
                    return self._error((30006, "时间戳已过期"))
                params = json.loads(body or "{}")
            except ValueError:
                return self._error(BAD_PARAM)
            if param_json(params) != body:
                return self._error(BAD_SIGN)  # the signed text must be the sorted, compact JSON
            self.calls.append((method, params))
            if self.failures:
                status, code, message = self.failures.pop(0)
                return self._error((code, message), status)
            if method in ("token.create", "token.refresh"):
                return self._token(shop, method, params)
            if self.tokens.get(query.get("access_token", "")) != shop["shop_id"]:
                return self._error(BAD_TOKEN)
            handler = {
                "order.searchList": self._search_list,
                "order.orderDetail": self._detail,
                "order.batchDecrypt": self._decrypt,
                "order.BatchSearchIndex": self._search_index,
                "order.logisticsAdd": self._logistics_add,
                "order.addressConfirm": self._address_confirm,
            }.get(method)
            if handler is None:
                return self._error((40001, "接口不存在"))
            return handler(shop, params)

    def _token(self, shop: dict, method: str, params: dict) -> tuple[int, dict]:
        if method == "token.refresh" and self.refresh_tokens.get(params.get("refresh_token", "")) != shop["shop_id"]:
            return self._error((30003, "refresh_token无效"))
        if method == "token.create" and str(params.get("shop_id")) != shop["shop_id"]:
            return self._error(BAD_PARAM)
        access, refresh = secrets.token_hex(16), secrets.token_hex(16)
        self.tokens[access], self.refresh_tokens[refresh] = shop["shop_id"], shop["shop_id"]
        return self._ok(
            {
                "access_token": access,
                "expires_in": 7 * 86400,
                "refresh_token": refresh,
                "shop_id": int(shop["shop_id"]),
                "shop_name": shop["name"],
            }
        )

    @staticmethod
    def _public(order: dict) -> dict:
        return {key: value for key, value in order.items() if not key.startswith("_")}

    def _own(self, shop: dict) -> list[dict]:
        return [order for order in self.orders.values() if str(order["shop_id"]) == shop["shop_id"]]

    def _search_list(self, shop: dict, params: dict) -> tuple[int, dict]:
        start, end = int(params.get("update_time_start", 0)), int(params.get("update_time_end", 2**31))
        size, page = min(int(params.get("size", 100)), 100), int(params.get("page", 0))
        found = sorted(
            (o for o in self._own(shop) if start <= o["update_time"] <= end), key=lambda o: (o["update_time"], o["order_id"])
        )
        answer = self._ok(
            {
                "shop_order_list": [self._public(o) for o in found[page * size : (page + 1) * size]],
                "total": len(found),
                "page": page,
                "size": size,
            }
        )
        if self.after_next_page:
            hook, self.after_next_page = self.after_next_page, None
            hook()
        return answer

    def _detail(self, shop: dict, params: dict) -> tuple[int, dict]:
        order = self.orders.get(str(params.get("shop_order_id", "")))
        if order is None or str(order["shop_id"]) != shop["shop_id"]:
            return self._error((50002, "订单不存在"))
        return self._ok({"shop_order_detail": self._public(order)})

    def _decrypt(self, shop: dict, params: dict) -> tuple[int, dict]:
        infos = params.get("cipher_infos") or []
        if len(infos) > 50:
            return self._error((40004, "最多50条"))
        out = []
        for info in infos:
            cipher = info.get("cipher_text", "")
            plain = self.plaintexts.get(cipher)
            if plain is None:
                out.append({"auth_id": info.get("auth_id"), "cipher_text": cipher, "err_no": 300008, "err_msg": "密文无效"})
                continue
            item = {"auth_id": info.get("auth_id"), "cipher_text": cipher, "decrypt_text": plain, "err_no": 0, "err_msg": ""}
            if self.virtual_numbers and plain.isdigit() and len(plain) == 11:
                # The buyer's real number is protected: a virtual number that forwards for a while.
                item["decrypt_text"] = f"170{int(plain[3:]) % 10**8:08d}-{int(plain[-4:]) % 9000 + 1000}"
                item["is_virtual_tel"] = True
                item["expire_time"] = int(time.time()) + 15 * 86400
            out.append(item)
        return self._ok({"decrypt_infos": out, "custom_err": {"err_code": 0, "err_msg": ""}})

    def _search_index(self, shop: dict, params: dict) -> tuple[int, dict]:
        items = params.get("plain_text_list") or []
        if len(items) > 50:
            return self._error((40004, "最多50条"))
        return self._ok(
            {
                "plain_to_search_index_list": [
                    {
                        "plain_text": item.get("plain_text", ""),
                        "search_index": search_index(item.get("plain_text", ""), int(item.get("encrypt_type", 0))),
                    }
                    for item in items
                ]
            }
        )

    def _logistics_add(self, shop: dict, params: dict) -> tuple[int, dict]:
        order = self.orders.get(str(params.get("order_id", "")))
        if order is None or str(order["shop_id"]) != shop["shop_id"]:
            return self._error((50002, "订单不存在"))
        if order["order_status"] == 4:
            return self._error((50002, "订单已取消，不能发货"))
        if order["order_status"] in (3, 5):
            return self._error(ALREADY_SHIPPED)
        if not params.get("logistics_code") or not params.get("company_code"):
            return self._error(BAD_PARAM)
        self._touch(order, 3, "已发货")
        self.shipped.append(
            {"order_id": order["order_id"], "company_code": params["company_code"], "logistics_code": params["logistics_code"]}
        )
        return self._ok({})

    def _address_confirm(self, shop: dict, params: dict) -> tuple[int, dict]:
        order = self.orders.get(str(params.get("order_id", "")))
        if order is None or "_pending_receiver" not in order:
            return self._error((50002, "没有待处理的改地址申请"))
        buyer, fresh = order.pop("_pending_receiver")
        if int(params.get("is_approved", 0)) == 1:
            order.update(fresh)
            order["_buyer"] = buyer
            self._touch(order, order["order_status"], order["order_status_desc"])
        self.address_answers.append({"order_id": order["order_id"], "approved": int(params.get("is_approved", 0)) == 1})
        return self._ok({})

    # --- The demo's stream -------------------------------------------------------------------
    def stream(self, interval: float) -> None:
        """Every `interval` seconds a new order is placed and paid; now and then an address change,
        a refund near its deadline or a cancellation; one push in ten is lost (the pull catches it)."""

        def run():
            while not self._stop.wait(interval):
                try:
                    self._stream_step()
                except Exception as exc:  # noqa: BLE001 - the demo's fake keeps streaming
                    print(f"fake douyin: {exc!r}", flush=True)

        threading.Thread(target=run, daemon=True).start()

    def _stream_step(self) -> None:
        rng = self.rng
        order = self.new_order(ship_within_hours=rng.choice([2, 6, 24, 48]))
        order_id = order["order_id"]
        lost = rng.random() < 0.1
        if not lost:
            self.push([self.trade_message(order_id, "create")])
        time.sleep(1)
        self.pay(order_id)
        if not lost:
            self.push([self.trade_message(order_id, "paid")])
        paid = [o for o in self.orders.values() if o["order_status"] == 2 and o["order_id"] != order_id]
        if paid and rng.random() < 0.15:
            target = rng.choice(paid)
            if "_pending_receiver" not in target:
                self.push([self.address_change_message(target["order_id"])])
        if paid and rng.random() < 0.15:
            self.push([self.refund_message(rng.choice(paid)["order_id"], deadline_in_hours=rng.choice([0.5, 1, 3, 24]))])
        if rng.random() < 0.05:
            victim = self.new_order()
            self.push([self.trade_message(victim["order_id"], "create")])
            self.cancel(victim["order_id"])
            self.push([self.trade_message(victim["order_id"], "cancel")])

    def stop(self) -> None:
        self._stop.set()
        super().stop()

    # --- The page ----------------------------------------------------------------------------
    def index_page(self) -> str:
        with self.lock:
            rows = "".join(
                f"<tr><td>{html.escape(self.shops[str(o['shop_id'])]['name'])}</td><td>{o['order_id']}</td>"
                f"<td>{html.escape(o['order_status_desc'])}</td><td>{o['pay_amount'] / 100:.2f}</td>"
                f"<td>{html.escape(o['mask_post_receiver'])} {html.escape(o['mask_post_tel'])}</td></tr>"
                for o in sorted(self.orders.values(), key=lambda o: -o["update_time"])[:50]
            )
            shipped = "".join(
                f"<li>{s['order_id']} · {html.escape(s['company_code'])} {html.escape(s['logistics_code'])}</li>"
                for s in self.shipped[-20:]
            )
        return (
            "<!doctype html><meta charset=utf-8><meta http-equiv=refresh content=5><title>Fake Douyin shop</title>"
            f"<h1>Fake Douyin shop platform (sandbox)</h1><p>{len(self.orders)} orders, {len(self.pushes)} pushes.</p>"
            "<table border=1 cellpadding=4><tr><th>Shop</th><th>Order</th><th>Status</th><th>Paid (yuan)</th><th>Receiver (masked)</th></tr>"
            f"{rows}</table><h2>Shipping written back</h2><ul>{shipped}</ul>"
        )

    def _handler(self):
        fake = self

        class Handler(FakeHandler):
            def do_GET(self):
                if urlsplit(self.path).path == "/":
                    return self._send(200, fake.index_page(), "text/html; charset=utf-8")
                return self._send(404, json.dumps({"code": 40001, "msg": "not found"}))

            def do_POST(self):
                parts = urlsplit(self.path)
                query = {key: values[0] for key, values in parse_qs(parts.query, keep_blank_values=True).items()}
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                status, answer = fake.handle(parts.path, query, body)
                return self._send(status, json.dumps(answer, ensure_ascii=False))

        return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8105)
    parser.add_argument("--push-url", default="", help="where messages are pushed (the cockpit's /integrations/douyin/push/)")
    parser.add_argument("--stream", type=float, default=0, help="a new order every N seconds (0: none)")
    args = parser.parse_args()
    fake = FakeDouyin(push_url=args.push_url)
    fake.start(args.host, args.port)
    if args.stream and args.push_url:
        fake.stream(args.stream)
    print(f"Fake Douyin shop platform on {fake.url}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        fake.stop()


if __name__ == "__main__":
    main()
