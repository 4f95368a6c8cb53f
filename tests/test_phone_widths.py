"""Every page a phone-using role opens (sales, packer, courier), plus the supervisor pages that
were seen overflowing, fits a 360 px and a 400 px wide phone: the page never scrolls sideways.
A wide table scrolls inside its own box (static/css/cockpit.css), never the whole page."""

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command

from beile.management.commands.seed_demo import demo_password
from orders.models import Order
from orders.rules import ALL_ROLES
from tests.conftest import log_in
from workflows.models import Ticket

WIDTHS = (360, 400)


def pages_of(role: str) -> list[str]:
    order = Order.objects.filter(status="picking").order_by("pk").first() or Order.objects.order_by("pk").first()
    ticket = Ticket.objects.order_by("pk").first()
    common = ["/orders/", f"/orders/{order.order_number}/"]
    return {
        "sales": [*common, "/service/lookup/", f"/service/lookup/?q={order.order_number}", "/r/", "/health/checks/"],
        "packer": [*common, "/pda/", f"/pda/{order.order_number}/", "/health/checks/"],
        "courier": [*common, "/tickets/", *([f"/tickets/{ticket.pk}/"] if ticket else [])],
        # Not phone roles, but the issue saw these overflow on a phone too.
        "supervisor": ["/board/", "/board/rules/", "/health/", "/tickets/", "/erp/"],
    }[role]


# A mobile browser widens its layout viewport to fit a too-wide page (and zooms out), so
# window.innerWidth grows with the page: compare against the phone's own width instead.
OVERFLOW = """(width) => {
  const wide = [...document.querySelectorAll('body *')]
    .filter(e => e.getBoundingClientRect().right > width + 1 && getComputedStyle(e).position !== 'fixed')
    .slice(0, 3).map(e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + (e.className ? '.' + String(e.className).split(' ')[0] : ''));
  return {scroll: document.documentElement.scrollWidth, inner: window.innerWidth, wide};
}"""


@pytest.mark.browser
def test_no_page_scrolls_sideways_on_a_phone(transactional_db, new_page, live_server):
    for role in ALL_ROLES:
        Group.objects.get_or_create(name=role)
    call_command("seed_demo", orders=300, stdout=open("/dev/null", "w"))
    overflowing = []
    for role in ("sales", "packer", "courier", "supervisor"):
        for width in WIDTHS:
            page = new_page(width=width, height=780, mobile=True)
            log_in(page, live_server, role, demo_password(role))
            for path in pages_of(role):
                response = page.goto(f"{live_server.url}{path}")
                assert response.status < 400, (role, path, response.status)
                result = page.evaluate(OVERFLOW, width)
                if max(result["scroll"], result["inner"]) > width:
                    overflowing.append(f"{role} {width}px {path}: {result['scroll']} px wide ({', '.join(result['wide'])})")
    assert not overflowing, "pages wider than the phone:\n" + "\n".join(overflowing)
