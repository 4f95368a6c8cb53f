"""Our side of a Kuaidi100 subscription: whether a shipment is subscribed, and when it was
last pushed or polled (the fallback poll and the ~30 min per-number rule read these)."""

from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from orders.models import Shipment


class SubscriptionState(models.TextChoices):
    PENDING = "pending", _("Subscribing")
    ACTIVE = "active", _("Subscribed")
    REFUSED = "refused", _("Refused by Kuaidi100")
    ABORTED = "aborted", _("Aborted by Kuaidi100")
    FINISHED = "finished", _("Finished")


class TrackingSubscription(models.Model):
    shipment = models.OneToOneField(Shipment, on_delete=models.CASCADE, related_name="subscription")
    state = models.CharField(max_length=16, choices=SubscriptionState.choices, default=SubscriptionState.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    # A worker claims a pending row by moving this into the future; a crashed claim expires.
    next_attempt_at = models.DateTimeField(default=timezone.now)
    last_error = models.CharField(max_length=300, blank=True)
    subscribed_at = models.DateTimeField(null=True, blank=True)
    last_push_at = models.DateTimeField(null=True, blank=True)
    last_polled_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = _("tracking subscription")
        verbose_name_plural = _("tracking subscriptions")
        indexes = [
            # The relay's scan: pending rows whose next attempt is due.
            models.Index(fields=["next_attempt_at"], condition=Q(state="pending"), name="k100_subscription_due"),
            # The fallback poll's scan over active subscriptions.
            models.Index(fields=["last_push_at"], condition=Q(state="active"), name="k100_subscription_active"),
        ]

    def __str__(self) -> str:
        return f"{self.shipment} {self.state}"
