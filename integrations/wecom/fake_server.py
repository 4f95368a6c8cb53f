"""A local WeCom group-robot endpoint over HTTP (docs/protocols.md), for the demo and tests.

- `POST /cgi-bin/webhook/send?key=KEY`: a `markdown` or `text` message; an unknown key is
  refused (93000 invalid webhook url) unless `accept_any_key`; more than `per_minute` messages
  per key within a minute are refused (45009); content over 4096 bytes is refused (40058).
- `GET /` and `GET /group/<key>`: each robot's group chat, for the demo.

Run: `python -m integrations.wecom.fake_server --port 8104`.
"""

from __future__ import annotations

import argparse
import datetime
import html
import json
import threading
import time
from urllib.parse import parse_qs, urlsplit

from integrations.fake_http import FakeHandler, FakeServer


class FakeWeComRobot(FakeServer):
    def __init__(self, *, keys: set[str] | None = None, per_minute: int = 20):
        self.keys = keys  # None: any key is a robot
        self.per_minute = per_minute
        self.messages: list[dict] = []
        self.requests = 0
        self.failures: list[dict] = []
        self.lock = threading.RLock()

    def webhook(self, key: str) -> str:
        return f"{self.url}/cgi-bin/webhook/send?key={key}"

    def fail_next(self, errcode: int, errmsg: str = "error") -> None:
        with self.lock:
            self.failures.append({"errcode": errcode, "errmsg": errmsg})

    def messages_for(self, key: str) -> list[dict]:
        with self.lock:
            return [m for m in self.messages if m["key"] == key]

    def send(self, key: str, body: dict) -> dict:
        with self.lock:
            self.requests += 1
            if self.failures:
                return self.failures.pop(0)
            if not key or (self.keys is not None and key not in self.keys):
                return {"errcode": 93000, "errmsg": "invalid webhook url"}
            kind = body.get("msgtype")
            if kind not in {"markdown", "text"}:
                return {"errcode": 40008, "errmsg": "invalid message type"}
            content = str((body.get(kind) or {}).get("content", ""))
            if not content:
                return {"errcode": 44004, "errmsg": "empty content"}
            if len(content.encode()) > 4096:
                return {"errcode": 40058, "errmsg": "markdown.content exceed max length 4096"}
            now = time.time()
            if sum(1 for m in self.messages if m["key"] == key and now - m["at"] < 60) >= self.per_minute:
                return {"errcode": 45009, "errmsg": "api freq out of limit"}
            self.messages.append(
                {
                    "key": key,
                    "msgtype": kind,
                    "content": content,
                    "at": now,
                    "received_at": datetime.datetime.now().strftime("%H:%M:%S"),
                }
            )
            return {"errcode": 0, "errmsg": "ok"}

    def index_page(self) -> str:
        with self.lock:
            keys = sorted({m["key"] for m in self.messages})
        rows = "".join(f"<li><a href='/group/{html.escape(k)}'>{html.escape(k)}</a></li>" for k in keys)
        return (
            "<!doctype html><meta charset=utf-8><meta http-equiv=refresh content=5><title>Fake WeCom</title>"
            f"<h1>Fake WeCom group robots (sandbox)</h1><p>{len(self.messages)} messages.</p><ul>{rows}</ul>"
        )

    def group_page(self, key: str) -> str:
        bubbles = "".join(
            f"<div class=msg><small>{m['received_at']}</small><pre>{html.escape(m['content'])}</pre></div>"
            for m in reversed(self.messages_for(key))
        )
        return (
            "<!doctype html><meta charset=utf-8><meta http-equiv=refresh content=3><title>WeCom group</title>"
            "<style>body{font-family:sans-serif;max-width:640px;margin:auto;background:#f0f2f5}"
            ".msg{background:#fff;border-radius:6px;padding:8px;margin:8px 0}pre{white-space:pre-wrap;margin:0}</style>"
            f"<h2>🤖 {html.escape(key)}</h2>" + (bubbles or "<p>No messages yet.</p>")
        )

    def _handler(self):
        fake = self

        class Handler(FakeHandler):
            def do_GET(self):
                path = urlsplit(self.path).path
                if path == "/":
                    return self._send(200, fake.index_page(), "text/html; charset=utf-8")
                if path.startswith("/group/"):
                    return self._send(200, fake.group_page(path.removeprefix("/group/")), "text/html; charset=utf-8")
                return self._send(404, json.dumps({"errcode": 404, "errmsg": "not found"}))

            def do_POST(self):
                parts = urlsplit(self.path)
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if parts.path != "/cgi-bin/webhook/send":
                    return self._send(404, json.dumps({"errcode": 404, "errmsg": "not found"}))
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    return self._send(200, json.dumps({"errcode": 40001, "errmsg": "invalid json"}))
                key = parse_qs(parts.query).get("key", [""])[0]
                return self._send(200, json.dumps(fake.send(key, body), ensure_ascii=False))

        return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8104)
    args = parser.parse_args()
    fake = FakeWeComRobot().start(args.host, args.port)
    print(f"Fake WeCom robots on {fake.url} (group chats at {fake.url}/)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        fake.stop()


if __name__ == "__main__":
    main()
