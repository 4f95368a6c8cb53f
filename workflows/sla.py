"""The SLA sweep: a minute scan over the indexed Order.stage_due_at (kept by orders/clock.py)
turns overdue orders red and alerts the responsible role, exactly once per breach."""

from __future__ import annotations

import datetime
import logging
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.models import User
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext as _

from orders.models import EventKind, Order, OrderEvent, OrderStatus, Role, StageRule
from workflows.models import Alert, AlertKind

logger = logging.getLogger(__name__)

# How many breaches one sweep handles; the rest wait a minute (keeps one sweep well under 1 s).
SWEEP_BATCH = 5000
# An alert whose e-mail failed is retried by the next sweeps for this long.
EMAIL_RETRY_WINDOW = datetime.timedelta(hours=24)


# --- The sweep ---------------------------------------------------------------------------------


@dataclass
class SweepResult:
    breached: int
    emailed: int


def breach_key(order: Order) -> str:
    """One breach per order and stage entry: re-entering a stage later is a new breach."""
    return f"sla:{order.pk}:{order.status}:{order.stage_entered_at.timestamp():.0f}"


def _breach_message(order: Order, rule: StageRule | None) -> str:
    stage = OrderStatus(order.status).label
    due = date_format(timezone.localtime(order.stage_due_at), "m-d H:i")
    if order.is_rush and order.rush_deadline == order.stage_due_at:
        return _("Rush order %(number)s missed its expected completion time %(due)s (now %(stage)s).") % {
            "number": order.order_number, "due": due, "stage": stage,
        }
    role = Role(rule.responsible_role).label if rule and rule.responsible_role in Role.values else ""
    return _("Order %(number)s is over its time limit in %(stage)s since %(due)s (responsible: %(role)s).") % {
        "number": order.order_number, "stage": stage, "due": due, "role": role,
    }


def sla_sweep(*, now: datetime.datetime | None = None) -> SweepResult:
    """Mark every order past its due time red, with one order event and one alert each."""
    now = now or timezone.now()
    rules = {rule.stage: rule for rule in StageRule.objects.all()}
    with transaction.atomic():
        # Served by the partial index order_sla_unalerted. SKIP LOCKED: an order someone is
        # moving right now is left alone (its transition resets the clock anyway) so the sweep
        # never waits on a person; the guard sla_breached_at IS NULL under the row lock makes
        # two overlapping sweeps alert once.
        due = list(
            Order.objects.select_for_update(skip_locked=True)
            .filter(stage_due_at__lte=now, sla_breached_at__isnull=True, is_held=False)
            .order_by("stage_due_at")
            .only("pk", "order_number", "status", "stage_entered_at", "stage_due_at", "is_rush", "rush_deadline")[:SWEEP_BATCH]
        )
        if due:
            Order.objects.filter(pk__in=[order.pk for order in due]).update(sla_breached_at=now)
            events, alerts = [], []
            for order in due:
                rule = rules.get(order.status)
                message = _breach_message(order, rule)
                events.append(
                    OrderEvent(
                        order=order, kind=EventKind.SLA_BREACH, occurred_at=now, actor_name="system",
                        payload={"stage": order.status, "due_at": order.stage_due_at.isoformat(), "message": message,
                                 "responsible_role": rule.responsible_role if rule else ""},
                    )
                )
                alerts.append(
                    Alert(kind=AlertKind.SLA_BREACH, for_role=rule.alert_role if rule else Role.SUPERVISOR, order=order,
                          dedupe_key=breach_key(order), message=message, created_at=now)
                )
            OrderEvent.objects.bulk_create(events)
            # The unique dedupe_key is the last line of defence against a second alert.
            Alert.objects.bulk_create(alerts, ignore_conflicts=True)
    return SweepResult(breached=len(due), emailed=send_alert_emails(now=now))


def alert_recipients(role: str) -> list[str]:
    people = User.objects.filter(is_active=True, groups__name=role).exclude(email="").values_list("email", flat=True)
    return sorted(set(people) | set(settings.ALERT_EMAILS))


def send_alert_emails(*, now: datetime.datetime) -> int:
    """One e-mail per alerted role and sweep, listing its new breaches. An alert is marked
    e-mailed in the same transaction that sent it, so a failed send is retried next minute and a
    sent one never again."""
    sent = 0
    with transaction.atomic():
        pending = list(
            Alert.objects.select_for_update(skip_locked=True)
            .filter(kind=AlertKind.SLA_BREACH, emailed_at__isnull=True, created_at__gte=now - EMAIL_RETRY_WINDOW)
            .order_by("created_at")[:SWEEP_BATCH]
        )
        by_role: dict[str, list[Alert]] = {}
        for alert in pending:
            by_role.setdefault(alert.for_role, []).append(alert)
        for role, alerts in by_role.items():
            recipients = alert_recipients(role)
            if not recipients:
                logger.warning("No e-mail address for role %s: %d SLA alerts stay in-app only", role, len(alerts))
                continue
            if len(alerts) == 1:
                subject = alerts[0].message
            else:
                subject = _("%(count)d orders are over their stage time limit") % {"count": len(alerts)}
            body = "\n".join(alert.message for alert in alerts) + "\n\n" + settings.PUBLIC_BASE_URL + "/board/"
            try:
                send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, recipients)
            except OSError:
                logger.exception("Sending %d SLA alert e-mails failed; the next sweep retries", len(alerts))
                continue
            Alert.objects.filter(pk__in=[alert.pk for alert in alerts]).update(emailed_at=now)
            sent += 1
    return sent
