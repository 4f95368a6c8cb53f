"""The Kuaidi100 client against the fake over real HTTP: signatures, every return code the
client distinguishes, and the parsed result."""

import json

import pytest
import requests

from integrations.kuaidi100 import client
from integrations.kuaidi100.fake_server import FakeKuaidi100
from tests.logistics_fixtures import fake_kuaidi100  # noqa: F401 - fixture

CALLBACK = "http://127.0.0.1:9/unused"


def subscribe(number: str, carrier: str = "zhongtong", phone: str = "") -> bool:
    return client.subscribe(carrier_code=carrier, tracking_number=number, callback_url=CALLBACK, phone=phone)


def test_query_signs_the_exact_param_and_parses_the_result(fake_kuaidi100):
    subscribe("ZT100")
    fake_kuaidi100.advance("ZT100")
    fake_kuaidi100.advance("ZT100")
    raw = client.query(carrier_code="zhongtong", tracking_number="ZT100")
    path, form = fake_kuaidi100.requests[-1]
    assert path == "/poll/query.do"
    assert form["sign"] == client.md5_upper(form["param"] + "test-key" + "TESTCUSTOMER")
    assert json.loads(form["param"])["num"] == "ZT100"
    result = client.parse_result(raw)
    assert result.state == "0"
    assert [item.status_name for item in result.items] == ["在途", "揽收"]  # newest first
    assert result.items[0].area_name == "浙江,杭州市"
    assert result.eta is not None


def test_query_with_a_wrong_key_is_a_signature_failure(fake_kuaidi100, settings):
    subscribe("ZT101")
    settings.KUAIDI100 = {**settings.KUAIDI100, "KEY": "wrong-key"}
    with pytest.raises(client.Kuaidi100Error) as raised:
        client.query(carrier_code="zhongtong", tracking_number="ZT101")
    assert raised.value.code == "503"
    assert raised.value.message == "验证签名失败"
    assert raised.value.permanent


@pytest.mark.parametrize(
    ("setup", "carrier", "number", "code", "permanent"),
    [
        ("nothing", "zhongtong", "ZT404", "500", False),  # no result yet
        ("nothing", "not-a-carrier", "ZT404", "400", True),
        ("subscribe-sf", "shunfeng", "SF100", "408", True),  # SF without the phone
        ("busy", "zhongtong", "ZT405", "502", False),
        ("server-error", "zhongtong", "ZT406", "501", False),
        ("quota", "zhongtong", "ZT407", "601", True),
    ],
)
def test_query_error_codes(fake_kuaidi100, setup, carrier, number, code, permanent):
    if setup == "subscribe-sf":
        subscribe(number, carrier="shunfeng", phone="5678")
        fake_kuaidi100.advance(number)
    if setup == "busy":
        fake_kuaidi100.fail_next("/poll/query.do", "502", "服务器繁忙")
    if setup == "server-error":
        fake_kuaidi100.fail_next("/poll/query.do", "501", "服务器错误")
    if setup == "quota":
        fake_kuaidi100.fail_next("/poll/query.do", "601", "key已过期或查询额度不足")
    with pytest.raises(client.Kuaidi100Error) as raised:
        client.query(carrier_code=carrier, tracking_number=number)
    assert raised.value.code == code
    assert raised.value.permanent is permanent


def test_sf_query_with_the_phone_tail_succeeds(fake_kuaidi100):
    subscribe("SF200", carrier="shunfeng", phone="5678")
    fake_kuaidi100.advance("SF200")
    assert client.query(carrier_code="shunfeng", tracking_number="SF200", phone="5678")["state"] == "1"


def test_the_fake_refuses_a_json_body(fake_kuaidi100):
    """docs/protocols.md: a JSON request body is rejected as incomplete data."""
    reply = requests.post(
        f"{fake_kuaidi100.url}/poll/query.do", json={"customer": "x", "sign": "y", "param": "{}"}, timeout=5
    ).json()
    assert reply == {"result": False, "returnCode": "400", "message": "找不到对应公司或参数不完整"}


def test_subscribe_sends_key_and_parameters_inside_param(fake_kuaidi100):
    assert subscribe("ZT300") is True
    _path, form = fake_kuaidi100.requests[-1]
    assert form["schema"] == "json"
    param = json.loads(form["param"])
    assert param["key"] == "test-key"
    assert param["parameters"]["callbackurl"] == CALLBACK
    assert param["parameters"]["salt"] == "test-salt-9f2"
    assert "sign" not in form and "customer" not in form


def test_a_second_subscription_is_already_polling(fake_kuaidi100):
    assert subscribe("ZT301") is True
    assert subscribe("ZT301") is False  # 501 POLL:重复订阅


@pytest.mark.parametrize(
    ("prepare", "carrier", "code", "permanent"),
    [
        ("bad-key", "zhongtong", "600", True),
        ("expired", "zhongtong", "601", True),
        (None, "no-such-carrier", "700", True),
        (None, "youzhengguonei", "701", True),
        (None, "", "702", True),
        ("server", "zhongtong", "500", False),
    ],
)
def test_subscribe_error_codes(fake_kuaidi100, settings, prepare, carrier, code, permanent):
    if prepare == "bad-key":
        settings.KUAIDI100 = {**settings.KUAIDI100, "KEY": "not-the-key"}
    if prepare == "expired":
        fake_kuaidi100.fail_next("/poll", "601", "key已过期")
    if prepare == "server":
        fake_kuaidi100.fail_next("/poll", "500", "服务器错误")
    with pytest.raises(client.Kuaidi100Error) as raised:
        subscribe("ZT302", carrier=carrier)
    assert raised.value.code == code
    assert raised.value.permanent is permanent


def test_an_unreachable_provider_is_transient(settings):
    fake = FakeKuaidi100().start()
    url = fake.url
    fake.stop()
    settings.KUAIDI100 = {"SANDBOX": True, "BASE_URL": url, "CUSTOMER": "c", "KEY": "k", "CALLBACK_SALT": "s"}
    with pytest.raises(client.Kuaidi100Error) as raised:
        subscribe("ZT303")
    assert not raised.value.permanent


def test_recorded_push_signature(settings):
    """A recorded push (tests/data) verifies with its salt and fails with any other."""
    from pathlib import Path

    sample = json.loads((Path(__file__).parent / "data" / "kuaidi100_push_signed.json").read_text())
    assert client.callback_signature_valid(sample["param"], sample["sign"], sample["salt"])
    assert not client.callback_signature_valid(sample["param"], sample["sign"], "another-salt")
    assert not client.callback_signature_valid(sample["param"].replace("签收", "在途"), sample["sign"], sample["salt"])
    result = client.parse_result(json.loads(sample["param"])["lastResult"])
    assert result.state == "3"
    assert result.items[0].occurred_at.isoformat() == "2024-04-28T10:02:11+08:00"


def test_parse_time_reads_beijing_time_and_hour_precision():
    assert client.parse_time("2024-04-27 05:17:36").isoformat() == "2024-04-27T05:17:36+08:00"
    assert client.parse_time("2024-05-01 18").hour == 18
    assert client.parse_time("soon") is None
