"""The Douyin shop's own rows: the shops and their credentials, every pushed message as it came,
the buyer's encrypted receiver (ciphertext, the platform's search index, the masked tail; never
the plaintext), the decrypt log, the after-sales requests' deadlines, and the outbox of shipping
write-backs (order.logisticsAdd)."""

from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from orders.models import AddressChangeRequest, AfterSalesCase, Order, Shipment


class DouyinShop(models.Model):
    """One shop of the company on 抖店, with its own app credentials and tokens (the access
    token lives 7 days, the refresh token 14: integrations/douyin/client.py refreshes)."""

    name = models.CharField(_("shop name"), max_length=64)
    shop_id = models.CharField(_("shop id"), max_length=32, unique=True)
    app_key = models.CharField(max_length=64)
    app_secret = models.CharField(max_length=128)
    access_token = models.CharField(max_length=128, blank=True)
    access_token_expires_at = models.DateTimeField(null=True, blank=True)
    refresh_token = models.CharField(max_length=128, blank=True)
    refresh_token_expires_at = models.DateTimeField(null=True, blank=True)
    enabled = models.BooleanField(_("enabled"), default=True)
    # The pull's cursor (order.searchList by update time): every order updated before it was read.
    pull_cursor = models.DateTimeField(null=True, blank=True)
    last_push_at = models.DateTimeField(_("last push"), null=True, blank=True)
    last_pull_at = models.DateTimeField(_("last successful pull"), null=True, blank=True)
    last_pull_error = models.CharField(max_length=300, blank=True)

    class Meta:
        verbose_name = _("Douyin shop")
        verbose_name_plural = _("Douyin shops")

    def __str__(self) -> str:
        return self.name


class MessageState(models.TextChoices):
    RECEIVED = "received", _("Received")
    APPLIED = "applied", _("Applied")
    # Not yet applicable (the platform unreachable, or a step it follows is missing): retried.
    WAITING = "waiting", _("Waiting to apply")
    IGNORED = "ignored", _("Not used by the cockpit")


class DouyinMessage(models.Model):
    """One pushed message, stored as received (the data as the platform's JSON string) before it
    is applied: a replay of the same msg_id is recognised here and applied once."""

    msg_id = models.CharField(max_length=64, unique=True)
    tag = models.CharField(max_length=64)
    shop = models.ForeignKey(DouyinShop, null=True, on_delete=models.SET_NULL, related_name="messages")
    platform_order_id = models.CharField(max_length=64, blank=True)
    data = models.TextField()
    received_at = models.DateTimeField(default=timezone.now)
    state = models.CharField(max_length=16, choices=MessageState.choices, default=MessageState.RECEIVED)
    applied_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.CharField(max_length=300, blank=True)

    class Meta:
        indexes = [
            # The relay: messages not yet applied.
            models.Index(fields=["received_at"], condition=Q(state__in=["received", "waiting"]), name="douyin_message_due"),
            # Feed health: messages per shop in the last hour / day.
            models.Index(fields=["shop", "received_at"], name="douyin_message_shop_time"),
        ]


class DouyinOrder(models.Model):
    """The platform's side of one order: the buyer's receiver as the platform gave it, encrypted.
    The order's own receiver fields hold only the masked values (张*, 138****8000)."""

    order = models.OneToOneField(Order, on_delete=models.CASCADE, related_name="douyin")
    shop = models.ForeignKey(DouyinShop, on_delete=models.PROTECT, related_name="orders")
    platform_order_id = models.CharField(max_length=64, unique=True)
    platform_status = models.PositiveSmallIntegerField(default=0)
    platform_updated_at = models.DateTimeField(null=True, blank=True)
    encrypted_name = models.TextField()
    encrypted_phone = models.TextField()
    encrypted_address = models.TextField()
    # The platform's search indexes (order.BatchSearchIndex): a phone the customer says is turned
    # into its index and matched here, without the plaintext ever being stored.
    name_index = models.CharField(max_length=128, blank=True)
    phone_index = models.CharField(max_length=128, blank=True)
    phone_tail = models.CharField(max_length=4, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["phone_index"], name="douyin_order_phone_index"),
            models.Index(fields=["phone_tail"], name="douyin_order_phone_tail"),
        ]


class DouyinAddressChange(models.Model):
    """A buyer's address-change request from the platform: the inbox row, the new receiver's
    ciphertexts, and whether the decision was answered (order.addressConfirm)."""

    change = models.OneToOneField(AddressChangeRequest, on_delete=models.CASCADE, related_name="douyin")
    douyin_order = models.ForeignKey(DouyinOrder, on_delete=models.CASCADE, related_name="address_changes")
    encrypted_name = models.TextField()
    encrypted_phone = models.TextField()
    encrypted_address = models.TextField()
    phone_index = models.CharField(max_length=128, blank=True)
    answered_approved = models.BooleanField(null=True)
    answered_at = models.DateTimeField(null=True, blank=True)
    answer_error = models.CharField(max_length=300, blank=True)


class DouyinRefund(models.Model):
    """An after-sales request on the platform and its response deadline (status_deadline): the
    platform decides on its own when it passes."""

    aftersale_id = models.CharField(max_length=64, unique=True)
    douyin_order = models.ForeignKey(DouyinOrder, on_delete=models.CASCADE, related_name="refunds")
    case = models.OneToOneField(AfterSalesCase, null=True, on_delete=models.SET_NULL, related_name="douyin")
    deadline = models.DateTimeField(null=True, blank=True)


class DecryptLog(models.Model):
    """Who decrypted which order's receiver, when, and until when the virtual number works. The
    plaintext is shown once on the page and never written anywhere."""

    douyin_order = models.ForeignKey(DouyinOrder, on_delete=models.CASCADE, related_name="decrypts")
    user = models.ForeignKey("auth.User", null=True, on_delete=models.SET_NULL, related_name="+")
    user_name = models.CharField(max_length=64)
    role = models.CharField(max_length=16, blank=True)
    decrypted_at = models.DateTimeField(default=timezone.now)
    virtual_number_expires_at = models.DateTimeField(null=True, blank=True)
    succeeded = models.BooleanField(default=True)
    error = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-decrypted_at"]


class WriteBackStatus(models.TextChoices):
    PENDING = "pending", _("Waiting to send")
    SENT = "sent", _("Accepted by the platform")
    FAILED = "failed", _("Failed, will retry")
    REFUSED = "refused", _("Refused by the platform")


class ShippingWriteBack(models.Model):
    """The outbox of order.logisticsAdd: one row per (order, waybill), so a shipment is told to
    the platform once however often the reaction runs."""

    douyin_order = models.ForeignKey(DouyinOrder, on_delete=models.CASCADE, related_name="write_backs")
    shipment = models.ForeignKey(Shipment, null=True, on_delete=models.SET_NULL, related_name="+")
    carrier_code = models.CharField(max_length=32)
    tracking_number = models.CharField(max_length=32)
    status = models.CharField(max_length=16, choices=WriteBackStatus.choices, default=WriteBackStatus.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    error_code = models.CharField(max_length=32, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["douyin_order", "tracking_number"], name="douyin_write_back_once"),
        ]
        indexes = [
            models.Index(fields=["next_attempt_at"], condition=Q(status__in=["pending", "failed"]), name="douyin_write_back_due"),
        ]
