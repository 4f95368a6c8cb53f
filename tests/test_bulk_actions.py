"""Bulk actions (issue 17): each order through its own service, one transaction each, with a
per-order result; the batch id on each order's timeline; retrying the refused; two people bulk-
changing overlapping selections at once."""

from __future__ import annotations

import datetime
import threading
import time
from decimal import Decimal

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone, translation

from orders import events, services
from orders.access import Actor
from orders.models import Customer, EventKind, Order, OrderEvent, OrderLine, OrderStatus, OrderTag, RiskTag
from tests.conftest import PASSWORD, make_order, make_product, require_postgres
from workflows import bulk
from workflows.models import BulkAction, BulkBatch, BulkItem, ItemOutcome, RunState


def _orders(count: int, *, prefix: str, status: str = OrderStatus.PENDING_REVIEW) -> list[Order]:
    """`count` reviewable orders with one line each, inserted in bulk (set-up only)."""
    customer, _ = Customer.objects.get_or_create(phone="13900000001", defaults={"name": "批量客户"})
    product = make_product()
    now = timezone.now()
    orders = Order.objects.bulk_create(
        [
            Order(
                order_number=f"{prefix}{n:06d}",
                status=status,
                customer=customer,
                receiver_name="王丽",
                receiver_phone="13900000001",
                province="浙江省",
                city="杭州市",
                address="市心北路100号",
                total_amount=Decimal("99.00"),
                carrier_code="zhongtong",
                stage_entered_at=now,
                placed_at=now,
            )
            for n in range(count)
        ],
        batch_size=2000,
    )
    OrderLine.objects.bulk_create(
        [
            OrderLine(
                order=order,
                product=product,
                sku_code=product.sku_code,
                product_name=product.name,
                quantity=1,
                unit_price=product.unit_price,
            )
            for order in orders
        ],
        batch_size=2000,
    )
    return orders


def _approvals(order: Order) -> int:
    return OrderEvent.objects.filter(order=order, kind=EventKind.STATUS, payload__transition="approve").count()


@pytest.mark.django_db
def test_five_thousand_orders_with_mixed_outcomes(people):
    """5,000 orders: most approved, the held and the fuzzy-address ones refused with the guard's
    Chinese reason, an already-approved one refused by its status, and the ones someone changed
    after the selection reported as changed by someone else. Each result is per order."""
    orders = _orders(5000, prefix="BK")
    held, fuzzy, changed = orders[0:200], orders[200:300], orders[300:350]
    Order.objects.filter(pk__in=[o.pk for o in held]).update(is_held=True, hold_reason="stock_shortage")
    OrderTag.objects.bulk_create([OrderTag(order=o, tag=RiskTag.FUZZY_ADDRESS) for o in fuzzy])
    reviewer = people["reviewer"]
    batch = bulk.batch_create(
        user=reviewer, action=BulkAction.APPROVE, params={}, filters=None, order_numbers=[o.order_number for o in orders]
    )
    assert batch.total == 5000
    # Someone works on 50 orders on their cards after the selection was made.
    for order in changed:
        services.order_add_note(order=order, by=Actor.of(people["service"]), body="客户来电确认地址")
    started = time.perf_counter()
    batch = bulk.batch_execute(batch_id=batch.pk)
    elapsed = time.perf_counter() - started
    print(f"bulk approve of 5,000 orders: {elapsed:.1f} s")

    assert batch.state == RunState.DONE
    assert (batch.done_count, batch.refused_count, batch.conflict_count) == (4650, 300, 50)
    assert batch.processed == 5000
    assert Order.objects.filter(pk__in=[o.pk for o in orders], status=OrderStatus.PAID).count() == 4650
    # Nothing half-applied: every refused or conflicted order is untouched, with one result row.
    untouched = held + fuzzy + changed
    assert not Order.objects.filter(pk__in=[o.pk for o in untouched], status=OrderStatus.PAID).exists()
    held_item = BulkItem.objects.get(batch=batch, order=held[0])
    assert held_item.outcome == ItemOutcome.REFUSED and "挂起" in held_item.message
    fuzzy_item = BulkItem.objects.get(batch=batch, order=fuzzy[0])
    assert fuzzy_item.outcome == ItemOutcome.REFUSED and "地址" in fuzzy_item.message
    conflict_item = BulkItem.objects.get(batch=batch, order=changed[0])
    assert conflict_item.outcome == ItemOutcome.CONFLICT and people["service"].first_name in conflict_item.message
    # The batch id on each changed order's timeline, in the reader's language.
    event = OrderEvent.objects.get(order=orders[-1], kind=EventKind.STATUS)
    assert event.payload["batch"] == batch.pk
    with translation.override("zh-hans"):
        assert f"#{batch.pk}" in events.describe(event) and "批量" in events.describe(event)


@pytest.mark.django_db
def test_retry_runs_only_the_refused(people):
    orders = _orders(4, prefix="RT")
    services.order_hold(order=orders[0], by=Actor.of(people["reviewer"]), reason="stock_shortage", until=None)
    batch = bulk.batch_create(
        user=people["reviewer"], action=BulkAction.APPROVE, params={}, order_numbers=[o.order_number for o in orders]
    )
    batch = bulk.batch_execute(batch_id=batch.pk)
    assert (batch.done_count, batch.refused_count) == (3, 1)
    with pytest.raises(bulk.BulkRefused):
        bulk.batch_retry_refused(batch=BulkBatch.objects.get(pk=batch.pk), user=people["packer"])  # may not approve
    services.order_release(order=orders[0], by=Actor.of(people["reviewer"]))
    retry = bulk.batch_retry_refused(batch=batch, user=people["reviewer"])
    assert retry.retry_of_id == batch.pk
    assert list(retry.items.values_list("order_id", flat=True)) == [orders[0].pk]
    retry = bulk.batch_execute(batch_id=retry.pk)
    assert (retry.done_count, retry.refused_count) == (1, 0)
    assert all(_approvals(order) == 1 for order in orders)
    with pytest.raises(bulk.BulkRefused):
        bulk.batch_retry_refused(batch=retry, user=people["reviewer"])  # nothing left to retry


@pytest.mark.django_db
def test_every_action_goes_through_its_service(people):
    supervisor = people["supervisor"]
    orders = [make_order(status="paid"), make_order(status="paid")]
    numbers = [o.order_number for o in orders]
    cases = [
        (BulkAction.SET_CARRIER, {"carrier": "shunfeng"}, lambda o: o.carrier_code == "shunfeng"),
        (BulkAction.ASSIGN, {"assignee": "packer"}, lambda o: o.claimed_by_id == people["packer"].pk),
        (
            BulkAction.NOTE,
            {"body": "今天下午四点前发", "audience": "warehouse"},
            lambda o: o.notes.filter(body="今天下午四点前发").exists(),
        ),
        (
            BulkAction.TAG_ADD,
            {"tag": "invoice_pending"},
            lambda o: o.tags.filter(tag="invoice_pending", resolved_at=None).exists(),
        ),
        (
            BulkAction.TAG_RESOLVE,
            {"tag": "invoice_pending", "resolution": "已开票"},
            lambda o: not o.tags.filter(resolved_at=None).exists(),
        ),
        (
            BulkAction.HOLD,
            {
                "reason": "stock_shortage",
                "note": "等到货",
                "until": f"{timezone.localtime() + datetime.timedelta(days=1):%Y-%m-%dT%H:%M}",
            },
            lambda o: o.is_held and o.hold_note == "等到货" and o.hold_until is not None,
        ),
        (BulkAction.RELEASE, {}, lambda o: not o.is_held),
        (BulkAction.START_PICKING, {}, lambda o: o.status == OrderStatus.PICKING),
    ]
    for action, params, check in cases:
        batch = bulk.batch_execute(
            batch_id=bulk.batch_create(user=supervisor, action=action, params=params, order_numbers=numbers).pk
        )
        assert batch.done_count == 2, (action, list(batch.items.values_list("message", flat=True)))
        for order in orders:
            order.refresh_from_db()
            assert check(order), action
            assert order.events.order_by("-id").first().payload["batch"] == batch.pk


@pytest.mark.django_db
def test_role_matrix_refuses_a_whole_batch_and_each_order(people):
    order = make_order()
    with pytest.raises(bulk.BulkRefused, match="角色|role"):
        bulk.batch_create(user=people["packer"], action=BulkAction.APPROVE, params={}, order_numbers=[order.order_number])
    with pytest.raises(bulk.BulkRefused):
        bulk.batch_create(
            user=people["reviewer"], action=BulkAction.HOLD, params={"reason": "nonsense"}, order_numbers=[order.order_number]
        )
    with pytest.raises(bulk.BulkRefused):
        bulk.batch_create(user=people["reviewer"], action=BulkAction.APPROVE, params={}, order_numbers=[])
    # A note is open to every role, but the service still decides per order.
    batch = bulk.batch_create(
        user=people["finance"], action=BulkAction.NOTE, params={"body": "发票已寄"}, order_numbers=[order.order_number]
    )
    assert bulk.batch_execute(batch_id=batch.pk).done_count == 1


def _run_threads(*targets) -> list:
    results: list = [None] * len(targets)
    barrier = threading.Barrier(len(targets))

    def run(index, target):
        try:
            barrier.wait()
            results[index] = target()
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, t)) for i, t in enumerate(targets)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


@pytest.mark.django_db(transaction=True)
def test_two_people_bulk_change_overlapping_selections_at_once(people):
    """A reviewer and a supervisor approve overlapping selections at the same moment: every order
    is approved exactly once; for each order in the overlap one batch did it and the other was
    told who changed it."""
    require_postgres()
    orders = _orders(60, prefix="OV")
    numbers = [o.order_number for o in orders]
    first = bulk.batch_create(user=people["reviewer"], action=BulkAction.APPROVE, params={}, order_numbers=numbers[:40])
    second = bulk.batch_create(user=people["supervisor"], action=BulkAction.APPROVE, params={}, order_numbers=numbers[20:])
    _run_threads(lambda: bulk.batch_execute(batch_id=first.pk), lambda: bulk.batch_execute(batch_id=second.pk))
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.state == second.state == RunState.DONE
    assert all(_approvals(order) == 1 for order in orders)
    assert Order.objects.filter(order_number__in=numbers, status=OrderStatus.PAID).count() == 60
    assert first.done_count + second.done_count == 60
    assert first.refused_count == second.refused_count == 0
    overlap = orders[20:40]
    for order in overlap:
        outcomes = {
            item.batch_id: item
            for item in BulkItem.objects.filter(order=order, batch__in=[first, second]).select_related("batch")
        }
        done = [i for i in outcomes.values() if i.outcome == ItemOutcome.DONE]
        told = [i for i in outcomes.values() if i.outcome == ItemOutcome.CONFLICT]
        assert len(done) == 1 and len(told) == 1, order.order_number
        winner = people["reviewer"] if done[0].batch_id == first.pk else people["supervisor"]
        assert winner.first_name in told[0].message


# --- Through the pages ------------------------------------------------------------------------


@pytest.mark.django_db
def test_bulk_pages(client, people):
    orders = [make_order(), make_order()]
    services.order_hold(order=orders[1], by=Actor.of(people["reviewer"]), reason="stock_shortage", until=None)
    client.login(username="reviewer", password=PASSWORD)
    response = client.post(
        reverse("bulk_start"), {"action": "approve", "scope": "selected", "order": [o.order_number for o in orders]}
    )
    batch = BulkBatch.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("bulk_batch", args=[batch.pk])
    page = client.get(reverse("bulk_batch", args=[batch.pk]))
    assert 'id="bulk-bar"' in page.content.decode() and "hx-trigger" in page.content.decode()
    bulk.batch_execute(batch_id=batch.pk)
    page = client.get(reverse("bulk_batch", args=[batch.pk])).content.decode()
    assert 'id="count-done">1<' in page and 'id="count-refused">1<' in page
    assert orders[1].order_number in page and 'id="retry-refused"' in page
    # The whole view: every order the filters select.
    response = client.post(
        reverse("bulk_start"), {"action": "note", "body": "统一备注", "kind": "", "scope": "view", "status": "paid"}
    )
    assert response.status_code == 302
    view_batch = BulkBatch.objects.latest("pk")
    assert view_batch.total == Order.objects.filter(status="paid").count() == 1
    # Someone else's batch is not there; the outsider has no list at all.
    client.login(username="packer", password=PASSWORD)
    assert client.get(reverse("bulk_batch", args=[batch.pk])).status_code == 404
    client.login(username="outsider", password=PASSWORD)
    assert client.post(reverse("bulk_start"), {"action": "approve"}).status_code == 403
    # A refused batch comes back to the list with the reason.
    client.login(username="packer", password=PASSWORD)
    response = client.post(
        reverse("bulk_start"), {"action": "approve", "scope": "selected", "order": [orders[0].order_number]}, follow=True
    )
    assert "角色" in response.content.decode()
