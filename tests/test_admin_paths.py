"""The admin is an entry path too (issue 11): it must not change an order behind the services'
back. Only master data is registered there; adding a model to the admin means adding it here."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group, User

from orders.models import Customer, Product
from tests.conftest import PASSWORD, make_order

pytestmark = pytest.mark.django_db

# Master data a supervisor maintains in the admin, and Django's own users and roles.
MASTER_DATA = {Product, Customer, User, Group}


def test_only_master_data_is_in_the_admin():
    ours = {model for model in admin.site._registry if model.__module__.split(".")[0] in ("orders", "workflows", "integrations")}
    assert ours - MASTER_DATA == set(), "an order-domain model in the admin bypasses orders/services.py"


def test_a_superuser_finds_no_order_page_to_change(client, people):
    people["supervisor"].is_staff = people["supervisor"].is_superuser = True
    people["supervisor"].save()
    client.login(username="supervisor", password=PASSWORD)
    order = make_order(status="paid")
    assert client.get("/admin/").status_code == 200
    for path in (
        "/admin/orders/order/",
        "/admin/orders/order/add/",
        f"/admin/orders/order/{order.pk}/change/",
        f"/admin/orders/order/{order.pk}/delete/",
        "/admin/orders/orderline/",
        "/admin/orders/orderevent/",
        "/admin/orders/stagerule/",
    ):
        assert client.get(path).status_code == 404, path
    # The product master stays editable there.
    assert client.get("/admin/orders/product/add/").status_code == 200
