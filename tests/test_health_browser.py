"""The supervisor's journey on the demo data: open the health page, see every measure with its
chart, and follow a red one to the orders behind it and on to an order's card."""

import datetime
import re

import pytest
import time_machine
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.utils import timezone

from beile.management.commands.seed_demo import demo_password
from orders.rules import ALL_ROLES
from tests.conftest import log_in
from workflows.health.measures import BUSINESS_TZ, MEASURES
from workflows.health.selectors import HISTORY_DAYS


@pytest.mark.browser
def test_supervisor_follows_a_red_measure_to_the_orders_behind_it(transactional_db, new_page, live_server):
    # 16:00 today: the day's sampling (10:00) has happened and the day has data. Today's real date
    # keeps the browser's session cookie valid.
    afternoon = datetime.datetime.combine(timezone.localdate(timezone.now(), BUSINESS_TZ), datetime.time(16), tzinfo=BUSINESS_TZ)
    with time_machine.travel(afternoon, tick=True):
        # A transactional test run before this one flushes the role groups the migration made.
        for role in ALL_ROLES:
            Group.objects.get_or_create(name=role)
        call_command("seed_demo", orders=600, stdout=open("/dev/null", "w"))
        page = new_page()
        log_in(page, live_server, "supervisor", demo_password("supervisor"))

        page.click("#nav-health")
        page.wait_for_url(re.compile(r"/health/$"))
        rows = page.locator("#health-table tbody tr")
        assert rows.count() == len(MEASURES)
        for index in range(len(MEASURES)):
            row = rows.nth(index)
            assert row.locator("svg.chart rect.bar").count() == HISTORY_DAYS
            assert row.locator(".value").inner_text().strip()
        assert page.locator("#health-table tbody tr.state-none").count() == 0  # the demo has data for every measure

        red = page.locator("#health-table tbody tr.state-bad").first
        measure_name = red.locator("th").inner_text()
        red.locator("a.behind").click()
        page.wait_for_url(re.compile(r"/health/[a-z_]+/$"))
        assert page.locator("h1").inner_text().startswith(measure_name.split("\n")[0].strip())
        flagged = page.locator("#behind-orders tr.off-target")
        assert flagged.count() >= 1

        order_number = flagged.first.locator("a").inner_text()
        flagged.first.locator("a").click()
        page.wait_for_url(re.compile(rf"/orders/{order_number}/$"))
        assert order_number in page.locator("main").inner_text()
