"""The order services other than status transitions: holds, claims, notes, feedback, tags,
after-sales, address changes and phone reveals. Each leaves an event naming its actor."""

import datetime
from decimal import Decimal

import pytest
import time_machine
from django.utils import timezone, translation

from orders import services
from orders.access import Actor
from orders.models import EventKind, NoteAcknowledgement, OrderEvent
from tests.conftest import make_order, make_product

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def english():
    with translation.override("en"):
        yield


def events(order, kind):
    return list(OrderEvent.objects.filter(order=order, kind=kind).order_by("id"))


def by(people, role):
    return Actor.of(people[role])


# --- Hold and release ---------------------------------------------------------------------------


def test_hold_records_reason_owner_and_expected_release(people):
    order = make_order(status="paid")
    until = timezone.now() + datetime.timedelta(hours=3)
    services.order_hold(order=order, by=by(people, "dispatcher"), reason="stock_shortage", until=until, note="等待补货")
    order.refresh_from_db()
    assert (order.is_held, order.hold_reason, order.hold_note, order.hold_until, order.hold_owner) == (
        True,
        "stock_shortage",
        "等待补货",
        until,
        people["dispatcher"],
    )
    [event] = events(order, EventKind.HOLD)
    assert (event.actor_name, event.actor_role) == ("小调", "dispatcher")
    assert event.payload == {"reason": "stock_shortage", "note": "等待补货", "until": until.isoformat()}


@pytest.mark.parametrize(
    ("reason", "until_hours", "message"),
    [
        ("", None, "Choose a hold reason."),
        ("no_such_reason", None, "Choose a hold reason."),
        ("other", -1, "The expected release time must be in the future."),
    ],
)
def test_hold_input_is_checked(people, reason, until_hours, message):
    order = make_order(status="paid")
    until = timezone.now() + datetime.timedelta(hours=until_hours) if until_hours is not None else None
    with pytest.raises(services.OrderError, match=message):
        services.order_hold(order=order, by=by(people, "dispatcher"), reason=reason, until=until)


def test_hold_is_refused_for_finance_twice_and_after_shipping(people):
    order = make_order(status="paid")
    with pytest.raises(services.NotAllowed):
        services.order_hold(order=order, by=by(people, "finance"), reason="other", until=None)
    services.order_hold(order=order, by=by(people, "service"), reason="other", until=None)
    with pytest.raises(services.OrderError, match="already on hold"):
        services.order_hold(order=order, by=by(people, "service"), reason="other", until=None)
    with pytest.raises(services.OrderError, match="has not shipped"):
        services.order_hold(order=make_order(status="shipped"), by=by(people, "courier"), reason="other", until=None)


def test_release_clears_the_hold_and_logs_how_long_it_lasted(people):
    order = make_order(status="picking")
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        services.order_hold(order=order, by=by(people, "packer"), reason="customer_request", until=None)
    with time_machine.travel(start + datetime.timedelta(minutes=25), tick=False):
        services.order_release(order=order, by=by(people, "packer"))
    order.refresh_from_db()
    assert not order.is_held and order.hold_reason == "" and order.hold_owner is None and order.held_at is None
    [event] = events(order, EventKind.RELEASE)
    assert event.payload == {"held_seconds": 1500}
    with pytest.raises(services.OrderError, match="not on hold"):
        services.order_release(order=order, by=by(people, "packer"))


def test_expired_holds_release_themselves(people):
    now = timezone.now()
    expired = make_order(status="paid")
    later = make_order(status="paid")
    open_ended = make_order(status="paid")
    services.order_hold(order=expired, by=by(people, "service"), reason="payment_check", until=now + datetime.timedelta(hours=1))
    services.order_hold(order=later, by=by(people, "service"), reason="payment_check", until=now + datetime.timedelta(hours=5))
    services.order_hold(order=open_ended, by=by(people, "service"), reason="payment_check", until=None)

    assert services.release_expired_holds(now=now + datetime.timedelta(hours=2)) == 1
    for order in (expired, later, open_ended):
        order.refresh_from_db()
    assert (expired.is_held, later.is_held, open_ended.is_held) == (False, True, True)
    [event] = events(expired, EventKind.RELEASE)
    assert (event.actor_name, event.actor_role, event.actor_user) == ("system", "", None)
    assert services.release_expired_holds(now=now + datetime.timedelta(hours=2)) == 0


# --- Claim --------------------------------------------------------------------------------------


def test_claim_and_unclaim(people):
    order = make_order(status="paid")
    services.order_claim(order=order, by=by(people, "dispatcher"))
    order.refresh_from_db()
    assert order.claimed_by == people["dispatcher"] and order.claimed_at is not None
    services.order_claim(order=order, by=by(people, "dispatcher"))  # claiming again changes nothing
    assert len(events(order, EventKind.CLAIM)) == 1
    services.order_unclaim(order=order, by=by(people, "dispatcher"))
    order.refresh_from_db()
    assert order.claimed_by is None
    [event] = events(order, EventKind.UNCLAIM)
    assert event.actor_role == "dispatcher"


def test_claim_conflicts_when_someone_else_operates_the_order(people):
    order = make_order(status="paid")
    services.order_claim(order=order, by=by(people, "dispatcher"))
    with pytest.raises(services.OrderConflict, match="小调 has been operating this order since"):
        services.order_claim(order=order, by=by(people, "packer"))
    with pytest.raises(services.NotAllowed, match="Only the person operating the order or a supervisor"):
        services.order_unclaim(order=order, by=by(people, "packer"))
    order.refresh_from_db()
    assert order.claimed_by == people["dispatcher"]


def test_supervisor_takes_over_and_lets_go(people):
    order = make_order(status="paid")
    services.order_claim(order=order, by=by(people, "dispatcher"))
    services.order_claim(order=order, by=by(people, "supervisor"))
    order.refresh_from_db()
    assert order.claimed_by == people["supervisor"]
    takeover = events(order, EventKind.CLAIM)[-1]
    assert (takeover.actor_role, takeover.payload) == ("supervisor", {"took_over_from": "dispatcher"})

    with pytest.raises(services.OrderConflict, match="老郑 has been operating"):
        services.order_claim(order=order, by=by(people, "dispatcher"))

    # A supervisor may also free an order someone else holds (e.g. a packer who went home).
    services.order_claim(order=make_order(status="picking"), by=by(people, "packer"))
    other = make_order(status="picking")
    services.order_claim(order=other, by=by(people, "packer"))
    services.order_unclaim(order=other, by=by(people, "supervisor"))
    other.refresh_from_db()
    assert other.claimed_by is None
    assert events(other, EventKind.UNCLAIM)[0].actor_role == "supervisor"


def test_outsider_cannot_claim(people):
    with pytest.raises(services.NotAllowed):
        services.order_claim(order=make_order(status="paid"), by=by(people, "outsider"))


# --- Notes and acknowledgements -------------------------------------------------------------------


def test_note_records_author_role_and_an_event(people):
    order = make_order(status="picking")
    version = order.version
    note = services.order_add_note(
        order=order, by=by(people, "service"), body=" 客户要求明日12点前送达 ", kind="customer_request", audience="warehouse"
    )
    assert (note.body, note.author, note.author_role, note.kind, note.audience) == (
        "客户要求明日12点前送达",
        people["service"],
        "service",
        "customer_request",
        "warehouse",
    )
    [event] = events(order, EventKind.NOTE)
    assert (event.actor_name, event.actor_role) == ("小服", "service")
    assert event.payload == {
        "note_id": note.pk,
        "kind": "customer_request",
        "audience": "warehouse",
        "body": "客户要求明日12点前送达",
    }
    order.refresh_from_db()
    assert order.version == version + 1  # others' open screens are now stale


@pytest.mark.parametrize(
    ("body", "kind", "audience", "message"),
    [
        ("", "info", "", "A note cannot be empty."),
        ("x" * 1001, "info", "", "at most 1000 characters"),
        ("ok", "shout", "", "Choose a note kind"),
        ("ok", "info", "everybody", "Choose a note kind"),
    ],
)
def test_note_input_is_checked(people, body, kind, audience, message):
    with pytest.raises(services.OrderError, match=message):
        services.order_add_note(order=make_order(), by=by(people, "sales"), body=body, kind=kind, audience=audience)


def test_acknowledging_a_note_is_recorded_once_per_person(people):
    order = make_order(status="picking")
    note = services.order_add_note(
        order=order, by=by(people, "service"), body="奶粉两层气泡膜", kind="warning", audience="warehouse"
    )
    first = services.note_acknowledge(note=note, by=by(people, "packer"))
    again = services.note_acknowledge(note=note, by=by(people, "packer"))
    assert first.pk == again.pk and first.role == "packer"
    assert NoteAcknowledgement.objects.filter(note=note).count() == 1
    [event] = events(order, EventKind.ACKNOWLEDGE)
    assert (event.actor_name, event.actor_role, event.payload) == (
        "小包",
        "packer",
        {"note_id": note.pk, "body": "奶粉两层气泡膜"},
    )


# --- Feedback requests ----------------------------------------------------------------------------


def test_feedback_is_asked_of_a_role_and_answered_by_it(people):
    order = make_order(status="paid")
    request = services.feedback_request(order=order, by=by(people, "service"), to_role="dispatcher", question="今天能发吗？")
    assert (request.asked_by, request.asked_by_role, request.to_role) == (people["service"], "service", "dispatcher")
    with pytest.raises(services.NotAllowed, match="This question is for another role."):
        services.feedback_answer(request=request, by=by(people, "packer"), answer="能")
    services.feedback_answer(request=request, by=by(people, "dispatcher"), answer="下午三点前发出")
    request.refresh_from_db()
    assert (request.answer, request.answered_by) == ("下午三点前发出", people["dispatcher"])
    assert request.answered_at is not None
    [asked] = events(order, EventKind.FEEDBACK_ASK)
    [answered] = events(order, EventKind.FEEDBACK_ANSWER)
    assert asked.payload == {"request_id": request.pk, "to_role": "dispatcher", "question": "今天能发吗？"}
    assert (answered.actor_role, answered.payload) == ("dispatcher", {"request_id": request.pk, "answer": "下午三点前发出"})
    with pytest.raises(services.OrderConflict, match="already answered"):
        services.feedback_answer(request=request, by=by(people, "dispatcher"), answer="again")


def test_supervisor_may_answer_for_any_role(people):
    order = make_order(status="paid")
    request = services.feedback_request(order=order, by=by(people, "sales"), to_role="finance", question="发票开了吗？")
    services.feedback_answer(request=request, by=by(people, "supervisor"), answer="已开")
    assert events(order, EventKind.FEEDBACK_ANSWER)[0].actor_role == "supervisor"


def test_a_question_to_one_person_is_answered_in_that_persons_role(people):
    order = make_order(status="paid")
    request = services.feedback_request(
        order=order, by=by(people, "sales"), to_role="dispatcher", to_user=people["packer"], question="赠品放了吗？"
    )
    services.feedback_answer(request=request, by=by(people, "packer"), answer="放了")
    assert events(order, EventKind.FEEDBACK_ANSWER)[0].actor_role == "packer"


@pytest.mark.parametrize(
    ("to_role", "question", "message"), [("dispatcher", " ", "Write the question"), ("boss", "?", "Choose the role")]
)
def test_feedback_input_is_checked(people, to_role, question, message):
    with pytest.raises(services.OrderError, match=message):
        services.feedback_request(order=make_order(), by=by(people, "sales"), to_role=to_role, question=question)


# --- Exception tags -----------------------------------------------------------------------------


def test_tags_are_added_once_and_resolved_with_a_resolution(people):
    order = make_order(status="pending_review")
    first = services.order_tag_add(order=order, by=by(people, "reviewer"), tag="invoice_pending")
    assert services.order_tag_add(order=order, by=by(people, "reviewer"), tag="invoice_pending").pk == first.pk
    with pytest.raises(services.OrderError, match="Say how the exception was resolved."):
        services.order_tag_resolve(order=order, by=by(people, "finance"), tag="invoice_pending", resolution="")
    services.order_tag_resolve(order=order, by=by(people, "finance"), tag="invoice_pending", resolution="电子发票已开")
    first.refresh_from_db()
    assert (first.resolved_by, first.resolution) == (people["finance"], "电子发票已开") and first.resolved_at is not None
    with pytest.raises(services.OrderConflict, match="already resolved"):
        services.order_tag_resolve(order=order, by=by(people, "finance"), tag="invoice_pending", resolution="again")
    assert [e.payload for e in events(order, EventKind.TAG)] == [{"tag": "invoice_pending"}]
    assert [e.payload for e in events(order, EventKind.UNTAG)] == [{"tag": "invoice_pending", "resolution": "电子发票已开"}]
    # Resolved, the same exception can be raised again later.
    assert services.order_tag_add(order=order, by=by(people, "reviewer"), tag="invoice_pending").pk != first.pk
    with pytest.raises(services.OrderError, match="Unknown tag."):
        services.order_tag_add(order=order, by=by(people, "reviewer"), tag="vip")


# --- After-sales ------------------------------------------------------------------------------


def test_after_sales_refund_approved_adds_to_refund_amount(people):
    milk = make_product(price="298.00")
    order = make_order(status="completed", lines=[(milk, 2)])
    first = services.after_sales_open(
        order=order, by=by(people, "service"), kind="refund", reason="罐体凹陷", sku_code=milk.sku_code, amount=Decimal("298.00")
    )
    second = services.after_sales_open(
        order=order, by=by(people, "service"), kind="refund", reason="少发一罐", sku_code=milk.sku_code, amount=Decimal("100.50")
    )
    services.after_sales_decide(case=first, by=by(people, "finance"), approve=True, reason="核实属实", department="售后部")
    services.after_sales_decide(case=second, by=by(people, "service"), approve=True, reason="补偿差价")
    order.refresh_from_db()
    assert order.refund_amount == Decimal("398.50")
    first.refresh_from_db()
    assert (first.status, first.decided_by, first.decided_by_department, first.decision_reason) == (
        "approved",
        people["finance"],
        "售后部",
        "核实属实",
    )
    decided = [e for e in events(order, EventKind.AFTER_SALES) if e.payload["action"] == "approved"]
    assert [(e.actor_role, e.payload["department"]) for e in decided] == [("finance", "售后部"), ("service", "")]


def test_rejected_or_non_refund_cases_refund_nothing(people):
    order = make_order(status="completed")
    rejected = services.after_sales_open(
        order=order, by=by(people, "service"), kind="refund", reason="不想要了", amount=Decimal("99.00")
    )
    services.after_sales_decide(
        case=rejected, by=by(people, "service"), approve=False, reason="已拆封影响二次销售", department="技术部"
    )
    gift = services.after_sales_open(
        order=order, by=by(people, "sales"), kind="missing_gift", reason="少发口水巾", amount=Decimal("5.00")
    )
    services.after_sales_decide(case=gift, by=by(people, "service"), approve=True, reason="补发")
    order.refresh_from_db()
    assert order.refund_amount == Decimal("0.00")
    rejected.refresh_from_db()
    assert (rejected.status, rejected.decided_by_department) == ("rejected", "技术部")
    with pytest.raises(services.OrderConflict, match="already decided"):
        services.after_sales_decide(case=rejected, by=by(people, "service"), approve=True, reason="改判")


def test_after_sales_roles_and_input(people):
    order = make_order(status="completed")
    with pytest.raises(services.NotAllowed):
        services.after_sales_open(order=order, by=by(people, "packer"), kind="refund", reason="x")
    with pytest.raises(services.OrderError, match="SKU NOPE is not in this order"):
        services.after_sales_open(order=order, by=by(people, "service"), kind="refund", reason="x", sku_code="NOPE")
    with pytest.raises(services.OrderError, match="cannot be negative"):
        services.after_sales_open(order=order, by=by(people, "service"), kind="refund", reason="x", amount=Decimal("-1"))
    case = services.after_sales_open(order=order, by=by(people, "service"), kind="damaged", reason="破损")
    with pytest.raises(services.NotAllowed):
        services.after_sales_decide(case=case, by=by(people, "courier"), approve=True, reason="ok")
    with pytest.raises(services.OrderError, match="A decision needs a reason."):
        services.after_sales_decide(case=case, by=by(people, "service"), approve=True, reason=" ")


# --- Address changes ----------------------------------------------------------------------------

NEW_ADDRESS = {
    "receiver_name": "王丽",
    "receiver_phone": "139 0013 9000",
    "province": "浙江省",
    "city": "杭州市",
    "district": "滨江区",
    "address": "江南大道1号",
}


def test_address_change_applied_updates_the_order(people):
    order = make_order(status="paid")
    change = services.address_change_request(order=order, by=by(people, "service"), **NEW_ADDRESS)
    with pytest.raises(services.OrderConflict, match="already waiting"):
        services.address_change_request(order=order, by=by(people, "sales"), **NEW_ADDRESS)
    services.address_change_resolve(change=change, by=by(people, "reviewer"), apply=True)
    order.refresh_from_db()
    # The phone as typed ("139 0013 9000") is stored canonical, so search by phone finds the order.
    assert (order.district, order.address, order.receiver_phone) == ("滨江区", "江南大道1号", "13900139000")
    assert [e.payload["action"] for e in events(order, EventKind.ADDRESS_CHANGE)] == ["requested", "applied"]
    with pytest.raises(services.OrderConflict, match="already handled"):
        services.address_change_resolve(change=change, by=by(people, "reviewer"), apply=False)


def test_address_change_rejected_keeps_the_address(people):
    order = make_order(status="picking")
    change = services.address_change_request(order=order, by=by(people, "service"), **NEW_ADDRESS)
    services.address_change_resolve(change=change, by=by(people, "reviewer"), apply=False)
    order.refresh_from_db()
    assert order.address == "市心北路100号"
    change.refresh_from_db()
    assert (change.status, change.resolved_by) == ("rejected", people["reviewer"])


def test_address_change_input_and_timing(people):
    with pytest.raises(services.OrderError, match="Fill in the receiver"):
        services.address_change_request(order=make_order(), by=by(people, "service"), **{**NEW_ADDRESS, "address": ""})
    with pytest.raises(services.OrderError, match="12345 is not a valid phone number"):
        services.address_change_request(
            order=make_order(), by=by(people, "service"), **{**NEW_ADDRESS, "receiver_phone": "12345"}
        )
    # Issue 13: customer service may ask after shipping (the carrier rungs); the customer may not.
    with pytest.raises(services.OrderError, match="already left the warehouse"):
        services.address_change_request(
            order=make_order(status="shipped"), by=Actor.system("customer"), source="customer", **NEW_ADDRESS
        )
    with pytest.raises(services.NotAllowed):
        services.address_change_request(order=make_order(), by=by(people, "packer"), **NEW_ADDRESS)


# --- Phone reveal and conflicts -------------------------------------------------------------------


def test_phone_reveal_is_logged(people):
    order = make_order(phone="13812345678")
    assert services.phone_reveal(order=order, by=by(people, "packer")) == "13812345678"
    [event] = events(order, EventKind.PHONE_REVEAL)
    assert (event.actor_name, event.actor_role, event.payload) == ("小包", "packer", {"field": "receiver_phone"})


def test_a_stale_version_is_refused_naming_who_changed_the_order(people):
    order = make_order(status="pending_review")
    seen_version = order.version
    services.order_transition(order=order, name="approve", by=by(people, "reviewer"))
    # Looking at the phone number changes nothing, so it must not be named as the change.
    services.phone_reveal(order=order, by=by(people, "packer"))
    with pytest.raises(services.OrderConflict, match="小审 changed this order at"):
        services.order_hold(order=order, by=by(people, "service"), reason="other", until=None, expected_version=seen_version)
    order.refresh_from_db()
    assert not order.is_held
