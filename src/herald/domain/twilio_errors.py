"""Twilio error codes → Herald's failure classes (https://www.twilio.com/docs/api/errors).

The same table classifies an API refusal (``POST Messages.json`` answering
``{"code": 21211, ...}``) and a failure reported later by a status callback (``ErrorCode``).
"""

from __future__ import annotations

from herald.domain.errors import (
    DeliveryError,
    PermanentError,
    TransientError,
    transient_http_status,
)

#: The recipient replied STOP (21610) or blocked the sender (30004): never text them again.
OPT_OUT = frozenset({21610, 30004})
#: The number itself is bad: invalid (21211), not a mobile (21614), unknown handset (30005),
#: landline or unreachable carrier (30006). Suppress it.
BAD_NUMBER = frozenset({21211, 21614, 30005, 30006})
#: The handset is unreachable (30003): often switched off, so retried a few times first.
UNREACHABLE = 30003
#: Worth another try: queue overflow, unknown error, rate limits and Twilio-side faults.
TRANSIENT = frozenset({20429, 30001, 30008, 30500})
#: About our account, sender or configuration, not the recipient: another provider may do
#: better. 20003 authentication, 20404 wrong account, 21212/21606/21659/21660 the sender,
#: 21408 region not enabled, 21603 no sender, 21608 trial account, 30002 account suspended.
ACCOUNT = frozenset({20003, 20404, 21212, 21408, 21603, 21606, 21608, 21659, 21660, 30002})
#: Carrier filtered this content (30007): the number is fine, the message is not.
FILTERED = 30007

_OPT_OUT_HINT = "the recipient opted out"

#: Twilio's titles for the codes above: status callbacks carry only the code.
NAMES = {
    20003: "Authentication error",
    20404: "Resource not found",
    20429: "Too many requests",
    21211: "Invalid 'To' phone number",
    21212: "Invalid 'From' phone number",
    21408: "Permission to send an SMS has not been enabled for the region",
    21603: "'From' phone number is required",
    21606: "'From' phone number is not a valid message-capable Twilio number",
    21608: "Unverified number: trial accounts send only to verified numbers",
    21610: "Attempt to send to unsubscribed recipient",
    21614: "'To' number is not a valid mobile number",
    21659: "Source number is not a Twilio number",
    21660: "Mismatch between the 'From' number and the account",
    30001: "Queue overflow",
    30002: "Account suspended",
    30003: "Unreachable destination handset",
    30004: "Message blocked",
    30005: "Unknown destination handset",
    30006: "Landline or unreachable carrier",
    30007: "Message filtered by the carrier",
    30008: "Unknown error",
    30500: "Message delivery failed at Twilio",
}


def classify_twilio_error(
    code: int | None,
    message: str,
    *,
    http_status: int | None = None,
    attempt: int = 1,
    unreachable_retries: int = 3,
    retry_after: float | None = None,
) -> DeliveryError:
    """The error for Twilio ``code`` (or, without one, for the HTTP status).

    ``attempt`` counts from 1; an unreachable handset (30003) is transient for the first
    ``unreachable_retries`` attempts, then permanent (without suppressing the number).
    """
    label = str(code) if code is not None else (str(http_status) if http_status else None)
    text = f"twilio {label}: {message}" if label else f"twilio: {message}"
    if code in OPT_OUT:
        return PermanentError(f"{text} ({_OPT_OUT_HINT})", code=label, opt_out=True)
    if code in BAD_NUMBER:
        return PermanentError(text, code=label, suppress=True)
    if code == UNREACHABLE:
        if attempt <= unreachable_retries:
            return TransientError(text, code=label, retry_after=retry_after)
        return PermanentError(f"{text} (still unreachable after {attempt} attempts)", code=label)
    if code == FILTERED:
        return PermanentError(text, code=label)
    if code in TRANSIENT:
        return TransientError(text, code=label, retry_after=retry_after)
    if code in ACCOUNT or http_status in {401, 403}:
        return PermanentError(text, code=label, recipient_fault=False)
    if http_status is not None and transient_http_status(http_status):
        return TransientError(text, code=label, retry_after=retry_after)
    return PermanentError(text, code=label)
