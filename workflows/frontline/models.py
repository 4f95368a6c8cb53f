"""What the front line records: customers' "where is my order" inquiries and every self-service
status view. CPD and the self-service share are computed from these rows in measures.py (read by
the health self-check). The packing bench's scans are orders.models.PackScan: the pack
verification in orders/packing.py reads them."""

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from orders.models import Customer, Order


class InquiryChannel(models.TextChoices):
    PHONE = "phone", _("Phone")
    WECHAT = "wechat", _("WeChat")


class Inquiry(models.Model):
    """A customer asked customer service about an order (an *assisted* status query)."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="inquiries")
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="inquiries")
    channel = models.CharField(_("channel"), max_length=16, choices=InquiryChannel.choices)
    question = models.CharField(_("what the customer asked"), max_length=300)
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    asked_at = models.DateTimeField(_("asked at"), default=timezone.now)
    # The instant answer pushed to the customer; empty when the customer has no WeChat openid.
    answer_message = models.ForeignKey(
        "wechat.CustomerMessage", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-asked_at", "-id"]
        verbose_name = _("inquiry")
        verbose_name_plural = _("inquiries")
        indexes = [
            models.Index(fields=["order", "asked_at"], name="inquiry_order_time"),
            models.Index(fields=["asked_at"], name="inquiry_time"),
        ]


class SelfServiceVia(models.TextChoices):
    CODE = "code", _("Order number and last 4 digits")
    LINK = "link", _("Signed link from a push")


class SelfServiceQuery(models.Model):
    """A customer looked at the self-service status page (a *self-service* status query)."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="self_service_queries")
    via = models.CharField(max_length=8, choices=SelfServiceVia.choices)
    viewed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = _("self-service query")
        verbose_name_plural = _("self-service queries")
        indexes = [models.Index(fields=["viewed_at"], name="selfservice_time")]


class SelfServiceFailure(models.Model):
    """A refused self-service attempt, written only while the shared cache (Redis) is unreachable:
    the throttle in selfservice.py then counts these rows instead, so guessing stays limited and
    the page keeps answering. Rows older than the throttle window are deleted as new ones arrive."""

    address = models.CharField(max_length=64)
    # Empty for a refused signed link: it names no order that could be counted against.
    order_number = models.CharField(max_length=40, blank=True)
    failed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = _("self-service failure")
        verbose_name_plural = _("self-service failures")
        # The two counts the throttle makes, and the pruning of old rows.
        indexes = [
            models.Index(fields=["address", "failed_at"], name="selfservice_fail_address"),
            models.Index(fields=["order_number", "failed_at"], name="selfservice_fail_order"),
            models.Index(fields=["failed_at"], name="selfservice_fail_time"),
        ]
