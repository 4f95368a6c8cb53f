"""What one approval through HTTP costs in queries (issue 14: ≤ 6 ms of CPU per committed
transition), pinned so it cannot grow with the order's size or creep up unnoticed."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from orders import services
from orders.access import Actor
from orders.models import Order, OrderStatus
from tests.conftest import PASSWORD, make_order, make_product

pytestmark = pytest.mark.django_db


def approve(client, order: Order) -> list[str]:
    with CaptureQueriesContext(connection) as queries:
        response = client.post(f"/orders/{order.order_number}/approve/")
    assert response.status_code == 302
    order.refresh_from_db()
    assert order.status == OrderStatus.PAID
    return [query["sql"] for query in queries.captured_queries]


def test_one_approval_runs_the_same_few_queries_whatever_the_order_holds(client, people):
    small = make_order()
    big = make_order(lines=[(make_product(), 1) for _ in range(12)])
    service = Actor.of(people["service"])
    for n in range(8):
        services.order_add_note(order=big, by=service, body=f"备注{n}", audience="warehouse")
    client.login(username="reviewer", password=PASSWORD)
    approve(client, make_order())  # the first request of a session pays for loading it
    few, many = approve(client, small), approve(client, big)
    assert len(many) == len(few) + 1, many
    # session, user, roles; the savepoint, the order locked by its number with the facts the
    # approve guards and the gift check need (lines? an open fuzzy-address tag? notes?), the stage
    # rule, the UPDATE, the event, the release. No line is loaded and nothing is sent to the
    # broker for an approval; the notes are read only when the order has some (the big one has 8).
    assert len(few) <= 9, few
    assert len(many) <= 10, many
    assert not any('"orders_orderline"."id"' in sql for sql in many)


def test_an_unknown_order_is_not_found_without_reading_it_first(client, people):
    client.login(username="reviewer", password=PASSWORD)
    assert client.post("/orders/T-NO-SUCH-ORDER/approve/").status_code == 404


@pytest.mark.skipif(
    not connection.settings_dict["OPTIONS"].get("prepare_threshold"), reason="SQLite, or DB_PREPARE_THRESHOLD=off"
)
def test_a_connection_that_has_approved_a_few_orders_no_longer_plans_the_lock_again(client, people):
    # psycopg prepares a statement a connection has run prepare_threshold (5) times
    # (beile/settings.py): PostgreSQL then neither parses nor plans it per transition.
    client.login(username="reviewer", password=PASSWORD)
    for _ in range(6):
        approve(client, make_order())
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        prepared = [row[0] for row in cursor.fetchall()]
    assert any("fact_has_lines" in statement and "FOR UPDATE" in statement for statement in prepared), prepared
    assert any(statement.startswith('UPDATE "orders_order"') for statement in prepared), prepared
