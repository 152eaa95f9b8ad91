"""``/inbound/…``: providers calling Herald back with delivery status.

These routes take no API key: each provider proves itself instead (Twilio signs every
request with the account's auth token; Vonage's callback URL carries a token derived from
the API secret). A request that does not prove itself is refused with 403.

A report is answered 204 once applied, or 202 when it names a message Herald has not recorded
sending yet (a callback can beat the worker's outcome write): it is kept and applied later.
Providers do not retry a callback refused with 4xx/5xx, so that one must not be refused.
"""

from __future__ import annotations

from typing import Any, TypeVar
from urllib.parse import parse_qsl

import orjson
from fastapi import APIRouter, HTTPException, Request, Response

from herald.api.deps import HeraldDep
from herald.api.errors import ERRORS, ErrorBody
from herald.domain.channels import Channel
from herald.domain.delivery_reports import DeliveryReport, ReportedState
from herald.domain.errors import DeliveryError, InvalidRequest, PermanentError
from herald.domain.twilio_errors import NAMES, classify_twilio_error
from herald.domain.vonage_errors import classify_vonage_receipt
from herald.providers.twilio import TwilioProvider
from herald.providers.vonage import VonageProvider
from herald.runtime import Herald

P = TypeVar("P")

router = APIRouter(prefix="/inbound", tags=["provider callbacks"])

_RESPONSES: dict[int | str, dict[str, Any]] = {
    202: {
        "description": "No notification has this provider message id yet: the report is "
        "kept and applied once the send is recorded (deleted unapplied after "
        "HERALD_PENDING_REPORTS_RETENTION)"
    },
    403: {"model": ErrorBody, "description": "The request is not signed by a configured provider"},
    415: ERRORS[415] | {"description": "Not a form (Twilio) or a form or JSON (Vonage)"},
    422: ERRORS[422],
}

_TWILIO_STATES = {
    "delivered": ReportedState.DELIVERED,
    "read": ReportedState.DELIVERED,
    "undelivered": ReportedState.FAILED,
    "failed": ReportedState.FAILED,
    "canceled": ReportedState.FAILED,
}
_VONAGE_STATES = {
    "delivered": ReportedState.DELIVERED,
    "failed": ReportedState.FAILED,
    "rejected": ReportedState.FAILED,
    "expired": ReportedState.FAILED,
}


def _form_body(schema: dict[str, Any], *media_types: str) -> dict[str, Any]:
    """The request body a provider sends, for OpenAPI (the routes parse it themselves)."""
    return {
        "requestBody": {
            "required": True,
            "content": {media_type: {"schema": schema} for media_type in media_types},
        }
    }


_TWILIO_BODY = {
    "type": "object",
    "required": ["MessageSid", "MessageStatus"],
    "properties": {
        "MessageSid": {"type": "string", "minLength": 1},
        "MessageStatus": {"type": "string", "minLength": 1},
        "ErrorCode": {"type": "string"},
    },
}
_VONAGE_BODY = {
    "type": "object",
    "required": ["messageId", "status"],
    "properties": {
        "messageId": {"type": "string", "minLength": 1},
        "status": {"type": "string", "minLength": 1},
        "err-code": {"type": "string"},
    },
}


@router.post(
    "/twilio/status",
    status_code=204,
    responses=_RESPONSES,
    summary="Twilio status callback",
    openapi_extra=_form_body(_TWILIO_BODY, "application/x-www-form-urlencoded"),
)
async def twilio_status(request: Request, herald: HeraldDep) -> Response:
    """Twilio's `StatusCallback`: form-encoded `MessageSid`, `MessageStatus`, `ErrorCode`,
    signed in `X-Twilio-Signature`. `delivered` moves a sent notification to `delivered`;
    `undelivered`/`failed` move it to `failed` with the classified error; every callback is
    an event on the timeline, once (replays change nothing). A callback on a message whose
    send is not recorded yet is kept and applied once it is (202)."""
    params = await _form(request)
    url = _public_url(herald, request)
    signature = request.headers.get("X-Twilio-Signature", "")
    provider = next(
        (
            p
            for p in _providers(herald, TwilioProvider)
            if signature and p.signature_valid(url, params, signature)
        ),
        None,
    )
    if provider is None:
        raise HTTPException(403, "X-Twilio-Signature is missing or not valid for this URL")
    fields = dict(params)
    sid, status = _required(fields, "MessageSid", "MessageStatus")
    state = _TWILIO_STATES.get(status, ReportedState.PROGRESS)
    error: DeliveryError | None = None
    raw_code = fields.get("ErrorCode", "")
    if raw_code.isdigit() and int(raw_code) != 0:
        code = int(raw_code)
        error = classify_twilio_error(code, NAMES.get(code, f"message {status}"))
    elif state is ReportedState.FAILED:
        error = PermanentError(f"twilio reports the message {status}")
    return await _record(herald, DeliveryReport(provider.name, sid, state, status, error))


@router.post(
    "/vonage/status",
    status_code=204,
    responses=_RESPONSES,
    summary="Vonage delivery receipt",
    openapi_extra=_form_body(_VONAGE_BODY, "application/json", "application/x-www-form-urlencoded"),
)
async def vonage_status(request: Request, herald: HeraldDep, token: str = "") -> Response:
    """Vonage's SMS delivery receipt, as JSON or a form: `messageId`, `status`
    (`delivered`, `failed`, `rejected`, `expired`, `accepted`, `buffered`…), `err-code`.
    The `token` in the query is the one Herald put in the callback URL it sent. A receipt
    for a message whose send is not recorded yet is kept and applied once it is (202)."""
    provider = next(
        (p for p in _providers(herald, VonageProvider) if token and p.callback_token_valid(token)),
        None,
    )
    if provider is None:
        raise HTTPException(403, "the callback token is missing or not a configured provider's")
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/json"):
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            raise InvalidRequest("the body is not valid JSON") from None
        if not isinstance(body, dict):
            raise InvalidRequest("the body must be a JSON object")
        fields = {str(k): str(v) for k, v in body.items() if v is not None}
    else:
        fields = dict(await _form(request))
    message_id, status = _required(fields, "messageId", "status")
    state = _VONAGE_STATES.get(status, ReportedState.PROGRESS)
    error: DeliveryError | None = None
    raw_code = fields.get("err-code", "")
    if state is ReportedState.FAILED:
        code = int(raw_code) if raw_code.isdigit() else 99
        error = classify_vonage_receipt(code)
    return await _record(herald, DeliveryReport(provider.name, message_id, state, status, error))


async def _record(herald: Herald, report: DeliveryReport) -> Response:
    """204 once applied; 202 when parked until its send is recorded."""
    applied = await herald.record_delivery_report(report)
    return Response(status_code=204 if applied is not None else 202)


async def _form(request: Request) -> list[tuple[str, str]]:
    """The body's form fields (parsed here: Starlette's form parser needs python-multipart
    for no gain on a urlencoded body)."""
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        raise HTTPException(415, "send the body as application/x-www-form-urlencoded")
    body = (await request.body()).decode("utf-8", "replace")
    return parse_qsl(body, keep_blank_values=True)


def _public_url(herald: Herald, request: Request) -> str:
    """The URL the provider called, as it knows it: HERALD_PUBLIC_URL + path (+ query);
    without a public URL, the URL this request arrived at."""
    base = herald.settings.public_url
    if not base:
        return str(request.url)
    query = f"?{request.url.query}" if request.url.query else ""
    return f"{base.rstrip('/')}{request.url.path}{query}"


def _providers(herald: Herald, kind: type[P]) -> list[P]:
    return [p for p in herald.providers.get(Channel.SMS, []) if isinstance(p, kind)]


def _required(fields: dict[str, str], *names: str) -> list[str]:
    missing = {name: "required" for name in names if not fields.get(name)}
    if missing:
        raise InvalidRequest(f"missing {', '.join(missing)}", missing)
    return [fields[name] for name in names]
