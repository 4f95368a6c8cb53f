"""What the health self-check stores: one value per measure and business day (so history
survives later data changes and the page reads fast), and the daily cross-role status checks."""

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from orders.models import Order, OrderStatus


class DailyMeasure(models.Model):
    key = models.CharField(max_length=40)
    day = models.DateField(help_text="Business day in Asia/Shanghai.")
    value = models.FloatField(null=True, blank=True, help_text="Empty when the day had no data.")
    sample_size = models.PositiveIntegerField(default=0)
    detail = models.JSONField(default=dict, blank=True)
    computed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = _("daily measure")
        verbose_name_plural = _("daily measures")
        constraints = [
            # Two beat processes computing the same night write one row, not two.
            models.UniqueConstraint(fields=["key", "day"], name="one_measure_per_key_and_day")
        ]


class CheckerGroup(models.TextChoices):
    """The three sides of docs/brief.md's cross-role consistency check."""

    SALES = "sales", _("Sales")
    WAREHOUSE = "warehouse", _("Warehouse")
    SERVICE = "service", _("Customer service")


class ConsistencySample(models.Model):
    """One of the day's five sampled active orders, with the status the system had at sampling."""

    day = models.DateField()
    slot = models.PositiveSmallIntegerField(help_text="1 to 5 within the day.")
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="+")
    # Named "state" because order status is only ever changed through transitions.
    system_state = models.CharField(_("status in the system at sampling"), max_length=20, choices=OrderStatus.choices)
    sampled_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["day", "slot"]
        constraints = [
            # Slots make a second sampler for the same day fail instead of adding five more.
            models.UniqueConstraint(fields=["day", "slot"], name="one_sample_per_day_slot"),
            models.UniqueConstraint(fields=["day", "order"], name="order_sampled_once_a_day"),
        ]


class ConsistencyTask(models.Model):
    """ "Which status is this order in?" for one person of one side, answered without seeing the system's."""

    sample = models.ForeignKey(ConsistencySample, on_delete=models.CASCADE, related_name="tasks")
    group = models.CharField(max_length=16, choices=CheckerGroup.choices)
    assignee = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    answer = models.CharField(_("answer"), max_length=20, choices=OrderStatus.choices, blank=True)
    answered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["sample__slot", "group"]
        constraints = [models.UniqueConstraint(fields=["sample", "group"], name="one_task_per_sample_and_group")]
        indexes = [models.Index(fields=["assignee"], condition=models.Q(answered_at__isnull=True), name="open_status_checks")]

    @property
    def matches(self) -> bool | None:
        return None if self.answered_at is None else self.answer == self.sample.system_state
