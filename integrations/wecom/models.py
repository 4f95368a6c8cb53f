"""The robots' own delivery rows: one markdown message per role and batch of alerts."""

from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class RobotStatus(models.TextChoices):
    PENDING = "pending", _("Waiting to send")
    SENT = "sent", _("Sent")
    FAILED = "failed", _("Failed, will retry")
    REFUSED = "refused", _("Refused by the provider (not retried)")


class RobotMessage(models.Model):
    """The outbox: one message to one role's group robot."""

    role = models.CharField(max_length=16)
    idempotency_key = models.CharField(max_length=80, unique=True)
    content = models.TextField()
    alert_count = models.PositiveSmallIntegerField(default=1)
    status = models.CharField(max_length=16, choices=RobotStatus.choices, default=RobotStatus.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    last_error = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["next_attempt_at"], condition=Q(status__in=["pending", "failed"]), name="robot_outbox_due"),
            models.Index(fields=["role", "sent_at"], name="robot_role_sent"),
        ]
