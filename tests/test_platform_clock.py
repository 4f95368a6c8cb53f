"""The platform's clock beside the stage clock (issue 15): the card and the board show both, the
board sorts by minutes to the platform deadline, a hold pauses only our clock, and the sweep
alerts the supervisor once per platform deadline."""

import datetime

import pytest
import time_machine
from django.utils import timezone

from orders import clock, services
from orders.access import Actor
from orders.models import Order
from tests.conftest import PASSWORD, make_order
from workflows import sla
from workflows.models import Alert, AlertKind

pytestmark = pytest.mark.django_db
START = datetime.datetime(2026, 11, 24, 9, 0, tzinfo=datetime.timezone(datetime.timedelta(hours=8)))


def _platform_order(*, ship_in: datetime.timedelta | None, status: str = "picking", **fields) -> Order:
    ship_deadline = timezone.now() + ship_in if ship_in is not None else None
    order = make_order(
        status=status,
        source="platform",
        platform_order_id="6920000000000001",
        platform_shop="贝乐母婴旗舰店",
        platform_ship_deadline=ship_deadline,
        **fields,
    )
    order.refresh_from_db()
    return order


@pytest.fixture
def supervisor(client, people):
    client.login(username="supervisor", password=PASSWORD)
    return people


def _lane(page: str, lane: str) -> str:
    start = page.index(f'id="lane-{lane}"')
    return page[start : page.index("</section>", start)]


# --- Which deadline counts -----------------------------------------------------------------------


def test_the_ship_deadline_counts_until_shipped_and_the_after_sales_deadline_while_a_case_waits():
    order = _platform_order(ship_in=datetime.timedelta(minutes=30))
    platform = clock.platform_clock(order)
    assert platform.kind == clock.PLATFORM_SHIP and platform.state == clock.PLATFORM_NEAR
    assert 29 <= platform.minutes_left <= 30

    shipped = _platform_order(ship_in=datetime.timedelta(minutes=-30), status="shipped")
    assert shipped.platform_due_at is None and clock.platform_clock(shipped) is None  # shipped: the ship time is met

    respond_by = timezone.now() + datetime.timedelta(hours=20)
    Order.objects.filter(pk=shipped.pk).update(platform_aftersales_deadline=respond_by)
    shipped.refresh_from_db()
    platform = clock.platform_clock(shipped)
    assert platform.kind == clock.PLATFORM_AFTERSALES and platform.due_at == respond_by and platform.state == clock.PLATFORM_OK

    late = _platform_order(ship_in=datetime.timedelta(minutes=-5))
    assert clock.platform_clock(late).state == clock.PLATFORM_OVERDUE and clock.platform_clock(late).minutes_left < 0
    assert clock.platform_clock(make_order(status="picking")) is None  # not a platform order


# --- The card and the board ----------------------------------------------------------------------


def test_the_card_shows_the_platform_deadline_beside_the_stage_clock(client, supervisor):
    order = _platform_order(ship_in=datetime.timedelta(minutes=40))
    page = client.get(f"/orders/{order.order_number}/").content.decode()
    assert 'id="stage-clock"' in page and 'id="platform-clock"' in page
    assert page.index('id="stage-clock"') < page.index('id="platform-clock"')
    platform = page[page.index('id="platform-clock"') :][:600]
    assert "平台最晚发货时间" in platform and "剩余" in platform and "platform-near" in platform
    assert "贝乐母婴旗舰店" in platform

    after_sales = _platform_order(ship_in=None, status="shipped")
    Order.objects.filter(pk=after_sales.pk).update(platform_aftersales_deadline=timezone.now() - datetime.timedelta(minutes=3))
    page = client.get(f"/orders/{after_sales.order_number}/").content.decode()
    platform = page[page.index('id="platform-clock"') :][:600]
    assert "平台售后处理时限" in platform and "已超时" in platform and "platform-overdue" in platform


def test_an_order_without_a_platform_deadline_shows_no_platform_clock(client, supervisor):
    order = make_order(status="picking")
    assert 'id="platform-clock"' not in client.get(f"/orders/{order.order_number}/").content.decode()


def test_the_board_lists_platform_deadlines_fewest_minutes_first_with_both_clocks(client, supervisor):
    later = _platform_order(ship_in=datetime.timedelta(hours=5))
    sooner = _platform_order(ship_in=datetime.timedelta(minutes=20))
    passed = _platform_order(ship_in=datetime.timedelta(minutes=-10))
    make_order(status="picking")  # no platform deadline: not in the lane
    Order.objects.filter(pk=sooner.pk).update(stage_due_at=timezone.now() - datetime.timedelta(minutes=5))

    page = client.get("/board/").content.decode()
    lane = _lane(page, "platform")
    assert lane.count("board-card") == 3
    assert lane.index(passed.order_number) < lane.index(sooner.order_number) < lane.index(later.order_number)
    assert "平台时限" in page and "平台最晚发货时间" in lane
    # Both clocks on one card: our own stage limit overdue, the platform's near.
    card = lane[lane.index(f'id="platform-{sooner.order_number}"') :][:2000]
    assert "超时" in card and "platform-near" in card


def test_the_board_sorts_its_lanes_by_minutes_to_the_platform_deadline(client, supervisor):
    def overdue(minutes, ship_in):
        order = _platform_order(ship_in=ship_in) if ship_in is not None else make_order(status="picking")
        Order.objects.filter(pk=order.pk).update(stage_due_at=timezone.now() - datetime.timedelta(minutes=minutes))
        return order

    longest_overdue = overdue(90, None)
    platform_far = overdue(60, datetime.timedelta(hours=6))
    platform_soon = overdue(5, datetime.timedelta(minutes=15))

    red = _lane(client.get("/board/").content.decode(), "red")
    assert red.index(longest_overdue.order_number) < red.index(platform_far.order_number) < red.index(platform_soon.order_number)

    page = client.get("/board/?sort=platform").content.decode()
    red = _lane(page, "red")
    assert red.index(platform_soon.order_number) < red.index(platform_far.order_number) < red.index(longest_overdue.order_number)
    assert '<option value="platform" selected>' in page and "距平台时限" in page
    # The live refresh re-reads the page's own address (static/js/live.js), and the cards'
    # actions carry the sort, so both keep it.
    assert 'id="board-body" data-live=' in page
    assert '<input type="hidden" name="sort" value="platform">' in page
    assert client.get("/board/?sort=nonsense").status_code == 200


def test_platform_clocks_cost_the_board_no_query_per_card(client, supervisor):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    _platform_order(ship_in=datetime.timedelta(minutes=10))
    client.get("/board/?sort=platform")  # the session and the stage counts' cache, once
    with CaptureQueriesContext(connection) as one:
        client.get("/board/?sort=platform")
    for minutes in range(20):
        order = _platform_order(ship_in=datetime.timedelta(minutes=minutes))
        Order.objects.filter(pk=order.pk).update(stage_due_at=timezone.now() - datetime.timedelta(minutes=minutes + 1))
    with CaptureQueriesContext(connection) as many:
        client.get("/board/?sort=platform")
    assert len(many) == len(one)


# --- A hold pauses our clock, never the platform's -------------------------------------------


def test_a_hold_pauses_the_stage_clock_but_not_the_platform_clock(people):
    dispatcher = Actor.of(people["dispatcher"])
    with time_machine.travel(START, tick=False):
        order = make_order(status="paid")
        Order.objects.filter(pk=order.pk).update(platform_ship_deadline=START + datetime.timedelta(hours=2), source="platform")
        order = services.order_transition(order=order, name="start_picking", by=dispatcher)
        stage_due = order.stage_due_at
        order.refresh_from_db()
        assert order.platform_due_at == START + datetime.timedelta(hours=2)
    with time_machine.travel(START + datetime.timedelta(minutes=30), tick=False):
        order = services.order_hold(order=order, by=dispatcher, reason="stock_shortage", until=None)
        order.refresh_from_db()
        assert order.stage_due_at is None and clock.stage_clock(order).paused  # our clock stopped
        assert order.platform_due_at == START + datetime.timedelta(hours=2)  # theirs did not
        assert clock.platform_clock(order).minutes_left == 90
    with time_machine.travel(START + datetime.timedelta(minutes=90), tick=False):
        order.refresh_from_db()
        assert clock.platform_clock(order).minutes_left == 30 and clock.platform_clock(order).state == clock.PLATFORM_NEAR
        # The supervisor hears of it although the order is on hold.
        assert sla.sla_sweep().platform_alerted == 1
        order = services.order_release(order=order, by=dispatcher)
        order.refresh_from_db()
    assert order.stage_due_at == stage_due + datetime.timedelta(hours=1)  # the held hour is added to our limit
    assert order.platform_due_at == START + datetime.timedelta(hours=2)  # never to theirs


# --- The alert ---------------------------------------------------------------------------------


def test_a_near_platform_deadline_alerts_the_supervisor_once_per_deadline(people):
    with time_machine.travel(START, tick=False):
        order = _platform_order(ship_in=datetime.timedelta(hours=3))
        _platform_order(ship_in=datetime.timedelta(hours=5))  # stays outside the window throughout
        assert sla.sla_sweep().platform_alerted == 0
    with time_machine.travel(START + datetime.timedelta(hours=2, minutes=1), tick=False):
        assert sla.sla_sweep().platform_alerted == 1
        assert sla.sla_sweep().platform_alerted == 0  # the next minute's sweep: already alerted
    with time_machine.travel(START + datetime.timedelta(hours=3, minutes=5), tick=False):
        assert sla.sla_sweep().platform_alerted == 0  # passing the deadline is the same deadline
    alert = Alert.objects.get(kind=AlertKind.PLATFORM_DEADLINE)
    assert alert.order == order and alert.for_role == "supervisor" and alert.link == "/board/?sort=platform"
    assert order.order_number in alert.message and "平台最晚发货时间" in alert.message and "59 分钟" in alert.message

    # The platform moves the deadline (the buyer agreed to wait): a new deadline, a new alert when near.
    with time_machine.travel(START + datetime.timedelta(hours=3, minutes=10), tick=False):
        Order.objects.filter(pk=order.pk).update(platform_ship_deadline=START + datetime.timedelta(hours=3, minutes=40))
        assert sla.sla_sweep().platform_alerted == 1
        assert sla.sla_sweep().platform_alerted == 0
    assert Alert.objects.filter(kind=AlertKind.PLATFORM_DEADLINE, order=order).count() == 2


def test_the_supervisor_acknowledges_a_platform_alert_on_the_board(client, supervisor):
    order = _platform_order(ship_in=datetime.timedelta(minutes=30))
    assert sla.sla_sweep().platform_alerted == 1
    alert = Alert.objects.get(kind=AlertKind.PLATFORM_DEADLINE)
    lane = _lane(client.get("/board/?sort=platform").content.decode(), "platform")
    assert f'id="ack-{alert.pk}"' in lane and "确认平台时限提醒" in lane
    response = client.post(f"/board/alerts/{alert.pk}/acknowledge/", {"sort": "platform"})
    assert response.status_code == 302 and response["Location"] == "/board/?sort=platform"
    alert.refresh_from_db()
    assert alert.acknowledged_by == supervisor["supervisor"]
    lane = _lane(client.get("/board/").content.decode(), "platform")
    assert order.order_number in lane and f'id="ack-{alert.pk}"' not in lane


def test_an_after_sales_deadline_alerts_after_shipping_and_a_shipped_order_no_longer_for_its_ship_time(people):
    with time_machine.travel(START, tick=False):
        shipped = _platform_order(ship_in=datetime.timedelta(minutes=10), status="shipped")
        waiting = _platform_order(ship_in=None, status="shipped")
        Order.objects.filter(pk=waiting.pk).update(platform_aftersales_deadline=START + datetime.timedelta(minutes=45))
        assert sla.sla_sweep().platform_alerted == 1
    [alert] = Alert.objects.filter(kind=AlertKind.PLATFORM_DEADLINE)
    assert alert.order_id == waiting.pk and "售后处理时限" in alert.message
    assert not Alert.objects.filter(order=shipped).exists()


def test_the_demo_shows_both_clocks_and_the_mini_program_upload(client, people):
    import io

    from django.core.management import call_command

    from integrations.wechat.models import ShippingUpload

    call_command("seed_demo", orders=60, seed=7, stdout=io.StringIO())
    now = timezone.now()
    with_clock = [clock.platform_clock(order, now) for order in Order.objects.filter(platform_due_at__isnull=False)]
    states = [platform.state for platform in with_clock]
    assert states.count(clock.PLATFORM_OVERDUE) == 1 and states.count(clock.PLATFORM_NEAR) >= 3
    assert any(platform.kind == clock.PLATFORM_AFTERSALES for platform in with_clock)
    assert Order.objects.filter(source="miniprogram").count() == 4
    refused = ShippingUpload.objects.get(status="refused")
    assert refused.order.tags.filter(tag="platform_writeback_failed", resolved_at__isnull=True).exists()

    people["supervisor"].refresh_from_db()
    client.force_login(people["supervisor"])
    lane = _lane(client.get("/board/").content.decode(), "platform")
    assert lane.count("platform-overdue") >= 1 and lane.count("platform-near") >= 3
    page = client.get(f"/orders/{refused.order.order_number}/").content.decode()
    assert "平台回传失败" in page and "支付单不可发货" in page


def test_the_order_list_filters_and_flags_near_platform_deadlines(client, supervisor, django_assert_max_num_queries):
    near = _platform_order(ship_in=datetime.timedelta(minutes=30))
    far = _platform_order(ship_in=datetime.timedelta(hours=30))
    plain = make_order(status="picking")
    page = client.get("/orders/").content.decode()
    row = page[page.index(f'id="order-row-{near.order_number}"') :][:3000]
    assert "platform-near" in row[: row.index("</tr>")]
    with django_assert_max_num_queries(6):  # the list's pinned count (tests/test_order_views.py)
        page = client.get("/orders/?platform_near=1").content.decode()
    assert near.order_number in page and far.order_number not in page and plain.order_number not in page
    assert "平台时限临近" in page
