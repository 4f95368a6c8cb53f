"""What a new user stumbled on (issue 19), the behaviour half: every promise a page makes holds
and every action answers."""

import datetime
import re

import pytest
from django.utils import timezone

from orders.models import Order
from tests.conftest import PASSWORD, make_order
from tests.logistics_fixtures import fake_wechat  # noqa: F401 - fixture
from tests.test_tickets_stalled import tracked_shipment
from workflows import tracking
from workflows.models import Ticket

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
    assert listed.count('class="rush"') == 21  # the open ones only


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
