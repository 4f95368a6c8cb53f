"""The loopback HTTP plumbing every provider's fake server shares (kuaidi100, wechat, sms, wecom):
a threaded server on a free port, started and stopped by the tests and by `make demo`, and a
request handler that answers with a body of a given type and keeps the demo's console quiet.
Each fake keeps its own protocol: the routes, signatures and answers in its fake_server.py."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self


class FakeServer:
    server: ThreadingHTTPServer | None = None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        raise NotImplementedError

    def start(self, host: str = "127.0.0.1", port: int = 0) -> Self:
        self.server = ThreadingHTTPServer((host, port), self._handler())
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"


class FakeHandler(BaseHTTPRequestHandler):
    content_type = "application/json; charset=utf-8"

    def log_message(self, *args) -> None:  # quiet: the demo's console belongs to the cockpit
        pass

    def _send(self, status: int, body: str, content_type: str | None = None) -> None:
        data = body.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", content_type or self.content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
