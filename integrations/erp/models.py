"""The bridge to the old ERP/WMS: import runs, inbound status events, daily exports and
reconciliation runs. Each row is kept so finance can see what happened and when."""

import datetime
from decimal import Decimal

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class ImportState(models.TextChoices):
    QUEUED = "queued", _("Queued")
    RUNNING = "running", _("Running")
    DONE = "done", _("Done")
    FAILED = "failed", _("File could not be read")


class ImportKind(models.TextChoices):
    ORDERS = "orders", _("Orders")
    PRODUCTS = "products", _("Products")


class ImportRun(models.Model):
    """One upload of an ERP order export. The Celery task writes its progress here and the
    browser polls it, so progress survives a page reload and works with any broker.

    A running import renews `heartbeat_at` as it reads and as each chunk commits; a run whose
    heartbeat is older than HEARTBEAT_LEASE lost its worker (killed, out of memory, restarted)
    and the beat's reaper marks it failed (services.import_runs_reap), so no run stays
    "处理中" forever. A failed run can be retried: a new run of the same stored file."""

    HEARTBEAT_LEASE = datetime.timedelta(minutes=5)

    file = models.FileField(upload_to="erp/imports/%Y/%m/")
    # An ERP order export, or the ERP's product master export (商品资料, integrations/erp/products.py).
    kind = models.CharField(max_length=16, choices=ImportKind.choices, default=ImportKind.ORDERS)
    original_name = models.CharField(max_length=200)
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    dry_run = models.BooleanField(_("preview only"), default=False)
    # The preview this import was confirmed from ("Import now" on a preview's result page).
    preview_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="imports")
    # The failed run this one retries (the retry button on a failed run's page).
    retry_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="retries")
    state = models.CharField(max_length=16, choices=ImportState.choices, default=ImportState.QUEUED)
    total_rows = models.PositiveIntegerField(default=0)
    processed_rows = models.PositiveIntegerField(default=0)
    created_count = models.PositiveIntegerField(default=0)
    updated_count = models.PositiveIntegerField(default=0)
    unchanged_count = models.PositiveIntegerField(default=0)
    rejected_count = models.PositiveIntegerField(default=0)
    rejected_rows = models.PositiveIntegerField(default=0)
    file_error = models.CharField(max_length=500, blank=True)
    # [{"row": 5, "column": "手机", "reason": "…", "order_number": "…"}, …]: the first
    # importer.MAX_STORED_ERRORS by row; `errors_omitted` counts the rest.
    errors = models.JSONField(default=list, blank=True)
    errors_omitted = models.PositiveIntegerField(default=0)
    # Imported, but to look at (same shape): exact duplicate rows, amounts that do not add up.
    warnings = models.JSONField(default=list, blank=True)
    warnings_omitted = models.PositiveIntegerField(default=0)
    # An order import: the SKU codes it refused as unknown (at most MAX_UNKNOWN_SKUS), for the
    # one-step recovery: import those products, then run this file again.
    unknown_skus = models.JSONField(default=list, blank=True)
    # A product import started from an order import that refused unknown SKUs: when it is done,
    # that order file is imported again (services.import_run_execute).
    recovers = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="recoveries")
    # The order import run again after the product import `rerun_after`.
    rerun_after = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="reruns")
    # The first orders that would change / changed: [{"order_number", "action", "fields"}].
    changes = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        # The reaper's scan: the few running runs, by heartbeat.
        indexes = [
            models.Index(fields=["heartbeat_at"], name="import_run_running", condition=models.Q(state="running")),
        ]

    @property
    def percent(self) -> int:
        if self.state in (ImportState.DONE, ImportState.FAILED):
            return 100
        return int(self.processed_rows * 100 / self.total_rows) if self.total_rows else 0

    @property
    def finished(self) -> bool:
        return self.state in (ImportState.DONE, ImportState.FAILED)


class InboundEvent(models.Model):
    """A status event from the WMS or the ERP. The unique (source, event_id) pair makes a
    replayed delivery a database fact: the second insert fails and the stored answer is repeated."""

    source_system = models.CharField(max_length=32)
    event_id = models.CharField(max_length=100)
    order_number = models.CharField(max_length=40, blank=True)
    event_type = models.CharField(max_length=32, blank=True)
    source_time = models.DateTimeField(null=True, blank=True)
    received_at = models.DateTimeField(default=timezone.now)
    response_status = models.PositiveSmallIntegerField(default=200)
    response_body = models.JSONField(default=dict)

    class Meta:
        ordering = ["-received_at"]
        constraints = [models.UniqueConstraint(fields=["source_system", "event_id"], name="inbound_event_once")]


class DailyExport(models.Model):
    """The business day's standard Excel for the ERP, kept. One row per date: a second beat
    process (or a second click) finds it instead of writing another file."""

    business_date = models.DateField(unique=True)
    file = models.FileField(upload_to="erp/exports/", blank=True)
    order_count = models.PositiveIntegerField(default=0)
    line_count = models.PositiveIntegerField(default=0)
    produced_at = models.DateTimeField(null=True, blank=True)
    produced_by = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["-business_date"]


class ReconciliationRun(models.Model):
    """One ERP sync check: both sides of the three measures, their differences and the order
    numbers someone has to look at. Every run is kept, not only the latest.

    An uploaded file is checked by a Celery task (workflows/tasks.py), like an import: the run is
    written "queued" with the stored file, the task moves it to running (rows read so far in
    `processed_rows`, which the page polls) and then to done with the numbers, or to failed with
    `file_error` in the user's words. A check run in-process (the command line) is done at once."""

    business_date = models.DateField()
    ran_at = models.DateTimeField(default=timezone.now)
    ran_by = models.CharField(max_length=64)
    erp_file_name = models.CharField(max_length=200)
    erp_is_summary = models.BooleanField(default=False, help_text="The ERP side came from a day summary, not an order export.")
    state = models.CharField(max_length=16, choices=ImportState.choices, default=ImportState.DONE)
    file = models.FileField(upload_to="erp/reconciliations/%Y/%m/", blank=True)
    processed_rows = models.PositiveIntegerField(default=0)
    file_error = models.CharField(max_length=500, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    # The numbers below are zero until the run is done.
    our_order_count = models.PositiveIntegerField(default=0)
    our_total_amount = models.DecimalField(max_digits=14, decimal_places=2, default=Decimal("0.00"))
    our_refund_count = models.PositiveIntegerField(default=0)
    erp_order_count = models.PositiveIntegerField(default=0)
    erp_total_amount = models.DecimalField(max_digits=14, decimal_places=2, default=Decimal("0.00"))
    erp_refund_count = models.PositiveIntegerField(default=0)
    # Relative differences in percent, against the ERP side.
    order_count_diff_pct = models.DecimalField(max_digits=9, decimal_places=3, default=Decimal("0.000"))
    total_amount_diff_pct = models.DecimalField(max_digits=9, decimal_places=3, default=Decimal("0.000"))
    refund_count_diff_pct = models.DecimalField(max_digits=9, decimal_places=3, default=Decimal("0.000"))
    consistency_rate = models.DecimalField(max_digits=6, decimal_places=2, default=Decimal("0.00"), help_text="Percent.")
    over_tolerance = models.BooleanField(default=False)

    only_ours = models.JSONField(default=list, blank=True)
    only_erp = models.JSONField(default=list, blank=True)
    # [{"order_number", "ours", "erp"}] with amounts as strings (exact).
    amount_mismatches = models.JSONField(default=list, blank=True)
    alerted = models.BooleanField(default=False, help_text="This run sent the date's alert e-mail.")

    class Meta:
        ordering = ["-ran_at"]
        indexes = [models.Index(fields=["business_date", "-ran_at"], name="reconciliation_date")]

    @property
    def finished(self) -> bool:
        return self.state in (ImportState.DONE, ImportState.FAILED)

    @property
    def total_amount_difference(self) -> Decimal:
        return self.our_total_amount - self.erp_total_amount
