"""Saved views (issue 17): private or shared with one role, the defaults each role starts with,
the landing page, the counts; a view never shows what the role may not see."""

from __future__ import annotations

import pytest
from django.urls import reverse

from orders import selectors
from orders.models import OrderStatus
from tests.conftest import PASSWORD, make_order, make_product
from workflows import saved_views
from workflows.models import SavedView

pytestmark = pytest.mark.usefixtures("default_saved_views")


def _names(user) -> set[str]:
    return set(saved_views.visible_views(user).values_list("name", flat=True))


@pytest.mark.django_db
def test_each_role_starts_with_its_shared_views(people):
    assert {"待我处理", "地址模糊", "今日超时"} <= _names(people["reviewer"])
    assert "冷链待打包" in _names(people["packer"]) and "地址模糊" not in _names(people["packer"])
    assert {"今日超时", "🔥加急", "挂起中"} <= _names(people["supervisor"])
    assert _names(people["outsider"]) == set()


@pytest.mark.django_db
def test_private_and_shared_views_are_seen_only_by_whom_they_are_for(client, people):
    reviewer, packer = people["reviewer"], people["packer"]
    mine = saved_views.saved_view_create(user=reviewer, name="我的冷链", filters=selectors.OrderFilters(cold=True))
    shared = saved_views.saved_view_create(
        user=reviewer, name="审核组：加急", filters=selectors.OrderFilters(rush=True), share_with_role="reviewer"
    )
    assert {"我的冷链", "审核组：加急"} <= _names(reviewer)
    assert not {"我的冷链", "审核组：加急"} & _names(packer)
    # Not even by its number: a view one may not see is a 404, never a hint.
    client.login(username="packer", password=PASSWORD)
    assert client.get(reverse("saved_view_open", args=[mine.pk])).status_code == 404
    assert client.get(reverse("saved_view_open", args=[shared.pk])).status_code == 404
    assert client.post(reverse("saved_view_pin", args=[shared.pk])).status_code == 404
    assert "审核组" not in client.get(reverse("saved_view_counts")).content.decode()
    # Sharing with a role one does not hold is refused; a supervisor keeps shared views in order.
    with pytest.raises(saved_views.ViewRefused):
        saved_views.saved_view_create(user=reviewer, name="给打包", filters=selectors.OrderFilters(), share_with_role="packer")
    with pytest.raises(saved_views.ViewRefused):
        saved_views.saved_view_delete(view=shared, user=people["service"])
    saved_views.saved_view_delete(view=shared, user=people["supervisor"])
    client.login(username="outsider", password=PASSWORD)
    assert client.get(reverse("saved_view_open", args=[mine.pk])).status_code == 403


@pytest.mark.django_db
def test_a_shared_view_runs_as_the_person_looking(client, people):
    """ "待我处理" is each viewer's own work; a warehouse role opening a shared view sees the phone
    masked, exactly as on its own list."""
    reviewing = make_order(status="pending_review", phone="13812345678")
    make_order(status="picking", phone="13812345678")
    for role, status in (("reviewer", OrderStatus.PENDING_REVIEW), ("packer", OrderStatus.PICKING)):
        view = SavedView.objects.get(shared_with_role=role, name="待我处理")
        counts = dict(saved_views.view_counts(people[role]))
        assert counts[view] == 1
        assert list(
            selectors.filtered_orders(user=people[role], filters=saved_views.filters_of(view)).values_list("status", flat=True)
        ) == [status]
    view = SavedView.objects.get(shared_with_role="supervisor", name="今日超时")
    supervisor_view = saved_views.saved_view_create(
        user=people["supervisor"],
        name="全部待审",
        filters=selectors.OrderFilters(status="pending_review"),
        share_with_role="packer",
    )
    client.login(username="packer", password=PASSWORD)
    page = client.get(reverse("saved_view_open", args=[supervisor_view.pk]), follow=True).content.decode()
    assert reviewing.order_number in page
    assert "138****5678" in page and "13812345678" not in page
    assert client.get(reverse("saved_view_open", args=[view.pk])).status_code == 404


@pytest.mark.django_db
def test_save_pin_and_land(client, people):
    cold = make_order(status="picking", lines=[(make_product(cold_chain=True), 1)], carrier_code="shunfenglengyun")
    make_order(status="picking")
    client.login(username="dispatcher", password=PASSWORD)
    response = client.post(reverse("saved_view_create"), {"name": "冷链拣货", "status": "picking", "cold": "1", "share": ""})
    view = SavedView.objects.get(name="冷链拣货")
    assert view.owner == people["dispatcher"] and view.filters == {"status": "picking", "cold": "1"}
    page = client.get(response["Location"]).content.decode()
    assert cold.order_number in page and page.count('class="order-row') == 1
    panel = client.get(reverse("saved_view_counts") + f"?view={view.pk}").content.decode()
    assert f'id="saved-view-count-{view.pk}">1<' in panel and f'id="saved-view-{view.pk}" class="current"' in panel
    client.post(reverse("saved_view_pin", args=[view.pk]))
    landing = client.get(reverse("home"))
    assert landing.status_code == 302 and f"view={view.pk}" in landing["Location"] and "cold=1" in landing["Location"]
    client.post(reverse("saved_view_pin", args=[view.pk]), {"unpin": "1"})
    assert client.get(reverse("home"))["Location"] == reverse("order_list")
    # Anonymous visitors still go to the login page.
    client.logout()
    assert client.get(reverse("home"))["Location"] == reverse("login")
