"""The exception-reason catalogue (issue 16, orders/reasons.py): every reason's owner, clock and
release; the ERPs' codes mapped onto it through a status event; several reasons open on one
order; the board grouping them by reason and owner."""

from __future__ import annotations

import datetime
import json
import time
from decimal import Decimal

import pytest
from django.test import Client
from django.utils import timezone, translation

from integrations.erp.inbound import sign
from orders import events, reasons, rules, services
from orders.access import Actor
from orders.models import EventKind, OrderEvent, OrderTag, RiskTag, Role
from orders.reasons import REASONS, REASONS_BY_CODE, reason_for_erp
from tests.conftest import PASSWORD, make_order

pytestmark = pytest.mark.django_db
ERP_SECRET = "erp-reason-secret"


@pytest.fixture(autouse=True)
def chinese():
    with translation.override("zh-hans"):
        yield


def test_the_catalogue_is_the_tag_list_and_the_resolver_table():
    assert set(RiskTag.values) == {reason.code for reason in REASONS}
    assert rules.TAG_RESOLVER_ROLES == {reason.code: reason.resolvers for reason in REASONS}
    for reason in REASONS:
        assert reason.owner in rules.ALL_ROLES, reason.code
        assert reason.time_limit > datetime.timedelta(0)
        assert reason.release in ("", *reasons.RELEASE_LABELS)
        assert any("\u4e00" <= char <= "\u9fff" for char in str(reason.name)), f"{reason.code} has no Chinese name"
    # The former fixed tags keep their names and owners.
    assert rules.TAG_RESOLVER_ROLES["fuzzy_address"] == frozenset()
    assert rules.TAG_RESOLVER_ROLES["high_risk_refund"] == frozenset({"service", "finance"})


@pytest.mark.parametrize(
    ("system", "code", "reason"),
    [
        *[("jushuitan", code, reason) for code, reason in reasons.JUSHUITAN_QUESTION_TYPES.items()],
        *[("wangdiantong", code, reason) for code, reason in reasons.WANGDIANTONG_BAD_REASONS.items()],
    ],
)
def test_every_erp_code_lands_on_a_catalogue_reason(system, code, reason):
    assert reason_for_erp(system, code) is REASONS_BY_CODE[reason]


def test_unknown_codes_are_not_guessed():
    assert reason_for_erp("jushuitan", "外星人") is None
    assert reason_for_erp("nobody", "缺货") is None


@pytest.mark.parametrize("reason", REASONS, ids=lambda reason: reason.code)
def test_each_reason_opens_with_its_own_clock_and_is_closed_by_its_owner(people, reason):
    order = make_order(status="paid")
    before = timezone.now()
    tag = services.order_tag_add(order=order, by=Actor.system("ERP"), tag=reason.code)
    assert before + reason.time_limit <= tag.due_at <= timezone.now() + reason.time_limit
    if not reason.resolvers:  # a fuzzy address: only correcting the address closes it
        return
    others = [role for role in rules.ALL_ROLES if role not in reason.resolvers and role != "supervisor"]
    with pytest.raises(services.OrderError):
        services.order_tag_resolve(order=order, by=Actor.of(people[others[0]]), tag=reason.code, resolution="看过了")
    owner = sorted(reason.resolvers)[0]
    services.order_tag_resolve(order=order, by=Actor.of(people[owner]), tag=reason.code, resolution="已处理")
    assert OrderTag.objects.get(pk=tag.pk).resolved_at is not None


def test_several_reasons_at_once_and_each_releases_by_its_condition(people):
    order = make_order(status="paid")
    order.total_amount, order.paid_amount = Decimal("100.00"), Decimal("30.00")
    order.save(update_fields=["total_amount", "paid_amount"])
    erp = Actor.system("ERP")
    services.exception_from_erp(order=order, by=erp, system="jushuitan", code="部分付款")
    services.exception_from_erp(order=order, by=erp, system="jushuitan", code="缺货")
    paused = services.exception_from_erp(
        order=order, by=erp, system="jushuitan", code="暂停发货", release_at=timezone.now() + datetime.timedelta(hours=1)
    )
    services.exception_from_erp(order=order, by=erp, system="wangdiantong", code="修改备注")
    services.order_hold(order=order, by=Actor.of(people["dispatcher"]), reason="stock_shortage", until=None)
    open_codes = set(OrderTag.objects.filter(order=order, resolved_at__isnull=True).values_list("tag", flat=True))
    assert open_codes == {"partial_payment", "out_of_stock", "shipping_paused", "remark_changed"}
    assert paused.erp_code == "jushuitan:暂停发货"
    assert services.exceptions_auto_release() == 0  # nothing has happened yet

    order.refresh_from_db()
    order.paid_amount = Decimal("100.00")
    order.save(update_fields=["paid_amount"])
    services.order_release(order=order, by=Actor.of(people["dispatcher"]))  # the stock arrived
    assert services.exceptions_auto_release() == 2
    assert services.exceptions_auto_release(now=timezone.now() + datetime.timedelta(hours=2)) == 1
    still_open = set(OrderTag.objects.filter(order=order, resolved_at__isnull=True).values_list("tag", flat=True))
    assert still_open == {"remark_changed"}  # no condition: its owner closes it
    released = OrderEvent.objects.filter(order=order, kind=EventKind.UNTAG, actor_name="system")
    assert released.count() == 3 and all("自动解除" in event.payload["resolution"] for event in released)


def test_an_address_reason_releases_when_the_address_is_corrected(people):
    order = make_order(status="paid")
    services.exception_from_erp(order=order, by=Actor.system("ERP"), system="wangdiantong", code="修改地址")
    assert services.exceptions_auto_release() == 0
    services.order_correct_address(
        order=order,
        by=Actor.of(people["reviewer"]),
        receiver_name="王丽",
        receiver_phone="13800138000",
        province="浙江省",
        city="杭州市",
        district="滨江区",
        address="江南大道3号",
    )
    assert services.exceptions_auto_release() == 1


def test_an_erp_status_event_opens_the_mapped_reason_and_refuses_an_unknown_code(people, settings):
    settings.INBOUND_EVENT_SECRETS = {"ERP": ERP_SECRET}
    order = make_order(status="paid")

    def post(event_id, **fields):
        body = json.dumps({"event_id": event_id, "order_number": order.order_number, "action": "exception", **fields}).encode()
        stamp = str(int(time.time()))
        return Client().post(
            "/api/v1/events",
            data=body,
            content_type="application/json",
            HTTP_X_BEILE_SOURCE="ERP",
            HTTP_X_BEILE_TIMESTAMP=stamp,
            HTTP_X_BEILE_SIGNATURE=sign(secret=ERP_SECRET, timestamp=stamp, body=body),
        )

    assert post("e1", code_system="jushuitan", code="黑名单").status_code == 200
    tag = OrderTag.objects.get(order=order, tag="blacklisted")
    assert tag.erp_code == "jushuitan:黑名单" and REASONS_BY_CODE["blacklisted"].owner == "supervisor"
    # On the timeline: the reason, whose it is, and the ERP's own word for it.
    line = events.describe(OrderEvent.objects.get(order=order, kind=EventKind.TAG))
    assert line == f"黑名单买家（负责：{Role('supervisor').label}）: 黑名单"
    refused = post("e2", code_system="jushuitan", code="外星人")
    assert refused.status_code == 409 and "外星人" in refused.json()["error"]


def test_the_board_groups_open_exceptions_by_reason_and_owner(people):
    erp = Actor.system("ERP")
    for _ in range(2):
        services.exception_from_erp(order=make_order(status="paid"), by=erp, system="jushuitan", code="缺货")
    late = services.exception_from_erp(order=make_order(status="paid"), by=erp, system="jushuitan", code="获取电子面单错误")
    OrderTag.objects.filter(pk=late.pk).update(due_at=timezone.now() - datetime.timedelta(minutes=5))
    services.exception_from_erp(order=make_order(status="paid"), by=erp, system="jushuitan", code="部分付款")
    client = Client()
    client.login(username="supervisor", password=PASSWORD)
    client.cookies["django_language"] = "zh-hans"
    page = client.get("/board/").content.decode()
    assert 'id="exception-groups"' in page
    from workflows.selectors import BoardFilters, board

    groups = {group.reason: group for group in board(filters=BoardFilters()).exception_groups}
    assert (groups["out_of_stock"].count, groups["out_of_stock"].owner) == (2, "dispatcher")
    assert (groups["waybill_error"].overdue, groups["partial_payment"].owner) == (1, "finance")
    row = page[page.index('id="group-out_of_stock"') :].split("</tr>")[0]
    assert "缺货" in row and str(Role("dispatcher").label) in row


def test_closure_time_is_computed_per_reason_against_its_own_limit(people):
    from workflows.health.measures import exception_closure_by_reason

    erp, now = Actor.system("ERP"), timezone.now()
    quick = services.exception_from_erp(order=make_order(status="paid"), by=erp, system="jushuitan", code="获取电子面单错误")
    slow = services.exception_from_erp(order=make_order(status="paid"), by=erp, system="jushuitan", code="获取电子面单错误")
    waiting = services.exception_from_erp(order=make_order(status="paid"), by=erp, system="jushuitan", code="缺货")
    for tag, minutes in ((quick, 20), (slow, 90)):
        OrderTag.objects.filter(pk=tag.pk).update(opened_at=now - datetime.timedelta(minutes=minutes))
        services.order_tag_resolve(order=tag.order, by=Actor.of(people["dispatcher"]), tag=tag.tag, resolution="已补打面单")
    OrderTag.objects.filter(pk=waiting.pk).update(opened_at=now - datetime.timedelta(hours=1))
    rows = {row.reason: row for row in exception_closure_by_reason(day=timezone.localdate())}
    waybill, stock = rows["waybill_error"], rows["out_of_stock"]
    # The waybill error's limit is 1 h: the 90-minute one is over it; the median is 55 minutes.
    assert (waybill.closed, waybill.limit_minutes, waybill.over_limit) == (2, 60, 1)
    assert 54 <= waybill.median_minutes <= 56
    assert (stock.closed, stock.still_open, stock.median_minutes, stock.over_limit) == (0, 1, None, 0)
    client = Client()
    client.login(username="supervisor", password=PASSWORD)
    client.cookies["django_language"] = "zh-hans"
    page = client.get("/health/exception_closure/").content.decode()
    assert 'id="reason-waybill_error"' in page and "获取电子面单错误" in page
