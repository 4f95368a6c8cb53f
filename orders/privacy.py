"""Personal data: which roles see phone numbers, and the one shape a masked number takes —
on pages, in free text and in log lines alike (138****5678).

Standard library only (plus the role table): gunicorn.conf.py loads beile/logging.py, which uses
this module, before Django is set up.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from orders.rules import MASKED_PHONE_ROLES

# A mainland mobile number (docs/protocols.md: ^1[3-9]\d{9}$), also as typed: +86/0086 in front,
# spaces or dashes inside; never inside a longer run of digits (an order number, a timestamp).
MOBILE_NUMBER = re.compile(r"(?<!\d)((?:\+?86|0086)[-\s]?)?(1[3-9]\d)[-\s]?\d{4}[-\s]?(\d{4})(?!\d)")


def mask_phone(phone: str) -> str:
    """138****5678: enough for a packer to match a label, not enough to call the customer."""
    if len(phone) >= 7:
        return f"{phone[:3]}****{phone[-4:]}"
    return "****"


def mask_mobile_numbers(text: str) -> str:
    """Every mobile number inside a text (a log line, a note) masked the same way."""
    return MOBILE_NUMBER.sub(r"\1\2****\3", text)


def sees_full_phone(roles: frozenset[str]) -> bool:
    return bool(roles) and not roles <= MASKED_PHONE_ROLES


def private_text(roles: frozenset[str]) -> Callable[[object], str]:
    """Free text as a viewer with these roles may read it: as written, or with every mobile
    number in it masked. Decided once per page by the code that writes many texts for one
    viewer (the card, the lookup, the board); the `private` template filter applies the same."""
    if sees_full_phone(roles):
        return str
    return lambda text: mask_mobile_numbers(str(text))


# A platform's buyer (integrations/douyin) has no phone we may know: their customer row is keyed
# by this prefix and a digest of the platform's search index, which is no number to show anyone.
PLATFORM_BUYER_PREFIX = "dy"


def display_phone(roles: frozenset[str], phone: str) -> str:
    if phone.startswith(PLATFORM_BUYER_PREFIX):
        return "—"
    return phone if sees_full_phone(roles) else mask_phone(phone)
