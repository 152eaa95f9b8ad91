"""Accept-time checks of an SMS: an E.164 number, a body that fits the segment limit."""

from __future__ import annotations

import phonenumbers

from herald.domain.sms import count_segments
from herald.pipeline.prepared import ChannelLimits, Prepared
from herald.pipeline.requests import CONTROL_CHARACTERS, NotificationRequest


def normalize_phone(value: str, default_region: str | None) -> str:
    """E.164 (``+15551234567``); raises ValueError saying what is wrong."""
    try:
        number = phonenumbers.parse(value, default_region)
    except phonenumbers.NumberParseException as exc:
        hint = "" if default_region else " (include the country code, e.g. +1…)"
        raise ValueError(f"{value!r} is not a phone number: {exc}{hint}") from None
    if not phonenumbers.is_valid_number(number):
        raise ValueError(f"{value!r} is not a valid phone number")
    formatted: str = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return formatted


def prepare_sms(request: NotificationRequest, limits: ChannelLimits) -> Prepared | dict[str, str]:
    errors: dict[str, str] = {}
    to = ""
    if not request.to:
        errors["to"] = "an SMS needs a phone number"
    elif len(request.to) != 1:
        errors["to"] = "one phone number per SMS (use a batch for several)"
    else:
        try:
            to = normalize_phone(request.to[0], limits.sms_default_region)
        except ValueError as exc:
            errors["to"] = str(exc)
    body = request.body
    if not body:
        errors["body"] = "an SMS needs a body"
    elif "\0" in body or (CONTROL_CHARACTERS.search(body.replace("\n", "").replace("\r", ""))):
        errors["body"] = "must not contain control characters other than line breaks"
    if errors or body is None:
        return errors
    segments = count_segments(body)
    if segments.parts > limits.sms_max_segments:
        return {
            "body": f"{segments.parts} segments ({segments.encoding}, {segments.units} units); "
            f"the limit is {limits.sms_max_segments} (HERALD_SMS_MAX_SEGMENTS)"
        }
    payload = {"to": to, "body": body, "segments": segments.parts, "encoding": segments.encoding}
    return Prepared(payload=payload, recipient=to)
