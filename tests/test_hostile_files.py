"""Hostile and careless files for the ERP import (issue 12): every one is refused with one clear
Chinese message (the CLI's exit 2) or imported, within the memory budget, and nothing is lost
silently. The files are built here; a sheet whose shape openpyxl cannot write is zipped by hand.

The cases that could take gigabytes on a broken reader run `manage.py import_orders` in a child
process with a 2 GB address-space cap, and read the child's peak memory with getrusage.

`python tests/test_hostile_files.py DIR` writes the largest hostile files into DIR (for
docs/benchmarks.md)."""

from __future__ import annotations

import csv
import datetime
import io
import json
import os
import random
import subprocess
import sys
import time
import zipfile
from decimal import Decimal
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PEAK_MEMORY_MB = 300  # the budget for a worker reading any upload
ADDRESS_SPACE_CAP = 2 * 1024**3  # a child that tries to materialise 137 GB fails fast instead of swapping the machine

HEADER = [
    "订单号",
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
]


# --- Building files ------------------------------------------------------------------------------

CONTENT_TYPES = b"""<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/></Types>"""
ROOT_RELS = b"""<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>"""
WORKBOOK = b"""<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets></workbook>"""
WORKBOOK_RELS = b"""<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/></Relationships>"""
XML_DECLARATION = b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
SHEET_OPEN = b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'


def column_letter(index: int) -> str:
    letters = ""
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def cell(column: int, row: int, value: str) -> bytes:
    text = value.replace("&", "&amp;").replace("<", "&lt;")
    return f'<c r="{column_letter(column)}{row}" t="inlineStr"><is><t>{text}</t></is></c>'.encode()


def row_xml(number: int, values: list[str]) -> bytes:
    return (
        f'<row r="{number}">'.encode()
        + b"".join(cell(i, number, v) for i, v in enumerate(values, start=1) if v != "")
        + b"</row>"
    )


def data_values(number: str, **overrides) -> list[str]:
    values = {
        "订单号": number,
        "下单时间": "2024-05-01 10:20:30",
        "付款日期": "2024-05-01 10:21:00",
        "应付金额": "59.90",
        "已付金额": "59.90",
        "运费": "0",
        "状态": "已付款",
        "快递公司": "中通",
        "快递单号": "",
        "收货人姓名": "王丽",
        "省份": "浙江省",
        "城市": "杭州市",
        "区县": "萧山区",
        "地址": "市心北路100号",
        "手机": "13800138000",
        "买家留言": "",
        "商品编码": "NUK-AFZ-02",
        "商品名称": "",
        "数量": "1",
        "商品单价": "59.90",
        "是否赠品": "否",
    } | overrides
    return [values[column] for column in HEADER]


def write_xlsx(
    path: Path,
    rows,
    *,
    dimension: str | None = None,
    prolog: bytes = b"",
    cut_at: int | None = None,
    compression=zipfile.ZIP_DEFLATED,
) -> Path:
    """A minimal workbook whose sheet XML is exactly what is given: `rows` is an iterable of
    `<row>` bytes, streamed into the zip (a million rows never sit in memory)."""
    with zipfile.ZipFile(path, "w", compression) as archive:
        archive.writestr("[Content_Types].xml", CONTENT_TYPES)
        archive.writestr("_rels/.rels", ROOT_RELS)
        archive.writestr("xl/workbook.xml", WORKBOOK)
        archive.writestr("xl/_rels/workbook.xml.rels", WORKBOOK_RELS)
        head = XML_DECLARATION + prolog + SHEET_OPEN
        if dimension:
            head += f'<dimension ref="{dimension}"/>'.encode()
        head += b"<sheetData>"
        if cut_at is not None:  # a sheet cut off mid-way (an upload or a save that stopped)
            body = head + b"".join(rows) + b"</sheetData></worksheet>"
            archive.writestr("xl/worksheets/sheet1.xml", body[:cut_at])
            return path
        with archive.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as sheet:
            sheet.write(head)
            buffer = []
            for row in rows:
                buffer.append(row)
                if len(buffer) == 10_000:
                    sheet.write(b"".join(buffer))
                    buffer.clear()
            sheet.write(b"".join(buffer))
            sheet.write(b"</sheetData></worksheet>")
    return path


def write_csv(path: Path, rows: list[list[str]], *, encoding="utf-8-sig") -> Path:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(HEADER)
    writer.writerows(rows)
    path.write_bytes(buffer.getvalue().encode(encoding))
    return path


def million_row_zip(path: Path, rows: int = 1_000_000) -> Path:
    """The 4 MB zip holding a million order rows (short rows without cell references, a random
    order number each so it compresses like a real export rather than like a bomb)."""
    rng = random.Random(12)
    header = b"<row>" + b"".join(f'<c t="inlineStr"><is><t>{name}</t></is></c>'.encode() for name in HEADER) + b"</row>"

    def body():
        yield header
        for _ in range(rows):
            yield f'<row><c t="inlineStr"><is><t>E{rng.randrange(10**9):09d}</t></is></c></row>'.encode()

    return write_xlsx(path, body())


# --- Running the command in a child process ------------------------------------------------------

CHILD = """
import json, resource, subprocess, sys, time
cap, timeout, argv = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3:]
def limit():
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
start = time.monotonic()
try:
    done = subprocess.run(argv, capture_output=True, text=True, preexec_fn=limit, timeout=timeout)
    code, out = done.returncode, done.stdout + done.stderr
except subprocess.TimeoutExpired as expired:
    code, out = "timeout", str(expired)
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"code": code, "output": out[-4000:], "peak_mb": usage.ru_maxrss / 1024,
                  "cpu": usage.ru_utime + usage.ru_stime, "wall": time.monotonic() - start}))
"""


def import_in_child(path: Path, *, timeout: float = 120) -> dict:
    """`manage.py import_orders FILE` in a child of a small watcher process, so the peak RSS read
    from RUSAGE_CHILDREN is that command's alone."""
    command = [sys.executable, str(ROOT / "manage.py"), "import_orders", str(path), "--dry-run"]
    watcher = subprocess.run(
        [sys.executable, "-c", CHILD, str(ADDRESS_SPACE_CAP), str(timeout), *command],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=os.environ | {"DEBUG": "1"},
        timeout=timeout + 60,
    )
    return json.loads(watcher.stdout)


# --- Refused before anything is allocated --------------------------------------------------------


def test_a_sheet_declaring_the_whole_grid_is_read_by_its_cells(tmp_path):
    # A1:XFD1048576 declared over 3,000 ordinary rows: openpyxl's read-only reader padded every
    # row to the declared 16,384 columns (128 KB a row, ~400 MB for the file).
    rows = [row_xml(1, HEADER)] + [row_xml(n, data_values(f"BAD NUMBER {n}")) for n in range(2, 3002)]
    path = write_xlsx(tmp_path / "grid.xlsx", rows, dimension="A1:XFD1048576")
    result = import_in_child(path)
    assert result["code"] == 1, result  # read: its rows refused for their order numbers
    assert "2000 more problems counted" in result["output"]  # all 3,000 rows read, the first 1,000 listed
    assert result["peak_mb"] < 150, result


def test_one_cell_at_xfd1048576_is_refused_by_the_row_limit(tmp_path):
    path = write_xlsx(
        tmp_path / "far.xlsx",
        [
            row_xml(1, HEADER),
            row_xml(2, data_values("E1")),
            b'<row r="1048576"><c r="XFD1048576" t="inlineStr"><is><t>x</t></is></c></row>',
        ],
        dimension="A1:XFD1048576",
    )
    assert path.stat().st_size < 5000
    result = import_in_child(path)
    assert result["code"] == 2, result
    assert "超过 200,000 行" in result["output"]
    assert "Traceback" not in result["output"]
    assert result["peak_mb"] < PEAK_MEMORY_MB, result


def test_a_far_cell_at_row_3000_costs_no_hundreds_of_megabytes(tmp_path):
    path = write_xlsx(
        tmp_path / "far3000.xlsx",
        [
            row_xml(1, HEADER),
            row_xml(2, data_values("E1")),
            b'<row r="3000"><c r="XFD3000" t="inlineStr"><is><t>x</t></is></c></row>',
        ],
        dimension="A1:XFD3000",
    )
    result = import_in_child(path)
    assert result["code"] == 2, result
    assert "第 3000 行" in result["output"] and "256" in result["output"]
    assert result["peak_mb"] < 150, result  # was 465 MB


def test_a_4_mb_zip_of_a_million_rows_is_refused_up_front(tmp_path):
    path = million_row_zip(tmp_path / "million.xlsx")
    assert path.stat().st_size < 8 * 1024 * 1024
    result = import_in_child(path, timeout=90)
    assert result["code"] == 2, result
    assert "超过 200,000 行" in result["output"]
    # Counted in the unzipped bytes before a row is parsed: seconds, not the ~20 minutes it took.
    assert result["cpu"] < 30, result
    assert result["peak_mb"] < PEAK_MEMORY_MB, result


def test_a_zip_bomb_is_refused_by_its_compression_ratio(tmp_path):
    huge = "A" * (64 * 1024 * 1024)  # one 64 MB cell: unzips 1,000× its size
    path = write_xlsx(tmp_path / "bomb.xlsx", [row_xml(1, HEADER), row_xml(2, data_values("E1", 地址=huge))])
    del huge
    assert path.stat().st_size < 1024 * 1024
    result = import_in_child(path)
    assert result["code"] == 2, result
    assert "压缩炸弹" in result["output"]
    assert result["peak_mb"] < 150, result


def test_an_entity_expansion_sheet_is_refused(tmp_path):
    laughs = (
        b'<!DOCTYPE worksheet [<!ENTITY a "aaaaaaaaaaaaaaaaaaaa">'
        + b"".join(f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 20}">'.encode() for i in range(8))
        + b"]>"
    )
    path = write_xlsx(
        tmp_path / "laughs.xlsx",
        [row_xml(1, HEADER), b'<row r="2"><c r="A2" t="inlineStr"><is><t>&i;</t></is></c></row>'],
        prolog=laughs,
    )
    result = import_in_child(path)
    assert result["code"] == 2, result
    assert "实体" in result["output"] and "Traceback" not in result["output"]
    assert result["peak_mb"] < PEAK_MEMORY_MB, result


# --- Broken files: one clear message each, exit 2 ------------------------------------------------


def run_command(path: Path) -> tuple[int, str]:
    from django.core.management import call_command

    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("import_orders", str(path), stdout=out, stderr=err)
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    return code, out.getvalue() + err.getvalue()


def real_xlsx(path: Path) -> Path:
    return write_xlsx(path, [row_xml(1, HEADER)] + [row_xml(n, data_values(f"E{n}")) for n in range(2, 400)])


def zip_without_workbook(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("hello.txt", "hi")
    return path


def cfb_with(stream_names: list[str]) -> bytes:
    """An OLE compound file (what Excel writes for a password-protected workbook): the header
    and one directory sector naming the streams (UTF-16LE names, 128-byte entries)."""
    header = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(16) + b"\x3e\x00\x03\x00\xfe\xff\x09\x00" + bytes(512 - 32)
    entries = b""
    for name in ["Root Entry", *stream_names]:
        encoded = name.encode("utf-16-le") + b"\x00\x00"
        entries += encoded.ljust(64, b"\x00") + len(encoded).to_bytes(2, "little") + bytes(62)
    return header + entries.ljust(512, b"\x00") + os.urandom(4096)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("name", "build", "expected"),
    [
        (
            "truncated sheet XML",
            lambda p: write_xlsx(p, [row_xml(1, HEADER), row_xml(2, data_values("E1"))], cut_at=900),
            "已损坏",
        ),
        ("zip without a workbook", zip_without_workbook, "不是 Excel 工作簿"),
        ("zip cut off", lambda p: p.write_bytes(real_xlsx(p).read_bytes()[:3000]) and p, "已损坏"),
        ("text named .xlsx", lambda p: p.write_text("this is not a workbook\n") and p, "没有找到表头"),
        ("empty file", lambda p: p.write_bytes(b"") or p, "文件是空的"),
        ("password-protected workbook", lambda p: p.write_bytes(cfb_with(["EncryptionInfo", "EncryptedPackage"])) and p, "密码"),
        (
            "CSV in an unknown encoding",
            lambda p: p.write_bytes("订单号,商品编码\n".encode() + b"\xff\xfe\xfa,x\n") and p,
            "UTF-8",
        ),
        ("CSV in UTF-16", lambda p: p.write_bytes(",".join(HEADER).encode("utf-16")) and p, "不是表格文件"),
        (
            "CSV with NUL bytes further down",
            lambda p: (
                p.write_bytes(write_csv(p, [data_values(f"E{n}") for n in range(200)]).read_bytes() + b"E9,\x00\x00\n") and p
            ),
            "NUL",
        ),
        (
            "CSV with one 10 MB line",
            lambda p: p.write_bytes(",".join(HEADER).encode() + b"\n" + b"x" * (10 * 1024 * 1024) + b"\n") and p,
            "100,000",
        ),
    ],
)
def test_a_broken_file_gets_one_clear_message_and_exit_2(tmp_path, name, build, expected):
    path = build(tmp_path / ("upload.csv" if name.startswith("CSV") else "upload.xlsx"))
    code, output = run_command(path)
    assert code == 2, output
    assert expected in output, output
    assert "Traceback" not in output


@pytest.mark.django_db
def test_a_zip_with_a_corrupted_sheet_stream_is_damaged_not_a_traceback(tmp_path):
    path = real_xlsx(tmp_path / "crc.xlsx")
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("xl/worksheets/sheet1.xml")
    local = info.header_offset  # the local header's own name and extra lengths (its zip64 extra differs from the directory's)
    start = (
        local
        + 30
        + int.from_bytes(data[local + 26 : local + 28], "little")
        + int.from_bytes(data[local + 28 : local + 30], "little")
    )
    for offset in range(start + 200, start + 260):  # flip bytes inside the deflate stream
        data[offset] ^= 0x5A
    path.write_bytes(bytes(data))
    code, output = run_command(path)
    assert code == 2, output
    assert "已损坏" in output


@pytest.mark.django_db
def test_a_zip_with_an_encrypted_member_asks_for_the_password_to_be_removed(tmp_path):
    path = real_xlsx(tmp_path / "zipcrypto.xlsx")
    data = bytearray(path.read_bytes())
    # Set the "encrypted" flag (bit 0) in every central-directory entry, as a zip password does.
    position = 0
    while (position := data.find(b"PK\x01\x02", position)) >= 0:
        data[position + 8] |= 0x01
        position += 4
    path.write_bytes(bytes(data))
    code, output = run_command(path)
    assert code == 2, output
    assert "密码" in output


@pytest.mark.django_db
def test_a_csv_over_the_row_limit_is_refused_before_any_order_is_written(tmp_path):
    from orders.models import Order
    from tests.conftest import make_product

    make_product(sku="NUK-AFZ-02", price="59.90")
    path = tmp_path / "big.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        template = data_values("E0")
        for n in range(200_050):
            template[0] = f"E{n}"
            writer.writerow(template)
    started = time.process_time()
    code, output = run_command(path)
    assert code == 2, output
    assert "超过 200,000 行" in output
    assert Order.objects.count() == 0
    assert time.process_time() - started < 20


# --- Import validation that loses nothing ---------------------------------------------------------


@pytest.fixture
def product(db):
    from tests.conftest import make_product

    return make_product(sku="NUK-AFZ-02", price="59.90")


@pytest.mark.django_db
def test_errors_kept_per_run_are_bounded_and_the_rest_counted(tmp_path, product, people):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from integrations.erp import services
    from integrations.erp.models import ImportRun

    rows = [data_values(f"E{n}", 商品编码="NO-SUCH-SKU") for n in range(3000)]
    upload = SimpleUploadedFile("bad.csv", write_csv(tmp_path / "bad.csv", rows).read_bytes())
    run = services.import_run_start(upload=upload, user=people["finance"], dry_run=False)
    services.import_run_execute(run=ImportRun.objects.get(pk=run.pk))
    run.refresh_from_db()
    assert run.rejected_count == 3000
    assert len(run.errors) == 1000 and run.errors_omitted == 2000
    assert [error["row"] for error in run.errors] == list(range(2, 1002))  # the first by row
    from django.test import Client

    client = Client()
    client.force_login(people["finance"])
    page = client.get(f"/erp/imports/{run.pk}/").content.decode()
    assert "另有 2000 个问题" in page


@pytest.mark.django_db
def test_an_exact_duplicate_row_is_reported_not_doubled(tmp_path, product):
    from integrations.erp.importer import import_orders
    from orders.models import Order

    row = data_values("D1", 数量="2", 应付金额="119.80", 已付金额="119.80")
    summary = import_orders(path=write_csv(tmp_path / "dup.csv", [row, row]))
    assert summary.created == 1 and summary.errors == []
    order = Order.objects.get(order_number="D1")
    assert list(order.lines.values_list("sku_code", "quantity")) == [("NUK-AFZ-02", 2)]
    assert len(summary.warnings) == 1
    assert summary.warnings[0].row == 3 and "重复" in summary.warnings[0].reason


@pytest.mark.django_db
def test_lines_that_do_not_add_up_to_the_amount_payable_are_flagged_on_the_order_and_in_the_report(tmp_path, product):
    from integrations.erp.importer import import_orders
    from orders import events
    from orders.models import EventKind, Order

    rows = [
        data_values("M1", 数量="2", 应付金额="100.00"),  # 2 × 59.90 = 119.80
        data_values("M2", 数量="2", 运费="8", 应付金额="117.80") + ["10"],  # 119.80 + 8 − 10 = 117.80: fine
        data_values("M3", 应付金额="69.90", 运费="10"),  # 59.90 + 10 = 69.90: fine
    ]
    path = tmp_path / "amounts.csv"
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([*HEADER, "优惠金额"])
    writer.writerows(rows)
    path.write_text(buffer.getvalue(), encoding="utf-8")
    summary = import_orders(path=path)
    assert summary.created == 3 and summary.errors == []
    assert [(warning.order_number, warning.column) for warning in summary.warnings] == [("M1", "应付金额")]
    assert "119.80" in summary.warnings[0].reason and "-19.80" in summary.warnings[0].reason
    created = Order.objects.get(order_number="M1").events.get(kind=EventKind.CREATED)
    assert created.payload["amount_check"]["expected"] == "119.80"
    assert "应付金额 100.00" in events.describe(created) and "119.80" in events.describe(created)
    assert "amount_check" not in Order.objects.get(order_number="M2").events.get(kind=EventKind.CREATED).payload
    assert Order.objects.get(order_number="M1").total_amount == Decimal("100.00")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("column", "value", "limit"),
    [("收货人姓名", "王" * 65, 64), ("地址", "路" * 201, 200), ("买家留言", "快" * 501, 500), ("商品名称", "奶" * 121, 120)],
)
def test_an_over_long_value_is_refused_with_its_limit_not_cut(tmp_path, product, column, value, limit):
    from integrations.erp.importer import MAX_LENGTHS, import_orders
    from orders.models import Order

    if column == "地址":
        limit = MAX_LENGTHS["address"]
        value = "路" * (limit + 1)
    summary = import_orders(path=write_csv(tmp_path / "long.csv", [data_values("L1", **{column: value})]))
    assert summary.rejected == 1 and not Order.objects.filter(order_number="L1").exists()
    [error] = summary.errors
    assert error.column == column and f"最多 {limit}" in error.reason


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("status", "waybill", "refused"),
    [
        ("已发货", "", "需要快递公司和快递单号"),
        ("已完成", "", "需要快递公司和快递单号"),
        ("已发货", "ＺＴ１２３４５６７８", "不是快递公司的单号格式"),  # full-width: looks right, is not ASCII
        ("已发货", "中通123456", "不是快递公司的单号格式"),
        ("已发货", "ZT" + "1" * 40, "不是快递公司的单号格式"),  # was cut to 32 characters
        ("已发货", "zt1234567890", ""),
    ],
)
def test_a_shipped_row_needs_a_waybill_in_the_carriers_format(tmp_path, product, status, waybill, refused):
    from integrations.erp.importer import import_orders
    from orders.models import Order, Shipment

    row = data_values("W1", 状态=status, 快递单号=waybill)
    summary = import_orders(path=write_csv(tmp_path / "ship.csv", [row]))
    if refused:
        assert summary.rejected == 1 and not Order.objects.filter(order_number="W1").exists()
        assert refused in summary.errors[0].reason
    else:
        assert summary.created == 1
        assert Shipment.objects.get(order__order_number="W1").tracking_number == "ZT1234567890"


# --- No run hangs ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_run_whose_worker_died_is_failed_by_the_reaper_and_can_be_retried(tmp_path, product, people, settings):
    from django.test import Client
    from django.utils import timezone

    from integrations.erp import tasks
    from integrations.erp.models import ImportRun, ImportState

    path = write_csv(tmp_path / "ok.csv", [data_values("R1")])
    stored = Path(settings.MEDIA_ROOT) / "erp" / "imports" / "test-reaper.csv"
    stored.parent.mkdir(parents=True, exist_ok=True)
    stored.write_bytes(path.read_bytes())
    long_ago = timezone.now() - datetime.timedelta(minutes=6)
    dead = ImportRun.objects.create(
        file="erp/imports/test-reaper.csv",
        original_name="ok.csv",
        uploaded_by=people["finance"],
        state=ImportState.RUNNING,
        started_at=long_ago,
        heartbeat_at=long_ago,
    )
    alive = ImportRun.objects.create(
        file="erp/imports/test-reaper.csv",
        original_name="ok.csv",
        state=ImportState.RUNNING,
        heartbeat_at=timezone.now(),
    )
    assert "erp-reap-import-runs" in settings.CELERY_BEAT_SCHEDULE
    assert tasks.reap_import_runs() == 1
    dead.refresh_from_db()
    alive.refresh_from_db()
    assert dead.state == ImportState.FAILED and "重试" in dead.file_error
    assert alive.state == ImportState.RUNNING

    client = Client()
    client.force_login(people["finance"])
    page = client.get(f"/erp/imports/{dead.pk}/").content.decode()
    assert 'id="retry-import"' in page and dead.file_error[:20] in page
    response = client.post(f"/erp/imports/{dead.pk}/retry/")
    retry = ImportRun.objects.get(retry_of=dead)
    assert response.status_code == 302 and response["Location"].endswith(f"/erp/imports/{retry.pk}/")
    tasks.run_import(retry.pk)  # what the worker does with the task queued on commit
    retry.refresh_from_db()
    assert retry.state == ImportState.DONE and retry.created_count == 1


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_import_leaves_a_run_the_reaper_fails(tmp_path, settings):
    """A real worker process, SIGKILLed while it reads: its run stays "running" (nothing in it
    can react), and the reaper marks it failed once the heartbeat is older than the lease."""
    import signal

    import time_machine
    from django.db import connection
    from django.utils import timezone

    from integrations.erp import services
    from integrations.erp.models import ImportRun, ImportState

    if connection.vendor != "postgresql":
        pytest.skip("the worker process needs the same database: PostgreSQL")
    stored = Path(settings.MEDIA_ROOT) / "erp" / "imports" / "test-killed.xlsx"
    stored.parent.mkdir(parents=True, exist_ok=True)
    write_xlsx(stored, [row_xml(1, HEADER)] + [row_xml(n, data_values(f"K{n}")) for n in range(2, 40_002)])
    run = ImportRun.objects.create(file="erp/imports/test-killed.xlsx", original_name="big.xlsx", dry_run=True)
    db = connection.settings_dict
    url = f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    worker = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "manage.py"),
            "shell",
            "-c",
            f"from integrations.erp import services; from integrations.erp.models import ImportRun; "
            f"services.import_run_execute(run=ImportRun.objects.get(pk={run.pk}))",
        ],
        cwd=ROOT,
        env=os.environ | {"DATABASE_URL": url},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # wait for a heartbeat after the claim: it is reading
            run.refresh_from_db()
            if run.state == ImportState.RUNNING and run.heartbeat_at and run.heartbeat_at > run.started_at:
                break
            time.sleep(0.1)
        assert run.state == ImportState.RUNNING and run.heartbeat_at > run.started_at, "the worker never got going"
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
    finally:
        if worker.poll() is None:
            worker.kill()
        stored.unlink()
    run.refresh_from_db()
    assert run.state == ImportState.RUNNING  # nobody left to say otherwise
    assert services.import_runs_reap() == 0  # within the lease: maybe only slow
    with time_machine.travel(timezone.now() + ImportRun.HEARTBEAT_LEASE + datetime.timedelta(seconds=5)):
        assert services.import_runs_reap() == 1
    run.refresh_from_db()
    assert run.state == ImportState.FAILED and "重试" in run.file_error and run.finished_at


@pytest.mark.django_db
def test_any_exception_fails_the_run_with_a_message(tmp_path, product, people, settings):
    from integrations.erp import services
    from integrations.erp.models import ImportRun, ImportState

    # Not a problem of the file's content, so not the reader's UnreadableFile: a run row whose
    # stored file was cleared (run.file.path raises ValueError). Any exception must end the run.
    run = ImportRun.objects.create(file="", original_name="gone.csv", uploaded_by=people["finance"])
    services.import_run_execute(run=run)
    run.refresh_from_db()
    assert run.state == ImportState.FAILED and run.file_error
    assert run.finished_at is not None


if __name__ == "__main__":  # write the largest hostile files for docs/benchmarks.md
    target = Path(sys.argv[1])
    target.mkdir(parents=True, exist_ok=True)
    million_row_zip(target / "million-rows.xlsx")
    write_xlsx(
        target / "grid.xlsx",
        [row_xml(1, HEADER)] + [row_xml(n, data_values(f"BAD NUMBER {n}")) for n in range(2, 3002)],
        dimension="A1:XFD1048576",
    )
    write_xlsx(
        target / "far3000.xlsx",
        [
            row_xml(1, HEADER),
            row_xml(2, data_values("E1")),
            b'<row r="3000"><c r="XFD3000" t="inlineStr"><is><t>x</t></is></c></row>',
        ],
        dimension="A1:XFD3000",
    )
    write_xlsx(
        target / "xfd1048576.xlsx",
        [
            row_xml(1, HEADER),
            row_xml(2, data_values("E1")),
            b'<row r="1048576"><c r="XFD1048576" t="inlineStr"><is><t>x</t></is></c></row>',
        ],
        dimension="A1:XFD1048576",
    )
    huge = "A" * (64 * 1024 * 1024)
    write_xlsx(target / "bomb.xlsx", [row_xml(1, HEADER), row_xml(2, data_values("E1", 地址=huge))])
    for path in sorted(target.iterdir()):
        print(path, path.stat().st_size)


@pytest.mark.django_db
def test_a_sync_check_whose_worker_died_is_failed_by_the_reaper(settings):
    from django.utils import timezone

    from integrations.erp import tasks
    from integrations.erp.models import ImportState, ReconciliationRun

    long_ago = timezone.now() - datetime.timedelta(hours=1)
    stuck = ReconciliationRun.objects.create(
        business_date=datetime.date(2026, 12, 1),
        ran_by="小财",
        erp_file_name="erp.xlsx",
        state=ImportState.RUNNING,
        ran_at=long_ago,
    )
    fresh = ReconciliationRun.objects.create(
        business_date=datetime.date(2026, 12, 1), ran_by="小财", erp_file_name="erp.xlsx", state=ImportState.QUEUED
    )
    assert tasks.reap_import_runs() == 1
    stuck.refresh_from_db()
    fresh.refresh_from_db()
    assert stuck.state == ImportState.FAILED and stuck.file_error and stuck.finished_at is not None
    assert fresh.state == ImportState.QUEUED
