"""Every page, for every role, in Chinese: no visible English word and no leaked template comment.

The pages are found by walking the URL resolver, as the security matrix does (its `world`
fixture and SAMPLE_KWARGS fill every URL kwarg), on top of a small demo (seed_demo) so lists,
cards and the lookup show data shaped like a real day's. Every role + an outsider + anonymous
opens every URL taking a GET (POST-only actions answer with a redirect); the visible text (tags,
scripts, styles and attributes stripped) must hold no Latin word except an allowed identifier,
and the HTML must hold no `{#` (Django's `{# #}` comment is single-line: a two-line one is
printed as text). Chinese addresses and places are written without ASCII commas ("浙江杭州市",
not "浙江,杭州市").
"""

from __future__ import annotations

import io
import re
from html.parser import HTMLParser

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone, translation

from integrations.kuaidi100 import client as kuaidi100_client
from integrations.wechat.models import CustomerMessage, MessageStatus
from orders import events as order_events
from orders.access import Actor
from orders.models import Customer, Order, Shipment, StageRule, TrackingState
from tests.conftest import ROOT, make_order
from tests.test_security_matrix import (
    CUSTOMER_PHONE,
    IDENTITIES,
    KUAIDI100_SALT,
    ROUTES,
    World,
    _kuaidi100_push,
    build_url,
    client_for,
    world,  # noqa: F401 - the security matrix's objects behind every URL kwarg
)
from workflows.health.models import ConsistencySample

# Latin words a Chinese page may show, each with why. Anything with a digit is an identifier
# (order number BL20260124000012, SKU FH-XFF3-800, waybill ZT7300000001, 800g) and passes.
ALLOWED_WORDS = {
    # The systems' names, as the Chinese UI and the staff call them (brief.md: "ERP, WMS").
    "ERP",
    "WMS",
    "PDA",  # the packing station's handheld scanner, called so on the warehouse floor
    "SKU",  # the product code column, as in the ERP's export
    "CSV",  # file formats the finance pages ask for
    "xlsx",
    "Excel",
    "English",  # the language switcher names each language in itself
    # Carrier brands, as printed on their labels.
    "SF",
    "EMS",
    "ZTO",
    "YTO",
    "STO",
    "JD",
    # Brands and sizes inside the demo's product names (data, not interface).
    "NUK",
    "QQ",
    "XL",
}
LATIN_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")
# An identifier: upper-case letters with digits (BL2026…, FH-XFF3-800, SF1234567890), an SKU
# of upper-case parts (YL-QQX-XN), or a quantity with its unit (800g, 240ml). "kuaidi100" or
# "tracking" is a word.
# An uploaded file's name (erp.csv) is what the user called it.
IDENTIFIER = re.compile(r"(?=.*\d)[A-Z0-9_.\-]+|[A-Z0-9]+(?:-[A-Z0-9]+)+|\d+(?:\.\d+)?[a-zA-Z]{1,3}|[\w.\-]+\.(?:csv|xlsx)")
# Two Chinese characters joined by an ASCII comma: a place from Kuaidi100's areaName shown raw.
ASCII_COMMA_IN_CHINESE = re.compile(r"[\u4e00-\u9fff],[\u4e00-\u9fff]")

# Pages with a query that shows what the bare URL does not (the lookup's order blocks and
# timeline appear only for a customer).
WITH_QUERY = {
    "lookup": ["?q=" + CUSTOMER_PHONE, "?q=13800138000"],
    "order_list": ["?status=shipped", "?q=" + CUSTOMER_PHONE],
}


class VisibleText(HTMLParser):
    """The text a reader sees: no tags, attributes, scripts or styles."""

    HIDDEN = {"script", "style", "template"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.hidden = 0

    def handle_starttag(self, tag, attrs):
        if tag in self.HIDDEN:
            self.hidden += 1

    def handle_endtag(self, tag):
        if tag in self.HIDDEN and self.hidden:
            self.hidden -= 1

    def handle_data(self, data):
        if not self.hidden:
            self.parts.append(data)


def visible_text(html: str) -> str:
    parser = VisibleText()
    parser.feed(html)
    return " ".join(" ".join(parser.parts).split())


def english_words(text: str) -> list[str]:
    words = []
    for token in LATIN_WORD.findall(text):
        token = token.strip(".-_")
        letters = re.sub(r"[^A-Za-z]", "", token)
        if len(letters) < 2 or token in ALLOWED_WORDS or IDENTIFIER.fullmatch(token):
            continue
        if all(part in ALLOWED_WORDS or len(part) < 2 for part in re.split(r"[-_.]", token)):
            continue
        words.append(token)
    return words


def problems(html: str) -> list[str]:
    found = []
    if "{#" in html or "#}" in html:
        index = html.find("{#") if "{#" in html else html.find("#}")
        found.append(f"a template comment leaks into the page: {html[max(0, index - 80) : index + 120]!r}")
    text = visible_text(html)
    words = english_words(text)
    if words:
        found.append(f"English words {sorted(set(words))[:20]}")
        for word in sorted(set(words))[:5]:
            index = text.find(word)
            found.append(f"  …{text[max(0, index - 60) : index + 60]}…")
    for match in list(ASCII_COMMA_IN_CHINESE.finditer(text))[:3]:
        found.append(f"a place joined with an ASCII comma: …{text[max(0, match.start() - 30) : match.end() + 30]}…")
    return found


def seed_demo() -> None:
    call_command("seed_demo", orders=60, seed=7, stdout=io.StringIO())


@pytest.fixture
def demo(people) -> None:
    """A small demo under the matrix's people (the seed renames them to its demo staff)."""
    seed_demo()
    for user in people.values():  # the seed set new passwords: a stale user would sign nobody in
        user.refresh_from_db()
    # The matrix's world takes today's first status-check slot for its own sample.
    ConsistencySample.objects.filter(day=timezone.localdate(), slot=1).delete()


@pytest.fixture
def demo_world(demo, world: World, settings) -> World:  # noqa: F811 - pytest's fixture by name
    """The matrix's objects on top of the demo, a tracking update from Kuaidi100 (actor
    "kuaidi100", areaName "浙江,杭州市") and pushes with WeChat's delivery reports."""
    # The import's refused row, in the language the importer writes it.
    run = world.extra["import_run"]
    run.errors = [{**error, "reason": "不是有效的手机号"} for error in run.errors]
    run.save(update_fields=["errors"])
    # Who produced the export and ran the check, as the views record them: the person's name.
    world.extra["daily_export"].__class__.objects.update(produced_by="吴敏")
    world.extra["reconciliation"].__class__.objects.filter(ran_by="finance").update(ran_by="吴敏")
    shipment: Shipment = world.extra["ticket"].shipment
    settings.KUAIDI100 = {**settings.KUAIDI100, "CALLBACK_SALT": KUAIDI100_SALT}
    param = _kuaidi100_push(shipment, context="[杭州市]快件已到达杭州转运中心")
    param = param.replace('"status":"在途"', '"status":"在途","areaName":"浙江,杭州市"')
    response = Client().post(
        build_url(next(route for route in ROUTES if route.name == "kuaidi100_callback"), world) + f"?shipment={shipment.pk}",
        {"param": param, "sign": kuaidi100_client.callback_sign(param, KUAIDI100_SALT)},
    )
    assert response.status_code == 200, response.content
    order = shipment.order
    for key, delivery in (
        ("shipped", "success"),
        (f"tracking:{shipment.pk}:{TrackingState.IN_TRANSIT}", "failed:user block"),
        (f"stalled:{shipment.pk}:203001020304", "failed:system failed"),
    ):
        CustomerMessage.objects.update_or_create(
            idempotency_key=f"wechat:{order.pk}:{key}",
            defaults={
                "order": order,
                "recipient": "o-demo",
                "event_key": key,
                "content": {"character_string1": order.order_number, "thing3": "杭州市"},
                "status": MessageStatus.SENT,
                "delivery_status": delivery,
            },
        )
    # A demo order with tracking (a location) and a customer's question answered by a push.
    shipped = Order.objects.filter(order_number__startswith="BL", shipments__last_location__gt="")
    world.extra["demo_order"] = shipped.filter(inquiries__answer_message__isnull=False).first() or shipped.first()
    return world


def urls_of(route, world: World) -> list[str]:
    url = build_url(route, world)
    urls = [url] + [url + query for query in WITH_QUERY.get(route.name, [])]
    if "order_number" in route.kwargs:  # also shipped orders with tracking, pushes and a ticket
        for order in (world.extra["ticket"].shipment.order, world.extra["demo_order"]):
            urls.append(build_url(route, world, order_number=order.order_number))
    if route.name == "lookup":
        urls.append(f"{url}?q={world.extra['demo_order'].order_number}")
    return urls


# Machine endpoints: the load balancer's check, the browser's icon, the signed webhooks.
MACHINE_ROUTES = {"healthz", "favicon", "erp_inbound_event", "kuaidi100_callback", "wechat_callback"}
PAGE_ROUTES = [route for route in ROUTES if route.name not in MACHINE_ROUTES]


@pytest.mark.django_db
def test_every_page_for_every_role_is_chinese(demo_world):
    failures = []
    served = 0
    for identity in IDENTITIES:
        client = client_for(identity, demo_world, HTTP_ACCEPT_LANGUAGE="zh-hans")
        for route in PAGE_ROUTES:
            for url in urls_of(route, demo_world):
                response = client.get(url)
                if identity != "anonymous" and response.status_code == 302:
                    assert not response["Location"].startswith("/login"), f"{identity} is not signed in"
                if response.status_code == 405 or "html" not in response.get("Content-Type", ""):
                    continue
                served += response.status_code == 200
                failures += [
                    f"{identity} GET {url} ({response.status_code}): {problem}" for problem in problems(response.content.decode())
                ]
    assert served > 80
    assert not failures, f"{len(failures)} problems:\n" + "\n".join(failures)


def test_the_demo_answers_the_readmes_example_phone(people):
    """README: the lookup takes "+86 138 0013 8000"; the demo has that customer, with orders."""
    seed_demo()
    for user in people.values():
        user.refresh_from_db()
    customer = Customer.objects.get(phone="13800138000")
    assert Order.objects.filter(customer=customer).count() >= 3
    page = client_for("service", World(people=people, order=None)).get("/service/lookup/", {"q": "+86 138 0013 8000"})
    assert page.status_code == 200
    html = page.content.decode()
    missing = [order.order_number for order in customer.orders.all() if order.order_number not in html]
    assert not missing, f"the lookup of the README's phone does not show {missing}"


def test_the_checker_sees_english_and_comments():
    """The checker itself: it must catch what it is for."""
    assert problems("<p>订单 BL2026012400001 已发货</p><script>var x = 'hello world';</script>") == []
    assert problems('<p title="English title">中文</p>') == []
    assert problems("<p>The three forms load</p>")
    assert problems("<p>{# a comment\n #}</p>")
    assert problems("<p>浙江,杭州市</p>")
    assert english_words("系统 kuaidi100 推送 (success) 800g 240ml") == ["kuaidi100", "success"]
    assert english_words("顺丰 SF1234567890 · FH-XFF3-800 · ERP 系统") == []


def test_a_saved_stage_rule_is_named_by_its_stage(people):
    rule = StageRule.objects.get(stage="picking")
    client = client_for("supervisor", World(people=people, order=None), HTTP_ACCEPT_LANGUAGE="zh-hans")
    body = {"rule": rule.pk, "responsible_role": "dispatcher", "limit_minutes": "90", "alert_role": "supervisor"}
    page = client.post(reverse("stage_rules"), body, follow=True).content.decode()
    assert "“配货中”环节规则已保存" in page
    assert problems(page) == []


def test_pushes_say_what_they_were_about_in_chinese(demo_world):
    """The lookup's and the card's pushes: what the push was about and WeChat's delivery report,
    not the idempotency key and the raw report."""
    order = demo_world.extra["ticket"].shipment.order
    client = client_for("service", demo_world, HTTP_ACCEPT_LANGUAGE="zh-hans")
    for url in (reverse("lookup") + "?q=" + order.order_number, reverse("order_card", args=[order.order_number])):
        text = visible_text(client.get(url).content.decode())
        for shown in ("已发货", "物流：运输中", "包裹延误", "已送达", "未送达：客户已拒收服务号消息", "未送达：微信系统故障"):
            assert shown in text, (url, shown)
        for raw in ("tracking:", "stalled:", "(success)", "user block"):
            assert raw not in text, (url, raw)


def test_systems_are_named_in_chinese_on_the_timelines(demo_world):
    order = demo_world.extra["ticket"].shipment.order  # shipped by the WMS, tracked by Kuaidi100
    client = client_for("service", demo_world, HTTP_ACCEPT_LANGUAGE="zh-hans")
    for url in (reverse("lookup") + "?q=" + order.order_number, reverse("order_card", args=[order.order_number])):
        text = visible_text(client.get(url).content.decode())
        assert "快递100" in text and "仓储系统" in text, url
        assert not {"kuaidi100", "WMS"} & set(LATIN_WORD.findall(text)), url


def test_no_template_comment_spans_lines():
    """Django's `{# #}` ends at the line's end: a comment that goes on is printed as text, on
    pages the walk above may not reach with data. Longer comments use {% comment %}."""
    spanning = []
    for path in sorted((ROOT / "templates").rglob("*.html")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            for start in [match.start() for match in re.finditer(r"\{#", line)]:
                if "#}" not in line[start:]:
                    spanning.append(f"{path.relative_to(ROOT)}:{number}")
    assert not spanning, f"multi-line {{# #}} comments (use {{% comment %}}): {spanning}"


@pytest.mark.django_db
def test_system_events_are_described_in_chinese():
    """What the WMS and the ERP import did, as the timelines say it: the system's name, the
    transition's and the fields' names, not their codes."""
    order = make_order(status="paid")
    refused = order_events.sync_refused(
        order=order, by=Actor.system("WMS"), action="start_picking", event_id="e1", reason="订单被挂起", source_time=None
    )
    updated = order_events.import_updated(
        order=order,
        by=Actor.system("ERP"),
        fields=["total_amount", "receiver_phone"],
        before={},
        after={},
        import_run=None,
        source_time=None,
    )
    with translation.override("zh-hans"):
        texts = [order_events.describe(refused), order_events.describe(updated), order_events.actor_label(refused)]
    assert "仓储系统" in texts[0] and "开始配货" in texts[0], texts
    assert "ERP 系统" in texts[1] and "应付金额" in texts[1], texts
    assert texts[2] == "仓储系统"
    assert not [word for text in texts for word in english_words(text)], texts
