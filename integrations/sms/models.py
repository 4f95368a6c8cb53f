"""The SMS platform's own rows: the outbox of text messages to customers, and the phones that
replied 退订 (opt-out). What a message says, and whether a customer gets an SMS at all, is
decided above (workflows/notifications.py); these rows carry the ready template values."""

from decimal import Decimal

from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from orders.models import Order


class SmsStatus(models.TextChoices):
    PENDING = "pending", _("Waiting to send")
    SENT = "sent", _("Sent")
    FAILED = "failed", _("Failed, will retry")
    REFUSED = "refused", _("Refused by the provider (not retried)")


class SmsMessage(models.Model):
    """The outbox: one row per (order, event), sent at most once."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="sms_messages")
    phone = models.CharField(max_length=11)
    event_key = models.CharField(max_length=64)
    idempotency_key = models.CharField(max_length=64, unique=True)
    template_code = models.CharField(max_length=32)
    params = models.JSONField(default=dict, help_text="Template values as sent.")
    carries_location = models.BooleanField(default=False, help_text="Has location and ETA, or an exception explanation.")
    status = models.CharField(max_length=16, choices=SmsStatus.choices, default=SmsStatus.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    error_code = models.CharField(max_length=64, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    biz_id = models.CharField(max_length=64, blank=True)
    # The delivery receipt (SmsReport): delivered or not, the carrier's error, how many segments
    # were billed.
    delivery_status = models.CharField(max_length=16, blank=True)
    delivery_error = models.CharField(max_length=64, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    segments = models.PositiveSmallIntegerField(default=0)
    cost = models.DecimalField(max_digits=8, decimal_places=4, default=Decimal("0"))
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["next_attempt_at"], condition=Q(status__in=["pending", "failed"]), name="sms_outbox_due"),
            models.Index(fields=["phone", "sent_at"], name="sms_phone_sent"),
            models.Index(fields=["biz_id"], name="sms_biz_id"),
        ]

    def __str__(self) -> str:
        return f"{self.order_id} {self.event_key} {self.status}"


class SmsOptOut(models.Model):
    """A phone that replied 退订: it gets no more SMS from us (the carriers require it)."""

    phone = models.CharField(max_length=11, unique=True)
    reply = models.CharField(max_length=70, blank=True)
    opted_out_at = models.DateTimeField(default=timezone.now)
