"""What runs by itself and what it produces for people: alerts, tickets, and the outbox of
messages to customers. Several automations write these rows; the board and cards read them."""

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
    """An in-app alert for a role (usually the supervisor); e-mailed once when `emailed_at` is set."""

    kind = models.CharField(max_length=20, choices=AlertKind.choices)
    for_role = models.CharField(max_length=16, default="supervisor")
    order = models.ForeignKey(Order, null=True, blank=True, on_delete=models.CASCADE, related_name="alerts")
    # Makes "exactly once" a database fact: the same breach or date cannot alert twice.
    dedupe_key = models.CharField(max_length=120, unique=True)
    message = models.CharField(max_length=500)
    created_at = models.DateTimeField(default=timezone.now)
    emailed_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    acknowledged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["for_role", "-created_at"], condition=Q(acknowledged_at__isnull=True), name="open_alerts")]


class TicketKind(models.TextChoices):
    STALLED = "stalled", _("No tracking update for 24 h")
    PROBLEM = "problem", _("Carrier reports a problem")
    RETURNED = "returned", _("Returned or refused")
    ABORTED = "aborted", _("Tracking aborted")


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


class MessageStatus(models.TextChoices):
    PENDING = "pending", _("Waiting to send")
    SENT = "sent", _("Sent")
    FAILED = "failed", _("Failed, will retry")
    REFUSED = "refused", _("Refused by the provider (not retried)")


class CustomerMessage(models.Model):
    """The outbox: a message to a customer is a row first (what, to whom, idempotency key), then
    sent by a task; a relay re-sends rows a lost task or a down broker left pending."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="customer_messages")
    channel = models.CharField(max_length=16, default="wechat")
    recipient = models.CharField(max_length=64, help_text="The customer's openid for WeChat.")
    # One message per order event: e.g. "shipped", "tracking:3", "inquiry:42".
    event_key = models.CharField(max_length=64)
    idempotency_key = models.CharField(max_length=64, unique=True)
    content = models.JSONField(default=dict, help_text="Template values as sent.")
    carries_location = models.BooleanField(default=False, help_text="Has location and ETA, or an exception explanation.")
    status = models.CharField(max_length=16, choices=MessageStatus.choices, default=MessageStatus.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    last_error = models.CharField(max_length=300, blank=True)
    provider_message_id = models.CharField(max_length=64, blank=True)
    delivery_status = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["next_attempt_at"], condition=Q(status__in=["pending", "failed"]), name="outbox_due")]
