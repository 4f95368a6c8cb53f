"""What a new user stumbled on (issue 19), the behaviour half: every promise a page makes holds
and every action answers."""

import datetime
import re

import pytest
from django.utils import timezone

from orders.models import Order
from tests.conftest import PASSWORD, make_order, make_product
from tests.logistics_fixtures import fake_wechat  # noqa: F401 - fixture
from tests.test_tickets_stalled import tracked_shipment
from workflows import sla, tracking
from workflows.models import Alert, Ticket

pytestmark = pytest.mark.django_db


def test_a_rush_beyond_the_full_lane_is_one_link_away_on_the_board(client, people):
    """The rush confirmation says the order is pinned on the board; with twenty sooner rushes it
    is not in the lane, so the lane says how many there are and links to all open ones."""
    now = timezone.now()
    tomorrow = make_order(status="paid", is_rush=True, rush_deadline=now + datetime.timedelta(days=1))
    Order.objects.filter(pk=tomorrow.pk).update(placed_at=now - datetime.timedelta(days=3))
    for hour in range(20):
        make_order(status="paid", is_rush=True, rush_deadline=now + datetime.timedelta(hours=1, minutes=hour))
    for _ in range(50):  # finished rush orders placed since: the plain "rush" list starts with them
        make_order(status="completed", is_rush=True, rush_deadline=now - datetime.timedelta(hours=1))
    client.login(username="supervisor", password=PASSWORD)

    page = client.get("/board/").content.decode()
    lane = page[page.index('id="lane-rush"') : page.index('id="lane-red"')]
    assert tomorrow.order_number not in lane
    more = re.search(r'<a href="([^"]+)"[^>]*id="rush-more">([^<]+)', lane)
    assert more, "the full rush lane has no link to the rest"
    assert "21" in more.group(2)
    listed = client.get(more.group(1).replace("&amp;", "&")).content.decode()
    assert tomorrow.order_number in listed
    assert listed.count('class="order-row rush"') == 21  # the open ones only


def test_a_stalled_parcel_ticket_names_the_configured_window_not_24_hours(fake_wechat, client, people, settings):  # noqa: F811
    settings.TRACKING_STALL_HOURS = 6
    tracked_shipment(number="ZT6006", hours_silent=7)
    assert tracking.shipments_stalled_scan() == 1
    ticket = Ticket.objects.get()
    client.login(username="courier", password=PASSWORD)
    for url in ("/tickets/", f"/tickets/{ticket.pk}/"):
        page = client.get(url).content.decode()
        assert "24" not in re.sub(r"\d{4,}|\d\d-\d\d \d\d:\d\d", "", page.split("<main", 1)[1]), url
        assert re.search(r"\b6 ?(h|小时)", page), url


def pda_client(client):
    client.login(username="packer", password=PASSWORD)
    client.cookies["django_language"] = "zh-hans"
    return client


def scan(client, code, order=""):
    return client.post("/pda/scan/", {"code": code, "order": order}, HTTP_HX_REQUEST="true").content.decode()


def test_the_pda_says_a_cold_chain_order_is_on_the_wrong_carrier_when_it_opens_in_words(client, people):
    yoghurt = make_product(cold_chain=True)
    order = make_order(status="picking", lines=[(yoghurt, 2)], carrier_code="zhongtong")
    html = scan(pda_client(client), order.order_number)  # opened: not one item scanned yet
    guards = re.search(r'<ul[^>]*id="pda-guards".*?</ul>', html, re.S)
    assert guards, "the cold-chain refusal waits until every item is scanned"
    assert "顺丰冷运" in guards.group(0) and "中通" in guards.group(0)
    assert "shunfenglengyun" not in html


def test_after_a_successful_pack_the_pda_shows_no_refusal(client, people):
    order = make_order(status="picking", lines=[(make_product(), 1)])
    client = pda_client(client)
    scan(client, order.order_number)
    scan(client, order.lines.get().product.barcode, order.order_number)
    html = client.post(f"/pda/{order.order_number}/pack/", HTTP_HX_REQUEST="true").content.decode()
    order.refresh_from_db()
    assert order.status == "packed"
    assert 'id="station-notice"' in html
    assert "只有配货中的订单才能打包" not in html and 'class="blockers' not in html


def test_acknowledging_an_alert_visibly_changes_its_card_and_the_change_outlives_the_next_poll(client, people):
    order = make_order(status="picking")
    Order.objects.filter(pk=order.pk).update(stage_due_at=timezone.now() - datetime.timedelta(minutes=30))
    sla.sla_sweep()
    alert = Alert.objects.get(order=order, kind="sla_breach")
    client.login(username="supervisor", password=PASSWORD)
    body = client.post(f"/board/alerts/{alert.pk}/acknowledge/", HTTP_HX_REQUEST="true").content.decode()
    card = re.search(rf'<li[^>]*id="red-{order.order_number}".*?</li>', body, re.S).group(0)
    assert f'id="acked-{alert.pk}"' in card and "老郑" in card
    polled = client.get("/board/", HTTP_HX_REQUEST="true").content.decode()  # the board's 5-second poll
    assert f'id="acked-{alert.pk}"' in polled


def test_the_erp_page_shows_a_difference_alert_once_though_two_roles_hold_it(client, people):
    message = "2026-11-30 ERP 对账差异 1.10%，超过 0.5%"
    for role in ("finance", "supervisor"):  # as workflows/erp_bridge.py raises it: one row per role
        Alert.objects.create(
            kind="reconciliation", for_role=role, message=message, link="/erp/reconciliations/1/", dedupe_key=f"x:{role}"
        )
    client.login(username="finance", password=PASSWORD)
    assert client.get("/erp/").content.decode().count(message) == 1


def test_todays_erp_export_is_written_by_a_worker_while_the_page_shows_its_progress(
    client, people, django_capture_on_commit_callbacks, monkeypatch
):
    from integrations.erp import exporter
    from integrations.erp.tasks import produce_daily_export

    for _ in range(5):
        make_order(status="paid")
    day = exporter.today().isoformat()
    client.login(username="finance", password=PASSWORD)
    with django_capture_on_commit_callbacks(execute=False) as queued:
        response = client.post("/erp/exports/", {"date": day})
    assert response.status_code == 302 and response["Location"] == f"/erp/exports/{day}/"  # not the file, seconds later
    assert len(queued) == 1
    waiting = client.get(f"/erp/exports/{day}/", HTTP_HX_REQUEST="true")
    assert 'id="export-bar"' in waiting.content.decode() and "HX-Redirect" not in waiting
    assert 'hx-trigger="every 500ms"' in client.get(f"/erp/exports/{day}/").content.decode()

    notes = []
    monkeypatch.setattr(exporter, "PROGRESS_EVERY", 2)
    exporter.write_export(exporter.today(), "/dev/null", lambda done, total: notes.append((done, total)))
    assert notes == [(0, 5), (2, 5), (4, 5)]

    produce_daily_export.apply(args=[day, "吴敏"]).get()  # the worker's run
    ready = client.get(f"/erp/exports/{day}/", HTTP_HX_REQUEST="true")
    assert ready["HX-Redirect"] == f"/erp/exports/{day}.xlsx"
    assert client.get(ready["HX-Redirect"]).status_code == 200
