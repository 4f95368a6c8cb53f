"""The exception-reason catalogue (issue 16): every reason an order can be stopped or looked at for,
with the role that must act, its own time limit and, where one exists, the condition that
releases it by itself. The fixed risk tags are entries of this catalogue (orders/models.py RiskTag
is built from it, orders/rules.py TAG_RESOLVER_ROLES reads who resolves each), and the ERPs'
own exception codes map onto it, so an exception arriving in a status event lands on the right
reason and owner.

The ERPs' codes: 聚水潭's `question_type` (异常类型) texts and 旺店通's `bad_reason` flags, by
their names as the ERPs show them (the bit values of bad_reason differ between 旺店通 editions,
so a sender translates bits into these names).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

HOUR = datetime.timedelta(hours=1)

# The conditions that release a reason by themselves (orders/services.py exceptions_auto_release).
STOCK_ARRIVED = "stock_arrived"  # the order's stock-shortage hold was released
PAYMENT_COMPLETED = "payment_completed"  # amount paid reached the amount payable
ADDRESS_CONFIRMED = "address_confirmed"  # the address was corrected or a change applied after it opened
RELEASE_DATE = "release_date"  # the date given when it opened has come

RELEASE_LABELS: dict[str, Promise] = {
    STOCK_ARRIVED: _("stock arrived"),
    PAYMENT_COMPLETED: _("payment completed"),
    ADDRESS_CONFIRMED: _("address confirmed"),
    RELEASE_DATE: _("release date reached"),
}


@dataclass(frozen=True)
class Reason:
    code: str
    name: Promise
    owner: str  # the role that must act (docs/brief.md's "who is responsible")
    resolvers: frozenset[str]  # who may close it with a resolution (a supervisor always may)
    time_limit: datetime.timedelta
    release: str = ""  # a RELEASE_LABELS key, or "" when only a person closes it


def _reason(code, name, owner, time_limit, release="", resolvers=None) -> Reason:
    return Reason(code, name, owner, frozenset({owner}) if resolvers is None else frozenset(resolvers), time_limit, release)


REASONS: list[Reason] = [
    # The cockpit's own (the first four were the fixed risk tags).
    # Resolved only by correcting the address (orders/services.py order_correct_address), never by a note.
    _reason("fuzzy_address", _("Fuzzy address"), "reviewer", 2 * HOUR, ADDRESS_CONFIRMED, resolvers=()),
    _reason("high_risk_refund", _("High-risk refund"), "service", 4 * HOUR, resolvers=("service", "finance")),
    _reason("invoice_pending", _("Invoice pending"), "finance", 24 * HOUR),
    _reason("missing_gift", _("Missing gift"), "service", 2 * HOUR),
    _reason("ghost_order", _("Ghost order"), "dispatcher", 4 * HOUR, resolvers=("dispatcher", "courier")),
    # A platform refused the shipping information we wrote back (the WeChat mini-program's
    # upload, Douyin's logistics add): the payment stays frozen or the platform penalises late
    # shipping until the courier liaison corrects the waybill or tells the platform by hand.
    _reason("platform_writeback_failed", _("Platform write-back failed"), "courier", 2 * HOUR, resolvers=("courier", "service")),
    # The ERPs' reasons.
    _reason("out_of_stock", _("Out of stock"), "dispatcher", 24 * HOUR, STOCK_ARRIVED),
    _reason("address_problem", _("Receiver information problem"), "reviewer", 2 * HOUR, ADDRESS_CONFIRMED),
    _reason("special_order", _("Special order"), "service", 4 * HOUR),
    _reason("blacklisted", _("Blacklisted buyer"), "supervisor", 2 * HOUR),
    _reason("waybill_error", _("Electronic waybill error"), "dispatcher", 1 * HOUR),
    _reason("shipping_paused", _("Shipping paused"), "service", 72 * HOUR, RELEASE_DATE),
    _reason("awaiting_merge", _("Waiting for order merge"), "reviewer", 2 * HOUR),
    _reason("awaiting_return", _("Waiting for the after-sales return"), "service", 72 * HOUR),
    _reason("sku_problem", _("SKU code problem"), "supervisor", 4 * HOUR),
    _reason("partial_payment", _("Partly paid"), "finance", 24 * HOUR, PAYMENT_COMPLETED),
    _reason("remark_changed", _("Remark changed"), "reviewer", 2 * HOUR),
    _reason("items_changed", _("Items changed"), "reviewer", 2 * HOUR),
    _reason("buyer_message_changed", _("Buyer message changed"), "service", 2 * HOUR),
]
REASONS_BY_CODE = {reason.code: reason for reason in REASONS}

# 聚水潭 question_type → reason.
JUSHUITAN_QUESTION_TYPES = {
    "缺货": "out_of_stock",
    "收货信息异常": "address_problem",
    "地址异常": "address_problem",
    "特殊单": "special_order",
    "黑名单": "blacklisted",
    "获取电子面单错误": "waybill_error",
    "暂停发货": "shipping_paused",
    "等待订单合并": "awaiting_merge",
    "等待售后收货": "awaiting_return",
    "商品编码异常": "sku_problem",
    "部分付款": "partial_payment",
}
# 旺店通 bad_reason flag names → reason.
WANGDIANTONG_BAD_REASONS = {
    "修改地址": "address_problem",
    "修改备注": "remark_changed",
    "更换货品": "items_changed",
    "拦截赠品": "missing_gift",
    "买家留言变化": "buyer_message_changed",
}
ERP_CODES = {"jushuitan": JUSHUITAN_QUESTION_TYPES, "wangdiantong": WANGDIANTONG_BAD_REASONS}


def reason_for_erp(system: str, code: str) -> Reason | None:
    """The catalogue's reason for an ERP's exception code, None when the code is not mapped."""
    mapped = ERP_CODES.get(system, {}).get((code or "").strip())
    return REASONS_BY_CODE.get(mapped) if mapped else None
