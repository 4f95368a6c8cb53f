"""Sending one e-mail: Django's mail with a connection timeout, so a hung SMTP server cannot hold
a worker (EMAIL_TIMEOUT). Which alerts go to whom, and when, is workflows/alerts.py's."""

from __future__ import annotations

from django.conf import settings
from django.core.mail import EmailMessage, get_connection


def send_alert_email(*, subject: str, body: str, recipients: list[str] | None = None) -> int:
    """Send one alert; returns how many messages went out (0 when nobody is configured)."""
    recipients = recipients if recipients is not None else list(settings.ALERT_EMAILS)
    if not recipients:
        return 0
    connection = get_connection(timeout=settings.EMAIL_TIMEOUT)
    message = EmailMessage(subject=subject[:200], body=body, to=recipients, connection=connection)
    return message.send(fail_silently=False)
