"""The six-node status machine: who may run each transition, every guard with its message, the
stage timestamps and the event each change leaves behind."""

import datetime
from decimal import Decimal

import pytest
import time_machine
from django.utils import timezone, translation

from orders import services
from orders.access import Actor
from orders.models import EventKind, Order, OrderEvent, Shipment
from tests.conftest import make_order, make_product
from tests.packing_fixtures import scan_every_item

pytestmark = pytest.mark.django_db

ROLES = ["sales", "reviewer", "dispatcher", "packer", "courier", "service", "finance", "supervisor", "outsider"]

# transition → (the status it leaves, the status it reaches, the roles bound to it besides the supervisor)
TRANSITIONS = {
    "approve": ("pending_review", "paid", {"reviewer"}),
    "start_picking": ("paid", "picking", {"dispatcher"}),
    "pack": ("picking", "packed", {"packer"}),
    "ship": ("packed", "shipped", {"courier"}),
    "complete": ("shipped", "completed", {"courier", "service"}),
    "cancel": ("paid", "cancelled", {"service"}),
}


@pytest.fixture(autouse=True)
def english():
    # Assert on the msgids: the Chinese catalogue is added later and must not break these tests.
    with translation.override("en"):
        yield


def run(name: str, order: Order, by: Actor, **kwargs) -> Order:
    """Run a transition through the service that owns it."""
    if name == "ship":
        return services.order_ship(
            order=order, by=by, carrier_code="zhongtong", tracking_number=kwargs.pop("tracking", "ZT100200300"), **kwargs
        )
    if name == "cancel":
        return services.order_cancel(order=order, by=by, reason=kwargs.pop("reason", "客户取消：买错规格"), **kwargs)
    if name == "pack" and by.user is not None:
        scan_every_item(order, by.user)  # a person packs only what was scanned (orders/packing.py)
    return services.order_transition(order=order, name=name, by=by, **kwargs)


def status_events(order: Order) -> list[OrderEvent]:
    return list(OrderEvent.objects.filter(order=order, kind=EventKind.STATUS).order_by("id"))


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("name", TRANSITIONS)
def test_transition_role_matrix(people, name, role):
    source, target, roles = TRANSITIONS[name]
    order = make_order(status=source)
    by = Actor.of(people[role])
    if role in roles or role == "supervisor":
        run(name, order, by)
        order.refresh_from_db()
        assert order.status == target
        [event] = status_events(order)
        assert event.actor_user == people[role]
        assert event.actor_name == people[role].first_name
        assert event.actor_role == role
        assert event.payload["transition"] == name
        assert event.payload["from"] == source and event.payload["to"] == target
        assert event.payload["as_supervisor"] is (role == "supervisor")
    else:
        with pytest.raises(services.NotAllowed, match="Your role may not do this"):
            run(name, order, by)
        order.refresh_from_db()
        assert order.status == source
        assert status_events(order) == []


def test_a_system_completes_a_shipped_order(people):
    order = make_order(status="shipped")
    services.order_transition(order=order, name="complete", by=Actor.system("kuaidi100"))
    order.refresh_from_db()
    assert order.status == "completed"
    [event] = status_events(order)
    assert (event.actor_name, event.actor_role, event.actor_user) == ("kuaidi100", "", None)


def test_full_journey_stamps_every_stage_and_logs_each_actor(people):
    order = make_order(status="pending_review")
    start = timezone.now()
    steps = [
        ("approve", "reviewer"),
        ("start_picking", "dispatcher"),
        ("pack", "packer"),
        ("ship", "courier"),
        ("complete", "courier"),
    ]
    for minutes, (name, role) in enumerate(steps, start=1):
        moment = start + datetime.timedelta(minutes=10 * minutes)
        with time_machine.travel(moment, tick=False):
            order = run(name, order, Actor.of(people[role]))
        order.refresh_from_db()
        target = TRANSITIONS[name][1]
        assert order.status == target
        assert getattr(order, f"{target}_at") == moment
        assert order.stage_entered_at == moment
    events = status_events(order)
    assert [(e.payload["transition"], e.actor_role) for e in events] == steps
    assert [e.occurred_at for e in events] == [start + datetime.timedelta(minutes=10 * n) for n in range(1, 6)]
    assert events[3].payload["carrier"] == "zhongtong" and events[3].payload["tracking_number"] == "ZT100200300"
    assert order.version == 6


def test_status_cannot_be_assigned_directly():
    order = make_order(status="pending_review")
    with pytest.raises(AttributeError):
        order.status = "shipped"  # the FSM field is protected: only transitions change it


def test_a_transition_from_the_wrong_status_is_refused(people):
    order = make_order(status="picking")
    with pytest.raises(services.TransitionBlocked, match="This order is Picking; that action is not possible now"):
        services.order_transition(order=order, name="approve", by=Actor.of(people["reviewer"]))


def test_wrong_status_is_reported_before_any_guard(people):
    """A packed order with a fuzzy-address tag: approving it is impossible because of its status,
    and that is what the user must be told, not a stale address problem."""
    order = make_order(status="packed")
    services.order_tag_add(order=order, by=Actor.of(people["reviewer"]), tag="fuzzy_address")
    with pytest.raises(services.TransitionBlocked) as refused:
        services.order_transition(order=order, name="approve", by=Actor.of(people["reviewer"]))
    assert refused.value.reasons == ["This order is Packed; that action is not possible now."]


@pytest.mark.parametrize("name", ["ship", "cancel"])
def test_ship_and_cancel_only_through_their_own_services(people, name):
    """order_transition must not be a way around the tracking number or the cancel reason."""
    source = TRANSITIONS[name][0]
    order = make_order(status=source)
    with pytest.raises(services.NotAllowed):
        services.order_transition(order=order, name=name, by=Actor.of(people["supervisor"]))
    order.refresh_from_db()
    assert order.status == source


# --- Guards ----------------------------------------------------------------------------------


def test_cold_chain_order_needs_sf_cold_chain_to_pack(people):
    yoghurt = make_product(cold_chain=True)
    order = make_order(status="picking", lines=[(yoghurt, 2)], carrier_code="zhongtong")
    packer = Actor.of(people["packer"])
    scan_every_item(order, people["packer"])
    with pytest.raises(services.TransitionBlocked) as refused:
        services.order_transition(order=order, name="pack", by=packer)
    assert refused.value.reasons == [
        "This order has cold-chain items: it must use the SF cold chain channel, not ZTO; change its carrier before packing."
    ]
    order.refresh_from_db()
    assert order.status == "picking" and status_events(order) == []

    services.order_set_carrier(order=order, by=Actor.of(people["dispatcher"]), carrier_code="shunfenglengyun")
    services.order_transition(order=order, name="pack", by=packer)
    order.refresh_from_db()
    assert order.status == "packed"


def test_cold_chain_order_cannot_ship_with_another_carrier(people):
    yoghurt = make_product(cold_chain=True)
    order = make_order(status="packed", lines=[(yoghurt, 1)], carrier_code="shunfenglengyun")
    courier = Actor.of(people["courier"])
    with pytest.raises(services.TransitionBlocked, match="SF cold chain"):
        services.order_ship(order=order, by=courier, carrier_code="zhongtong", tracking_number="ZT1")
    services.order_ship(order=order, by=courier, carrier_code="shunfenglengyun", tracking_number="SF1400123456")
    order.refresh_from_db()
    assert order.status == "shipped"


def test_a_warehouse_note_blocks_packing_until_the_packer_acknowledges_it(people):
    """One rule for the card and the PDA (orders/packing.py), the stricter of the two there were:
    every note for the warehouse or for everyone, whatever its kind, read by the person packing."""
    # The note speaks of the gift, so the order has its gift line (else the gift_missing guard speaks too).
    order = make_order(status="picking", gift=make_product())
    note = services.order_add_note(
        order=order,
        by=Actor.of(people["service"]),
        body="赠品口水巾不要漏放，客户上次投诉过",
        kind="warning",
        audience="warehouse",
    )
    packer = Actor.of(people["packer"])
    scan_every_item(order, people["packer"])
    with pytest.raises(services.TransitionBlocked) as refused:
        services.order_transition(order=order, name="pack", by=packer)
    assert refused.value.reasons == [
        "1 note(s) for the warehouse not yet acknowledged by you: 赠品口水巾不要漏放，客户上次投诉过"
    ]

    # Someone else reading it does not count, not even in the warehouse: the packer must have seen it.
    for role in ("reviewer", "dispatcher"):
        services.note_acknowledge(note=note, by=Actor.of(people[role]))
        with pytest.raises(services.TransitionBlocked):
            services.order_transition(order=order, name="pack", by=packer)

    services.note_acknowledge(note=note, by=packer)
    services.order_transition(order=order, name="pack", by=packer)
    order.refresh_from_db()
    assert order.status == "packed"


@pytest.mark.parametrize(
    ("kind", "audience"), [("warning", ""), ("info", "warehouse"), ("customer_request", "warehouse"), ("info", "")]
)
def test_every_note_for_the_warehouse_or_everyone_blocks_packing(people, kind, audience):
    order = make_order(status="picking")
    services.order_add_note(order=order, by=Actor.of(people["service"]), body="请注意", kind=kind, audience=audience)
    scan_every_item(order, people["packer"])
    with pytest.raises(services.TransitionBlocked, match="not yet acknowledged by you"):
        services.order_transition(order=order, name="pack", by=Actor.of(people["packer"]))


@pytest.mark.parametrize(("kind", "audience"), [("warning", "service"), ("warning", "logistics"), ("info", "service")])
def test_notes_for_other_teams_do_not_block_packing(people, kind, audience):
    order = make_order(status="picking")
    services.order_add_note(order=order, by=Actor.of(people["service"]), body="请注意", kind=kind, audience=audience)
    scan_every_item(order, people["packer"])
    services.order_transition(order=order, name="pack", by=Actor.of(people["packer"]))
    order.refresh_from_db()
    assert order.status == "packed"


def test_fuzzy_address_tag_blocks_approval_until_resolved(people):
    order = make_order(status="pending_review")
    reviewer = Actor.of(people["reviewer"])
    services.order_tag_add(order=order, by=Actor.system("ERP"), tag="fuzzy_address")
    with pytest.raises(services.TransitionBlocked) as refused:
        services.order_transition(order=order, name="approve", by=reviewer)
    assert refused.value.reasons == ["The address is tagged as fuzzy; correct it and resolve the tag before approving."]
    # A note is not a fix: it would approve and ship to the fuzzy address.
    with pytest.raises(services.OrderError, match="correcting the address"):
        services.order_tag_resolve(order=order, by=reviewer, tag="fuzzy_address", resolution="电话确认：萧山区市心北路100号")
    services.order_correct_address(
        order=order,
        by=reviewer,
        receiver_name=order.receiver_name,
        receiver_phone=order.receiver_phone,
        province="浙江省",
        city="杭州市",
        district="滨江区",
        address="江南大道8号",
    )
    services.order_transition(order=order, name="approve", by=reviewer)
    order.refresh_from_db()
    assert order.status == "paid"


@pytest.mark.parametrize(("carrier", "tracking"), [("", "ZT123"), ("zhongtong", ""), ("zhongtong", "   ")])
def test_shipping_needs_a_carrier_and_a_tracking_number(people, carrier, tracking):
    order = make_order(status="packed")
    with pytest.raises(services.TransitionBlocked) as refused:
        services.order_ship(order=order, by=Actor.of(people["courier"]), carrier_code=carrier, tracking_number=tracking)
    assert refused.value.reasons == ["Shipping needs a carrier and a tracking number."]
    order.refresh_from_db()
    assert order.status == "packed" and not Shipment.objects.exists()


def test_shipping_records_the_waybill(people):
    order = make_order(status="packed", carrier_code="shunfeng")
    services.order_ship(order=order, by=Actor.of(people["courier"]), carrier_code="yunda", tracking_number=" yd4300123 ")
    order.refresh_from_db()
    [shipment] = order.shipments.all()
    assert (shipment.carrier_code, shipment.tracking_number, shipment.created_by) == ("yunda", "YD4300123", people["courier"])
    assert order.carrier_code == "yunda"  # the order shows the carrier it actually left with


@pytest.mark.parametrize("tracking", ["顺丰123456", "ZT 123", "X" * 33, "ZT123;DROP"])
def test_a_tracking_number_is_ascii_letters_and_digits(people, tracking):
    order = make_order(status="packed")
    with pytest.raises(services.TransitionBlocked, match="at most 32 letters and digits"):
        services.order_ship(order=order, by=Actor.of(people["courier"]), carrier_code="zhongtong", tracking_number=tracking)


def test_a_tracking_number_belongs_to_one_order(people):
    courier = Actor.of(people["courier"])
    services.order_ship(order=make_order(status="packed"), by=courier, carrier_code="zhongtong", tracking_number="ZT777")
    second = make_order(status="packed")
    with pytest.raises(services.TransitionBlocked, match="ZT777 already belongs to another order"):
        services.order_ship(order=second, by=courier, carrier_code="zhongtong", tracking_number="ZT777")


@pytest.mark.parametrize(("name", "source"), [("pack", "picking"), ("ship", "packed")])
def test_open_refund_intercepts_packing_and_shipping(people, name, source):
    order = make_order(status=source)
    case = services.after_sales_open(
        order=order, by=Actor.of(people["service"]), kind="refund", reason="客户不想要了", amount=Decimal("99.00")
    )
    with pytest.raises(services.TransitionBlocked) as refused:
        run(name, order, Actor.of(people["supervisor"]))
    # (packing also lists the items not scanned: the bench refuses scans of an intercepted order)
    assert refused.value.reasons[0] == "An open refund request intercepts this order; decide the refund first."
    services.after_sales_decide(case=case, by=Actor.of(people["service"]), approve=False, reason="已出库前协商保留")
    run(name, order, Actor.of(people["supervisor"]))
    order.refresh_from_db()
    assert order.status == TRANSITIONS[name][1]


def test_other_open_after_sales_cases_do_not_intercept(people):
    order = make_order(status="picking")
    services.after_sales_open(order=order, by=Actor.of(people["service"]), kind="missing_gift", reason="少发赠品")
    scan_every_item(order, people["packer"])
    services.order_transition(order=order, name="pack", by=Actor.of(people["packer"]))
    order.refresh_from_db()
    assert order.status == "packed"


@pytest.mark.parametrize(("name", "source"), [("pack", "picking"), ("ship", "packed")])
def test_open_address_change_intercepts_packing_and_shipping(people, name, source):
    order = make_order(status=source)
    change = services.address_change_request(
        order=order,
        by=Actor.of(people["service"]),
        receiver_name="王丽",
        receiver_phone="13800138000",
        province="浙江省",
        city="杭州市",
        district="滨江区",
        address="江南大道1号",
    )
    with pytest.raises(services.TransitionBlocked) as refused:
        run(name, order, Actor.of(people["supervisor"]))
    # (packing also lists the items not scanned: the bench refuses scans of an intercepted order)
    assert refused.value.reasons[0] == "An open address change intercepts this order; apply or reject it first."
    services.address_change_resolve(change=change, by=Actor.of(people["reviewer"]), apply=True)
    # Issue 13: applied once picking began, the warehouse acknowledges the note and reprints the waybill.
    for note in order.notes.filter(kind="warning"):
        services.note_acknowledge(note=note, by=Actor.of(people["supervisor"]))
    if name == "ship":
        services.address_change_confirm_reprint(order=order, by=Actor.of(people["supervisor"]))
    run(name, order, Actor.of(people["supervisor"]))
    order.refresh_from_db()
    assert order.status == TRANSITIONS[name][1] and order.district == "滨江区"


@pytest.mark.parametrize("name", ["approve", "start_picking", "pack", "ship"])
def test_a_held_order_cannot_move(people, name):
    source = TRANSITIONS[name][0]
    order = make_order(status=source)
    services.order_hold(order=order, by=Actor.of(people["reviewer"]), reason="stock_shortage", until=None, note="等补货")
    with pytest.raises(services.TransitionBlocked) as refused:
        run(name, order, Actor.of(people["supervisor"]))
    assert refused.value.reasons[0] == "The order is on hold (Out of stock); release it first."
    order.refresh_from_db()
    assert order.status == source


def test_cancelling_a_held_order_ends_the_hold(people):
    """Cancelling is how a hold often ends (payment never arrived); a cancelled order must not
    stay on the held list or be "released" by the auto-release scan later."""
    order = make_order(status="paid")
    services.order_hold(order=order, by=Actor.of(people["service"]), reason="payment_check", until=None)
    services.order_cancel(order=order, by=Actor.of(people["service"]), reason="付款未到账")
    order.refresh_from_db()
    assert order.status == "cancelled"
    assert not order.is_held and order.hold_reason == "" and order.held_at is None
    [event] = status_events(order)
    assert event.payload["released_hold"] == "payment_check"


@pytest.mark.parametrize("reason", ["", "   "])
def test_cancel_needs_a_reason(people, reason):
    order = make_order(status="paid")
    with pytest.raises(services.TransitionBlocked) as refused:
        services.order_cancel(order=order, by=Actor.of(people["service"]), reason=reason)
    assert refused.value.reasons == ["Cancelling needs a reason."]


@pytest.mark.parametrize("source", ["pending_review", "paid", "picking", "packed"])
def test_cancel_is_possible_before_shipping(people, source):
    order = make_order(status=source)
    with time_machine.travel(timezone.now(), tick=False):
        services.order_cancel(order=order, by=Actor.of(people["service"]), reason="重复下单")
        now = timezone.now()
    order.refresh_from_db()
    assert (order.status, order.cancel_reason, order.cancelled_at) == ("cancelled", "重复下单", now)
    assert status_events(order)[0].payload["reason"] == "重复下单"


@pytest.mark.parametrize("source", ["shipped", "completed", "cancelled"])
def test_cancel_is_refused_once_shipped(people, source):
    order = make_order(status=source)
    with pytest.raises(services.TransitionBlocked, match="that action is not possible now"):
        services.order_cancel(order=order, by=Actor.of(people["supervisor"]), reason="客户拒收")
    order.refresh_from_db()
    assert order.status == source


def test_a_new_stage_lets_go_of_the_previous_operator(people):
    order = make_order(status="pending_review")
    reviewer = Actor.of(people["reviewer"])
    services.order_claim(order=order, by=reviewer)
    services.order_transition(order=order, name="approve", by=reviewer)
    order.refresh_from_db()
    assert order.claimed_by is None and order.claimed_at is None
