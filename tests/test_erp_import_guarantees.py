"""What every order keeps whichever path it arrives by (issue 11), for orders the ERP import
creates: a running stage clock, review of a 待审核 order whatever its payment date, and timeline
events written by the creators in orders/events.py."""

from __future__ import annotations

import datetime

import pytest
import time_machine
from django.utils import translation

from integrations.erp.importer import import_orders
from orders import events
from orders.access import Actor
from orders.models import EventKind, Order, OrderEvent
from orders.selectors import OrderFilters, order_list
from tests.conftest import make_product
from tests.erp_fixtures import HEADER, fast_passwords, line, write_csv  # noqa: F401 (autouse)
from workflows import sla
from workflows.selectors import BoardFilters, board

pytestmark = pytest.mark.django_db
START = datetime.datetime(2026, 11, 24, 9, 0, tzinfo=datetime.timezone(datetime.timedelta(hours=8)))


@pytest.fixture
def products():
    return {sku: make_product(sku=sku, price="59.90") for sku in ("NUK-AFZ-02", "GIFT-KSJ-01")}


def _at(delta: datetime.timedelta):
    return time_machine.travel(START + delta, tick=False)


def test_an_imported_open_order_runs_a_stage_clock_the_sweep_the_board_and_the_filter_see(tmp_path, products, people):
    path = write_csv(
        tmp_path / "export.csv", [line("C1", "NUK-AFZ-02", status="待审核"), line("C2", "NUK-AFZ-02", status="已付款")]
    )
    with _at(datetime.timedelta()):
        assert import_orders(path=path).created == 2
    review, paid = Order.objects.get(order_number="C1"), Order.objects.get(order_number="C2")
    # The migration's rules: review 30 minutes, dispatch 60; the clock starts on arrival here.
    assert (review.status, review.stage_entered_at, review.stage_due_at) == (
        "pending_review",
        START,
        START + datetime.timedelta(minutes=30),
    )
    assert (paid.status, paid.stage_due_at, paid.version) == ("paid", START + datetime.timedelta(minutes=60), 1)

    with _at(datetime.timedelta(minutes=29)):
        assert sla.sla_sweep().breached == 0
    with _at(datetime.timedelta(minutes=31)):
        assert sla.sla_sweep().breached == 1
        assert [order.pk for order in board(filters=BoardFilters()).red] == [review.pk]
        overdue = order_list(user=people["supervisor"], filters=OrderFilters(overdue=True)).orders
        assert [order.pk for order in overdue] == [review.pk]
    review.refresh_from_db()
    assert review.sla_breached_at == START + datetime.timedelta(minutes=31)
    assert review.events.filter(kind=EventKind.SLA_BREACH).count() == 1
    with _at(datetime.timedelta(minutes=61)):
        assert sla.sla_sweep().breached == 1  # the paid one, an hour after it arrived


@pytest.mark.parametrize(
    ("erp_status", "paid_cell", "shipped_cell", "expected"),
    [
        ("待审核", "2024-05-01 10:21:00", "", "pending_review"),  # the real ERP order: paid, awaiting review
        ("已付款待审核", "2024-05-01 10:21:00", "", "pending_review"),
        ("审核中", "2024-05-01 10:21:00", "", "pending_review"),
        ("", "2024-05-01 10:21:00", "", "pending_review"),  # no 状态: not known to be reviewed
        ("待付款", "", "", "pending_review"),
        ("已付款", "2024-05-01 10:21:00", "", "paid"),
        ("已审核", "2024-05-01 10:21:00", "", "paid"),
        ("已付款", "", "", "paid"),
        ("已发货", "2024-05-01 10:21:00", "2024-05-02 09:00:00", "shipped"),
        ("", "2024-05-01 10:21:00", "2024-05-02 09:00:00", "shipped"),  # a ship date is a fact
        ("已完成", "2024-05-01 10:21:00", "2024-05-02 09:00:00", "completed"),
        ("已取消", "2024-05-01 10:21:00", "", "cancelled"),
    ],
)
def test_the_payment_date_never_skips_review(tmp_path, products, erp_status, paid_cell, shipped_cell, expected):
    # A shipped order needs its waybill (tests/test_hostile_files.py); the others ignore it.
    row = line("S1", "NUK-AFZ-02", status=erp_status, paid=paid_cell) | {"发货日期": shipped_cell, "快递单号": "ZT1234567890"}
    path = write_csv(tmp_path / "export.csv", [row], header=[*HEADER, "发货日期"])
    summary = import_orders(path=path)
    assert (summary.created, summary.errors) == (1, [])
    order = Order.objects.get(order_number="S1")
    assert order.status == expected
    # The timestamp of the stage the order starts in is set; a stage not reached stays empty,
    # so a 待审核 order's payment date does not make it look approved.
    assert getattr(order, f"{expected}_at") is not None
    if expected == "pending_review":
        assert order.paid_at is None
    assert (order.stage_due_at is not None) == (expected in ("pending_review", "paid"))


def test_a_pending_order_with_a_payment_date_goes_through_review(tmp_path, products, people):
    from orders import services

    path = write_csv(tmp_path / "export.csv", [line("R1", "NUK-AFZ-02", status="待审核", paid="2024-05-01 10:21:00")])
    import_orders(path=path)
    order = Order.objects.get(order_number="R1")
    assert order.status == "pending_review"
    order = services.order_transition(order=order, name="approve", by=Actor.of(people["reviewer"]))
    assert order.status == "paid" and order.paid_at is not None and order.version == 2


def _creator_payloads(order: Order) -> dict[str, dict]:
    """What the creators write for this order's import events, by kind."""
    erp = Actor.system("ERP")
    created = events.created(order=order, by=erp, source="erp", import_run=5, erp_status="已付款", save=False)
    updated = events.import_updated(
        order=order,
        by=erp,
        fields=["address", "lines"],
        before={"address": "市心北路100号"},
        after={"address": "市心北路200号"},
        import_run=6,
        source_time=None,
        save=False,
    )
    return {EventKind.CREATED: created.payload, EventKind.IMPORT_UPDATE: updated.payload}


def test_the_import_writes_its_events_through_the_creators_and_they_read_as_text(tmp_path, products):
    rows = [line("V1", "NUK-AFZ-02"), line("V1", "GIFT-KSJ-01", price="0", gift="是")]
    others = [line("V2", "NUK-AFZ-02", paid="2024-05-02 08:00:00"), line("V3", "NUK-AFZ-02", status="待审核", paid="")]
    import_orders(path=write_csv(tmp_path / "v1.csv", rows + others), run_id=5)
    rows[0]["地址"] = rows[1]["地址"] = "市心北路200号"
    rows[1]["数量"] = 2
    assert import_orders(path=write_csv(tmp_path / "v2.csv", rows), run_id=6).updated == 1

    order = Order.objects.get(order_number="V1")
    written = {event.kind: event for event in OrderEvent.objects.filter(order=order)}
    assert set(written) == {EventKind.CREATED, EventKind.IMPORT_UPDATE}
    assert {kind: event.payload for kind, event in written.items()} == _creator_payloads(order)
    for event in written.values():
        assert (event.actor_name, event.actor_role, event.actor_user_id) == ("ERP", "", None)
    # Every created event is what the creator makes for its own order, facts and source time.
    erp = Actor.system("ERP")
    for order in Order.objects.filter(order_number__in=["V1", "V2", "V3"]):
        event = order.events.get(kind=EventKind.CREATED)
        source_time = order.paid_at or order.placed_at
        expected = events.created(
            order=order,
            by=erp,
            source="erp",
            import_run=5,
            erp_status=event.payload["erp_status"],
            source_time=source_time,
            occurred_at=event.occurred_at,
            save=False,
        )
        fields = ("order_id", "kind", "occurred_at", "source_time", "actor_user_id", "actor_name", "actor_role", "payload")
        assert [getattr(event, field) for field in fields] == [getattr(expected, field) for field in fields]
    texts = {}
    for language in ("zh-hans", "en"):
        with translation.override(language):
            texts[language] = {kind: events.describe(event) for kind, event in written.items()}
    assert texts["en"] == {
        EventKind.CREATED: "Order created (ERP system)",
        EventKind.IMPORT_UPDATE: "Updated from ERP system: address, items",
    }
    assert all(text.strip() and "ERP" in text for text in texts["zh-hans"].values())
    assert texts["zh-hans"] != texts["en"]  # described when read, in the reader's language


def test_an_exception_named_in_the_erp_file_opens_the_catalogue_reason(tmp_path, products):
    """聚水潭's 问题类型 and 旺店通's 异常原因 in an order export land on the catalogue's reason
    (orders/reasons.py), like the same code in a status event; an unknown one is reported and the
    order still imported."""
    header = [*HEADER, "问题类型"]
    rows = [
        {**line("E9101", "NUK-AFZ-02"), "问题类型": "缺货"},
        {**line("E9102", "NUK-AFZ-02"), "问题类型": "修改地址"},
        {**line("E9103", "NUK-AFZ-02"), "问题类型": "外星人劫持"},
        line("E9104", "NUK-AFZ-02"),
    ]
    summary = import_orders(path=write_csv(tmp_path / "erp.csv", rows, header=header))
    assert summary.created == 4
    out_of_stock = Order.objects.get(order_number="E9101").tags.get(resolved_at__isnull=True)
    assert (out_of_stock.tag, out_of_stock.erp_code) == ("out_of_stock", "jushuitan:缺货")
    assert Order.objects.get(order_number="E9102").tags.get(resolved_at__isnull=True).erp_code.startswith("wangdiantong:")
    assert not Order.objects.get(order_number="E9103").tags.exists()
    assert not Order.objects.get(order_number="E9104").tags.exists()
    assert any("外星人劫持" in warning.reason for warning in summary.warning_log.kept())
    # Importing the same file again opens nothing twice.
    import_orders(path=write_csv(tmp_path / "erp.csv", rows, header=header))
    assert Order.objects.get(order_number="E9101").tags.filter(resolved_at__isnull=True).count() == 1
