"""Builders for front-line tests: a shipped order with tracking, an after-sales decision made
on a given day, a customer with many orders."""

from __future__ import annotations

import datetime
import itertools

import pytest
from django.utils import timezone

from orders.models import AfterSalesCase, Customer, Note, Order, Shipment, TrackingEvent
from tests.conftest import make_order, make_product

_waybills = itertools.count(1)


def ship(
    order: Order,
    *,
    location: str = "广东,深圳市",
    context: str = "[深圳市]快件已到达深圳转运中心",
    state: str = "0",
    eta: datetime.datetime | None = None,
    at: datetime.datetime | None = None,
) -> Shipment:
    at = at or timezone.now() - datetime.timedelta(hours=2)
    shipment = Shipment.objects.create(
        order=order,
        carrier_code="zhongtong",
        tracking_number=f"ZT{next(_waybills):012d}",
        tracking_state=state,
        last_location=location,
        last_event_at=at,
        eta=eta,
        created_at=at - datetime.timedelta(hours=3),
    )
    TrackingEvent.objects.create(shipment=shipment, occurred_at=at, context=context, area_name=location, status_name="在途")
    return shipment


def rejected_return(
    order: Order, *, decided_at: datetime.datetime, by, department: str = "技术部", reason: str = "已拆封影响二次销售"
) -> AfterSalesCase:
    return AfterSalesCase.objects.create(
        order=order,
        kind="return",
        status="rejected",
        reason="宝宝不爱喝",
        opened_by=by,
        opened_at=decided_at - datetime.timedelta(hours=5),
        decision_reason=reason,
        decided_by=by,
        decided_by_department=department,
        decided_at=decided_at,
    )


def customer_with_orders(count: int, *, phone: str, people) -> Customer:
    """`count` orders, each with a shipment, a note and a decided case: every prefetch has rows."""
    for _ in range(count):
        order = make_order(status="shipped", phone=phone, gift=make_product())
        ship(order, eta=timezone.now() + datetime.timedelta(hours=20))
        Note.objects.create(
            order=order, author=people["service"], author_role="service", body="客户要求放门口", audience="logistics"
        )
        rejected_return(order, decided_at=timezone.now() - datetime.timedelta(days=1), by=people["service"])
    customer = Customer.objects.get(phone=phone)
    customer.wechat_openid = f"openid-{phone}"
    customer.save(update_fields=["wechat_openid"])
    return customer


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    """The `people` fixture hashes nine passwords; the default hasher makes that ~9 s per test."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
