"""The security matrix, generated from the URL resolver so that every view added later is covered.

Every URL pattern in beile.urls (admin, i18n and static files aside) must declare who may use it:
`@role_required(...)` (sets `allowed_roles`) or `@public_endpoint("why")` (sets `public_reason`).
Then, for every URL × every role + "outsider" (signed in, no role) + anonymous:
anonymous → the login page; a role not allowed → 403; an allowed role → served (200, or a
redirect after a POST; other statuses only where EXPECTED_OTHER_STATUSES documents them).
Every response carries the Content-Security-Policy and no page has inline script, inline style
or event-handler attributes; no page shown to a masked role holds a full mobile number; a POST
without a CSRF token is refused everywhere except the signed webhooks listed below; an unknown
order number is a plain 404 (and no different from a real one to those who may not look).
The same holds for object ids, and an id of another order's note, case, address change or
question posted to an order's action is not found. The customer's self-service page masks
personal data; the signed webhooks refuse bad signatures, stale timestamps and replays.
Login throttling (django-axes) is checked at the end.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import re
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from urllib.parse import urlencode

import pytest
import time_machine
from django.contrib.auth.models import User
from django.core.cache import cache
from django.http import HttpResponse
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, resolve, reverse
from django.utils import timezone

from beile.middleware import CONTENT_SECURITY_POLICY
from integrations.erp import exporter, inbound
from integrations.erp.models import ImportRun, ImportState, InboundEvent
from integrations.erp.reconciliation import reconciliation_run
from integrations.kuaidi100 import client as kuaidi100_client
from integrations.wechat.models import CustomerMessage
from orders import services
from orders.access import Actor
from orders.models import (
    AddressChangeRequest,
    AfterSalesCase,
    AfterSalesKind,
    EventKind,
    FeedbackRequest,
    NoteAcknowledgement,
    Order,
    OrderEvent,
)
from orders.rules import ALL_ROLES, MASKED_PHONE_ROLES
from tests.conftest import PASSWORD, make_order
from tests.erp_fixtures import line as erp_line
from tests.erp_fixtures import write_csv
from workflows.frontline import selfservice
from workflows.health.models import ConsistencySample, ConsistencyTask
from workflows.models import Alert, BulkBatch, ExportRun, SavedView, Ticket, TicketKind
from workflows.tickets import ticket_open_for_shipment

IDENTITIES = (*ALL_ROLES, "outsider", "anonymous")
SKIPPED_PREFIXES = ("admin/", "i18n/", "static/", "media/", "__debug__/")

# Signature-authenticated webhooks: outside systems cannot send our CSRF token, so these views
# are csrf_exempt and check a signature instead (the "Signed webhooks" tests below refuse bad
# signatures, stale timestamps and replays). Every other view must refuse a POST without a CSRF token.
CSRF_EXEMPT_WEBHOOKS: dict[str, str] = {
    "erp_inbound_event": "HMAC-SHA256(source secret, timestamp + '.' + body); timestamp within 5 minutes; event_id makes a replay a no-op",
    "kuaidi100_callback": "MD5(param + salt), upper case; refused while no salt is configured; a repeated push adds nothing",
    "kuaidi100_intercept_callback": "MD5(param + salt), upper case; a result for a request that already has its outcome is refused",
    "wechat_callback": "sha1(sorted token, timestamp, nonce); timestamp within 5 minutes; each signature is used once",
    "sms_report": "the SMS platform signs nothing: our callback token in the URL, compared in constant time; a repeated receipt changes nothing",
    "douyin_push": "MD5(app key + body + app secret) in event-sign, checked before anything is stored; msg_id makes a replay a no-op",
    "sms_reply": "the SMS platform signs nothing: our callback token in the URL, compared in constant time; a repeated 退订 changes nothing",
}

# Statuses other than 200 / redirect that an allowed role may get from the matrix's sample
# request, with the reason. {url name: {status: why}}.
EXPECTED_OTHER_STATUSES: dict[str, dict[int, str]] = {
    "health:check_answer": {404: "a status check belongs to its assignee: anyone else's id is not found"},
    "pda_acknowledge": {404: "the note id comes in the POST body; an empty POST names no note of this order"},
    "saved_view_open": {404: "a saved view is seen only by its owner and the role it is shared with"},
    "saved_view_delete": {404: "a saved view is seen only by its owner and the role it is shared with"},
    "saved_view_pin": {404: "a saved view is seen only by its owner and the role it is shared with"},
    "bulk_batch": {404: "a bulk batch is seen by its author and supervisors only"},
    "bulk_retry": {404: "a bulk batch is seen by its author and supervisors only"},
    "export_run": {404: "an export is its author's file"},
    "export_download": {404: "an export is its author's file"},
    "douyin_receiver": {404: "only a Douyin order has an encrypted receiver to decrypt; the sample order is not one"},
}

# The sample order's phone numbers, which masked roles must never see in full.
CUSTOMER_PHONE = "13912345678"
NEW_RECEIVER_PHONE = "13787654321"
MOBILE_NUMBER = re.compile(r"(?<![\d])1[3-9]\d{9}(?![\d])")
INLINE_SCRIPT = re.compile(r"<script\b(?![^>]*\bsrc=)[^>]*>(?!\s*</script>)", re.IGNORECASE)
STYLE_ATTRIBUTE = re.compile(r"<[a-z][^>]*\sstyle\s*=", re.IGNORECASE)
HX_ON_ATTRIBUTE = re.compile(r"<[a-z][^>]*\s(?:data-)?hx-on[:\-]", re.IGNORECASE)
EVENT_HANDLER_ATTRIBUTE = re.compile(r"<[a-z][^>]*\son[a-z]+\s*=", re.IGNORECASE)


@dataclass
class World:
    """The objects URL kwargs point at."""

    people: dict[str, User]
    order: Order
    extra: dict[str, object] = field(default_factory=dict)


# How to fill each URL kwarg with something that exists. A new URL with a kwarg not listed here
# fails the matrix with a message saying to add it.
SAMPLE_KWARGS: dict[str, Callable[[World], object]] = {
    "order_number": lambda world: world.order.order_number,
    # An action that changes nothing when posted without a body (an empty note is refused).
    "action": lambda world: "note",
    "key": lambda world: "status_update_delay",
    "task_id": lambda world: world.extra["status_check"].pk,
    "run_id": lambda world: world.extra["import_run"].pk,
    "business_date": lambda world: world.extra["daily_export"].business_date.isoformat(),
    "pk": lambda world: world.extra["ticket"].pk,
    "alert_id": lambda world: world.extra["alert"].pk,
    "token": lambda world: selfservice.link_token(world.order),
    "view_id": lambda world: world.extra["saved_view"].pk,
    "batch_id": lambda world: world.extra["bulk_batch"].pk,
    "export_id": lambda world: world.extra["export_run"].pk,
}
# Where two URLs give one kwarg name to different objects: "<url name>:<kwarg>" wins over "<kwarg>".
SAMPLE_KWARGS_BY_ROUTE: dict[str, Callable[[World], object]] = {
    "erp_reconciliation_detail:run_id": lambda world: world.extra["reconciliation"].pk,
    # Issue 13's inbox: an empty "refuse" is refused (a reason is required) and changes nothing.
    "address_change_action:pk": lambda world: world.order.address_changes.get().pk,
    "address_change_action:action": lambda world: "refuse",
}
# Kwargs that name a single order: the matrix also asks for a number that does not exist.
MISSING_ORDER_KWARGS = {"order_number": "NX0000404404"}


@dataclass(frozen=True)
class Route:
    name: str
    route: str
    view: Callable
    kwargs: tuple[str, ...]

    def __str__(self) -> str:
        return self.name


def _pattern_kwargs(pattern) -> list[str]:
    converters = getattr(pattern.pattern, "converters", None)
    if converters is not None:
        return list(converters)
    return list(pattern.pattern.regex.groupindex)


def walk(patterns, prefix: str = "", namespace: str = "", kwargs: tuple[str, ...] = ()) -> Iterator[Route]:
    for pattern in patterns:
        route = prefix + str(pattern.pattern).lstrip("^")
        if route.startswith(SKIPPED_PREFIXES):
            continue
        names = kwargs + tuple(_pattern_kwargs(pattern))
        if isinstance(pattern, URLResolver):
            inner = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
            yield from walk(pattern.url_patterns, route, inner, names)
        elif isinstance(pattern, URLPattern):
            name = f"{namespace}{pattern.name}" if pattern.name else f"<unnamed {route}>"
            yield Route(name=name, route=route, view=pattern.callback, kwargs=names)


ROUTES = list(walk(get_resolver().url_patterns))
ORDER_ROUTES = [route for route in ROUTES if set(route.kwargs) & set(MISSING_ORDER_KWARGS)]


def test_the_matrix_sees_the_known_urls():
    names = {route.name for route in ROUTES}
    assert {"home", "login", "logout", "healthz", "order_list", "order_card", "order_action", "phone_reveal"} <= names


@pytest.mark.parametrize("route", ROUTES, ids=str)
def test_every_view_declares_its_access(route):
    roles = getattr(route.view, "allowed_roles", None)
    reason = getattr(route.view, "public_reason", None)
    assert roles or reason, (
        f"{route.name} ({route.route}) declares no access: decorate the view with "
        "@role_required(...) or @public_endpoint('why') from orders.access"
    )
    assert not (roles and reason), f"{route.name} is both role-restricted and public"
    if roles:
        assert set(roles) <= set(ALL_ROLES), f"{route.name} names unknown roles {set(roles) - set(ALL_ROLES)}"
    else:
        assert isinstance(reason, str) and reason.strip(), f"{route.name}: say why it is public"
    assert not route.name.startswith("<unnamed"), f"{route.route}: give the URL pattern a name"


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """The matrix creates the nine people for each of its many cases; real hashing would take
    most of the run and is not what is under test here."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def world(people, default_saved_views, settings, tmp_path) -> World:
    settings.MEDIA_ROOT = tmp_path / "media"
    order = make_order(phone=CUSTOMER_PHONE, buyer_message="请尽快发货")
    supervisor = Actor.of(people["supervisor"])
    services.order_add_note(order=order, by=Actor.of(people["service"]), body="客户要求明天12点前送达")
    services.address_change_request(
        order=order,
        by=supervisor,
        receiver_name="王丽",
        receiver_phone=NEW_RECEIVER_PHONE,
        province="浙江省",
        city="杭州市",
        district="西湖区",
        address="文三路1号",
    )
    sample = ConsistencySample.objects.create(day=timezone.localdate(), slot=1, order=order, system_state=order.status)
    status_check = ConsistencyTask.objects.create(sample=sample, group="sales", assignee=people["sales"])

    # A shipped parcel of the same customer whose tracking stalled: the courier's ticket and the
    # supervisor's alert (pages a masked role reads, so they must mask the customer's phone).
    shipped = make_order(status="packed", phone=CUSTOMER_PHONE)
    shipped = services.order_ship(order=shipped, by=Actor.system("WMS"), carrier_code="zhongtong", tracking_number="ZT7300000001")
    ticket, _created = ticket_open_for_shipment(shipment=shipped.shipments.get(), kind=TicketKind.STALLED, summary="24 h")
    alert = Alert.objects.get(dedupe_key=f"ticket:{ticket.pk}")

    # Finance's objects: a finished import preview with a refused row, yesterday's export file
    # and a reconciliation run against an ERP file.
    import_run = ImportRun.objects.create(
        file="erp/imports/erp.csv",
        original_name="erp.csv",
        uploaded_by=people["finance"],
        dry_run=True,
        state=ImportState.DONE,
        total_rows=2,
        processed_rows=2,
        rejected_count=1,
        rejected_rows=1,
        errors=[{"row": 3, "column": "手机", "order_number": "E1", "reason": "not a mobile number"}],
    )
    yesterday = timezone.localdate() - datetime.timedelta(days=1)
    daily_export = exporter.daily_export_produce(business_date=yesterday, produced_by="finance")
    erp_file = write_csv(
        tmp_path / "erp.csv", [erp_line("E1", "SKU-E1", placed=f"{yesterday} 10:00:00", paid=f"{yesterday} 10:01:00")]
    )
    reconciliation = reconciliation_run(business_date=yesterday, erp_path=erp_file, erp_file_name="erp.csv", by="finance")
    return World(
        people=people,
        order=order,
        extra={
            "status_check": status_check,
            "ticket": ticket,
            "alert": alert,
            "import_run": import_run,
            "daily_export": daily_export,
            "reconciliation": reconciliation,
            # The order list's tools (issue 17): a view shared with the reviewers, a finished
            # batch and export of the supervisor.
            "saved_view": SavedView.objects.get(shared_with_role="reviewer", name="待我处理"),
            "bulk_batch": BulkBatch.objects.create(action="note", created_by=people["supervisor"], state="done", total=0),
            "export_run": ExportRun.objects.create(created_by=people["supervisor"], state="done"),
        },
    )


def build_url(route: Route, world: World, **overrides: str) -> str:
    values = {}
    for name in route.kwargs:
        if name in overrides:
            values[name] = overrides[name]
        elif f"{route.name}:{name}" in SAMPLE_KWARGS_BY_ROUTE:
            values[name] = SAMPLE_KWARGS_BY_ROUTE[f"{route.name}:{name}"](world)
        elif name in SAMPLE_KWARGS:
            values[name] = SAMPLE_KWARGS[name](world)
        else:
            pytest.fail(
                f"{route.name} ({route.route}) takes the URL kwarg <{name}>, which the security matrix cannot fill: "
                f"add '{name}': lambda world: <a value that exists> to SAMPLE_KWARGS in tests/test_security_matrix.py "
                "(create the object it points at in the `world` fixture)."
            )
    url = reverse(route.name, kwargs=values)
    assert resolve(url).func is route.view, f"{url} does not resolve to the view of {route.name}"
    return url


def client_for(identity: str, world: World, **options) -> Client:
    client = Client(**options)
    if identity != "anonymous":
        client.force_login(world.people[identity])
    return client


def fetch(client: Client, url: str) -> tuple[str, HttpResponse]:
    """GET, or POST (with no body) when the view takes only POST."""
    response = client.get(url)
    if response.status_code == 405:
        return "POST", client.post(url, {})
    return "GET", response


def is_login_redirect(response: HttpResponse) -> bool:
    return response.status_code == 302 and response["Location"].startswith(reverse("login"))


def check_page(route: Route, identity: str, method: str, response: HttpResponse) -> None:
    where = f"{method} {route.name} as {identity}"
    policy = response.get("Content-Security-Policy", "")
    assert "script-src 'self'" in policy and "style-src 'self'" in policy, f"{where}: no Content-Security-Policy: {policy!r}"
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy, f"{where}: {policy!r}"
    if "html" not in response.get("Content-Type", ""):
        return
    html = response.content.decode()
    for pattern, what in (
        (INLINE_SCRIPT, "an inline <script> body"),
        (STYLE_ATTRIBUTE, "a style= attribute"),
        (HX_ON_ATTRIBUTE, "an hx-on attribute"),
        (EVENT_HANDLER_ATTRIBUTE, "an on…= event handler attribute"),
    ):
        match = pattern.search(html)
        assert match is None, f"{where}: the CSP forbids {what}: {html[match.start() : match.start() + 120]!r}"
    # Revealing the full number is a deliberate, logged POST (phone_reveal); every page GET
    # shows masked roles only the masked form.
    if identity in MASKED_PHONE_ROLES and method == "GET":
        assert CUSTOMER_PHONE not in html and NEW_RECEIVER_PHONE not in html, f"{where}: full phone number shown"
        match = MOBILE_NUMBER.search(html)
        assert match is None, f"{where}: a full mobile number is shown to a masked role: {match[0]}"


def check_allowed(route: Route, identity: str, method: str, response: HttpResponse) -> None:
    status = response.status_code
    where = f"{method} {route.name} as allowed role {identity}"
    assert not is_login_redirect(response), f"{where}: sent to the login page"
    assert status != 403, f"{where}: refused"
    served = status == 200 or status in (301, 302, 303) or (method == "POST" and status in (204, 400, 409))
    assert served or status in EXPECTED_OTHER_STATUSES.get(route.name, {}), (
        f"{where}: got {status}; if that is right, document it in EXPECTED_OTHER_STATUSES"
    )


@pytest.mark.parametrize("route", ROUTES, ids=str)
def test_role_matrix(route, world):
    url = build_url(route, world)
    allowed = getattr(route.view, "allowed_roles", frozenset())
    public = getattr(route.view, "public_reason", None)
    for identity in IDENTITIES:
        method, response = fetch(client_for(identity, world), url)
        check_page(route, identity, method, response)
        assert response.status_code < 500
        if public:
            continue
        if identity == "anonymous":
            assert is_login_redirect(response), f"anonymous {method} {route.name}: {response.status_code}, not the login page"
        elif identity in allowed:
            check_allowed(route, identity, method, response)
        else:
            assert response.status_code == 403, f"{identity} {method} {route.name}: {response.status_code}, expected 403"


@pytest.mark.parametrize("route", ROUTES, ids=str)
def test_post_without_csrf_token_is_refused(route, world):
    url = build_url(route, world)
    exempt = bool(getattr(route.view, "csrf_exempt", False))
    if route.name in CSRF_EXEMPT_WEBHOOKS:
        assert exempt and getattr(route.view, "public_reason", None), f"{route.name}: listed as a webhook but not one"
        return
    assert not exempt, f"{route.name} is csrf_exempt but not listed in CSRF_EXEMPT_WEBHOOKS (with its signature check)"
    allowed = sorted(getattr(route.view, "allowed_roles", ()))
    identity = allowed[0] if allowed else "anonymous"
    client = client_for(identity, world, enforce_csrf_checks=True)
    response = client.post(url, {"body": "x", "version": "1"})
    assert response.status_code == 403 and b"CSRF" in response.content, (
        f"POST {route.name} as {identity} without a CSRF token: {response.status_code}"
    )


@pytest.mark.parametrize("route", ORDER_ROUTES, ids=str)
def test_unknown_order_number_is_a_plain_404(route, world):
    """Those allowed get a 404; the others get exactly what they get for a real order, so
    order numbers cannot be probed by anyone who may not read orders."""
    real_url = build_url(route, world)
    missing_url = build_url(route, world, **{k: v for k, v in MISSING_ORDER_KWARGS.items() if k in route.kwargs})
    allowed = getattr(route.view, "allowed_roles", frozenset())
    for identity in IDENTITIES:
        method, missing = fetch(client_for(identity, world), missing_url)
        if identity in allowed:
            assert missing.status_code == 404, f"{identity} {method} {missing_url}: {missing.status_code}"
            assert world.order.order_number.encode() not in missing.content
        else:
            _, real = fetch(client_for(identity, world), real_url)
            assert (missing.status_code, missing.get("Location", "").split("?")[0]) == (
                real.status_code,
                real.get("Location", "").split("?")[0],
            ), f"{identity} can tell a real order from a missing one at {route.name}"


# --- Object ids: nobody reads or acts on an object by guessing its id --------------------------

# URL kwargs that are a database id.
ID_KWARGS = {"run_id", "pk", "alert_id", "task_id", "view_id", "batch_id", "export_id"}
ID_ROUTES = [route for route in ROUTES if set(route.kwargs) & ID_KWARGS]
MISSING_ID = "2147483647"


def test_the_id_routes_are_the_known_ones():
    """A new URL with an object id joins test_unknown_object_id_is_a_plain_404 by itself; this
    keeps the scoped cases below in step (a new scoped id needs its own test there)."""
    assert {route.name for route in ID_ROUTES} == {
        "health:check_answer",
        "erp_import_detail",
        "erp_import_confirm",
        "erp_import_retry",
        "erp_import_errors",
        "erp_missing_products",
        "erp_reconciliation_detail",
        "ticket_detail",
        "ticket_action",
        "alert_acknowledge",
        "saved_view_open",
        "saved_view_delete",
        "saved_view_pin",
        "bulk_batch",
        "bulk_retry",
        "export_run",
        "export_download",
        "address_change_action",
    }


@pytest.mark.parametrize("route", ID_ROUTES, ids=str)
def test_unknown_object_id_is_a_plain_404(route, world):
    real_url = build_url(route, world)
    missing_url = build_url(route, world, **{name: MISSING_ID for name in route.kwargs if name in ID_KWARGS})
    allowed = getattr(route.view, "allowed_roles", frozenset())
    for identity in IDENTITIES:
        method, missing = fetch(client_for(identity, world), missing_url)
        if identity in allowed:
            assert missing.status_code == 404, f"{identity} {method} {missing_url}: {missing.status_code}"
        else:
            _, real = fetch(client_for(identity, world), real_url)
            assert (missing.status_code, missing.get("Location", "").split("?")[0]) == (
                real.status_code,
                real.get("Location", "").split("?")[0],
            ), f"{identity} can tell a real id from a missing one at {route.name}"


def test_a_status_check_is_answered_only_by_its_assignee(world):
    task = world.extra["status_check"]  # assigned to the sales person
    url = reverse("health:check_answer", kwargs={"task_id": task.pk})
    for identity in ("dispatcher", "packer", "service"):  # roles that answer checks, not this one
        response = client_for(identity, world).post(url, {"answer": "paid"})
        assert response.status_code == 404, identity
    task.refresh_from_db()
    assert task.answer == "" and task.answered_at is None
    assert client_for("sales", world).post(url, {"answer": "paid"}).status_code == 302
    task.refresh_from_db()
    assert task.answer == "paid"


@pytest.fixture
def other_order(world) -> Order:
    """Order B, with one of each object an order action names by id in its POST body."""
    people = world.people
    order = make_order(status="paid")
    note = services.order_add_note(order=order, by=Actor.of(people["service"]), body="B 的备注")
    question = services.feedback_request(order=order, by=Actor.of(people["service"]), to_role="packer", question="B 的赠品在吗？")
    case = services.after_sales_open(
        order=order, by=Actor.of(people["service"]), kind=AfterSalesKind.choices[0][0], reason="B 的理由"
    )
    change = services.address_change_request(
        order=order,
        by=Actor.of(people["service"]),
        receiver_name="李雷",
        receiver_phone="13600001111",
        province="浙江省",
        city="杭州市",
        district="西湖区",
        address="文一路2号",
    )
    order.extra_objects = {"note": note, "question": question, "case": case, "change": change}
    return order


# (order action, POST body naming B's object, role that may do it, "has it been acted on?")
ORDER_ACTIONS_WITH_IDS = [
    (
        "acknowledge",
        lambda objects: {"note_id": objects["note"].pk},
        "packer",
        lambda objects: NoteAcknowledgement.objects.filter(note=objects["note"]).exists(),
    ),
    (
        "answer",
        lambda objects: {"request_id": objects["question"].pk, "answer": "在"},
        "packer",
        lambda objects: FeedbackRequest.objects.get(pk=objects["question"].pk).answer != "",
    ),
    (
        "decide_case",
        lambda objects: {"case_id": objects["case"].pk, "decision": "approve", "reason": "同意"},
        "service",
        lambda objects: AfterSalesCase.objects.get(pk=objects["case"].pk).decided_at is not None,
    ),
    (
        "resolve_address",
        lambda objects: {"change_id": objects["change"].pk, "decision": "apply"},
        "reviewer",
        lambda objects: AddressChangeRequest.objects.get(pk=objects["change"].pk).resolved_at is not None,
    ),
]


@pytest.mark.parametrize(
    ("action", "body", "role", "acted_on"), ORDER_ACTIONS_WITH_IDS, ids=[a[0] for a in ORDER_ACTIONS_WITH_IDS]
)
def test_an_id_of_another_order_posted_to_an_order_action_is_not_found(world, other_order, action, body, role, acted_on):
    objects = other_order.extra_objects
    client = client_for(role, world)
    wrong = client.post(reverse("order_action", args=[world.order.order_number, action]), body(objects))
    assert wrong.status_code == 404
    assert not acted_on(objects)
    # The same body on its own order works: the 404 above is the scope check, not a broken form.
    right = client.post(reverse("order_action", args=[other_order.order_number, action]), body(objects))
    assert right.status_code == 302 and acted_on(objects)


def test_a_note_of_another_order_cannot_be_acknowledged_on_the_pda(world, other_order):
    note = other_order.extra_objects["note"]
    client = client_for("packer", world)
    assert client.post(reverse("pda_acknowledge", args=[world.order.order_number]), {"note_id": note.pk}).status_code == 404
    assert not note.acknowledgements.exists()
    assert client.post(reverse("pda_acknowledge", args=[other_order.order_number]), {"note_id": note.pk}).status_code == 302
    assert note.acknowledgements.exists()


def test_board_ids_name_only_what_exists_and_may_be_used(world):
    client = client_for("supervisor", world)
    rule_missing = client.post(reverse("stage_rules"), {"rule": MISSING_ID, "limit_minutes": "60"})
    assert rule_missing.status_code == 404
    # The outsider has no role: assigning an order to them is refused, the order stays unassigned.
    url = reverse("order_assign", args=[world.order.order_number])
    client.post(url, {"assignee": world.people["outsider"].pk})
    client.post(url, {"assignee": MISSING_ID})
    world.order.refresh_from_db()
    assert world.order.claimed_by_id is None
    client.post(url, {"assignee": world.people["dispatcher"].pk})
    world.order.refresh_from_db()
    assert world.order.claimed_by_id == world.people["dispatcher"].pk


def test_a_ticket_action_that_does_not_exist_is_not_found(world):
    ticket = world.extra["ticket"]
    response = client_for("courier", world).post(reverse("ticket_action", args=[ticket.pk, "delete"]))
    assert response.status_code == 404
    assert Ticket.objects.filter(pk=ticket.pk, closed_at__isnull=True).exists()


# --- The customer's self-service page ----------------------------------------------------------


def test_self_service_page_masks_personal_data(world):
    """Whoever holds the link or the order number + last 4 digits sees the status, not the person."""
    cache.clear()  # the rate-limit counters live in the shared cache and outlive the test database
    order = world.order
    pages = [
        Client().get(reverse("track_link", args=[selfservice.link_token(order)])),
        Client().post(reverse("track"), {"order_number": order.order_number, "last4": CUSTOMER_PHONE[-4:]}),
    ]
    private = [
        CUSTOMER_PHONE,
        NEW_RECEIVER_PHONE,
        order.receiver_name,
        order.customer.name,
        order.address,
        "文三路1号",
        "客户要求明天12点前送达",
    ]  # the last: an internal note
    for response in pages:
        assert response.status_code == 200
        html = response.content.decode()
        assert order.order_number in html
        assert MOBILE_NUMBER.search(html) is None
        leaked = [text for text in private if text in html]
        assert not leaked, f"the self-service page shows {leaked}"
        assert f"{CUSTOMER_PHONE[:3]}****{CUSTOMER_PHONE[-4:]}" in html


def test_self_service_guessing_is_refused_and_rate_limited(world):
    cache.clear()
    url = reverse("track")
    for attempt in range(selfservice.MAX_FAILURES_PER_ORDER):
        response = Client().post(url, {"order_number": world.order.order_number, "last4": f"{attempt:04d}"})
        assert response.status_code == 400 and world.order.address not in response.content.decode()
    locked = Client().post(url, {"order_number": world.order.order_number, "last4": CUSTOMER_PHONE[-4:]})
    assert locked.status_code == 429
    bad_link = Client().get(reverse("track_link", args=["not-a-signed-token"]))
    assert bad_link.status_code == 400


# --- Signed webhooks ---------------------------------------------------------------------------

INBOUND_SECRET = "matrix-wms-secret"


def _post_event(
    body: bytes, *, timestamp: int, source: str = "WMS", secret: str = INBOUND_SECRET, signed_body: bytes | None = None
):
    signature = inbound.sign(secret=secret, timestamp=str(timestamp), body=signed_body or body)
    return Client(enforce_csrf_checks=True).post(
        reverse("erp_inbound_event"),
        body,
        content_type="application/json",
        HTTP_X_BEILE_SOURCE=source,
        HTTP_X_BEILE_TIMESTAMP=str(timestamp),
        HTTP_X_BEILE_SIGNATURE=signature,
    )


def test_inbound_events_refuse_bad_signatures_and_stale_timestamps_and_apply_a_replay_once(world, settings):
    settings.INBOUND_EVENT_SECRETS = {"WMS": INBOUND_SECRET, "ERP": "matrix-erp-secret"}
    order = make_order(status="paid")
    event = {"event_id": "matrix-1", "order_number": order.order_number, "action": "start_picking"}
    body = json.dumps(event).encode()
    now = int(timezone.now().timestamp())
    refused = {
        "wrong secret": _post_event(body, timestamp=now, secret="guessed"),
        "another source's secret": _post_event(body, timestamp=now, secret="matrix-erp-secret"),
        "unknown source": _post_event(body, timestamp=now, source="HACKER"),
        "body changed after signing": _post_event(
            json.dumps({**event, "action": "cancel"}).encode(), timestamp=now, signed_body=body
        ),
        "stale timestamp": _post_event(body, timestamp=now - 5 * 60 - 2),
        "timestamp from the future": _post_event(body, timestamp=now + 5 * 60 + 2),
    }
    assert {why: response.status_code for why, response in refused.items()} == dict.fromkeys(refused, 401)
    order.refresh_from_db()
    assert order.status == "paid" and not InboundEvent.objects.exists()

    first = _post_event(body, timestamp=now - 60)
    assert first.status_code == 200 and first.json()["ok"] is True
    order.refresh_from_db()
    version = order.version
    replay = _post_event(body, timestamp=now)
    assert replay.status_code == 200 and replay.json()["duplicate"] is True
    order.refresh_from_db()
    assert order.status == "picking" and order.version == version
    assert InboundEvent.objects.count() == 1


KUAIDI100_SALT = "matrix-salt"


def _kuaidi100_push(shipment, *, context: str) -> str:
    return json.dumps(
        {
            "status": "polling",
            "message": "",
            "autoCheck": "0",
            "lastResult": {
                "message": "ok",
                "nu": shipment.tracking_number,
                "com": shipment.carrier_code,
                "status": "200",
                "state": "0",
                "ischeck": "0",
                "data": [{"time": "2030-01-02 03:04:05", "ftime": "2030-01-02 03:04:05", "context": context, "status": "在途"}],
            },
        },
        ensure_ascii=False,
        separators=(",", ":"),
    )


def test_kuaidi100_callback_refuses_bad_signatures_and_takes_a_replay_once(world, settings):
    settings.KUAIDI100 = {**settings.KUAIDI100, "CALLBACK_SALT": KUAIDI100_SALT}
    shipment = world.extra["ticket"].shipment
    url = reverse("kuaidi100_callback") + f"?shipment={shipment.pk}"
    client = Client(enforce_csrf_checks=True)
    param = _kuaidi100_push(shipment, context="[杭州市]快件已到达杭州转运中心")
    forged = _kuaidi100_push(shipment, context="[杭州市]已签收")
    for sign in ("", "0" * 32, kuaidi100_client.md5_upper(param), kuaidi100_client.callback_sign(param, "guessed")):
        assert client.post(url, {"param": param, "sign": sign}).status_code == 403, sign
    good_sign = kuaidi100_client.callback_sign(param, KUAIDI100_SALT)
    assert client.post(url, {"param": forged, "sign": good_sign}).status_code == 403
    assert not shipment.events.exists()

    for _attempt in range(2):  # Kuaidi100 pushes again when unsure; so may an eavesdropper
        response = client.post(url, {"param": param, "sign": good_sign})
        assert response.status_code == 200 and response.json() == {"result": True, "returnCode": "200", "message": "成功"}
    assert shipment.events.count() == 1
    assert OrderEvent.objects.filter(order_id=shipment.order_id, kind=EventKind.TRACKING).count() == 1

    # Without a configured salt the "signature" is MD5(param): everyone could sign, so nobody may.
    settings.KUAIDI100 = {**settings.KUAIDI100, "CALLBACK_SALT": ""}
    assert client.post(url, {"param": forged, "sign": kuaidi100_client.callback_sign(forged, "")}).status_code == 403
    assert shipment.events.count() == 1


WECHAT_TOKEN = "matrix-wechat-token"


def _wechat_url(*, timestamp: int, nonce: str, token: str = WECHAT_TOKEN, **extra: str) -> str:
    signature = hashlib.sha1("".join(sorted([token, str(timestamp), nonce])).encode()).hexdigest()  # noqa: S324 - WeChat's protocol
    query = urlencode({"signature": signature, "timestamp": timestamp, "nonce": nonce, **extra})
    return reverse("wechat_callback") + "?" + query


def test_wechat_callback_refuses_bad_signatures_stale_timestamps_and_replays(world, settings):
    settings.WECHAT = {**settings.WECHAT, "CALLBACK_TOKEN": WECHAT_TOKEN}
    message = CustomerMessage.objects.create(
        order=world.order,
        recipient="o-matrix",
        event_key="shipped",
        idempotency_key=f"matrix-{world.order.pk}",
        status="sent",
        provider_message_id="200228332",
    )
    report = (
        "<xml><ToUserName><![CDATA[gh_1]]></ToUserName><FromUserName><![CDATA[o-matrix]]></FromUserName>"
        "<CreateTime>1</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[TEMPLATESENDJOBFINISH]]></Event>"
        "<MsgID>200228332</MsgID><Status><![CDATA[{status}]]></Status></xml>"
    )
    client = Client(enforce_csrf_checks=True)
    now = int(timezone.now().timestamp())
    nonces = iter(secrets.token_hex(5) for _ in range(10))

    def post(url: str, status: str = "success"):
        return client.post(url, report.format(status=status), content_type="text/xml")

    refused = {
        "wrong token": post(_wechat_url(timestamp=now, nonce=next(nonces), token="guessed")),
        "stale timestamp": post(_wechat_url(timestamp=now - 5 * 60 - 2, nonce=next(nonces))),
        "timestamp from the future": post(_wechat_url(timestamp=now + 5 * 60 + 2, nonce=next(nonces))),
        "url check, stale": client.get(_wechat_url(timestamp=now - 3600, nonce=next(nonces), echostr="e")),
    }
    assert {why: response.status_code for why, response in refused.items()} == dict.fromkeys(refused, 403)
    message.refresh_from_db()
    assert message.delivery_status == ""

    signed = _wechat_url(timestamp=now - 60, nonce=next(nonces))
    assert post(signed).content == b"success"
    # The body is outside WeChat's signature: the same signature with another body is a replay.
    assert post(signed, status="failed:user block").status_code == 403
    message.refresh_from_db()
    assert message.delivery_status == "success"


# --- Login throttling (django-axes) ----------------------------------------------------------


def _log_in(client: Client, username: str, password: str, address: str = "127.0.0.1", **headers) -> HttpResponse:
    return client.post(reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=address, **headers)


def test_login_throttling_locks_out_a_username_from_one_address(people, settings):
    assert settings.AXES_FAILURE_LIMIT == 5
    client = Client()
    for attempt in range(settings.AXES_FAILURE_LIMIT - 1):
        response = _log_in(client, "reviewer", "wrong-password")
        assert response.status_code == 200, attempt
        assert 'id="login-error"' in response.content.decode()
    locked = _log_in(client, "reviewer", "wrong-password")
    assert locked.status_code == 429
    # Now even the right password is refused, with the reason and how long to wait.
    locked = _log_in(client, "reviewer", PASSWORD)
    assert locked.status_code == 429
    page = locked.content.decode()
    assert 'id="login-locked"' in page and "15" in page
    assert locked["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert is_login_redirect(client.get(reverse("order_list")))

    # Only that username from that address: the same person elsewhere and a colleague here log in.
    assert _log_in(Client(), "reviewer", PASSWORD, address="10.1.2.3").status_code == 302
    assert _log_in(Client(), "packer", PASSWORD).status_code == 302

    # After the cool-off the right password works again.
    with time_machine.travel(timezone.now() + datetime.timedelta(minutes=16), tick=False):
        assert _log_in(Client(), "reviewer", PASSWORD).status_code == 302


def test_a_successful_login_resets_the_failure_count(people, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        _log_in(Client(), "service", "wrong-password")
    assert _log_in(Client(), "service", PASSWORD).status_code == 302
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert _log_in(Client(), "service", "wrong-password").status_code == 200


def test_behind_a_proxy_failures_count_by_the_forwarded_address(people, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    for _ in range(settings.AXES_FAILURE_LIMIT):
        _log_in(Client(), "courier", "wrong-password", address="10.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.5")
    assert _log_in(Client(), "courier", PASSWORD, address="10.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.5").status_code == 429
    # Another client behind the same proxy is not locked out, and a forged left-most entry does not help.
    assert _log_in(Client(), "courier", PASSWORD, address="10.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.6").status_code == 302
    forged = _log_in(Client(), "courier", PASSWORD, address="10.0.0.1", HTTP_X_FORWARDED_FOR="198.51.100.1, 203.0.113.5")
    assert forged.status_code == 429
