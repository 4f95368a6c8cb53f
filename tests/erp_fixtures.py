"""Real ERP export files for the ERP tests, written the way the ERP writes them (Jushuitan-style
columns, one row per order line, optional title row above the header)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from openpyxl import Workbook

HEADER = [
    "订单号",
    "线上订单号",
    "店铺",
    "下单时间",
    "付款日期",
    "应付金额",
    "已付金额",
    "运费",
    "状态",
    "快递公司",
    "快递单号",
    "收货人姓名",
    "省份",
    "城市",
    "区县",
    "地址",
    "手机",
    "买家留言",
    "商品编码",
    "商品名称",
    "数量",
    "商品单价",
    "是否赠品",
    "订单退款金额",
]
TITLE = "名称：聚水潭成本"


def line(
    number,
    sku,
    *,
    quantity=1,
    price="59.90",
    total="59.90",
    phone="13800138000",
    name="王丽",
    placed="2024-05-01 10:20:30",
    paid="2024-05-01 10:21:00",
    status="已付款",
    gift="否",
    refund="0",
    address="市心北路100号",
    message="",
) -> dict:
    return {
        "订单号": number,
        "线上订单号": f"DY{number}",
        "店铺": "贝乐旗舰店",
        "下单时间": placed,
        "付款日期": paid,
        "应付金额": total,
        "已付金额": total,
        "运费": "0",
        "状态": status,
        "快递公司": "中通",
        "快递单号": "",
        "收货人姓名": name,
        "省份": "浙江省",
        "城市": "杭州市",
        "区县": "萧山区",
        "地址": address,
        "手机": phone,
        "买家留言": message,
        "商品编码": sku,
        "商品名称": "",
        "数量": quantity,
        "商品单价": price,
        "是否赠品": gift,
        "订单退款金额": refund,
    }


def write_csv(path: Path, rows: list[dict], *, encoding: str = "utf-8-sig", title: bool = False, header=HEADER) -> Path:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    if title:
        writer.writerow([TITLE])
    writer.writerow(header)
    for row in rows:
        writer.writerow([row.get(column, "") for column in header])
    path.write_bytes(buffer.getvalue().encode(encoding))
    return path


def write_xlsx(path: Path, rows: list[dict], *, title: bool = False, header=HEADER) -> Path:
    """Cells keep the Python types given: an int or float order number lands as an Excel number."""
    workbook = Workbook()
    sheet = workbook.active
    if title:
        sheet.append([TITLE])
    sheet.append(header)
    for row in rows:
        sheet.append([row.get(column, "") for column in header])
    workbook.save(path)
    return path


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    """The people fixture hashes nine passwords; PBKDF2 makes that seconds per test on 2 cores."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
