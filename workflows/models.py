"""What runs by itself and what it produces for people: alerts and tickets. Several automations
write these rows; the board and cards read them. (The outbox of messages to customers is
WeChat's own delivery row: integrations/wechat/models.py.)"""

import datetime

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from orders.models import Customer, Order, Shipment


class AlertKind(models.TextChoices):
    SLA_BREACH = "sla_breach", _("Stage time limit exceeded")
    RECONCILIATION = "reconciliation", _("ERP reconciliation difference")
    TICKET = "ticket", _("Ticket opened")
    # A platform's own deadline (Douyin's latest ship time, an after-sales response) is near.
    PLATFORM_DEADLINE = "platform_deadline", _("Platform deadline near")
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
    # Handed to the role's WeCom group robot (workflows/alerts.py batches them per role).
    robot_queued_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    acknowledged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["for_role", "-created_at"], condition=Q(acknowledged_at__isnull=True), name="open_alerts"),
            # The minute sweep's robot + e-mail pass reads the alerts of the retry window only
            # (workflows/alerts.py): without it, every sweep read the whole table. On created_at,
            # which no update changes, so the marks stay HOT updates (migration 0012); the marks
            # themselves are left out of the index for that reason.
            models.Index(fields=["created_at"], name="alert_recent"),
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


# --- Saved views, bulk batches and exports of the order list (workflows/bulk.py) ---------------


class SavedView(models.Model):
    """The order list's filters under a name (orders/selectors.py OrderFilters.to_params()):
    private to its owner, or shared with one role. The defaults each role starts with are shared
    views without an owner (workflows/migrations/0009_default_saved_views.py)."""

    name = models.CharField(_("name"), max_length=60)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    shared_with_role = models.CharField(_("shared with"), max_length=16, blank=True)
    filters = models.JSONField(default=dict, blank=True)
    position = models.PositiveSmallIntegerField(default=100)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["position", "name", "id"]
        constraints = [
            # A view nobody can see is a defect: private views have an owner, shared ones a role.
            models.CheckConstraint(condition=~Q(owner__isnull=True, shared_with_role=""), name="saved_view_visible_to_someone")
        ]

    def __str__(self) -> str:
        return self.name


class ViewPin(models.Model):
    """The saved view a person lands on (one per person)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    view = models.ForeignKey(SavedView, on_delete=models.CASCADE, related_name="pins")


class BulkAction(models.TextChoices):
    APPROVE = "approve", _("Approve")
    START_PICKING = "start_picking", _("Start picking")
    ASSIGN = "assign", _("Assign")
    HOLD = "hold", _("Put on hold")
    RELEASE = "release", _("Release hold")
    TAG_ADD = "tag_add", _("Add exception tag")
    TAG_RESOLVE = "tag_resolve", _("Resolve exception tag")
    SET_CARRIER = "set_carrier", _("Set carrier")
    NOTE = "note", _("Add note")


class RunState(models.TextChoices):
    QUEUED = "queued", _("Queued")
    RUNNING = "running", _("Running")
    DONE = "done", _("Done")
    FAILED = "failed", _("Failed")


class BulkBatch(models.Model):
    """One bulk action over many orders. The orders (with the version each had when it was
    selected) are its BulkItems; a Celery task runs each through the order's own service and
    writes its outcome. The browser polls the counts, like an ERP import's progress."""

    HEARTBEAT_LEASE = datetime.timedelta(minutes=5)

    action = models.CharField(max_length=16, choices=BulkAction.choices)
    params = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    saved_view = models.ForeignKey(SavedView, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    retry_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="retries")
    state = models.CharField(max_length=16, choices=RunState.choices, default=RunState.QUEUED)
    total = models.PositiveIntegerField(default=0)
    processed = models.PositiveIntegerField(default=0)
    done_count = models.PositiveIntegerField(default=0)
    refused_count = models.PositiveIntegerField(default=0)
    conflict_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    @property
    def finished(self) -> bool:
        return self.state in (RunState.DONE, RunState.FAILED)

    @property
    def percent(self) -> int:
        return int(100 * self.processed / self.total) if self.total else (100 if self.finished else 0)


class ItemOutcome(models.TextChoices):
    PENDING = "pending", _("Waiting")
    DONE = "done", _("Done")
    REFUSED = "refused", _("Refused")
    CONFLICT = "conflict", _("Changed by someone else")


class BulkItem(models.Model):
    batch = models.ForeignKey(BulkBatch, on_delete=models.CASCADE, related_name="items")
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="+")
    # The order's version when it was selected: a change by anyone else after that is reported
    # as a conflict instead of being overwritten (orders/services.py OrderConflict).
    expected_version = models.PositiveIntegerField(null=True, blank=True)
    outcome = models.CharField(max_length=16, choices=ItemOutcome.choices, default=ItemOutcome.PENDING)
    message = models.CharField(max_length=500, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["batch", "order"], name="bulk_item_once_per_batch")]
        indexes = [models.Index(fields=["batch", "outcome", "id"], name="bulk_item_outcome")]


class ExportFormat(models.TextChoices):
    CSV = "csv", "CSV"
    XLSX = "xlsx", "Excel (.xlsx)"


class ExportRun(models.Model):
    """An .xlsx export of a view, written by a Celery task to a file (the page polls its
    progress). CSV is streamed straight to the browser and needs no run."""

    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    filters = models.JSONField(default=dict, blank=True)
    state = models.CharField(max_length=16, choices=RunState.choices, default=RunState.QUEUED)
    total = models.PositiveIntegerField(default=0)
    processed = models.PositiveIntegerField(default=0)
    file = models.FileField(upload_to="exports/%Y/%m/", blank=True)
    error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    @property
    def finished(self) -> bool:
        return self.state in (RunState.DONE, RunState.FAILED)

    @property
    def percent(self) -> int:
        return int(100 * self.processed / self.total) if self.total else (100 if self.finished else 0)


class ContactChannel(models.TextChoices):
    AUTO = "auto", _("WeChat, else SMS")
    WECHAT = "wechat", _("WeChat only")
    SMS = "sms", _("SMS only")
    NONE = "none", _("No messages (unsubscribed)")


class ContactPreference(models.Model):
    """How a customer wants to hear from us (workflows/notifications.py reads it). No row means
    AUTO: WeChat when they follow the service account, else SMS. NONE is 退订: nothing at all."""

    customer = models.OneToOneField(Customer, on_delete=models.CASCADE, related_name="contact_preference")
    channel = models.CharField(max_length=8, choices=ContactChannel.choices, default=ContactChannel.AUTO)
    updated_at = models.DateTimeField(default=timezone.now)
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
