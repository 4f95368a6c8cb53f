"""Demo data: one user per role and a week of orders in every state.

Rows are written in bulk with historical timestamps (the services stamp "now", which a week of
history cannot use); the events written beside them name the demo users as actors, so every card
reads like real work.
"""

import datetime
import random
import tempfile
from decimal import Decimal

from django.conf import settings
from django.contrib.auth.models import Group, User
from django.core.files.base import ContentFile
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone, translation

from integrations.douyin.fake_server import SANDBOX_SHOPS as DOUYIN_SANDBOX_SHOPS
from integrations.douyin.models import DouyinShop
from integrations.erp.models import ImportKind, ImportRun
from integrations.erp.services import import_run_execute
from integrations.kuaidi100.client import INTERCEPT_CARRIERS
from integrations.sms.models import SmsMessage, SmsStatus
from integrations.wechat import shipping
from integrations.wechat.fake_server import sandbox_openid
from integrations.wechat.models import CustomerMessage, MessageStatus, ShippingUpload
from orders import clock
from orders import events as order_events
from orders import services as order_services
from orders.access import Actor
from orders.clock import business_day_bounds, business_today
from orders.exports import csv_writer
from orders.models import (
    ACTIVE_STATUSES,
    AddressChangeRequest,
    AddressChangeRung,
    AfterSalesCase,
    Customer,
    MembershipLevel,
    Note,
    Order,
    OrderEvent,
    OrderLine,
    OrderTag,
    Product,
    Shipment,
    TrackingEvent,
)
from workflows import address_changes, ghosts
from workflows.erp_bridge import erp_sync_check
from workflows.frontline.models import Inquiry, SelfServiceQuery
from workflows.health.models import ConsistencySample, ConsistencyTask
from workflows.health.services import measures_store_day
from workflows.models import Ticket

DEMO_USERS = [
    # username (= role), full name
    ("sales", "周晓梅"),
    ("reviewer", "陈立"),
    ("dispatcher", "刘强"),
    ("packer", "赵小军"),
    ("courier", "孙浩"),
    ("service", "林静"),
    ("finance", "吴敏"),
    ("supervisor", "郑海燕"),
]


def demo_password(role: str) -> str:
    return f"beile-{role}-2026"


PRODUCTS = [
    # sku, barcode, name, price, cold chain
    ("FH-XFF3-800", "6901234500011", "飞鹤星飞帆3段幼儿配方奶粉 800g", "298.00", False),
    ("AT-ZZ4-800", "6901234500028", "爱他美卓萃4段儿童配方奶粉 800g", "358.00", False),
    ("BBS-YJB-L62", "6901234500035", "帮宝适一级帮纸尿裤 L码 62片", "139.00", False),
    ("HQ-ZKB-XL44", "6901234500042", "花王妙而舒纸尿裤 XL码 44片", "118.00", False),
    ("BQ-KKJ-240", "6901234500059", "贝亲宽口径玻璃奶瓶 240ml", "129.00", False),
    ("JLB-JC-YS", "6901234500066", "君乐宝简醇0蔗糖儿童酸奶 100g×8", "45.90", True),
    ("YL-QQX-XN", "6901234500073", "伊利QQ星儿童鲜牛奶 190ml×6（冷链）", "39.90", True),
    ("BIO-YSJ-30", "6901234500080", "合生元儿童益生菌冲剂 30袋（冷藏）", "268.00", True),
    ("QZ-SJ-80", "6901234500097", "全棉时代婴儿棉柔巾 80抽×6包", "69.90", False),
    ("YN-MFMF-225", "6901234500103", "英氏有机高铁米粉 225g", "88.00", False),
    ("HB-ETTC-01", "6901234500110", "好孩子轻便婴儿推车", "899.00", False),
    ("NUK-AFZ-02", "6901234500127", "NUK硅胶安抚奶嘴 0-6月", "59.00", False),
    ("GIFT-KSJ-01", "6901234599001", "赠品：纯棉口水巾 2条装", "0.00", False),
    ("GIFT-SYZ-01", "6901234599002", "赠品：奶粉试用装 3条", "0.00", False),
]

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
GIVEN = [
    "婷",
    "静",
    "敏",
    "丽",
    "芳",
    "娜",
    "雪",
    "慧",
    "莉",
    "洁",
    "琳",
    "晓燕",
    "佳怡",
    "梦琪",
    "雨涵",
    "欣怡",
    "子涵",
    "思琪",
    "诗涵",
    "伟",
    "磊",
    "军",
    "洋",
    "勇",
    "杰",
    "浩然",
    "子轩",
]
PLACES = [
    ("浙江省", "杭州市", "萧山区", ["宁围街道市心北路{n}号", "北干街道金城路{n}号丽晶国际{b}幢", "城厢街道人民路{n}弄{b}号"]),
    ("浙江省", "杭州市", "西湖区", ["文三路{n}号颐高数码{b}楼", "古墩路{n}号西城时代家园{b}幢"]),
    ("浙江省", "宁波市", "鄞州区", ["天童南路{n}号嘉汇国贸{b}座", "首南街道泰安中路{n}号"]),
    ("上海市", "上海市", "浦东新区", ["张杨路{n}号{b}室", "世纪大道{n}弄{b}号"]),
    ("江苏省", "苏州市", "工业园区", ["星湖街{n}号{b}幢", "金鸡湖大道{n}号"]),
    ("江苏省", "南京市", "鼓楼区", ["中山北路{n}号{b}单元", "湖南路{n}号"]),
    ("广东省", "深圳市", "南山区", ["科技园科苑路{n}号{b}栋", "南海大道{n}号"]),
    ("北京市", "北京市", "朝阳区", ["望京街{n}号{b}号楼", "建国路{n}号"]),
    ("四川省", "成都市", "高新区", ["天府大道中段{n}号{b}栋", "锦城大道{n}号"]),
]
FUZZY_ADDRESSES = ["小区门口", "老地方", "万达附近", "公司楼下"]
NOTES = [
    ("customer_request", "service", "客户要求明日12点前送达"),
    ("warning", "warehouse", "赠品口水巾不要漏放，客户上次投诉过"),
    ("warning", "warehouse", "奶粉需要两层气泡膜，防止罐体变形"),
    ("info", "", "客户是老会员，可优先安排"),
    ("customer_request", "logistics", "放驿站前请电话联系"),
    ("warning", "warehouse", "冷链商品请放冰袋，出库前再确认"),
]
CARRIERS = ["shunfeng", "zhongtong", "yuantong", "yunda", "jd"]
TRACKING_TEXTS = [
    ("1", "[杭州市]【杭州萧山集散中心】已揽收", "浙江,杭州市"),
    ("0", "[杭州市]快件已从杭州萧山集散中心发出，准备发往{city}", "浙江,杭州市"),
    ("0", "[{city}]快件已到达{city}转运中心", "{province},{city}"),
    ("5", "[{city}]快递员正在派件，请保持电话畅通", "{province},{city}"),
    ("3", "[{city}]已签收，签收人：本人", "{province},{city}"),
]

# How the week's orders spread over the statuses (weights).
STATUS_MIX = [
    ("pending_review", 6),
    ("paid", 8),
    ("picking", 10),
    ("packed", 6),
    ("shipped", 25),
    ("completed", 40),
    ("cancelled", 5),
]
FLOW = ["pending_review", "paid", "picking", "packed", "shipped", "completed"]
STAGE_ACTORS = {"paid": "reviewer", "picking": "dispatcher", "packed": "packer", "shipped": "courier", "completed": "courier"}
TRANSITION_OF = {"paid": "approve", "picking": "start_picking", "packed": "pack", "shipped": "ship", "completed": "complete"}
RUSH_REASONS = ["客户明天出国，需要今天发出", "宝宝奶粉断顿，客户很着急", "直播间承诺当日发货"]
GIFT_RULES = ["满199送口水巾", "新客首单礼", "会员日试用装"]
GIFT_PROMISES = ["记得送冰袋，上次忘了", "客服说会送个小礼物", "买二送一的赠品别忘了"]
# Shipped longer ago than the ghost check's window (12 h by default), with no carrier scan.
GHOST_AGE = datetime.timedelta(hours=14)
ISSUE16_SEED = 16
ISSUE15_SEED = 15
DOUYIN_SHOPS = ["贝乐母婴抖音旗舰店", "贝乐母婴抖音专营店"]
# The customer the README's lookup example finds ("+86 138 0013 8000"), with an order at each of these statuses.
README_PHONE = "13800138000"
README_STATUSES = ("completed", "shipped", "picking")
# Every n-th shipped order (newest placed first, so today has one) was a rush order.
RUSH_EVERY = 15


class Command(BaseCommand):
    help = "Load demo users, products and a week of orders in every state."

    def add_arguments(self, parser):
        parser.add_argument("--orders", type=int, default=2000)
        parser.add_argument("--seed", type=int, default=20260124)

    def handle(self, *args, orders: int, seed: int, **options):
        rng = random.Random(seed)
        # Texts the services store (notes, refusal reasons) are written in the business language,
        # whatever language the caller's thread had active (a test's last request left English).
        with transaction.atomic(), translation.override(settings.LANGUAGE_CODE):
            users = self._users()
            products = self._products()
            self._douyin_shops()
            if Order.objects.filter(order_number__startswith="BL").exists():
                self.stdout.write("Demo orders already present; users and products refreshed.")
            else:
                self._orders(rng, orders, users, products)
        self.stdout.write(self.style.SUCCESS("Demo logins (username / password):"))
        for role, name in DEMO_USERS:
            self.stdout.write(f"  {role:<11} {demo_password(role):<24} {name}")

    def _douyin_shops(self) -> None:
        """The company's three Douyin shops, with the sandbox platform's credentials (the fake that
        `make demo` starts streams their orders to the push endpoint; tokens are fetched on use)."""
        for shop in DOUYIN_SANDBOX_SHOPS:
            DouyinShop.objects.update_or_create(
                shop_id=shop["shop_id"], defaults={"name": shop["name"], "app_key": shop["app_key"], "app_secret": shop["secret"]}
            )

    def _users(self) -> dict[str, User]:
        users = {}
        for role, name in DEMO_USERS:
            user, _ = User.objects.get_or_create(username=role)
            user.first_name = name
            user.email = f"{role}@beile.example"  # SLA alert e-mails reach the demo supervisor (var/mail/)
            user.is_staff = role == "supervisor"  # the supervisor manages products, users and roles in the admin
            user.is_superuser = role == "supervisor"
            user.set_password(demo_password(role))
            user.save()
            user.groups.set([Group.objects.get(name=role)])
            users[role] = user
        return users

    def _products(self) -> list[Product]:
        products = []
        for sku, barcode, name, price, cold in PRODUCTS:
            product, _ = Product.objects.update_or_create(
                sku_code=sku,
                defaults={
                    "barcode": barcode,
                    "name": name,
                    "unit_price": Decimal(price),
                    "cold_chain": cold,
                    "is_gift": sku.startswith("GIFT"),
                    "image": f"/static/img/products/{sku}.svg",
                },
            )
            products.append(product)
        return products

    def _orders(self, rng: random.Random, count: int, users: dict[str, User], products: list[Product]) -> None:
        now = timezone.now()
        customers = [
            Customer(
                phone=README_PHONE,
                name="王丽",
                membership_level=MembershipLevel.values[2],
                created_at=now - datetime.timedelta(days=400),
                wechat_openid=sandbox_openid(README_PHONE),
            )
        ]
        phones = {README_PHONE}
        while len(customers) < max(50, count // 3):
            phone = f"1{rng.choice('3456789')}{rng.randrange(10**9):09d}"
            if phone in phones:
                continue
            phones.add(phone)
            customers.append(
                Customer(
                    phone=phone,
                    name=rng.choice(SURNAMES) + rng.choice(GIVEN),
                    membership_level=rng.choices(MembershipLevel.values, weights=[50, 25, 18, 7])[0],
                    created_at=now - datetime.timedelta(days=rng.randrange(30, 900)),
                    # Most customers follow the service account; the WeChat sandbox knows them by this openid.
                    wechat_openid=sandbox_openid(phone) if rng.random() < 0.9 else "",
                )
            )
        Customer.objects.bulk_create(customers)
        readme_customer = Customer.objects.get(phone=README_PHONE)
        customers = list(Customer.objects.exclude(phone=README_PHONE))
        readme_statuses = list(README_STATUSES)
        sellable = [p for p in products if not p.sku_code.startswith("GIFT")]
        gifts = [p for p in products if p.sku_code.startswith("GIFT")]
        statuses, weights = zip(*STATUS_MIX, strict=True)

        plans = []
        for index in range(count):
            status = rng.choices(statuses, weights)[0]
            age = datetime.timedelta(minutes=rng.randrange(5, 7 * 24 * 60))
            if status in ("pending_review", "paid", "picking", "packed"):
                age = datetime.timedelta(minutes=rng.randrange(5, 9 * 60))
            placed = now - age
            customer = rng.choice(customers)
            if status in readme_statuses:  # the first order planned at each status is the README customer's
                readme_statuses.remove(status)
                customer = readme_customer
            province, city, district, streets = rng.choice(PLACES)
            fuzzy = status == "pending_review" and rng.random() < 0.12
            address = (
                rng.choice(FUZZY_ADDRESSES)
                if fuzzy
                else rng.choice(streets).format(n=rng.randrange(1, 999), b=rng.randrange(1, 30))
            )
            picks = rng.sample(sellable, rng.choice([1, 1, 2, 2, 3, 4]))
            lines = [(p, rng.choice([1, 1, 1, 2, 3]), False) for p in picks]
            if rng.random() < 0.3:
                lines.append((rng.choice(gifts), 1, True))
            cold = any(p.cold_chain for p, _, _ in lines)
            total = sum((p.unit_price * qty for p, qty, _ in lines), Decimal("0.00"))
            carrier = (
                "shunfenglengyun"
                if cold and (status not in ("pending_review", "paid") or rng.random() < 0.5)
                else rng.choice(CARRIERS)
            )
            # Demo history is created at its final status; every later change goes through services.
            order = Order(
                status=status,
                order_number=f"BL{placed:%Y%m%d}{index:05d}",
                source=rng.choices(["erp", "manual", "platform", "rush"], [70, 10, 18, 2])[0],
                customer=customer,
                receiver_name=customer.name,
                receiver_phone=customer.phone,
                province=province,
                city=city,
                district=district,
                address=address,
                total_amount=total,
                paid_amount=total,
                carrier_code=carrier,
                requires_cold_chain=cold,
                placed_at=placed,
                # Recorded here a little after the ERP had it: the status update delay the health page measures.
                created_at=min(placed + self._import_delay(rng), now),
                source_updated_at=placed + datetime.timedelta(minutes=rng.randrange(1, 12)),
            )
            plans.append((order, status, lines, fuzzy))

        for order, status, _lines, _fuzzy in plans:
            self._stamp_stages(rng, order, status)
            if status in ("pending_review", "paid", "picking", "packed") and rng.random() < 0.04:
                order.is_rush = True
                order.source = "rush"
                order.rush_reason = rng.choice(RUSH_REASONS)
                order.rush_deadline = now + datetime.timedelta(hours=rng.randrange(1, 10))
                order.rush_filed_at = order.placed_at
        shipped_plans = sorted(
            (plan for plan in plans if plan[1] in ("shipped", "completed")), key=lambda plan: plan[0].placed_at, reverse=True
        )
        for order, status, _lines, _fuzzy in shipped_plans[::RUSH_EVERY]:
            # Filed from the rush link and pushed through every stage: the rush handling time.
            order.is_rush = True
            order.source = "rush"
            order.rush_reason = rng.choice(RUSH_REASONS)
            order.rush_filed_at = order.placed_at
            order.rush_deadline = order.placed_at + datetime.timedelta(hours=rng.randrange(2, 6))
            self._stamp_stages(rng, order, status, longest_step=rng.choice([30, 30, 45]))
            if status in ("pending_review", "paid", "picking") and rng.random() < 0.04:
                order.is_held = True
                order.hold_reason = rng.choice(["stock_shortage", "customer_request", "payment_check"])
                order.hold_note = {
                    "stock_shortage": "等待补货，预计明早到仓",
                    "customer_request": "客户要求周末后再发",
                    "payment_check": "金额与支付记录不符，财务核对中",
                }[order.hold_reason]
                order.held_at = now - datetime.timedelta(minutes=rng.randrange(5, 120))
                order.hold_until = now + datetime.timedelta(hours=rng.randrange(2, 30))
                order.hold_owner = users["dispatcher"]
        Order.objects.bulk_create([order for order, *_ in plans], batch_size=500)
        saved = {
            o.order_number: o
            for o in Order.objects.filter(order_number__in=[p[0].order_number for p in plans]).select_related("customer")
        }

        # Issue 16's demo draws from its own generator, so the rest of the week stays as it was.
        extra = random.Random(ISSUE16_SEED)
        lines_out, events, notes, tags, shipments, cases, changes, tickets = [], [], [], [], [], [], [], []
        for plan_order, status, lines, fuzzy in plans:
            order = saved[plan_order.order_number]
            for product, quantity, gift in lines:
                lines_out.append(
                    OrderLine(
                        order=order,
                        product=product,
                        sku_code=product.sku_code,
                        product_name=product.name,
                        quantity=quantity,
                        unit_price=Decimal("0.00") if gift else product.unit_price,
                        is_gift=gift,
                        cold_chain=product.cold_chain,
                        # Gift provenance (issue 16): the ERP's gift strategy put it there.
                        gift_added_by="ERP" if gift else "",
                        gift_rule=extra.choice(GIFT_RULES) if gift else "",
                    )
                )
            events.append(
                order_events.created(
                    order=order,
                    by=Actor.system("ERP"),
                    source=order.source,
                    source_time=order.placed_at,
                    occurred_at=order.created_at,
                    save=False,
                )
            )
            self._history(order, status, users, events)
            if fuzzy:
                tags.append(OrderTag(order=order, tag="fuzzy_address", opened_at=order.placed_at + datetime.timedelta(minutes=2)))
            if rng.random() < 0.03:
                tags.append(
                    OrderTag(order=order, tag="invoice_pending", opened_at=order.placed_at + datetime.timedelta(minutes=5))
                )
            tags.extend(self._resolved_tags(rng, order, status, users))
            if status in ("shipped", "completed") and rng.random() < 0.03:
                ticket = self._ticket(rng, order, users)
                if ticket.opened_at <= timezone.now():
                    tickets.append(ticket)
            if rng.random() < 0.18:
                kind, audience, body = rng.choice(NOTES)
                author_role = {"service": "service", "warehouse": "service", "logistics": "sales", "": "sales"}[audience]
                notes.append(
                    Note(
                        order=order,
                        author=users[author_role],
                        author_role=author_role,
                        kind=kind,
                        audience=audience,
                        body=body,
                        created_at=order.placed_at + datetime.timedelta(minutes=rng.randrange(1, 30)),
                    )
                )
            if status in ("shipped", "completed"):
                # A few shipped long enough ago and never scanned by the carrier: the ghost check finds them.
                silent = status == "shipped" and order.shipped_at < now - GHOST_AGE and extra.random() < 0.01
                shipments.append(self._shipment(rng, order, status, silent=silent))
                if rng.random() < 0.06:
                    case = self._case(rng, order, lines, users)
                    if case is not None:
                        cases.append(case)
            if status == "picking" and rng.random() < 0.02:
                changes.append(
                    AddressChangeRequest(
                        order=order,
                        receiver_name=order.receiver_name,
                        receiver_phone=order.receiver_phone,
                        province=order.province,
                        city=order.city,
                        district=order.district,
                        address="改送：" + order.address,
                        requested_by=users["service"],
                        requested_by_name=users["service"].get_full_name(),
                        previous={
                            "receiver_name": order.receiver_name,
                            "receiver_phone": order.receiver_phone,
                            "province": order.province,
                            "city": order.city,
                            "district": order.district,
                            "address": order.address,
                        },
                        due_at=timezone.now() + datetime.timedelta(minutes=settings.ADDRESS_CHANGE_DUE_MINUTES),
                    )
                )
        OrderLine.objects.bulk_create(lines_out, batch_size=1000)
        OrderEvent.objects.bulk_create(events, batch_size=1000)
        OrderTag.objects.bulk_create(tags)
        Note.objects.bulk_create(notes)
        AfterSalesCase.objects.bulk_create(cases)
        AddressChangeRequest.objects.bulk_create(changes)
        Shipment.objects.bulk_create([shipment for shipment, _ in shipments])
        tracking = []
        for shipment, texts in shipments:
            tracking.extend(TrackingEvent(shipment=shipment, **fields) for fields in texts)
        TrackingEvent.objects.bulk_create(tracking, batch_size=1000)
        Ticket.objects.bulk_create(tickets)
        self._issue16(extra, users, [saved[plan[0].order_number] for plan in plans if plan[1] in ("paid", "picking")])
        self._status_queries(rng, users, [saved[plan[0].order_number] for plan in shipped_plans])
        self._reconciliations(rng)
        self._status_checks(rng, users, list(saved.values()))
        self._address_change_ladder(users)
        self._issue15(random.Random(ISSUE15_SEED), now)
        # A week of stored history for the health page's charts (the nightly task keeps it going).
        today = business_today()
        for offset in range(7, 0, -1):
            measures_store_day(day=today - datetime.timedelta(days=offset))
        # Bulk rows skip the services, so give open orders their stage due times here; the
        # first SLA sweep then turns the overdue ones red on the board.
        clock.refresh_due_times()
        self.stdout.write(f"Created {len(plans)} orders, {len(customers)} customers, {len(shipments)} shipments.")

    def _issue15(self, rng: random.Random, now: datetime.datetime) -> None:
        """Issue 15: the Douyin shop's orders carry the platform's order id, shop and latest ship
        time (three near it, one past it), one shipped order an after-sales response deadline;
        four orders come from the WeChat mini-program: two waiting to ship (shipping uploads their
        information to the sandbox), one uploaded, one refused by WeChat (its exception open)."""
        demo = Order.objects.filter(order_number__startswith="BL").exclude(customer__phone=README_PHONE)
        open_orders = demo.filter(status__in=ACTIVE_STATUSES, is_held=False, is_rush=False).order_by("placed_at")
        douyin = list(open_orders.filter(source="platform"))
        # A small demo may have few open Douyin orders: enough for the four clocks below.
        douyin += list(open_orders.filter(source="erp")[: max(0, 4 - len(douyin))])
        for order in douyin:
            order.source = "platform"
            order.platform_order_id = f"69{rng.randrange(10**16):016d}"
            order.platform_shop = rng.choice(DOUYIN_SHOPS)
            # Douyin's usual promise: shipped within 48 hours of payment.
            order.platform_ship_deadline = order.placed_at + datetime.timedelta(hours=48)
        for order, minutes in zip(douyin, [-20, 25, 40, 55], strict=False):
            order.platform_ship_deadline = now + datetime.timedelta(minutes=minutes)
        Order.objects.bulk_update(douyin, ["source", "platform_order_id", "platform_shop", "platform_ship_deadline"])
        waiting = list(demo.filter(source="erp", status="packed", is_held=False).order_by("placed_at")[:2])
        shipped = list(demo.filter(source="erp", status="shipped").order_by("-shipped_at")[:2])
        for index, order in enumerate(waiting + shipped):
            order.source = "miniprogram"
            order.platform_order_id = f"MP{order.placed_at:%Y%m%d}{index:06d}"
            # The payer's openid in the mini-program (not the service account's: another appid).
            order.platform_buyer_id = "oMP" + order.order_number.lower().replace("bl", "")[:25].ljust(25, "0")
        Order.objects.bulk_update(waiting + shipped, ["source", "platform_order_id", "platform_buyer_id"])
        for order, refused in zip(shipped, [False, True], strict=False):
            sent = order.shipped_at + datetime.timedelta(minutes=1)
            upload = ShippingUpload.objects.create(
                order=order,
                idempotency_key=f"{order.pk}:{shipping.UPLOAD_KEY}",
                body=shipping.shipping_body(order, now=sent),
                attempts=1,
                created_at=order.shipped_at,
                status=MessageStatus.REFUSED if refused else MessageStatus.SENT,
                errcode=10060004 if refused else 0,
                last_error="10060004 支付单处于不可发货的状态" if refused else "",
                sent_at=None if refused else sent,
            )
            if refused:
                shipping.upload_exception_open(upload)
        shipped_douyin = demo.filter(status="shipped").exclude(source="miniprogram").order_by("-shipped_at")
        refunding = shipped_douyin.filter(source="platform").first() or shipped_douyin.filter(source="erp").first()
        if refunding is not None:
            refunding.source = "platform"
            refunding.platform_order_id = f"69{rng.randrange(10**16):016d}"
            refunding.platform_shop = DOUYIN_SHOPS[0]
            refunding.platform_aftersales_deadline = now + datetime.timedelta(minutes=45)
            refunding.save(update_fields=["source", "platform_order_id", "platform_shop", "platform_aftersales_deadline"])
            AfterSalesCase.objects.create(
                order=refunding, kind="refund", reason="买家在抖店申请仅退款：不想要了", amount=refunding.total_amount
            )

    def _address_change_ladder(self, users: dict[str, User]) -> None:
        """Issue 13: one address change at each rung of the ladder, through the services (so each
        has its events, notes, ticket and outcome), plus two still waiting in the inbox."""
        service, reviewer = Actor.of(users["service"]), Actor.of(users["reviewer"])
        demo = Order.objects.filter(order_number__startswith="BL", is_held=False).exclude(address_changes__isnull=False)

        def ask(order: Order, source: str = "service") -> AddressChangeRequest:
            by = Actor.system("customer") if source == "customer" else service
            return order_services.address_change_request(
                order=order,
                by=by,
                source=source,
                receiver_name=order.receiver_name,
                receiver_phone=order.customer.phone,
                province=order.province,
                city=order.city,
                district=order.district,
                address=f"{order.address}（改送公司前台）",
            )

        def first(**filters) -> Order | None:
            return demo.filter(**filters).select_related("customer").order_by("order_number").first()

        if paid := first(status="paid"):  # not yet picked: applied at once
            address_changes.address_change_handle(change=ask(paid), by=reviewer)
        if picking := first(status="picking"):  # picking: applied, the packer acknowledges and reprints
            address_changes.address_change_handle(change=ask(picking, "customer"), by=service)
        intercepting = list(
            demo.filter(status="shipped", shipments__carrier_code__in=INTERCEPT_CARRIERS)
            .exclude(shipments__tracking_state__in=["3", "4"])
            .select_related("customer")
            .order_by("order_number")[:3]
        )
        kuaidi100 = Actor.system("kuaidi100")
        for index, (order, outcome) in enumerate(zip(intercepting, ("rerouted", "failed", ""), strict=False)):
            # Kuaidi100's interception, as its result callback leaves it (the demo has no task at the fake).
            change = order_services.address_change_to_carrier(
                change=ask(order),
                by=reviewer,
                rung=AddressChangeRung.CARRIER_INTERCEPT,
                shipment=order.shipments.first(),
                task_id=f"DEMO-INT-{index + 1}",
            )
            if outcome:
                order_services.address_change_carrier_outcome(
                    change=change,
                    by=kuaidi100,
                    outcome=outcome,
                    reason="快递员已出发派件，拦截失败" if outcome == "failed" else "",
                )
        if sf := first(status="shipped", shipments__carrier_code="shunfeng"):  # SF: the courier's hotline ticket
            address_changes.address_change_handle(change=ask(sf), by=service)
        if delivered := first(status="completed"):  # delivered: refused, after-sales offered
            address_changes.address_change_handle(change=ask(delivered), by=service)
        # Two more waiting in the inbox: one from the customer's self-service page, one from service.
        waiting = list(demo.filter(status="paid").select_related("customer").order_by("-order_number")[:2])
        for order, source in zip(waiting, ("customer", "service"), strict=False):
            ask(order, source)

    def _import_delay(self, rng: random.Random) -> datetime.timedelta:
        """Mostly a few minutes from the ERP to here; now and then a slow import batch."""
        if rng.random() < 0.12:
            return datetime.timedelta(seconds=rng.randrange(15 * 60, 45 * 60))
        return datetime.timedelta(seconds=rng.randrange(20, 12 * 60))

    def _resolved_tags(self, rng: random.Random, order: Order, status: str, users: dict[str, User]) -> list[OrderTag]:
        """Exceptions already handled: fuzzy addresses fixed before approval, invoices issued by finance."""
        tags = []
        if status not in ("pending_review", "cancelled") and rng.random() < 0.06:
            opened = order.placed_at + datetime.timedelta(minutes=2)
            resolved = max(
                opened + datetime.timedelta(minutes=3),
                min(opened + datetime.timedelta(minutes=rng.randrange(5, 150)), order.paid_at),
            )
            tags.append(
                OrderTag(
                    order=order,
                    tag="fuzzy_address",
                    opened_at=opened,
                    opened_by=users["reviewer"],
                    resolved_at=resolved,
                    resolved_by=users["reviewer"],
                    resolution="已电话联系客户，补全门牌号",
                )
            )
        if status in ("shipped", "completed") and rng.random() < 0.04:
            opened = order.placed_at + datetime.timedelta(minutes=5)
            resolved = opened + datetime.timedelta(minutes=rng.randrange(30, 300))
            if resolved <= timezone.now():  # an order may already carry an open invoice tag: only resolved ones here
                tags.append(
                    OrderTag(
                        order=order,
                        tag="invoice_pending",
                        opened_at=opened,
                        opened_by=users["service"],
                        resolved_at=resolved,
                        resolved_by=users["finance"],
                        resolution="电子发票已开具并发送",
                    )
                )
        return tags

    def _ticket(self, rng: random.Random, order: Order, users: dict[str, User]) -> Ticket:
        opened = order.shipped_at + datetime.timedelta(hours=24, minutes=rng.randrange(0, 120))
        closed = opened + datetime.timedelta(minutes=rng.randrange(20, 240))
        done = closed < timezone.now() and rng.random() < 0.85
        return Ticket(
            order=order,
            kind="stalled",
            owner=users["courier"],
            summary="物流超过24小时没有更新",
            opened_at=opened,
            closed_at=closed if done else None,
            closed_by=users["courier"] if done else None,
            resolution="已联系网点，包裹已继续转运" if done else "",
        )

    def _status_queries(self, rng: random.Random, users: dict[str, User], shipped: list[Order]) -> None:
        """After shipping, customers look their order up on the self-service page, and now and then
        ask customer service, whose recorded inquiry pushes the location to their WeChat within
        seconds (sometimes minutes, when WeChat is slow); customers without WeChat get no push."""
        now = timezone.now()
        views, inquiries, answers, texts = [], [], [], []
        asked_orders: set[int] = set()
        for order in shipped:
            for _view in range(rng.choice([0, 0, 1, 1, 2, 3])):
                viewed = order.shipped_at + datetime.timedelta(minutes=rng.randrange(10, 40 * 60))
                if viewed <= now:
                    views.append(SelfServiceQuery(order=order, via=rng.choice(["link", "link", "code"]), viewed_at=viewed))
            asked = order.shipped_at + datetime.timedelta(minutes=rng.randrange(60, 40 * 60))
            if rng.random() >= 0.2 or asked > now:
                continue
            answer = None
            if order.customer.wechat_openid:
                delay = datetime.timedelta(seconds=rng.randrange(3, 50) if rng.random() < 0.75 else rng.randrange(90, 15 * 60))
                sent = min(asked + delay, now)
                answer = CustomerMessage(
                    order=order,
                    recipient=order.customer.wechat_openid,
                    event_key="inquiry",
                    idempotency_key=f"demo:inquiry:{order.order_number}",
                    carries_location=True,
                    content={"character_string1": order.order_number, "thing3": order.city},
                    status=MessageStatus.SENT,
                    attempts=1,
                    created_at=asked,
                    next_attempt_at=asked,
                    sent_at=sent,
                )
                answers.append(answer)
            else:
                # A customer who does not follow the service account is answered by SMS
                # (workflows/notifications.py), with the platform's receipt and its billed segment.
                texts.append(self._sms(order, "inquiry", min(asked + datetime.timedelta(seconds=rng.randrange(5, 90)), now)))
            asked_orders.add(order.pk)
            inquiries.append(
                Inquiry(
                    order=order,
                    customer=order.customer,
                    channel=rng.choice(["phone", "wechat"]),
                    question="我的订单到哪了？",
                    recorded_by=users["service"],
                    asked_at=asked,
                    answer_message=answer,
                )
            )
        SelfServiceQuery.objects.bulk_create(views, batch_size=1000)
        CustomerMessage.objects.bulk_create(answers)
        # One non-follower asks today, so the health page's SMS cost has a today like the rest.
        non_followers = [order for order in shipped if not order.customer.wechat_openid and order.pk not in asked_orders]
        if non_followers and not any(timezone.localtime(text.sent_at).date() == business_today() for text in texts):
            order = non_followers[0]
            asked = now - datetime.timedelta(minutes=20)
            texts.append(self._sms(order, "inquiry", asked + datetime.timedelta(seconds=30)))
            inquiries.append(
                Inquiry(
                    order=order,
                    customer=order.customer,
                    channel="phone",
                    question="我的订单到哪了？",
                    recorded_by=users["service"],
                    asked_at=asked,
                )
            )
        SmsMessage.objects.bulk_create(texts)
        Inquiry.objects.bulk_create(inquiries)

    @staticmethod
    def _sms(order: Order, event_key: str, sent: datetime.datetime) -> SmsMessage:
        return SmsMessage(
            order=order,
            phone=order.receiver_phone,
            event_key=event_key,
            idempotency_key=f"demo:sms:{event_key}:{order.order_number}",
            template_code=settings.SMS["TEMPLATE_STATUS"],
            params={"order": order.order_number, "place": order.city},
            carries_location=True,
            status=SmsStatus.SENT,
            attempts=1,
            created_at=sent,
            next_attempt_at=sent,
            sent_at=sent,
            delivery_status="delivered",
            delivered_at=sent,
            segments=1,
            cost=Decimal(str(settings.SMS["PRICE_PER_SEGMENT"])),
        )

    def _reconciliations(self, rng: random.Random) -> None:
        """Finance's ERP sync checks of the last three days against the ERP's order export: today's
        so far matches, yesterday's ERP lacks an order and has one amount keyed in wrong, the day
        before lacks an order."""
        today = business_today()
        for offset, missing, amount_off in ((2, 1, 0), (1, 1, 1), (0, 0, 0)):
            day = today - datetime.timedelta(days=offset)
            start, end = business_day_bounds(day)
            rows = list(
                Order.objects.filter(placed_at__gte=start, placed_at__lt=end)
                .order_by("placed_at")
                .values_list("order_number", "placed_at", "total_amount", "refund_amount")
            )
            if not rows:
                continue
            # The ERP lacks the cheapest orders (a small one slips through unnoticed); shuffled like an export.
            rows = sorted(rows, key=lambda row: row[2])[missing:]
            rng.shuffle(rows)
            with tempfile.NamedTemporaryFile("w", suffix=".csv", encoding="utf-8-sig", newline="") as erp_file:
                writer = csv_writer(erp_file)  # a cockpit-written CSV: formula-safe like all (orders/exports.py)
                writer.writerow(["订单号", "下单时间", "应付金额", "订单退款金额"])
                for index, (number, placed, total, refund) in enumerate(rows):
                    total = total + Decimal("10.00") if index < amount_off else total  # keyed in wrong in the ERP
                    writer.writerow([number, f"{timezone.localtime(placed):%Y-%m-%d %H:%M:%S}", total, refund])
                erp_file.flush()
                erp_sync_check(
                    business_date=day, erp_path=erp_file.name, erp_file_name=f"聚水潭订单导出-{day:%Y%m%d}.csv", by="吴敏"
                )

    def _status_checks(self, rng: random.Random, users: dict[str, User], orders: list[Order]) -> None:
        """A week of the daily cross-role status checks: at 10:00, five orders active at that moment,
        each answered by sales, warehouse and service — nearly always right, rarely one
        stage behind; today's sales answers are still open so the sales login shows the badge."""
        now = timezone.now()
        today = business_today()
        for offset in range(7, -1, -1):
            day = today - datetime.timedelta(days=offset)
            start, _end = business_day_bounds(day)
            moment = min(start + datetime.timedelta(hours=10), now - datetime.timedelta(minutes=5))
            active = [(order, state) for order in orders if (state := self._state_at(order, moment)) in FLOW[:4]]
            # An order past review first: today its warehouse answer lags one stage behind the system
            # (the "ghost order" of the seed), so the demo's health page has a red measure to follow.
            chosen = sorted(rng.sample(active, min(5, len(active))), key=lambda pair: pair[1] == "pending_review")
            for slot, (order, state) in enumerate(chosen, start=1):
                sample = ConsistencySample.objects.create(day=day, slot=slot, order=order, system_state=state, sampled_at=moment)
                for group, person in (
                    ("sales", "sales"),
                    ("warehouse", rng.choice(["dispatcher", "packer"])),
                    ("service", "service"),
                ):
                    task = ConsistencyTask(sample=sample, group=group, assignee=users[person])
                    if not (offset == 0 and group == "sales"):
                        lagging = offset == 0 and slot == 1 and group == "warehouse"
                        wrong = (lagging or rng.random() < 0.01) and state != "pending_review"
                        task.answer = FLOW[FLOW.index(state) - 1] if wrong else state
                        task.answered_at = moment + datetime.timedelta(minutes=1 if lagging else rng.randrange(2, 90))
                        if task.answered_at > now:
                            task.answer, task.answered_at = "", None
                    task.save()

    @staticmethod
    def _state_at(order: Order, moment: datetime.datetime) -> str:
        if order.created_at > moment or (order.cancelled_at and order.cancelled_at <= moment):
            return ""
        reached = [stage for stage in FLOW if getattr(order, f"{stage}_at") and getattr(order, f"{stage}_at") <= moment]
        return reached[-1] if reached else ""

    def _stamp_stages(self, rng: random.Random, order: Order, status: str, longest_step: int = 150) -> None:
        moment = order.created_at
        order.pending_review_at = moment
        if status == "cancelled":
            order.cancelled_at = moment + datetime.timedelta(minutes=rng.randrange(5, 90))
            order.cancel_reason = rng.choice(["客户取消：买错规格", "重复下单", "地址无法送达"])
            order.stage_entered_at = order.cancelled_at
            return
        for stage in FLOW[1 : FLOW.index(status) + 1]:
            moment = min(moment + datetime.timedelta(minutes=rng.randrange(3, longest_step)), timezone.now())
            setattr(order, f"{stage}_at", moment)
        order.stage_entered_at = getattr(order, f"{status}_at")

    def _history(self, order: Order, status: str, users: dict[str, User], events: list) -> None:
        previous = "pending_review"
        if status == "cancelled":
            events.append(
                order_events.status_changed(
                    order=order,
                    by=Actor.of(users["service"], "service"),
                    transition="cancel",
                    source=previous,
                    target="cancelled",
                    as_supervisor=False,
                    reason=order.cancel_reason,
                    occurred_at=order.cancelled_at,
                    save=False,
                )
            )
            return
        for stage in FLOW[1 : FLOW.index(status) + 1]:
            actor = users[STAGE_ACTORS[stage]]
            events.append(
                order_events.status_changed(
                    order=order,
                    by=Actor.of(actor, STAGE_ACTORS[stage]),
                    transition=TRANSITION_OF[stage],
                    source=previous,
                    target=stage,
                    as_supervisor=False,
                    occurred_at=getattr(order, f"{stage}_at"),
                    save=False,
                )
            )
            previous = stage

    def _issue16(self, rng: random.Random, users: dict[str, User], open_orders: list[Order]) -> None:
        """The product master import (one clean run, one with the messy rows it refuses), an order
        import refusing unknown SKUs (its page offers the one-step recovery), buyer messages that
        promise a gift the order lacks (the missing-gift exception), and the ghost check's run."""
        finance = users["finance"]
        products = "\n".join(
            [
                "名称：聚水潭商品资料",
                "商品编码,商品名称,国际条码,规格,单价,图片,冷链,赠品",
                "GIFT-BD-01,赠品：保温冰袋,6901234599019,大号,0,,是,是",
                "MN-YSN-450,美素佳儿有机奶粉 450g,6901234500134,450g,198.00,,否,否",
                "MN-YSN-450,美素佳儿有机奶粉 450g,6901234500134,450g,198.00,,否,否",
                "QQ-BUG-01,贝亲奶瓶刷,6.90123E+12,,29.90,,否,否",
                "QQ-BUG-02,贝亲奶嘴刷,6901234500127,,19.90,,否,否",
            ]
        ).encode("gb18030")
        name = "products-demo.csv"
        run = ImportRun.objects.create(
            kind=ImportKind.PRODUCTS, file=ContentFile(products, name=name), original_name=name, uploaded_by=finance
        )
        import_run_execute(run=run)
        orders_file = "\n".join(
            [
                "订单号,下单时间,应付金额,状态,收货人姓名,手机,省份,城市,区县,地址,商品编码,数量,商品单价",
                "DEMO-SKU-1,2026-01-20 10:00:00,59.00,已付款,王丽,13800138000,浙江省,杭州市,萧山区,市心北路1号,NUK-AFZ-02,1,59.00",
                "DEMO-SKU-2,2026-01-20 10:05:00,129.00,已付款,李娜,13900139000,浙江省,杭州市,西湖区,文三路2号,XZ-NEW-01,1,129.00",
            ]
        ).encode("utf-8-sig")
        name = "orders-unknown-sku.csv"
        run = ImportRun.objects.create(
            kind=ImportKind.ORDERS, file=ContentFile(orders_file, name=name), original_name=name, uploaded_by=finance
        )
        import_run_execute(run=run)

        ungifted = [order for order in open_orders if not order.lines.filter(is_gift=True).exists()]
        for order in rng.sample(ungifted, min(3, len(ungifted))):
            order.buyer_message = rng.choice(GIFT_PROMISES)
            order.save(update_fields=["buyer_message"])
            if order.status == "picking":
                order_services.order_flag_missing_gift(order)
        ghosts.ghost_check()
        # Exceptions the ERP reported in its own codes, each on the catalogue's reason, owner and clock.
        erp = Actor.system("ERP")
        codes = [
            ("jushuitan", "缺货"),
            ("jushuitan", "部分付款"),
            ("jushuitan", "获取电子面单错误"),
            ("wangdiantong", "修改备注"),
        ]
        for order, (system, code) in zip(rng.sample(open_orders, min(len(codes), len(open_orders))), codes, strict=False):
            if code == "部分付款":  # partly paid indeed: it releases itself once the rest is paid
                order.paid_amount = (order.total_amount / 2).quantize(Decimal("0.01"))
                order.save(update_fields=["paid_amount"])
            order_services.exception_from_erp(order=order, by=erp, system=system, code=code)

    def _shipment(self, rng: random.Random, order: Order, status: str, *, silent: bool = False) -> tuple[Shipment, list[dict]]:
        steps = TRACKING_TEXTS if status == "completed" else TRACKING_TEXTS[: rng.randrange(1, 5)]
        moment = order.shipped_at
        texts = []
        for state, text, area in steps:
            moment = moment + datetime.timedelta(minutes=rng.randrange(30, 600))
            if moment > timezone.now():
                break
            city = order.city
            texts.append(
                {
                    "occurred_at": moment,
                    "context": text.format(city=city),
                    "area_name": area.format(province=order.province[:2], city=city),
                    "status_name": state,
                }
            )
        if silent:  # drawn like the others (the random stream stays as it was), then never scanned
            texts = []
        last_state = texts[-1]["status_name"] if texts else ""
        shipment = Shipment(
            order=order,
            carrier_code=order.carrier_code,
            tracking_number=f"{order.carrier_code[:2].upper()}{rng.randrange(10**11, 10**12)}",
            channel=order.carrier_code,
            tracking_state=last_state,
            # What the Kuaidi100 integration keeps of the areaName "浙江,杭州市": the last place
            # (integrations/kuaidi100/services.py `_location`).
            last_location=texts[-1]["area_name"].split(",")[-1] if texts else "",
            last_event_at=texts[-1]["occurred_at"] if texts else None,
            created_at=order.shipped_at,
        )
        return shipment, texts

    def _case(self, rng: random.Random, order: Order, lines: list, users: dict[str, User]) -> AfterSalesCase | None:
        product, quantity, _gift = rng.choice(lines)
        kind = rng.choice(["return", "refund", "missing_gift", "wrong_item", "damaged", "exchange"])
        decided = rng.random() < 0.7
        rejected = decided and rng.random() < 0.35
        opened = order.shipped_at + datetime.timedelta(hours=rng.randrange(20, 60))
        if opened > timezone.now():
            return None  # the customer has not complained yet (piling these up at "now" would skew today's rate)
        return AfterSalesCase(
            order=order,
            sku_code=product.sku_code,
            kind=kind,
            status=("rejected" if rejected else "approved") if decided else "open",
            reason=rng.choice(["罐体凹陷", "尺码不合适", "少发赠品口水巾", "发错规格", "宝宝不爱喝"]),
            amount=product.unit_price if kind in ("refund", "return") else Decimal("0.00"),
            opened_by=users["service"],
            opened_at=opened,
            decision_reason=(rng.choice(["已拆封影响二次销售", "超出7天无理由期限"]) if rejected else "核实属实，同意处理")
            if decided
            else "",
            decided_by=users["service"] if decided else None,
            decided_by_department=(rng.choice(["技术部", "品控部"]) if rejected else "售后部") if decided else "",
            decided_at=min(opened + datetime.timedelta(hours=rng.randrange(2, 30)), timezone.now()) if decided else None,
        )
