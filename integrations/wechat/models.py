"""WeChat's own delivery rows: the outbox of template messages to customers.

A message is a row first (what, to whom, idempotency key, where it links to), then sent by a
task; a relay re-sends rows a lost task or a down broker left pending. What a message *says* is
decided above (workflows/notifications.py); this row only carries the ready content.
"""

from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from orders.models import Order


class MessageStatus(models.TextChoices):
    PENDING = "pending", _("Waiting to send")
    SENT = "sent", _("Sent")
    FAILED = "failed", _("Failed, will retry")
    REFUSED = "refused", _("Refused by the provider (not retried)")


class CustomerMessage(models.Model):
    """The outbox: one row per (order, event), sent at most once."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="customer_messages")
    channel = models.CharField(max_length=16, default="wechat")
    recipient = models.CharField(max_length=64, help_text="The customer's openid for WeChat.")
    # One message per order event: e.g. "shipped", "tracking:3", "inquiry:42".
    event_key = models.CharField(max_length=64)
    idempotency_key = models.CharField(max_length=64, unique=True)
    content = models.JSONField(default=dict, help_text="Template values as sent.")
    # Where tapping the message leads (the customer's signed self-service page), fixed when the
    # message is queued so the sender needs to know nothing about the pages above it.
    link = models.CharField(max_length=400, blank=True, help_text="The URL the message opens.")
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
        # The table it had when the outbox lived in workflows: moved in state only, no copy.
        db_table = "workflows_customermessage"
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["next_attempt_at"], condition=Q(status__in=["pending", "failed"]), name="outbox_due")]

    def __str__(self) -> str:
        return f"{self.order_id} {self.event_key} {self.status}"


class ShippingUploadKind(models.TextChoices):
    UPLOAD = "upload", _("Shipping information uploaded")
    # The mini-program lets shipping information be changed once (docs/protocols.md).
    UPDATE = "update", _("Shipping information updated")


class ShippingUpload(models.Model):
    """The mini-program's shipping-information outbox: the upload when the order ships here, and
    the one update a changed waybill may make. A row first (the request body as it will be sent),
    then sent by a task; the relay retries what a lost task or an outage left pending."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="shipping_uploads")
    kind = models.CharField(max_length=16, choices=ShippingUploadKind.choices, default=ShippingUploadKind.UPLOAD)
    # "upload" for the order's first upload, "waybill:<event id>" for an update: a nudge and the
    # relay asking for the same one make one row.
    idempotency_key = models.CharField(max_length=64, unique=True)
    body = models.JSONField(default=dict, help_text="upload_shipping_info's body as sent.")
    status = models.CharField(max_length=16, choices=MessageStatus.choices, default=MessageStatus.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    # WeChat's errcode of the last refusal or failure (None: unreachable, or none yet).
    errcode = models.IntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["next_attempt_at"], condition=Q(status__in=["pending", "failed"]), name="shipping_upload_due")
        ]

    def __str__(self) -> str:
        return f"{self.order_id} {self.kind} {self.status}"
