"""The order domain: the master table, its child tables and the append-only event log.

Rules live in services.py (writes), rules.py (the status machine's guards) and packing.py (pack
verification); the models only describe data.
"""

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Case, F, Q, When
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django_fsm import FSMField, FSMModelMixin, transition

from orders import rules
from orders.reasons import REASONS


class Role(models.TextChoices):
    """The eight roles of docs/brief.md; each is a django.contrib.auth Group of the same name."""

    SALES = "sales", _("Sales consultant")
    REVIEWER = "reviewer", _("Reviewer")
    DISPATCHER = "dispatcher", _("Warehouse dispatcher")
    PACKER = "packer", _("Packer")
    COURIER = "courier", _("Courier liaison")
    SERVICE = "service", _("Customer service")
    FINANCE = "finance", _("Finance")
    SUPERVISOR = "supervisor", _("Supervisor")


class MembershipLevel(models.TextChoices):
    REGULAR = "regular", _("Regular")
    SILVER = "silver", _("Silver")
    GOLD = "gold", _("Gold")
    DIAMOND = "diamond", _("Diamond")


class Customer(models.Model):
    phone = models.CharField(_("mobile phone"), max_length=11, unique=True)
    name = models.CharField(_("name"), max_length=64)
    membership_level = models.CharField(
        _("membership level"), max_length=16, choices=MembershipLevel.choices, default=MembershipLevel.REGULAR
    )
    wechat_openid = models.CharField(_("WeChat openid"), max_length=64, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = _("customer")
        verbose_name_plural = _("customers")
        constraints = [
            models.UniqueConstraint(fields=["wechat_openid"], condition=~Q(wechat_openid=""), name="customer_openid_unique")
        ]

    def __str__(self) -> str:
        return self.name


class Product(models.Model):
    sku_code = models.CharField(_("SKU code"), max_length=40, unique=True)
    barcode = models.CharField(_("barcode"), max_length=40, unique=True)
    name = models.CharField(_("product name"), max_length=120)
    image = models.CharField(_("main image"), max_length=200, blank=True, help_text=_("Path under static/ or a URL."))
    cold_chain = models.BooleanField(_("cold chain required"), default=False)
    unit_price = models.DecimalField(_("list price"), max_digits=12, decimal_places=2, default=Decimal("0.00"))
    # Columns added after the first release carry a database default, so the writers that insert
    # rows in SQL (the import's COPY, the benchmark generator) need not name them.
    spec = models.CharField(_("specification"), max_length=120, blank=True, default="", db_default="")
    # A product the company gives away (a sample, a cooler bag): what a gift line usually holds.
    is_gift = models.BooleanField(_("gift item"), default=False, db_default=False)

    class Meta:
        verbose_name = _("product")
        verbose_name_plural = _("products")

    def __str__(self) -> str:
        return f"{self.sku_code} {self.name}"


class OrderStatus(models.TextChoices):
    PENDING_REVIEW = "pending_review", _("Pending review")
    PAID = "paid", _("Paid")
    PICKING = "picking", _("Picking")
    PACKED = "packed", _("Packed")
    SHIPPED = "shipped", _("Shipped")
    COMPLETED = "completed", _("Completed")
    CANCELLED = "cancelled", _("Cancelled")


ACTIVE_STATUSES = [OrderStatus.PENDING_REVIEW, OrderStatus.PAID, OrderStatus.PICKING, OrderStatus.PACKED]
CANCELLABLE_STATUSES = ACTIVE_STATUSES


class OrderSource(models.TextChoices):
    ERP = "erp", _("ERP")
    RUSH = "rush", _("Rush link")
    MANUAL = "manual", _("Manual")
    PLATFORM = "platform", _("Platform (Douyin shop)")
    MINI_PROGRAM = "miniprogram", _("WeChat mini-program")


class Carrier(models.TextChoices):
    """Carriers by their Kuaidi100 codes (docs/protocols.md), the codes the whole cockpit uses."""

    SHUNFENG = "shunfeng", _("SF Express")
    SHUNFENG_COLD = "shunfenglengyun", _("SF cold chain")
    ZHONGTONG = "zhongtong", _("ZTO")
    YUANTONG = "yuantong", _("YTO")
    YUNDA = "yunda", _("Yunda")
    SHENTONG = "shentong", _("STO")
    EMS = "ems", _("EMS")
    JD = "jd", _("JD Logistics")
    JTEXPRESS = "jtexpress", _("J&T Express")
    BEST = "huitongkuaidi", _("BEST Express")
    DEPPON = "debangkuaidi", _("Deppon")
    CHINA_POST = "youzhengguonei", _("China Post parcel")


class HoldReason(models.TextChoices):
    ADDRESS_CHECK = "address_check", _("Address to confirm")
    STOCK_SHORTAGE = "stock_shortage", _("Out of stock")
    CUSTOMER_REQUEST = "customer_request", _("Customer asked to wait")
    PAYMENT_CHECK = "payment_check", _("Payment to verify")
    RISK_REVIEW = "risk_review", _("Risk review")
    OTHER = "other", _("Other")


class Order(FSMModelMixin, models.Model):
    order_number = models.CharField(_("order number"), max_length=40, unique=True)
    source = models.CharField(_("source"), max_length=16, choices=OrderSource.choices, default=OrderSource.MANUAL)
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="orders", verbose_name=_("customer"))

    receiver_name = models.CharField(_("receiver"), max_length=64)
    receiver_phone = models.CharField(_("receiver phone"), max_length=20)
    province = models.CharField(_("province"), max_length=32)
    city = models.CharField(_("city"), max_length=32)
    district = models.CharField(_("district"), max_length=32, blank=True)
    address = models.CharField(_("address"), max_length=200)

    total_amount = models.DecimalField(_("amount payable"), max_digits=12, decimal_places=2, default=Decimal("0.00"))
    paid_amount = models.DecimalField(_("amount paid"), max_digits=12, decimal_places=2, default=Decimal("0.00"))
    shipping_fee = models.DecimalField(_("shipping fee"), max_digits=12, decimal_places=2, default=Decimal("0.00"))
    refund_amount = models.DecimalField(_("refunded"), max_digits=12, decimal_places=2, default=Decimal("0.00"))

    carrier_code = models.CharField(_("carrier channel"), max_length=32, choices=Carrier.choices, blank=True)
    requires_cold_chain = models.BooleanField(_("cold chain"), default=False)
    buyer_message = models.CharField(_("buyer message"), max_length=500, blank=True)

    # The status changes only through the transitions below (protected): services.py runs them.
    status = FSMField(_("status"), default=OrderStatus.PENDING_REVIEW, choices=OrderStatus.choices, protected=True)
    version = models.PositiveIntegerField(default=1, help_text="Bumped on every change; stale forms are refused.")

    # When the order entered each stage; the stage clock starts at stage_entered_at.
    stage_entered_at = models.DateTimeField(default=timezone.now)
    pending_review_at = models.DateTimeField(null=True, blank=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    picking_at = models.DateTimeField(null=True, blank=True)
    packed_at = models.DateTimeField(null=True, blank=True)
    shipped_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    cancel_reason = models.CharField(_("cancel reason"), max_length=200, blank=True)

    # A hold is a flag, not a status: it pauses the stage clock and blocks forward transitions.
    is_held = models.BooleanField(_("on hold"), default=False)
    hold_reason = models.CharField(_("hold reason"), max_length=32, choices=HoldReason.choices, blank=True)
    hold_note = models.CharField(_("hold note"), max_length=200, blank=True)
    hold_owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("hold owner"),
        db_index=False,  # a partial index (Meta.indexes)
    )
    held_at = models.DateTimeField(null=True, blank=True)
    hold_until = models.DateTimeField(_("expected release"), null=True, blank=True)

    claimed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("operating now"),
        db_index=False,  # a partial index (Meta.indexes)
    )
    claimed_at = models.DateTimeField(null=True, blank=True)

    is_rush = models.BooleanField(_("rush"), default=False)
    rush_reason = models.CharField(_("rush reason"), max_length=200, blank=True)
    rush_deadline = models.DateTimeField(_("expected completion"), null=True, blank=True)
    # Rush handling time for the measures page is shipped_at - rush_filed_at.
    rush_filed_at = models.DateTimeField(_("rush filed at"), null=True, blank=True)
    # An outside system (the WMS) reported the parcel packed: a fact we record, but nobody
    # verified its items by scan here (orders/packing.py), so the measures can count such orders.
    packed_unverified = models.BooleanField(_("packed without scan verification here"), default=False)

    # The stage clock (workflows/sla.py keeps these): when the current stage is due, null while
    # held or in a stage without a limit; the minute sweep scans this column, not every order.
    stage_due_at = models.DateTimeField(_("stage due at"), null=True, blank=True)
    stage_paused_seconds = models.PositiveIntegerField(default=0, help_text="Clock time spent on hold in this stage.")
    sla_breached_at = models.DateTimeField(_("stage limit exceeded at"), null=True, blank=True)

    placed_at = models.DateTimeField(_("placed at"), default=timezone.now)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    source_updated_at = models.DateTimeField(_("last change in source system"), null=True, blank=True)

    # Platform orders (Douyin shop, WeChat mini-program) carry the platform's own id and clocks.
    # The platform's deadlines are theirs, not ours: a hold pauses stage_due_at, never these.
    platform_order_id = models.CharField(_("platform order id"), max_length=64, blank=True, default="", db_default="")
    platform_shop = models.CharField(_("platform shop"), max_length=64, blank=True, default="", db_default="")
    platform_ship_deadline = models.DateTimeField(_("platform latest ship time"), null=True, blank=True)
    platform_aftersales_deadline = models.DateTimeField(_("platform after-sales deadline"), null=True, blank=True)
    # The platform's deadline that counts now (orders/clock.py platform_clock reads it): the
    # after-sales response deadline while a case waits for our answer (the intake clears it when
    # the case is answered), else the latest ship time while the order has not shipped. Computed
    # by the database, so every writer (the intake, the import's COPY, bench) keeps it right
    # without knowing the rule, and the board and the sweep can sort and scan it by index.
    platform_due_at = models.GeneratedField(
        expression=Coalesce(
            F("platform_aftersales_deadline"),
            Case(When(status__in=ACTIVE_STATUSES, then=F("platform_ship_deadline")), output_field=models.DateTimeField()),
        ),
        output_field=models.DateTimeField(_("platform deadline"), null=True, blank=True),
        db_persist=True,
    )
    # The platform deadline the supervisor was alerted of (workflows/sla.py): one alert per
    # deadline; a deadline the platform moves is a new one and may alert again.
    platform_alerted_due_at = models.DateTimeField(null=True, blank=True)
    # The buyer as the platform knows them: the payer's openid of the WeChat mini-program, which
    # its shipping upload must name (docs/protocols.md).
    platform_buyer_id = models.CharField(_("platform buyer id"), max_length=64, blank=True, default="", db_default="")

    class Meta:
        verbose_name = _("order")
        verbose_name_plural = _("orders")
        indexes = [
            # The order list is keyset-paginated newest first: (placed_at, id) descending.
            models.Index(fields=["-placed_at", "-id"], name="order_placed_keyset"),
            models.Index(fields=["status", "-placed_at"], name="order_status_placed"),
            models.Index(fields=["receiver_phone"], name="order_receiver_phone"),
            models.Index(fields=["is_rush", "rush_deadline"], name="order_rush_deadline", condition=Q(is_rush=True)),
            # The board's holds lane: expected release, then id, read in index order (no sort of
            # every held order to find the first 20).
            models.Index(fields=["hold_until", "id"], name="order_held_release", condition=Q(is_held=True)),
            # The SLA sweep: due and not yet alerted. The board and the "overdue" filter read the
            # plain stage_due_at index (longest overdue first).
            models.Index(fields=["stage_due_at"], name="order_sla_unalerted", condition=Q(sla_breached_at__isnull=True)),
            models.Index(fields=["stage_due_at"], name="order_stage_due"),
            # The board's counts per open stage (total, overdue, held) as an index-only scan.
            models.Index(
                fields=["status", "stage_due_at"],
                include=["is_held"],
                name="order_open_stage_clock",
                condition=Q(status__in=["pending_review", "paid", "picking", "packed"]),
            ),
            # The board's platform lane and the sweep's platform-deadline alert: orders whose
            # platform deadline counts now, soonest first.
            models.Index(fields=["platform_due_at"], name="order_platform_due", condition=Q(platform_due_at__isnull=False)),
            # Few orders are claimed or held at a time: partial indexes leave out the rest, so a
            # status change (never HOT: the status is indexed) writes two index entries fewer.
            models.Index(fields=["claimed_by"], name="order_claimed_by", condition=Q(claimed_by__isnull=False)),
            models.Index(fields=["hold_owner"], name="order_hold_owner", condition=Q(hold_owner__isnull=False)),
            # The board's rush lane: only open rush orders, soonest expected completion first.
            models.Index(
                fields=["rush_deadline"],
                name="order_open_rush",
                condition=Q(is_rush=True, status__in=["pending_review", "paid", "picking", "packed"]),
            ),
        ]

    def __str__(self) -> str:
        return self.order_number

    # --- The status machine (docs/brief.md: six nodes plus cancelled before shipping) ---------------
    @transition(field=status, source=OrderStatus.PENDING_REVIEW, target=OrderStatus.PAID, conditions=[rules.can_approve])
    def approve(self) -> None:
        pass

    @transition(field=status, source=OrderStatus.PAID, target=OrderStatus.PICKING, conditions=[rules.can_start_picking])
    def start_picking(self) -> None:
        pass

    @transition(field=status, source=OrderStatus.PICKING, target=OrderStatus.PACKED, conditions=[rules.can_pack])
    def pack(self) -> None:
        pass

    @transition(field=status, source=OrderStatus.PACKED, target=OrderStatus.SHIPPED, conditions=[rules.can_ship])
    def ship(self) -> None:
        pass

    @transition(field=status, source=OrderStatus.SHIPPED, target=OrderStatus.COMPLETED)
    def complete(self) -> None:
        pass

    @transition(field=status, source=CANCELLABLE_STATUSES, target=OrderStatus.CANCELLED)
    def cancel(self) -> None:
        pass


class OrderLine(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines")
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="+")
    sku_code = models.CharField(_("SKU"), max_length=40)
    product_name = models.CharField(_("product"), max_length=120)
    quantity = models.PositiveIntegerField(_("quantity"))
    unit_price = models.DecimalField(_("unit price"), max_digits=12, decimal_places=2)
    is_gift = models.BooleanField(_("gift"), default=False)
    cold_chain = models.BooleanField(_("cold chain"), default=False)
    # Gift provenance (issue 16): who put a gift line on the order, a person or a system (the
    # actor's name), and the gift rule that made it when one did ("满199送冰袋").
    gift_added_by = models.CharField(_("gift added by"), max_length=64, blank=True, default="", db_default="")
    gift_rule = models.CharField(_("gift rule"), max_length=64, blank=True, default="", db_default="")

    class Meta:
        verbose_name = _("order line")
        verbose_name_plural = _("order lines")

    @property
    def line_total(self) -> Decimal:
        return self.unit_price * self.quantity


class TrackingState(models.TextChoices):
    """Kuaidi100's `state` values (docs/protocols.md)."""

    IN_TRANSIT = "0", _("In transit")
    PICKED_UP = "1", _("Picked up")
    PROBLEM = "2", _("Problem")
    SIGNED = "3", _("Signed")
    RETURNED_SIGNED = "4", _("Returned and signed")
    OUT_FOR_DELIVERY = "5", _("Out for delivery")
    RETURNING = "6", _("Returning")
    TRANSFERRED = "7", _("Transferred")
    CUSTOMS = "8", _("Customs")
    AWAITING_CUSTOMS = "10", _("Awaiting customs")
    IN_CUSTOMS = "11", _("In customs")
    CLEARED = "12", _("Cleared customs")
    CUSTOMS_PROBLEM = "13", _("Customs problem")
    REFUSED = "14", _("Refused")


class Shipment(models.Model):
    """The logistics child table, linked to the order (and so to its order number)."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="shipments")
    carrier_code = models.CharField(_("carrier"), max_length=32, choices=Carrier.choices)
    tracking_number = models.CharField(_("tracking number"), max_length=32)
    channel = models.CharField(_("channel"), max_length=32, blank=True)
    tracking_state = models.CharField(_("tracking state"), max_length=4, choices=TrackingState.choices, blank=True)
    last_location = models.CharField(_("last location"), max_length=120, blank=True)
    last_event_at = models.DateTimeField(_("last tracking event"), null=True, blank=True)
    eta = models.DateTimeField(_("ETA"), null=True, blank=True)
    # A waybill replaced by another (a reship, a carrier swap): kept for the history and shown to
    # the customer as replaced, no longer watched for delays.
    replaced_at = models.DateTimeField(_("replaced"), null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        verbose_name = _("shipment")
        verbose_name_plural = _("shipments")
        constraints = [models.UniqueConstraint(fields=["carrier_code", "tracking_number"], name="shipment_tracking_unique")]
        indexes = [models.Index(fields=["tracking_number"], name="shipment_tracking_number")]

    def __str__(self) -> str:
        return f"{self.carrier_code} {self.tracking_number}"


class TrackingEvent(models.Model):
    shipment = models.ForeignKey(Shipment, on_delete=models.CASCADE, related_name="events")
    occurred_at = models.DateTimeField(_("time"))
    context = models.CharField(_("description"), max_length=300)
    area_name = models.CharField(_("area"), max_length=120, blank=True)
    area_code = models.CharField(max_length=20, blank=True)
    status_name = models.CharField(_("status"), max_length=20, blank=True)
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-occurred_at"]
        verbose_name = _("tracking event")
        verbose_name_plural = _("tracking events")
        # The same push twice adds nothing: an event is its shipment, time and text.
        constraints = [models.UniqueConstraint(fields=["shipment", "occurred_at", "context"], name="tracking_event_unique")]


class AfterSalesKind(models.TextChoices):
    RETURN = "return", _("Return")
    REFUND = "refund", _("Refund")
    EXCHANGE = "exchange", _("Exchange")
    MISSING_GIFT = "missing_gift", _("Missing gift")
    # Shipped in one system, no sign of the parcel at the carrier (or the reverse): workflows/ghosts.py.
    GHOST_ORDER = "ghost_order", _("Ghost order")
    WRONG_ITEM = "wrong_item", _("Wrong item")
    DAMAGED = "damaged", _("Damaged")


class AfterSalesStatus(models.TextChoices):
    OPEN = "open", _("Open")
    APPROVED = "approved", _("Approved")
    REJECTED = "rejected", _("Rejected")
    CLOSED = "closed", _("Closed")


class AfterSalesCase(models.Model):
    """The after-sales child table, keyed by order number + SKU as in the seed."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="after_sales")
    sku_code = models.CharField(_("SKU"), max_length=40, blank=True)
    kind = models.CharField(_("kind"), max_length=16, choices=AfterSalesKind.choices)
    status = models.CharField(_("status"), max_length=16, choices=AfterSalesStatus.choices, default=AfterSalesStatus.OPEN)
    reason = models.CharField(_("customer's reason"), max_length=300)
    amount = models.DecimalField(_("amount"), max_digits=12, decimal_places=2, default=Decimal("0.00"))
    opened_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    opened_at = models.DateTimeField(default=timezone.now)
    decision_reason = models.CharField(_("decision reason"), max_length=300, blank=True)
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    decided_by_department = models.CharField(_("deciding department"), max_length=40, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("after-sales case")
        verbose_name_plural = _("after-sales cases")
        indexes = [models.Index(fields=["order", "sku_code"], name="aftersales_order_sku")]


class AddressChangeStatus(models.TextChoices):
    OPEN = "open", _("Open")
    # Shipped: asked of the carrier (Kuaidi100 interception, or the courier on the carrier's hotline).
    WITH_CARRIER = "with_carrier", _("With the carrier")
    # The outcomes (issue 13: every request ends applied, intercepted, rerouted, failed or refused).
    APPLIED = "applied", _("Applied")
    INTERCEPTED = "intercepted", _("Intercepted (returned to sender)")
    REROUTED = "rerouted", _("Rerouted by the carrier")
    FAILED = "failed", _("Failed")
    REFUSED = "refused", _("Refused")
    # A request a reviewer or customer service declined before any rung ran (kept for older rows).
    REJECTED = "rejected", _("Rejected")


# The statuses a request is still waiting in; every other status is an outcome.
ADDRESS_CHANGE_WAITING = (AddressChangeStatus.OPEN, AddressChangeStatus.WITH_CARRIER)


class AddressChangeSource(models.TextChoices):
    SERVICE = "service", _("Customer service")
    CUSTOMER = "customer", _("Customer (self-service page)")
    PLATFORM = "platform", _("Platform")


class AddressChangeRung(models.TextChoices):
    """The ladder, decided by the order's stage when the request is handled."""

    APPLY = "apply", _("Applied at once (not yet picked)")
    APPLY_ACKNOWLEDGE = "apply_acknowledge", _("Applied, warehouse acknowledges and reprints the waybill")
    CARRIER_INTERCEPT = "carrier_intercept", _("Carrier interception (Kuaidi100)")
    COURIER_TICKET = "courier_ticket", _("Courier calls the carrier's hotline")
    REFUSE = "refuse", _("Refused: delivered or signed")


class AddressChangeRequest(models.Model):
    """A request to change the delivery address; while open it stops packing and shipping
    (orders/rules.py, the interception guard). Its clock runs from requested_at to resolved_at."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="address_changes")
    receiver_name = models.CharField(_("receiver"), max_length=64)
    receiver_phone = models.CharField(_("receiver phone"), max_length=20)
    province = models.CharField(_("province"), max_length=32)
    city = models.CharField(_("city"), max_length=32)
    district = models.CharField(_("district"), max_length=32, blank=True)
    address = models.CharField(_("address"), max_length=200)
    # The receiver as it was when the request arrived (old → new in the inbox).
    previous = models.JSONField(default=dict, blank=True)
    source = models.CharField(_("asked through"), max_length=16, choices=AddressChangeSource.choices, default="service")
    status = models.CharField(_("status"), max_length=16, choices=AddressChangeStatus.choices, default=AddressChangeStatus.OPEN)
    rung = models.CharField(_("ladder rung"), max_length=20, choices=AddressChangeRung.choices, blank=True)
    outcome_reason = models.CharField(_("outcome"), max_length=300, blank=True)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    requested_by_name = models.CharField(_("asked by"), max_length=64, blank=True)
    requested_at = models.DateTimeField(default=timezone.now)
    due_at = models.DateTimeField(_("due by"), null=True, blank=True)
    resolved_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    resolved_at = models.DateTimeField(null=True, blank=True)
    # The carrier rung: the waybill asked about and Kuaidi100's task id for the interception.
    carrier_code = models.CharField(max_length=32, blank=True)
    tracking_number = models.CharField(max_length=32, blank=True)
    carrier_task_id = models.CharField(max_length=64, blank=True)
    # Picking/packed rung: the label printed with the old address must be reprinted before shipping.
    reprint_pending = models.BooleanField(_("waybill reprint pending"), default=False)
    reprinted_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    reprinted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("address change request")
        verbose_name_plural = _("address change requests")
        constraints = [
            models.UniqueConstraint(
                fields=["carrier_task_id"], condition=~Q(carrier_task_id=""), name="address_change_task_unique"
            )
        ]
        indexes = [
            # The inbox: waiting requests by deadline.
            models.Index(fields=["due_at"], condition=Q(status__in=["open", "with_carrier"]), name="address_change_waiting"),
        ]

    @property
    def is_waiting(self) -> bool:
        return self.status in ADDRESS_CHANGE_WAITING

    def new_receiver(self) -> dict:
        return {
            field: getattr(self, field)
            for field in ("receiver_name", "receiver_phone", "province", "city", "district", "address")
        }


# The exception reasons (issue 16): the catalogue in orders/reasons.py, whose first entries were
# the fixed risk tags (RiskTag.FUZZY_ADDRESS …); one reason each, its owner, limit and release there.
RiskTag = models.TextChoices("RiskTag", [(reason.code.upper(), (reason.code, reason.name)) for reason in REASONS])


class OrderTag(models.Model):
    """An exception tag; open until resolved, so its open → resolved time is the closure time."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="tags")
    tag = models.CharField(_("tag"), max_length=32, choices=RiskTag.choices)
    opened_at = models.DateTimeField(default=timezone.now)
    opened_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    resolution = models.CharField(_("resolution"), max_length=200, blank=True)
    # The reason's own time limit from opening (orders/reasons.py), and the date a "release date"
    # reason is released on; the ERP's code when the exception came from an ERP ("聚水潭:缺货").
    due_at = models.DateTimeField(_("due"), null=True, blank=True)
    release_at = models.DateTimeField(_("release date"), null=True, blank=True)
    erp_code = models.CharField(_("ERP code"), max_length=64, blank=True, default="", db_default="")

    class Meta:
        verbose_name = _("exception tag")
        verbose_name_plural = _("exception tags")
        constraints = [
            # One open tag of a kind per order; a resolved tag may be opened again later.
            models.UniqueConstraint(fields=["order", "tag"], condition=Q(resolved_at__isnull=True), name="one_open_tag_per_kind")
        ]
        indexes = [models.Index(fields=["tag"], condition=Q(resolved_at__isnull=True), name="open_tags")]


class NoteKind(models.TextChoices):
    INFO = "info", _("Info")
    WARNING = "warning", _("Warning")
    CUSTOMER_REQUEST = "customer_request", _("Customer request")


class NoteAudience(models.TextChoices):
    EVERYONE = "", _("Everyone")
    WAREHOUSE = "warehouse", _("Warehouse (dispatch and packing)")
    LOGISTICS = "logistics", _("Logistics")
    SERVICE = "service", _("Customer service")


class Note(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="notes")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    author_role = models.CharField(max_length=16, choices=Role.choices, blank=True)
    kind = models.CharField(_("kind"), max_length=20, choices=NoteKind.choices, default=NoteKind.INFO)
    audience = models.CharField(_("for"), max_length=16, choices=NoteAudience.choices, blank=True, default="")
    body = models.TextField(_("note"), max_length=1000)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("note")
        verbose_name_plural = _("notes")


class NoteAcknowledgement(models.Model):
    note = models.ForeignKey(Note, on_delete=models.CASCADE, related_name="acknowledgements")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    role = models.CharField(max_length=16, choices=Role.choices, blank=True)
    acknowledged_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["note", "user"], name="one_ack_per_user")]


class FeedbackRequest(models.Model):
    """One role asks another about an order ("who still owes feedback" on the card)."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="feedback_requests")
    asked_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    asked_by_role = models.CharField(max_length=16, choices=Role.choices, blank=True)
    to_role = models.CharField(_("to role"), max_length=16, choices=Role.choices)
    to_user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    question = models.CharField(_("question"), max_length=500)
    asked_at = models.DateTimeField(default=timezone.now)
    answer = models.CharField(_("answer"), max_length=500, blank=True)
    answered_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    answered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-asked_at"]


class ScanOutcome(models.TextChoices):
    OPENED = "opened", _("Order opened")
    MATCH = "match", _("Item verified")
    WRONG_ITEM = "wrong_item", _("Wrong item refused")
    OVER_COUNT = "over_count", _("Extra item refused")
    INTERCEPTED = "intercepted", _("Refused: order intercepted")
    NOT_PACKABLE = "not_packable", _("Refused: order not in picking")
    RESTART = "restart", _("Verification restarted")
    UNKNOWN = "unknown", _("Unknown code")


class PackScan(models.Model):
    """Every scan at the packing bench, kept as an append-only event; the pack verification
    (orders/packing.py) counts the verified items since the last restart."""

    order = models.ForeignKey(Order, null=True, blank=True, on_delete=models.CASCADE, related_name="pack_scans")
    code = models.CharField(_("scanned code"), max_length=64)
    outcome = models.CharField(_("outcome"), max_length=16, choices=ScanOutcome.choices)
    product = models.ForeignKey(Product, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    scanned_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    scanned_at = models.DateTimeField(default=timezone.now)

    class Meta:
        # The table was created by the front line app (frontline 0001) and is kept where it is.
        db_table = "frontline_packscan"
        ordering = ["-scanned_at", "-id"]
        verbose_name = _("pack scan")
        verbose_name_plural = _("pack scans")
        # The verification counts an order's scans since its last restart on every scan.
        indexes = [models.Index(fields=["order", "scanned_at"], name="packscan_order_time")]


class EventKind(models.TextChoices):
    CREATED = "created", _("Created")
    STATUS = "status", _("Status changed")
    HOLD = "hold", _("Put on hold")
    RELEASE = "release", _("Released")
    CLAIM = "claim", _("Claimed")
    UNCLAIM = "unclaim", _("Unclaimed")
    NOTE = "note", _("Note")
    ACKNOWLEDGE = "acknowledge", _("Note acknowledged")
    FEEDBACK_ASK = "feedback_ask", _("Feedback requested")
    FEEDBACK_ANSWER = "feedback_answer", _("Feedback answered")
    TAG = "tag", _("Tag added")
    UNTAG = "untag", _("Tag resolved")
    AFTER_SALES = "after_sales", _("After-sales")
    ADDRESS_CHANGE = "address_change", _("Address change")
    # The carrier channel chosen for the order, and a parcel's tracking state changing: two
    # kinds, because they carry different facts (they once shared "shipment" and its describer).
    CARRIER = "carrier", _("Carrier channel")
    TRACKING = "tracking", _("Tracking update")
    IMPORT_UPDATE = "import_update", _("Updated from import")
    # An outside system (WMS/ERP) asked for a status change the guards refused; kept on the timeline.
    SYNC_REFUSED = "sync_refused", _("Refused from an outside system")
    PHONE_REVEAL = "phone_reveal", _("Phone number revealed")
    RUSH = "rush", _("Rush")
    SLA_BREACH = "sla_breach", _("Stage time limit exceeded")
    ASSIGN = "assign", _("Assigned")
    GIFT = "gift", _("Gift added")
    # A shipped order's parcel changed: a reship, a carrier swap or one more parcel of a split.
    WAYBILL = "waybill", _("Waybill changed")


class OrderEvent(models.Model):
    """Append-only: every change to an order, who made it (a user, "system" or an outside
    system's name), in which role, when here and when in the source system."""

    # No index of its own: event_order_time (below) leads with the order, and every change to
    # an order writes an event, so a second index on it would be written for nothing.
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="events", db_index=False)
    kind = models.CharField(max_length=20, choices=EventKind.choices)
    occurred_at = models.DateTimeField(default=timezone.now)
    source_time = models.DateTimeField(null=True, blank=True, help_text="The change's time in the source system.")
    actor_user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    actor_name = models.CharField(max_length=64)
    actor_role = models.CharField(max_length=16, blank=True)
    payload = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-occurred_at", "-id"]
        indexes = [models.Index(fields=["order", "-occurred_at"], name="event_order_time")]


class StageRule(models.Model):
    """docs/brief.md: "each node is bound to an operator role and a time limit". One row per active
    stage; supervisors edit them on the board's rules page. With working hours set, the clock
    only runs between them (every day, Asia/Shanghai), like a working-hours calendar."""

    stage = models.CharField(_("stage"), max_length=20, unique=True)
    responsible_role = models.CharField(_("responsible role"), max_length=16)
    time_limit = models.DurationField(_("time limit"))
    alert_role = models.CharField(_("alerted role"), max_length=16, default="supervisor")
    work_starts = models.TimeField(_("working hours start"), null=True, blank=True)
    work_ends = models.TimeField(_("working hours end"), null=True, blank=True)
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = _("stage rule")
        verbose_name_plural = _("stage rules")
        # Moved here from workflows (the clock is the ground floor's); the table keeps its name.
        db_table = "workflows_stagerule"
        constraints = [
            models.CheckConstraint(
                # Both or neither; an end before the start is a night shift crossing midnight.
                condition=(Q(work_starts__isnull=True) & Q(work_ends__isnull=True))
                | (Q(work_starts__isnull=False) & Q(work_ends__isnull=False) & ~Q(work_starts=models.F("work_ends"))),
                name="stage_rule_working_hours_set",
            )
        ]

    def __str__(self) -> str:
        return self.stage

    @property
    def has_working_hours(self) -> bool:
        return self.work_starts is not None and self.work_ends is not None
