"""normalize_mobile over the formats customers and agents actually type (docs/protocols.md)."""

import pytest

from orders.phones import is_contact_number, normalize_mobile


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("13812345678", "13812345678"),
        ("138 1234 5678", "13812345678"),
        ("138-1234-5678", "13812345678"),
        ("138.1234.5678", "13812345678"),
        ("(138)12345678", "13812345678"),
        ("（138）1234-5678", "13812345678"),
        ("+86 138 1234 5678", "13812345678"),
        ("+86-138-1234-5678", "13812345678"),
        ("0086 13812345678", "13812345678"),
        ("8613812345678", "13812345678"),
        ("１３８１２３４５６７８", "13812345678"),  # full-width digits from a Chinese IME
        ("＋８６ １３８ １２３４ ５６７８", "13812345678"),
        ("\t138 1234 5678\n", "13812345678"),
        ("19912345678", "19912345678"),
        ("12812345678", None),  # 12x is not a mobile prefix
        ("1381234567", None),  # 10 digits
        ("138123456789", None),  # 12 digits
        ("86138123456", None),  # "86" kept: stripping it would leave 9 digits
        ("0571-88888888", None),  # a landline: a contact number, not a lookup key
        ("T0000000001", None),
        ("", None),
    ],
)
def test_normalize_mobile(raw, expected):
    assert normalize_mobile(raw) == expected


@pytest.mark.parametrize(
    ("raw", "valid"), [("0571-88888888", True), ("057188888888", True), ("+86 138 1234 5678", True), ("12345", False)]
)
def test_contact_numbers_include_landlines(raw, valid):
    assert is_contact_number(raw) is valid
