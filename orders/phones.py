"""Phone numbers as docs/protocols.md defines them: one canonical 11-digit mobile per customer."""

import re
import unicodedata

MOBILE = re.compile(r"^1[3-9]\d{9}$")
LANDLINE = re.compile(r"^0\d{2,3}-?\d{7,8}$")
_SEPARATORS = re.compile(r"[\s\-.()（）\[\]]")


def normalize_mobile(raw: str) -> str | None:
    """The canonical 11 digits of a mainland mobile number, or None if `raw` is not one.

    Accepts full-width digits, spaces, dashes, dots, brackets and a +86 / 0086 / 86 prefix.
    """
    text = _SEPARATORS.sub("", unicodedata.normalize("NFKC", raw or ""))
    for prefix in ("+86", "0086", "86"):
        if text.startswith(prefix) and len(text) - len(prefix) == 11:
            text = text[len(prefix) :]
            break
    return text if MOBILE.match(text) else None


def is_contact_number(raw: str) -> bool:
    """A mobile or a landline: valid to call, though only mobiles identify a customer."""
    if normalize_mobile(raw):
        return True
    return bool(LANDLINE.match(unicodedata.normalize("NFKC", raw or "").replace(" ", "")))


# --- What a person types to find an order --------------------------------------------------------
# Customers and staff type order numbers from a phone keyboard, a Chinese IME (full-width letters
# and digits), or copy them with spaces around; order numbers are stored half-width and upper-case.
ORDER_NUMBER_MAX_LENGTH = 40  # orders.models.Order.order_number
_LAST_FOUR = re.compile(r"^[0-9]{4}$")


def normalize_order_number(raw: str) -> str:
    """The order number as stored: full-width folded to half-width (NFKC), outer spaces removed,
    upper-case. Used wherever a person's typing is looked up (self-service, PDA scan, order
    search, customer-service lookup)."""
    return unicodedata.normalize("NFKC", raw or "").strip().upper()


def normalize_last_four(raw: str) -> str | None:
    """The last four digits of a phone as a customer types them (full-width digits too), or None
    when the text is not exactly four digits."""
    digits = _SEPARATORS.sub("", unicodedata.normalize("NFKC", raw or ""))
    return digits if _LAST_FOUR.match(digits) else None
