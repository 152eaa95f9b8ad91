"""Classifying SMTP replies (RFC 5321 basic codes, RFC 3463 enhanced status codes)."""

from __future__ import annotations

import re

from herald.domain.errors import DeliveryError, PermanentError, TransientError

_ENHANCED = re.compile(r"^\s*([245])\.(\d{1,3})\.(\d{1,3})\b")

#: The address does not exist or is disabled: stop sending to it.
_SUPPRESS_WORTHY = frozenset({"5.1.1", "5.1.2", "5.2.1"})

#: Basic codes that point at the sending side (auth, TLS), not the recipient.
_SENDER_SIDE_BASIC = frozenset({530, 534, 535, 538})


def enhanced_code(message: str) -> str | None:
    """The enhanced status code an SMTP reply text starts with, e.g. ``5.1.1``."""
    match = _ENHANCED.match(message)
    if match is None:
        return None
    return ".".join(match.groups())


def classify_smtp_reply(code: int, message: str) -> DeliveryError:
    """Map a negative SMTP reply to a transient or permanent error.

    The basic code decides retry or not (4xx transient, 5xx permanent); the enhanced code
    refines a permanent one: 5.1.1/5.1.2/5.2.1 are suppress-worthy, 5.7.x is a policy or
    security refusal that is not the recipient's fault (so another provider may be tried).
    """
    enhanced = enhanced_code(message)
    label = f"{code} {enhanced}" if enhanced else str(code)
    text = f"{code} {message}".strip()
    if 400 <= code < 500:
        return TransientError(text, code=label)
    if enhanced in _SUPPRESS_WORTHY:
        return PermanentError(text, code=label, suppress=True)
    sender_side = (enhanced is not None and enhanced.startswith("5.7.")) or (
        code in _SENDER_SIDE_BASIC
    )
    if 500 <= code < 600:
        return PermanentError(text, code=label, recipient_fault=not sender_side)
    # Anything else (a 2xx/3xx where a final reply was expected, garbage) is a protocol
    # hiccup on this session; a fresh attempt may well succeed.
    return TransientError(f"unexpected SMTP reply {text}", code=label)


# How common servers name the queue entry in their reply to the end of DATA.
_QUEUE_ID_PATTERNS = (
    # Postfix, SendGrid and many others: "2.0.0 Ok: queued as 4Xk2abC1"
    re.compile(r"\bqueued as <?([A-Za-z0-9][\w.@-]*)", re.IGNORECASE),
    # Exim: "OK id=1rXyZq-000Abc-Cd"
    re.compile(r"\bid=([A-Za-z0-9][\w.-]*)"),
    # Microsoft 365 / Exchange: "2.6.0 <…> [InternalId=1234, Hostname=…] Queued mail for delivery"
    re.compile(r"\[InternalId=(\d+)"),
    # Sendmail: "2.0.0 4ABCdEF1234567 Message accepted for delivery"
    re.compile(r"^(?:\d\.\d{1,3}\.\d{1,3}\s+)?(\w{6,})\s+Message accepted", re.IGNORECASE),
    # Amazon SES: "Ok 0100018b2c3d4e5f-1a2b3c4d-…-000000"
    re.compile(r"^(?:\d\.\d{1,3}\.\d{1,3}\s+)?Ok\s+([0-9a-f]{8,}(?:-[0-9a-f]+)+)\b"),
    # Gmail: "2.0.0 OK  1700000000 a1-20020a05600c0001sm123456wmb.7 - gsmtp"
    re.compile(r"\bOK\s+\d+\s+(\S+)\s+-\s+gsmtp", re.IGNORECASE),
)


#: A text none of the patterns can match lacks all of these (a case-blind superset of what each
#: needs), so one search rules out six for replies that name no queue id ("2.0.0 Ok").
_MAY_NAME_QUEUE_ID = re.compile(r"queued as|id=|message accepted|[0-9a-f]{8}-|gsmtp", re.IGNORECASE)


def queue_id_from_reply(message: str) -> str | None:
    """The server's queue id in its final reply to DATA (``queued as ABC123``), if it names one."""
    if _MAY_NAME_QUEUE_ID.search(message) is None:
        return None
    for pattern in _QUEUE_ID_PATTERNS:
        match = pattern.search(message)
        if match is not None:
            return match.group(1).rstrip(".,;:)>")
    return None
