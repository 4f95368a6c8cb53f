"""The Douyin feed's health (issue 15): per shop, the last successful push and pull, the messages
of the last hour against the usual rate, the token's countdown; a silent shop or an expiring
token alerts the supervisor (workflows/alerts.py), once per episode."""

from __future__ import annotations

from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from integrations.douyin import client as douyin_client
from integrations.douyin import services as douyin
from workflows.alerts import alert_email_soon, alert_raise
from workflows.models import AlertKind


def feed_rows() -> tuple[str, list[dict]]:
    return douyin_client.mode(), douyin.feed_health()


def feed_watch() -> int:
    """Beat: raise an alert for each silent shop and each expiring token; the dedupe key names the
    episode (the last push it has been silent since, the expiry it is heading for), so an alert
    is raised once, and again only for a new episode."""
    if douyin_client.mode() == "off":
        return 0
    raised = 0
    link = reverse("health:douyin_feed")
    for row in douyin.feed_health():
        shop = row["shop"]
        if row["silent"]:
            since = timezone.localtime(shop.last_push_at).strftime("%m-%d %H:%M") if shop.last_push_at else "—"
            alert, created = alert_raise(
                kind=AlertKind.SYSTEM,
                for_role="supervisor",
                dedupe_key=f"douyin:silent:{shop.pk}:{shop.last_push_at.isoformat() if shop.last_push_at else 'never'}",
                message=_(
                    "Douyin shop %(shop)s has pushed no message since %(since)s (usually %(rate)s an hour): check the push settings and the platform's status."
                )
                % {"shop": shop.name, "since": since, "rate": row["usual_per_hour"]},
                link=link,
            )
            raised += created
            if created:
                alert_email_soon(alert)
        if row["token_expiring"]:
            expiry = shop.access_token_expires_at
            alert, created = alert_raise(
                kind=AlertKind.SYSTEM,
                for_role="supervisor",
                dedupe_key=f"douyin:token:{shop.pk}:{expiry.isoformat() if expiry else 'none'}",
                message=_(
                    "The Douyin access token of shop %(shop)s expires %(when)s and could not be refreshed: re-authorise the shop."
                )
                % {"shop": shop.name, "when": timezone.localtime(expiry).strftime("%m-%d %H:%M") if expiry else _("now")},
                link=link,
            )
            raised += created
            if created:
                alert_email_soon(alert)
    return raised
