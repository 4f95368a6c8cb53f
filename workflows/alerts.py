"""Alerts: raising one (in-app, for a role) and the one path that e-mails them.

Every alert — an SLA breach, a ticket, an ERP sync difference — is a row first (`Alert`, its
unique dedupe_key makes "alert once" a database fact) and is e-mailed by `alerts_email_send`:

- the rows are *claimed* (email_claimed_at set in a short transaction) and the lock released
  before the mail server is called, so a slow or hung SMTP server never blocks a person
  acknowledging an alert, nor the next SLA sweep;
- a send that succeeds marks its alerts e-mailed (never sent again); a send that fails releases
  the claim, and the next sweep (every minute) retries it for EMAIL_RETRY_WINDOW; a claim left
  by a crashed sender expires after EMAIL_CLAIM (longer than the SMTP timeout);
- the same alerts reach each role's WeCom group robot (`alerts_robot_queue`): one markdown
  message per role and sweep, with each order's link, through the robot's outbox
  (integrations/wecom), so a burst of breaches stays under the robot's 20 messages a minute;
- each address gets each new alert once per batch: addresses that get the same alerts share one
  e-mail (finance and supervisors hear of one ERP difference in one message).
"""

from __future__ import annotations

import datetime
import logging
import smtplib

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import BooleanField, Case, ExpressionWrapper, F, Q, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext as _

from integrations.mail.client import send_alert_email
from integrations.wecom import services as wecom
from orders.models import Order, Role
from orders.rows import among
from workflows.models import Alert

logger = logging.getLogger(__name__)

# An alert whose e-mail failed is retried by the next sweeps for this long.
EMAIL_RETRY_WINDOW = datetime.timedelta(hours=24)
# How long a sender's claim holds; longer than one send can take (EMAIL_TIMEOUT, a few connects).
EMAIL_CLAIM = datetime.timedelta(minutes=5)
EMAIL_BATCH = 5000


def alert_raise(
    *,
    kind: str,
    for_role: str,
    dedupe_key: str,
    message: str,
    order_id: int | None = None,
    link: str = "",
    created_at: datetime.datetime | None = None,
) -> tuple[Alert, bool]:
    """The alert for `dedupe_key`, raised now if there is none. Returns (alert, created). The
    caller sends it (alerts_email_send, or the nudge task after commit); the sweep retries."""
    return Alert.objects.get_or_create(
        dedupe_key=dedupe_key,
        defaults={
            "kind": kind,
            "for_role": for_role,
            "order_id": order_id,
            "message": message[:500],
            "link": link[:200],
            "created_at": created_at or timezone.now(),
        },
    )


def alert_email_soon(alert: Alert) -> None:
    """After the caller commits, ask a worker to e-mail the alert; a broker outage only delays it
    to the next sweep."""
    from workflows.tasks import email_alert

    def nudge():
        try:
            email_alert.apply_async(args=[alert.pk], retry=False)
        except Exception:  # noqa: BLE001 - any broker error; the row is the record
            logger.warning("broker unavailable; alert %s left to the next sweep", alert.pk)

    transaction.on_commit(nudge)


def alert_recipients(role: str) -> list[str]:
    people = User.objects.filter(is_active=True, groups__name=role).exclude(email="").values_list("email", flat=True)
    return sorted(set(people) | set(settings.ALERT_EMAILS))


def _email_due(now: datetime.datetime) -> Q:
    return Q(emailed_at__isnull=True, created_at__gte=now - EMAIL_RETRY_WINDOW) & (
        Q(email_claimed_at__isnull=True) | Q(email_claimed_at__lt=now - EMAIL_CLAIM)
    )


def _robot_due(now: datetime.datetime) -> Q:
    return Q(robot_queued_at__isnull=True, created_at__gte=now - EMAIL_RETRY_WINDOW)


# What an e-mail and a robot message show of an alert, read as plain rows (a sweep's 2,000 alerts
# were 2,000 model instances per pass).
SHOWN = ("pk", "for_role", "order_id", "message", "link", "created_at")


def _claim(now: datetime.datetime, alert_ids: list[int] | None) -> list:
    due = Alert.objects.filter(_email_due(now))
    if alert_ids is not None:
        due = due.filter(pk__in=alert_ids)
    with transaction.atomic():
        # SKIP LOCKED: rows another sender is claiming right now are theirs. The lock lasts
        # only as long as this claim, never across the send below.
        alerts = list(
            due.select_for_update(skip_locked=True).order_by("created_at", "pk").values_list(*SHOWN, named=True)[:EMAIL_BATCH]
        )
        Alert.objects.filter(among("pk", [alert.pk for alert in alerts])).update(email_claimed_at=now)
    return alerts


def _subject(alerts: list) -> str:
    site = _("Beile Order Cockpit")
    if len(alerts) == 1:
        return f"[{site}] {alerts[0].message}"
    return _("[%(site)s] %(count)d new alerts") % {"site": site, "count": len(alerts)}


def _body(alerts: list) -> str:
    base = settings.PUBLIC_BASE_URL.rstrip("/")
    return "\n\n".join(alert.message + (f"\n{base}{alert.link}" if alert.link else "") for alert in alerts) + "\n"


def alerts_email_send(*, now: datetime.datetime | None = None, alert_ids: list[int] | None = None) -> int:
    """E-mail the alerts not yet e-mailed (or just `alert_ids`); returns how many e-mails went out."""
    now = now or timezone.now()
    return _email(_claim(now, alert_ids), now)


def _email(alerts: list, now: datetime.datetime) -> int:
    """Send the claimed alerts; mark them e-mailed, or release them for the next sweep."""
    if not alerts:
        return 0
    # Who gets what: each address, the alerts of its roles (an alert's text once, even when it
    # was raised for two of the address's roles).
    per_address: dict[str, dict[str, tuple]] = {}
    recipients_of_role: dict[str, list[str]] = {}
    for alert in alerts:
        if alert.for_role not in recipients_of_role:
            recipients_of_role[alert.for_role] = alert_recipients(alert.for_role)
        for address in recipients_of_role[alert.for_role]:
            per_address.setdefault(address, {}).setdefault(alert.message, alert)
    # Addresses receiving the same alerts share one e-mail.
    mails: dict[tuple[str, ...], tuple[list[str], list]] = {}
    for address, by_message in sorted(per_address.items()):
        chosen = sorted(by_message.values(), key=lambda alert: (alert.created_at, alert.pk))
        mails.setdefault(tuple(by_message), ([], chosen))[0].append(address)
    failed: set[str] = set()
    sent = 0
    for messages, (addresses, chosen) in mails.items():
        try:
            send_alert_email(subject=_subject(chosen), body=_body(chosen), recipients=addresses)
        except (OSError, smtplib.SMTPException):
            logger.exception("E-mailing %d alerts failed; the next sweep retries", len(chosen))
            failed.update(messages)
            continue
        sent += 1
    # An alert is done when every e-mail carrying its text went out; the others (a failed send,
    # or nobody to send to) are released for the next sweep.
    reached = {message for messages in mails for message in messages} - failed
    done = [alert.pk for alert in alerts if alert.message in reached]
    released = [alert.pk for alert in alerts if alert.message not in reached]
    mine = Alert.objects.filter(email_claimed_at=now)
    if done:
        mine.filter(among("pk", done)).update(emailed_at=timezone.now(), email_claimed_at=None)
    if released:
        mine.filter(among("pk", released)).update(email_claimed_at=None)
    if not per_address:
        logger.warning("No e-mail address for roles %s: %d alerts stay in-app only", sorted(recipients_of_role), len(alerts))
    return sent


# One robot message carries at most this many alerts (the rest go in the next message); with one
# message per role per sweep, a burst of breaches costs a handful of messages, not hundreds.
ROBOT_BATCH = 20


def _robot_markdown(role: str, alerts: list, more: int, numbers: dict[int, str]) -> str:
    base = settings.PUBLIC_BASE_URL.rstrip("/")
    title = _("Beile Order Cockpit")
    label = Role(role).label if role in Role.values else role
    lines = [f"### {title} · {label}", _("%(count)d new alerts") % {"count": len(alerts) + more}]
    for alert in alerts:
        # The order's card when the alert is about one order, else where the alert points.
        link = f"/orders/{numbers[alert.order_id]}/" if alert.order_id in numbers else alert.link
        target = f" [{_('Open')}]({base}{link})" if link else ""
        when = timezone.localtime(alert.created_at).strftime("%H:%M")
        lines.append(f'> <font color="warning">{when}</font> {alert.message}{target}')
    if more:
        lines.append(_("…and %(count)d more on the board") % {"count": more})
    return "\n".join(lines)


def alerts_robot_queue(*, now: datetime.datetime | None = None) -> int:
    """Hand every alert not yet given to its role's WeCom robot, batched: one message per role
    (up to ROBOT_BATCH alerts, their links, "…and N more"). Roles without a robot are skipped
    (their alerts stay in-app and e-mailed). Returns how many robot messages were queued."""
    now = now or timezone.now()
    with transaction.atomic():
        # SKIP LOCKED: two sweeps at once split the alerts, never send one twice.
        due = list(
            Alert.objects.select_for_update(skip_locked=True)
            .filter(_robot_due(now))
            .order_by("created_at", "pk")
            .values_list(*SHOWN, named=True)[:EMAIL_BATCH]
        )
        queued = _robot_queue(due)
        # Marked handed even without a robot, so the sweep does not re-read them every minute.
        Alert.objects.filter(among("pk", [alert.pk for alert in due])).update(robot_queued_at=now)
    return queued


def alerts_robot_and_email(*, now: datetime.datetime | None = None) -> int:
    """The sweep's pass: alerts_robot_queue, then alerts_email_send, with one read and one update
    of the alerts (a sweep's new alerts are due for both) instead of two reads and two updates.
    Returns how many e-mails went out."""
    now = now or timezone.now()
    robot_due, email_due = _robot_due(now), _email_due(now)
    with transaction.atomic():
        # SKIP LOCKED as in each pass alone; the e-mail claim is released before sending.
        due = list(
            Alert.objects.select_for_update(skip_locked=True)
            .filter(robot_due | email_due)
            .annotate(
                to_robot=ExpressionWrapper(robot_due, output_field=BooleanField()),
                to_email=ExpressionWrapper(email_due, output_field=BooleanField()),
            )
            .order_by("created_at", "pk")
            .values_list(*SHOWN, "to_robot", "to_email", named=True)[:EMAIL_BATCH]
        )
        if not due:
            return 0
        _robot_queue([alert for alert in due if alert.to_robot])
        Alert.objects.filter(among("pk", [alert.pk for alert in due])).update(
            robot_queued_at=Coalesce("robot_queued_at", Value(now)),
            email_claimed_at=Case(When(email_due, then=Value(now)), default=F("email_claimed_at")),
        )
    return _email([alert for alert in due if alert.to_email], now)


def _robot_queue(due: list) -> int:
    """One robot message per role over these alerts (in created order); the caller marks them."""
    per_role: dict[str, list] = {}
    for alert in due:
        per_role.setdefault(alert.for_role, []).append(alert)
    robots = {role for role in per_role if wecom.robot_configured(role)}
    # Order numbers only for the alerts a message shows (a burst of 2,000 shows 20 a role).
    shown_orders = {alert.order_id for role in robots for alert in per_role[role][:ROBOT_BATCH] if alert.order_id}
    numbers = dict(Order.objects.filter(pk__in=shown_orders).values_list("pk", "order_number")) if shown_orders else {}
    queued = 0
    for role, role_alerts in per_role.items():
        if role not in robots:
            continue
        shown, more = role_alerts[:ROBOT_BATCH], len(role_alerts) - ROBOT_BATCH
        wecom.robot_message_queue(
            role=role,
            key=f"alerts:{role}:{role_alerts[0].pk}:{role_alerts[-1].pk}:{len(role_alerts)}",
            content=_robot_markdown(role, shown, max(more, 0), numbers),
            alert_count=len(role_alerts),
        )
        queued += 1
    return queued
