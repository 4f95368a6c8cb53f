"""WeCom (企业微信) group robots (docs/protocols.md): POST a markdown message to the robot's
webhook; the `key` in the URL is the credential, so a URL is never logged."""

from __future__ import annotations

import requests
from django.conf import settings

# Worth another try: system busy, and the robot's per-minute limit (45009 "api freq out of limit").
TRANSIENT = {-1, 45009}
MARKDOWN_LIMIT = 4096  # bytes of markdown.content


class WeComError(Exception):
    def __init__(self, errcode: int | None, errmsg: str, *, permanent: bool):
        super().__init__(f"{errcode} {errmsg}" if errcode is not None else errmsg)
        self.errcode = errcode
        self.permanent = permanent


def mode() -> str:
    config = settings.WECOM
    if config.get("SANDBOX"):
        return "sandbox"
    return "live" if any(config["WEBHOOKS"].values()) else "off"


def webhook(role: str) -> str:
    return settings.WECOM["WEBHOOKS"].get(role, "")


def fit(content: str) -> str:
    """Markdown content within the robot's 4096-byte limit (cut at a character boundary)."""
    data = content.encode()
    if len(data) <= MARKDOWN_LIMIT:
        return content
    return data[: MARKDOWN_LIMIT - 4].decode(errors="ignore") + "\n…"


def send_markdown(*, url: str, content: str) -> None:
    try:
        response = requests.post(
            url, json={"msgtype": "markdown", "markdown": {"content": fit(content)}}, timeout=settings.OUTBOUND_HTTP_TIMEOUT
        )
        result = response.json()
    except (requests.RequestException, ValueError) as exc:
        # The exception text would carry the URL and so the key: only its class is kept.
        raise WeComError(None, f"cannot reach the robot: {exc.__class__.__name__}", permanent=False) from None
    errcode = int(result.get("errcode", -1))
    if errcode != 0:
        raise WeComError(errcode, str(result.get("errmsg", ""))[:200], permanent=errcode not in TRANSIENT)
