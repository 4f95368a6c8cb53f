"""The order list and the order card through their URLs: filters, search, keyset pagination,
pinned query counts, every card action as htmx and as a plain form, CSRF, phone masking and access."""

import datetime
import re
from decimal import Decimal

import pytest
from django.db.models import Q
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from orders import selectors, services
from orders.access import Actor
from orders.models import AfterSalesCase, EventKind, Order, OrderEvent
from orders.selectors import PAGE_SIZE
from tests.conftest import PASSWORD, make_order, make_product
from tests.packing_fixtures import scan_every_item

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "order-card"}


def signed_in(role: str, *, csrf: bool = False) -> Client:
    # English so the assertions read the msgids; the Chinese catalogue is added later.
    client = Client(enforce_csrf_checks=csrf, HTTP_ACCEPT_LANGUAGE="en")
    assert client.login(username=role, password=PASSWORD)
    return client


def html(response) -> str:
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def listed(response) -> list[str]:
    return re.findall(r'id="order-row-([^"]+)"', html(response))


# --- The list ---------------------------------------------------------------------------------


def test_list_filters(people):
    reviewer = people["reviewer"]
    pending = make_order(status="pending_review")
    picking = make_order(status="picking")
    rush = make_order(
        status="paid", is_rush=True, rush_reason="客户明天出国", rush_deadline=timezone.now() + datetime.timedelta(hours=3)
    )
    held = make_order(status="paid")
    services.order_hold(order=held, by=Actor.of(people["service"]), reason="stock_shortage", until=None)
    fuzzy = make_order(status="pending_review")
    services.order_tag_add(order=fuzzy, by=Actor.system("ERP"), tag="fuzzy_address")
    overdue = make_order(status="picking", stage_entered_at=timezone.now() - datetime.timedelta(hours=5))
    overdue_but_held = make_order(status="picking", stage_entered_at=timezone.now() - datetime.timedelta(hours=5))
    services.order_hold(order=overdue_but_held, by=Actor.of(people["dispatcher"]), reason="other", until=None)
    mine = make_order(status="pending_review")
    services.order_claim(order=mine, by=Actor.of(reviewer))
    make_order(status="completed")

    client = signed_in("reviewer")
    every = listed(client.get("/orders/"))
    assert len(every) == 9

    def only(query: str) -> set[str]:
        return set(listed(client.get(f"/orders/?{query}")))

    assert only("status=picking") == {picking.order_number, overdue.order_number, overdue_but_held.order_number}
    assert only("tag=fuzzy_address") == {fuzzy.order_number}
    assert only("rush=1") == {rush.order_number}
    assert only("held=1") == {held.order_number, overdue_but_held.order_number}
    assert only("overdue=1") == {overdue.order_number}  # a hold pauses the clock
    assert only("mine=1") == {mine.order_number}
    assert only("status=pending_review&mine=1") == {mine.order_number}
    assert pending.order_number in only("status=pending_review")
    assert only("status=bogus") == set(every)  # an unknown filter value is ignored, not an error


@pytest.mark.parametrize(
    "typed", ["13912345678", "139 1234 5678", "139-1234-5678", "+86 139 1234 5678", "0086 13912345678", "１３９１２３４５６７８"]
)
def test_search_by_phone_in_any_format(people, typed):
    wanted = make_order(phone="13912345678")
    make_order(phone="13800138000")
    assert listed(signed_in("service").get("/orders/", {"q": typed})) == [wanted.order_number]


def test_search_by_order_number_and_tracking_number(people):
    wanted = make_order(status="packed", order_number="BL2026012400042")
    shipped = make_order(status="packed")
    make_order()
    services.order_ship(order=shipped, by=Actor.of(people["courier"]), carrier_code="shunfeng", tracking_number="SF1400012345678")
    client = signed_in("service")
    assert listed(client.get("/orders/", {"q": " BL2026012400042 "})) == [wanted.order_number]
    assert listed(client.get("/orders/", {"q": "sf1400012345678"})) == [shipped.order_number]
    assert listed(client.get("/orders/", {"q": "BL20260124"})) == []  # exact matches only
    assert "No orders match." in html(client.get("/orders/", {"q": "nothing-like-this"}))


def test_keyset_pagination_continues_without_duplicates(people):
    base = timezone.now() - datetime.timedelta(hours=1)
    # 20 orders share one timestamp, so the page boundary falls inside a tie broken by id.
    for index in range(PAGE_SIZE + 15):
        make_order(placed_at=base - datetime.timedelta(minutes=index if index < 40 else 40))
    client = signed_in("reviewer")
    first_page = client.get("/orders/")
    first = listed(first_page)
    assert len(first) == PAGE_SIZE
    cursor = re.search(r'cursor=([^"&]+)"', html(first_page)).group(1)
    second_page = client.get("/orders/", {"cursor": cursor}, **{"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "load-more"})
    second = listed(second_page)
    assert len(second) == 15
    assert "<html" not in html(second_page)  # only the next rows, appended in place of the link
    assert 'id="load-more"' not in html(second_page)
    assert not set(first) & set(second)
    expected = list(Order.objects.order_by("-placed_at", "-id").values_list("order_number", flat=True))
    assert first + second == expected
    # The plain link (no htmx) renders the whole page for the second page too.
    assert listed(client.get("/orders/", {"cursor": cursor})) == second


def test_list_rows_are_the_orms_for_every_filter_shape_and_cursor(people):
    """The row query's SQL is kept per filter shape (orders/selectors.py _page_rows) with the
    parameters compiled per request: each page read twice (the second from the kept SQL, at
    another cursor) is what the ORM query reads."""
    base = timezone.now() - datetime.timedelta(hours=1)
    for index in range(12):
        make_order(
            placed_at=base - datetime.timedelta(minutes=index // 2),  # ties, broken by id
            is_rush=index % 3 == 0,
            is_held=index % 4 == 0,
            claimed_by=people["reviewer"] if index % 5 == 0 else None,
            phone="13800138000" if index % 2 else "13900139000",
        )
    newest = Order.objects.order_by("-placed_at", "-id")
    for params in ({}, {"rush": "1"}, {"held": "1", "open": "1"}, {"mine": "1"}, {"q": "13900139000"}, {"q": "nothing"}):
        filters = selectors.OrderFilters.from_params(params)
        for after in (newest[2], newest[5], newest[7]):
            page = selectors.order_list(user=people["reviewer"], filters=filters, cursor=selectors.encode_cursor(after))
            expected = selectors.filtered_orders(user=people["reviewer"], filters=filters).filter(
                Q(placed_at__lt=after.placed_at) | Q(placed_at=after.placed_at, pk__lt=after.pk)
            )
            rows = [
                selectors._row(*values) for values in expected.order_by("-placed_at", "-id").values_list(*selectors.ROW_FIELDS)
            ]
            assert [(row.pk, row.claimed_by_name, row.placed_at, row.total_amount, row.is_held) for row in page.orders] == [
                (row.pk, row.claimed_by_name, row.placed_at, row.total_amount, row.is_held) for row in rows
            ], params


def test_filter_change_renders_only_the_table(people):
    make_order(status="paid")
    response = signed_in("reviewer").get("/orders/", {"status": "paid"}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="order-table")
    body = html(response)
    assert body.lstrip().startswith('<div id="order-table"') and "<html" not in body


def test_list_query_count_is_pinned(people, django_assert_max_num_queries):
    for index in range(PAGE_SIZE + 5):
        order = make_order(status="picking", is_rush=index % 3 == 0)
        if index % 4 == 0:
            services.order_tag_add(order=order, by=Actor.system("ERP"), tag="invoice_pending")
        if index % 5 == 0:
            services.order_claim(order=order, by=Actor.of(people["dispatcher"]))
    client = signed_in("dispatcher")
    # session, user, roles, the page of orders (with customer and operator joined), their open
    # tags, and the nav's count of my open status checks
    with django_assert_max_num_queries(6):
        rows = listed(client.get("/orders/"))
    assert len(rows) == PAGE_SIZE


def test_card_query_count_is_pinned(people, django_assert_max_num_queries):
    order = busy_order(people)
    client = signed_in("supervisor")
    # session, user, roles, the order with its customer, 10 prefetches, the repeat-purchase count,
    # the pack and cancel guards (5 for pack), the stage rule, tickets and customer pushes (WeChat
    # and SMS); independent of how many lines, notes, events.
    with django_assert_max_num_queries(24):
        html(client.get(f"/orders/{order.order_number}/"))


def busy_order(people) -> Order:
    """An order with something in every part of the card."""
    milk = make_product(price="298.00")
    yoghurt = make_product(cold_chain=True, price="45.90")
    gift = make_product(price="0.00")
    order = make_order(
        status="picking", lines=[(milk, 2), (yoghurt, 1)], gift=gift, phone="13812345678", carrier_code="zhongtong"
    )
    service = Actor.of(people["service"])
    services.order_add_note(order=order, by=service, body="赠品口水巾不要漏放", kind="warning", audience="warehouse")
    services.order_add_note(order=order, by=service, body="客户要求明日12点前送达", kind="customer_request", audience="")
    services.feedback_request(order=order, by=service, to_role="dispatcher", question="今天能发吗？")
    services.order_tag_add(order=order, by=Actor.of(people["reviewer"]), tag="invoice_pending")
    services.after_sales_open(order=order, by=service, kind="missing_gift", reason="上次少发赠品", sku_code=gift.sku_code)
    services.order_claim(order=order, by=Actor.of(people["dispatcher"]))
    return order


# --- The card ---------------------------------------------------------------------------------


def test_card_shows_five_dimensions_and_the_blocked_pack_button(people):
    order = busy_order(people)
    body = html(signed_in("packer").get(f"/orders/{order.order_number}/"))
    for dimension in ("dim-customer", "dim-product", "dim-process", "dim-collaboration", "dim-risk"):
        assert f'id="{dimension}"' in body
    assert "赠品口水巾不要漏放" in body and "今天能发吗？" in body and "Invoice pending" in body and "上次少发赠品" in body
    pack = re.search(r'<form[^>]*id="transition-pack".*?</form>', body, re.S).group(0)
    assert re.search(r"<button[^>]*disabled", pack)
    assert "it must use the SF cold chain channel, not ZTO; change its carrier before packing." in pack
    # The pack verification (orders/packing.py), as on the PDA: nothing scanned yet, two notes to read.
    assert "Every item, gifts included, must be scanned at the packing station (PDA) before packing." in pack
    assert "0 of 2 scanned." in pack
    assert "2 note(s) for the warehouse not yet acknowledged by you: 客户要求明日12点前送达" in pack
    assert f'href="/pda/{order.order_number}/"' in pack
    assert 'id="transition-approve"' not in body  # only what this role may do now


def test_card_offers_the_enabled_transition(people):
    order = make_order(status="pending_review")
    body = html(signed_in("reviewer").get(f"/orders/{order.order_number}/"))
    approve = re.search(r'<form[^>]*id="transition-approve".*?</form>', body, re.S).group(0)
    assert "disabled" not in approve and 'class="blocker"' not in approve
    assert f'name="version" value="{order.version}"' in approve


def test_unknown_order_is_404(people):
    assert signed_in("reviewer").get("/orders/NO-SUCH-ORDER/").status_code == 404


# --- Every action, as htmx and as a plain form ---------------------------------------------------


def _note(order, people):
    return services.order_add_note(
        order=order, by=Actor.of(people["service"]), body="看一下", kind="warning", audience="warehouse"
    )


def _question(order, people):
    return services.feedback_request(order=order, by=Actor.of(people["service"]), to_role="dispatcher", question="能发吗")


def _case(order, people):
    return services.after_sales_open(
        order=order, by=Actor.of(people["service"]), kind="refund", reason="不要了", amount=Decimal("10")
    )


def _change(order, people):
    return services.address_change_request(
        order=order,
        by=Actor.of(people["service"]),
        receiver_name="王丽",
        receiver_phone="13800138000",
        province="浙江省",
        city="杭州市",
        district="滨江区",
        address="江南大道1号",
    )


def _applied_while_packed(order, people):
    services.address_change_apply(change=_change(order, people), by=Actor.of(people["reviewer"]))


def _scanned(order, people):
    scan_every_item(order, people["packer"])


def _hold(order, people):
    services.order_hold(order=order, by=Actor.of(people["dispatcher"]), reason="other", until=None)


def _claim(order, people):
    services.order_claim(order=order, by=Actor.of(people["dispatcher"]))


def _tag(order, people):
    services.order_tag_add(order=order, by=Actor.of(people["reviewer"]), tag="invoice_pending")


# action → (starting status, role, set-up returning an object whose id the form sends, form data, check on the fresh order)
ACTION_CASES = {
    "approve": ("pending_review", "reviewer", None, {}, lambda o: o.status == "paid"),
    "start_picking": ("paid", "dispatcher", None, {}, lambda o: o.status == "picking"),
    "pack": ("picking", "packer", _scanned, {}, lambda o: o.status == "packed"),
    "ship": ("packed", "courier", None, {"carrier_code": "yunda", "tracking_number": "YD88"}, lambda o: o.status == "shipped"),
    "complete": ("shipped", "service", None, {}, lambda o: o.status == "completed"),
    "waybill": (
        "shipped",
        "courier",
        None,
        {"change": "split", "carrier_code": "yunda", "tracking_number": "YD89"},
        lambda o: o.shipments.filter(tracking_number="YD89").exists(),
    ),
    "cancel": ("paid", "service", None, {"reason": "重复下单"}, lambda o: o.status == "cancelled"),
    "carrier": ("paid", "dispatcher", None, {"carrier_code": "shunfenglengyun"}, lambda o: o.carrier_code == "shunfenglengyun"),
    "hold": (
        "paid",
        "dispatcher",
        None,
        {"reason": "stock_shortage", "until": "2099-01-01T18:00", "note": "补货"},
        lambda o: o.is_held,
    ),
    "release": ("paid", "dispatcher", _hold, {}, lambda o: not o.is_held),
    "claim": ("paid", "dispatcher", None, {}, lambda o: o.claimed_by is not None),
    "unclaim": ("paid", "dispatcher", _claim, {}, lambda o: o.claimed_by is None),
    "note": (
        "paid",
        "sales",
        None,
        {"body": "客户来电催单", "kind": "info", "audience": ""},
        lambda o: o.notes.filter(body="客户来电催单").exists(),
    ),
    "acknowledge": ("picking", "packer", _note, {}, lambda o: o.notes.get().acknowledgements.exists()),
    "ask": ("paid", "sales", None, {"to_role": "finance", "question": "发票？"}, lambda o: o.feedback_requests.exists()),
    "answer": ("paid", "dispatcher", _question, {"answer": "能"}, lambda o: o.feedback_requests.get().answer == "能"),
    "tag": ("paid", "reviewer", None, {"tag": "high_risk_refund"}, lambda o: o.tags.filter(tag="high_risk_refund").exists()),
    "resolve_tag": (
        "paid",
        "finance",
        _tag,
        {"tag": "invoice_pending", "resolution": "已开"},
        lambda o: o.tags.get().resolved_at,
    ),
    "open_case": (
        "completed",
        "service",
        None,
        {"kind": "refund", "reason": "罐体凹陷", "amount": "59.90"},
        lambda o: o.after_sales.get().amount == Decimal("59.90"),
    ),
    "decide_case": (
        "completed",
        "finance",
        _case,
        {"decision": "approve", "reason": "属实"},
        lambda o: o.refund_amount == Decimal("10.00"),
    ),
    "correct_address": (
        "pending_review",
        "reviewer",
        None,
        {
            "receiver_name": "王丽",
            "receiver_phone": "13800138000",
            "province": "浙江省",
            "city": "杭州市",
            "district": "滨江区",
            "address": "江南大道2号",
        },
        lambda o: o.address == "江南大道2号",
    ),
    "request_address": (
        "paid",
        "service",
        None,
        {
            "receiver_name": "王丽",
            "receiver_phone": "13800138000",
            "province": "浙江省",
            "city": "杭州市",
            "address": "江南大道1号",
        },
        lambda o: o.address_changes.exists(),
    ),
    "resolve_address": ("paid", "reviewer", _change, {"decision": "apply"}, lambda o: o.address == "江南大道1号"),
    # Issue 13: an address applied while packed leaves a waybill to reprint before shipping.
    "confirm_reprint": (
        "packed",
        "packer",
        _applied_while_packed,
        {},
        lambda o: not o.address_changes.filter(reprint_pending=True).exists(),
    ),
}
ACTION_CASES["add_gift"] = (
    "paid",
    "service",
    lambda order, people: make_product(sku="GIFT-ICE"),
    {"sku_code": "GIFT-ICE", "quantity": "1", "rule": "满199送冰袋"},
    lambda o: o.lines.filter(is_gift=True, gift_rule="满199送冰袋", gift_added_by="小服").exists(),
)
ID_FIELDS = {"acknowledge": "note_id", "answer": "request_id", "decide_case": "case_id", "resolve_address": "change_id"}


def test_every_action_has_a_case():
    from orders.views import ACTIONS

    assert set(ACTIONS) == set(ACTION_CASES)


@pytest.mark.parametrize("htmx", [True, False], ids=["htmx", "plain"])
@pytest.mark.parametrize("action", ACTION_CASES)
def test_action(people, action, htmx):
    status, role, setup, data, check = ACTION_CASES[action]
    order = make_order(status=status)
    made = setup(order, people) if setup else None
    order.refresh_from_db()
    data = {**data, "version": order.version}
    if action in ID_FIELDS:
        data[ID_FIELDS[action]] = made.pk
    client = signed_in(role)
    url = f"/orders/{order.order_number}/{action}/"
    if htmx:
        body = html(client.post(url, data, **HTMX))
        assert body.lstrip().startswith('<article id="order-card"') and "<html" not in body
        assert 'id="card-notice"' in body and 'id="card-error"' not in body
    else:
        response = client.post(url, data)
        assert response.status_code == 302 and response["Location"] == f"/orders/{order.order_number}/"
        page = html(client.get(response["Location"]))
        assert 'class="msg success"' in page
    order.refresh_from_db()
    assert check(order)


def test_refused_action_is_explained_on_the_fresh_card(people):
    order = make_order(status="picking", lines=[(make_product(cold_chain=True), 1)])
    client = signed_in("packer")
    body = html(client.post(f"/orders/{order.order_number}/pack/", {"version": order.version}, **HTMX))
    assert 'id="card-error"' in body and "SF cold chain channel" in body
    response = client.post(f"/orders/{order.order_number}/pack/", {"version": order.version})
    assert response.status_code == 302
    assert "SF cold chain channel" in html(client.get(response["Location"]))
    order.refresh_from_db()
    assert order.status == "picking"


def test_stale_card_is_told_who_changed_the_order(people):
    order = make_order(status="pending_review")
    stale_version = order.version
    services.order_tag_add(order=order, by=Actor.of(people["service"]), tag="invoice_pending")
    body = html(signed_in("reviewer").post(f"/orders/{order.order_number}/approve/", {"version": stale_version}, **HTMX))
    assert "小服 changed this order at" in body
    assert f'data-version="{stale_version + 1}"' in body  # the fresh card, ready for a second try
    order.refresh_from_db()
    assert order.status == "pending_review"


def test_unknown_action_is_404_and_get_is_refused(people):
    order = make_order()
    client = signed_in("supervisor")
    assert client.post(f"/orders/{order.order_number}/explode/", {}).status_code == 404
    assert client.get(f"/orders/{order.order_number}/approve/").status_code == 405


# --- CSRF -------------------------------------------------------------------------------------


def test_actions_need_the_csrf_token(people):
    order = make_order(status="pending_review")
    client = signed_in("reviewer", csrf=True)
    assert client.post(f"/orders/{order.order_number}/approve/", {"version": order.version}, **HTMX).status_code == 403
    order.refresh_from_db()
    assert order.status == "pending_review"
    page = html(client.get(f"/orders/{order.order_number}/"))
    # htmx sends the token from <body hx-headers>; plain forms carry it as a field.
    token = re.search(r'hx-headers=\'\{"X-CSRFToken": "([^"]+)"\}\'', page).group(1)
    assert re.search(r'name="csrfmiddlewaretoken" value="[^"]+"', page)
    response = client.post(f"/orders/{order.order_number}/approve/", {"version": order.version}, HTTP_X_CSRFTOKEN=token, **HTMX)
    assert response.status_code == 200
    order.refresh_from_db()
    assert order.status == "paid"


# --- Phone numbers ----------------------------------------------------------------------------

PHONE = "13812345678"
ANY_MOBILE = re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)")


@pytest.mark.parametrize("role", ["dispatcher", "packer", "courier"])
def test_phone_is_masked_for_the_warehouse_and_couriers(people, role):
    order = make_order(status="picking", phone=PHONE)
    client = signed_in(role)
    for page in (html(client.get(f"/orders/{order.order_number}/")), html(client.get("/orders/"))):
        assert not ANY_MOBILE.search(page)
        assert "138****5678" in page
    assert 'id="reveal-phone"' in html(client.get(f"/orders/{order.order_number}/"))


@pytest.mark.parametrize("role", ["sales", "reviewer", "service", "finance", "supervisor"])
def test_phone_is_shown_in_full_to_other_roles(people, role):
    order = make_order(status="picking", phone=PHONE)
    client = signed_in(role)
    card = html(client.get(f"/orders/{order.order_number}/"))
    assert PHONE in card and "****" not in card and 'id="reveal-phone"' not in card
    assert PHONE in html(client.get("/orders/"))


@pytest.mark.parametrize("htmx", [True, False], ids=["htmx", "plain"])
def test_revealing_the_phone_is_logged(people, htmx):
    order = make_order(status="picking", phone=PHONE)
    client = signed_in("packer")
    response = client.post(f"/orders/{order.order_number}/phone/", **({"HTTP_HX_REQUEST": "true"} if htmx else {}))
    body = html(response)
    if htmx:
        assert body.strip() == PHONE
    else:
        assert f'<span id="receiver-phone">{PHONE}</span>' in body
    [event] = OrderEvent.objects.filter(order=order, kind=EventKind.PHONE_REVEAL)
    assert (event.actor_user, event.actor_role) == (people["packer"], "packer")


# --- Access -----------------------------------------------------------------------------------


def order_urls(order: Order) -> list[tuple[str, str]]:
    from orders.views import ACTIONS

    urls = [
        ("get", reverse("order_list")),
        ("get", reverse("order_card", args=[order.order_number])),
        ("post", reverse("phone_reveal", args=[order.order_number])),
    ]
    urls += [("post", reverse("order_action", args=[order.order_number, action])) for action in ACTIONS]
    return urls


def test_outsider_is_refused_everywhere(people):
    order = make_order(status="pending_review")
    client = signed_in("outsider")
    for method, url in order_urls(order):
        assert getattr(client, method)(url, {}).status_code == 403, url
    assert not OrderEvent.objects.filter(order=order).exists()


def test_anonymous_is_sent_to_log_in_everywhere(db):
    order = make_order(status="pending_review")
    client = Client()
    for method, url in order_urls(order):
        response = getattr(client, method)(url, {})
        assert response.status_code == 302, url
        assert response["Location"].startswith(f"/login/?next={url}"), url


@pytest.mark.parametrize(
    ("role", "landing"),
    [
        ("supervisor", "/board/"),
        ("packer", "/pda/"),
        ("service", "/service/lookup/"),
        ("finance", "/erp/"),
        ("reviewer", "/orders/"),
        ("sales", "/orders/"),
        ("dispatcher", "/orders/"),
        ("courier", "/orders/"),
    ],
)
def test_each_role_lands_on_its_own_screen(people, role, landing):
    response = signed_in(role).get("/")
    assert response.status_code == 302 and response["Location"] == landing


def test_an_open_case_offers_its_decision_form_to_the_roles_that_decide(people):
    """The after-sales list is written in Python (orders/templatetags/cockpit.py card_cases): the
    form, its CSRF token and the case id for service, finance and supervisors; none for others."""
    order = make_order(status="shipped")
    case = AfterSalesCase.objects.create(
        order=order,
        kind="return",
        status="open",
        reason="客户 13812345678 说破了",
        opened_by=people["service"],
        amount=Decimal("12.50"),
    )
    page = html(signed_in("service", csrf=True).get(f"/orders/{order.order_number}/"))
    item = page.split(f'id="case-{case.pk}"')[1].split("</li>")[0]
    assert f'name="case_id" value="{case.pk}"' in item and 'name="csrfmiddlewaretoken"' in item and "¥12.50" in item
    assert 'value="approve"' in item and "13812345678" in item
    packer = html(signed_in("packer").get(f"/orders/{order.order_number}/"))
    packed_item = packer.split(f'id="case-{case.pk}"')[1].split("</li>")[0]
    assert "case_id" not in packed_item and "13812345678" not in packed_item and "138****5678" in packed_item
