"""Vonage SMS API status codes → Herald's failure classes.

The SMS API answers HTTP 200 even when it refuses a message: each part's ``status`` in the
body says what happened (https://developer.vonage.com/en/messaging/sms/guides/troubleshooting-sms).
"""

from __future__ import annotations

from herald.domain.errors import DeliveryError, PermanentError, TransientError

#: 1 throttled, 5 internal error, 10 too many existing binds.
TRANSIENT = frozenset({1, 5, 10})
#: About our account, credentials, sender or settings: another provider may do better.
#: 4 invalid credentials, 8 account barred, 9 quota exceeded, 11 REST not enabled,
#: 14 invalid signature, 15 invalid sender, 23 invalid callback URL, 29 destination not
#: whitelisted (demo account), 32 signature and secret both sent.
ACCOUNT = frozenset({4, 8, 9, 11, 14, 15, 23, 29, 32})
#: The number is bad: 7 barred, 33 deactivated. Suppress it.
BAD_NUMBER = frozenset({7, 33})

_NAMES = {
    1: "throttled",
    2: "missing parameters",
    3: "invalid parameters",
    4: "invalid credentials",
    5: "internal error",
    6: "invalid message (unroutable)",
    7: "number barred",
    8: "partner account barred",
    9: "partner quota violation",
    10: "too many existing binds",
    11: "account not enabled for HTTP",
    12: "message too long",
    14: "invalid signature",
    15: "invalid sender address",
    22: "invalid network code",
    23: "invalid callback URL",
    29: "non-whitelisted destination",
    32: "signature and API secret disallowed",
    33: "number de-activated",
}


def classify_vonage_status(status: int, error_text: str = "") -> DeliveryError:
    """The error for a message part with a non-zero ``status``.

    Unknown codes fail over to the next provider rather than retrying blindly: Vonage
    documents every code it may send, so a new one most likely concerns the account.
    """
    reason = error_text or _NAMES.get(status, "unknown status")
    text = f"vonage status {status}: {reason}"
    label = str(status)
    if status in TRANSIENT:
        return TransientError(text, code=label)
    if status in BAD_NUMBER:
        return PermanentError(text, code=label, suppress=True)
    if status in ACCOUNT or status not in _NAMES:
        return PermanentError(text, code=label, recipient_fault=False)
    # 2, 3, 6, 12, 22: this message to this number cannot be sent as is.
    return PermanentError(text, code=label)


#: Delivery receipt ``err-code``s (a separate table from the send statuses above).
RECEIPT_NAMES = {
    1: "unknown",
    2: "absent subscriber (temporary)",
    3: "absent subscriber (permanent)",
    4: "call barred by user",
    5: "portability error",
    6: "anti-spam rejection",
    7: "handset busy",
    8: "network error",
    9: "illegal number",
    10: "illegal message",
    11: "unroutable",
    12: "destination unreachable",
    13: "subscriber age restriction",
    14: "number blocked by carrier",
    15: "prepaid insufficient funds",
    16: "gateway quota exceeded",
    50: "entity filter",
    51: "header filter",
    52: "content filter",
    53: "consent",
    54: "regulation error",
    99: "general error",
}
_RECEIPT_TRANSIENT = frozenset({1, 2, 7, 8, 12, 99})
_RECEIPT_OPT_OUT = frozenset({4})
_RECEIPT_BAD_NUMBER = frozenset({3, 9})
_RECEIPT_ACCOUNT = frozenset({15, 16, 50, 51, 53, 54})


def classify_vonage_receipt(err_code: int) -> DeliveryError:
    """The error a failed delivery receipt's ``err-code`` stands for."""
    text = f"vonage receipt error {err_code}: {RECEIPT_NAMES.get(err_code, 'unknown code')}"
    label = str(err_code)
    if err_code in _RECEIPT_TRANSIENT:
        return TransientError(text, code=label)
    if err_code in _RECEIPT_OPT_OUT:
        return PermanentError(text, code=label, opt_out=True)
    if err_code in _RECEIPT_BAD_NUMBER:
        return PermanentError(text, code=label, suppress=True)
    if err_code in _RECEIPT_ACCOUNT:
        return PermanentError(text, code=label, recipient_fault=False)
    return PermanentError(text, code=label)
