"""Email address validation: email-validator's rules, with a fast path for plain addresses.

email-validator costs ~75 µs an address (IDNA and Unicode checks), too slow for accepting
10,000 notifications a second. Plain ASCII addresses matching a strict pattern — a subset
of what email-validator accepts, checked by a property test — skip it; anything else
(display names, Unicode, punycode, quoted local parts) goes through email-validator.
"""

from __future__ import annotations

import re
from functools import lru_cache

from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, validate_email

from herald.domain.message import Address

_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_PLAIN = re.compile(rf"({_ATOM}(?:\.{_ATOM})*)@((?:{_LABEL}\.)+[A-Za-z]{{2,63}})")
_SPECIAL_USE = frozenset(SPECIAL_USE_DOMAIN_NAMES)
# email-validator refuses a domain equal to or ending in one of these; they are all single
# labels, so looking at the top-level label is the same test.
if any("." in name for name in _SPECIAL_USE):  # pragma: no cover - a future email-validator
    raise ImportError("email-validator's special-use names changed; revisit the fast path")
_RESERVED_PREFIX = re.compile(r"(?:^|\.)[a-z0-9-]{2}--")
_NAMED = re.compile(r"\s*(.*?)\s*<([^<>]*)>\s*", re.DOTALL)
_NAME_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f]")
_QUOTED_PAIR = re.compile(r"\\(.)")
# RFC 5321 limits: 64 octets of local part, 254 for the whole path.
_MAX_LOCAL, _MAX_TOTAL = 64, 254


class InvalidAddress(ValueError):
    """An address email-validator (or the fast path) refuses; the message says why."""


def parse_email_address(value: str) -> Address:
    """Validate ``addr`` or ``Display Name <addr>``; the domain comes back lowercased.

    Display names may be UTF-8 without quotes (RFC 6532 extends atext), e.g.
    ``Zoë Ångström <zoe@example.org>``; the MIME layer encodes them for the wire.
    """
    named = _NAMED.fullmatch(value) if "<" in value else None
    if named is None:
        return _fast_path(value) or _slow_path(value)
    name, addr = named.groups()
    if _NAME_FORBIDDEN.search(name):
        raise InvalidAddress("the display name must not contain line breaks or control characters")
    if len(name) >= 2 and name[0] == name[-1] == '"':
        name = _QUOTED_PAIR.sub(r"\1", name[1:-1])
    parsed = _fast_path(addr) or _slow_path(addr)
    return Address(name.strip(), parsed.addr)


def _fast_path(value: str) -> Address | None:
    match = _PLAIN.fullmatch(value)
    if match is None:
        return None
    local, domain = match.groups()
    lowered = domain.lower()
    if (
        len(local) > _MAX_LOCAL
        or len(value) > _MAX_TOTAL
        # "ab--" label prefixes are reserved for IDNA; let email-validator judge them.
        or _RESERVED_PREFIX.search(lowered)
        or lowered[lowered.rfind(".") + 1 :] in _SPECIAL_USE
    ):
        return None
    return Address("", f"{local}@{lowered}")


@lru_cache(maxsize=4096)
def _slow_path(value: str) -> Address:
    if any(ch in value for ch in "\r\n\0"):
        raise InvalidAddress("must not contain line breaks or NUL characters")
    try:
        result = validate_email(value, check_deliverability=False, allow_display_name=True)
    except EmailNotValidError as exc:
        raise InvalidAddress(str(exc)) from None
    # ascii_email keeps IDN domains in punycode, which every SMTP server accepts; it is None
    # only for an internationalized local part (then SMTPUTF8 is needed anyway).
    return Address(result.display_name or "", result.ascii_email or result.normalized)
