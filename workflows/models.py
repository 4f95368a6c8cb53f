"""What runs by itself and what it produces for people: alerts and tickets. Several automations
write these rows; the board and cards read them. (The outbox of messages to customers is
WeChat's own delivery row: integrations/wechat/models.py.)"""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from orders.models import Order, Shipment


class AlertKind(models.TextChoices):
    SLA_BREACH = "sla_breach", _("Stage time limit exceeded")
    RECONCILIATION = "reconciliation", _("ERP reconciliation difference")
    TICKET = "ticket", _("Ticket opened")
    SYSTEM = "system", _("System")


class Alert(models.Model):
    """An in-app alert for a role (usually the supervisor); e-mailed once (`emailed_at`) through
    workflows/alerts.py, the one alert → e-mail path."""

    kind = models.CharField(max_length=20, choices=AlertKind.choices)
    for_role = models.CharField(max_length=16, default="supervisor")
    order = models.ForeignKey(Order, null=True, blank=True, on_delete=models.CASCADE, related_name="alerts")
    # Makes "exactly once" a database fact: the same breach or date cannot alert twice.
    dedupe_key = models.CharField(max_length=120, unique=True)
    message = models.CharField(max_length=500)
    # Where the e-mail points (a path on this cockpit): the board, a ticket, a reconciliation run.
    link = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    emailed_at = models.DateTimeField(null=True, blank=True)
    # A sender's claim (workflows/alerts.py): set before the mail server is called and cleared
    # if it refuses, so the send happens outside any row lock; a claim a crashed sender left
    # behind expires after alerts.EMAIL_CLAIM.
    email_claimed_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    acknowledged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["for_role", "-created_at"], condition=Q(acknowledged_at__isnull=True), name="open_alerts")
        ]


class TicketKind(models.TextChoices):
    # The window is a setting (workflows/notifications.py stall_after); the ticket's summary names it.
    STALLED = "stalled", _("No tracking update")
    PROBLEM = "problem", _("Carrier reports a problem")
    RETURNED = "returned", _("Returned or refused")
    ABORTED = "aborted", _("Tracking aborted")
    # Issue 13: a shipped parcel's address change the carrier takes only by phone (e.g. SF).
    ADDRESS_CHANGE = "address_change", _("Address change by the carrier's hotline")


class Ticket(models.Model):
    """A piece of work for a role (stalled shipments go to the courier role)."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="tickets")
    shipment = models.ForeignKey(Shipment, null=True, blank=True, on_delete=models.CASCADE, related_name="tickets")
    kind = models.CharField(max_length=16, choices=TicketKind.choices)
    for_role = models.CharField(max_length=16, default="courier")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    summary = models.CharField(max_length=300)
    opened_at = models.DateTimeField(default=timezone.now)
    closed_at = models.DateTimeField(null=True, blank=True)
    closed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    resolution = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-opened_at"]
        constraints = [
            # "One ticket" per stalled shipment: a second detection finds the open one.
            models.UniqueConstraint(fields=["shipment"], condition=Q(closed_at__isnull=True), name="one_open_ticket_per_shipment")
        ]


class TicketNote(models.Model):
    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="notes")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    body = models.CharField(max_length=1000)
    created_at = models.DateTimeField(default=timezone.now)
