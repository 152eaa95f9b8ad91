"""Local stand-ins for third-party HTTP APIs (aiohttp.web on 127.0.0.1, a random port).

Each speaks its API's documented wire format: it checks authentication and the request
schema the way the real API does, answers with the API's own success and error bodies, and
can be told to fail the next requests with a given status and body.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import itertools
import socket
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson
from aiohttp import web


@dataclass
class Received:
    """One request as the server saw it."""

    method: str
    path: str
    headers: dict[str, str]
    json: Any


@dataclass
class Scripted:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


class FakeApi:
    """The shared machinery: record every request, answer scripted failures first."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self._script: deque[Scripted] = deque()
        self.url = ""
        self.hold: Callable[[], Any] | None = None

    def fail(self, status: int, body: Any = None, times: int = 1, **headers: str) -> None:
        """Answer the next ``times`` well-formed, authenticated requests with this."""
        self._script.extend(Scripted(status, body, headers) for _ in range(times))

    async def _record(self, request: web.Request) -> Received:
        raw = await request.read()
        try:
            payload = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            payload = raw
        received = Received(request.method, request.path, dict(request.headers), payload)
        self.requests.append(received)
        return received

    def _scripted(self) -> web.Response | None:
        if not self._script:
            return None
        step = self._script.popleft()
        return _json(step.status, step.body, step.headers)

    def routes(self) -> list[web.RouteDef]:
        raise NotImplementedError


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> web.Response:
    if body is None:
        return web.Response(status=status, headers=headers)
    if isinstance(body, str):
        return web.Response(status=status, text=body, headers=headers, content_type="text/html")
    return web.Response(
        status=status, body=orjson.dumps(body), headers=headers, content_type="application/json"
    )


A = TypeVar("A", bound=FakeApi)


@asynccontextmanager
async def serving(api: A) -> AsyncIterator[A]:
    """Run ``api`` on 127.0.0.1 at a free port; ``api.url`` is its base URL."""
    app = web.Application()
    app.add_routes(api.routes())
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert server is not None
    port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
    api.url = f"http://127.0.0.1:{port}"
    try:
        yield api
    finally:
        await runner.cleanup()


@contextlib.contextmanager
def unanswered_port() -> Iterator[int]:
    """A loopback port whose accept queue is full: connecting hangs until the client's connect
    timeout (an API endpoint that is down behind a firewall dropping packets)."""
    listener = socket.socket()
    fillers: list[socket.socket] = []
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port: int = listener.getsockname()[1]
        for _ in range(3):
            filler = socket.socket()
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(("127.0.0.1", port))
            fillers.append(filler)
        yield port
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


def _bearer(request: web.Request) -> str | None:
    value = request.headers.get("Authorization", "")
    return value[7:] if value.startswith("Bearer ") else None


def _is_base64(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        base64.b64decode(value, validate=True)
    except binascii.Error:
        return False
    return True


# --- SendGrid v3 Mail Send ---------------------------------------------------------------


def email_api_url(scheme: str, api: FakeApi, key: str, **options: str) -> str:
    """An HTTP email API provider URL pointing at ``api``, sending from a fixed shop address."""
    query = "&".join(
        f"{k}={v}"
        for k, v in {
            "from": "Shop%20%3Cshop@example.org%3E",
            "base_url": api.url,
            **options,
        }.items()
    )
    return f"{scheme}://{key}@?{query}"


class FakeSendGrid(FakeApi):
    """``POST /v3/mail/send``: 202 with ``X-Message-Id``; errors as ``{"errors": [...]}``."""

    def __init__(self, api_key: str = "SG.test-key.secret") -> None:
        super().__init__()
        self.api_key = api_key
        self._ids = itertools.count(1)
        #: The bodies SendGrid accepted (a 202), in order.
        self.accepted: list[dict[str, Any]] = []

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/v3/mail/send", self.mail_send)]

    async def mail_send(self, request: web.Request) -> web.Response:
        received = await self._record(request)
        key = _bearer(request)
        if key is None:
            return _sendgrid_error(401, "Permission denied, wrong credentials")
        if key != self.api_key:
            return _sendgrid_error(
                401, "The provided authorization grant is invalid, expired, or revoked"
            )
        if self.hold is not None:
            await self.hold()
        problem = _sendgrid_problem(received.json)
        if problem is not None:
            return _sendgrid_error(400, problem[1], field=problem[0])
        scripted = self._scripted()
        if scripted is not None:
            return scripted
        self.accepted.append(received.json)
        return web.Response(status=202, headers={"X-Message-Id": f"sg-{next(self._ids):04d}"})


def _sendgrid_error(status: int, message: str, field: str | None = None) -> web.Response:
    return _json(status, {"errors": [{"message": message, "field": field, "help": None}]})


def _sendgrid_problem(body: Any) -> tuple[str, str] | None:
    """The first schema violation SendGrid reports for this body, as (field, message)."""
    if not isinstance(body, dict):
        return ("", "Bad Request")
    personalizations = body.get("personalizations")
    if not isinstance(personalizations, list) or not personalizations:
        return ("personalizations", "The personalizations field is required.")
    for p in personalizations:
        seen: set[str] = set()
        if not p.get("to"):
            return ("personalizations.0.to", "The to array is required for all personalization.")
        for kind in ("to", "cc", "bcc"):
            if kind in p and not p[kind]:
                return (f"personalizations.0.{kind}", f"The {kind} array must not be empty.")
            for address in p.get(kind, []):
                if "@" not in address.get("email", ""):
                    return (f"personalizations.0.{kind}", "Does not contain a valid address.")
                if address["email"].lower() in seen:
                    return (
                        "personalizations.0",
                        "Each email address in the personalization block should be unique "
                        "between to, cc, and bcc.",
                    )
                seen.add(address["email"].lower())
    if "@" not in (body.get("from") or {}).get("email", ""):
        return ("from.email", "The from email does not contain a valid address.")
    if not body.get("subject"):
        return ("subject", "The subject is required.")
    content = body.get("content")
    if not content:
        return ("content", "Unless a valid template_id is provided, the content is required.")
    types = [c.get("type") for c in content]
    if "text/plain" in types and types[0] != "text/plain":
        return ("content", "If present, text/plain must be first, followed by text/html.")
    for a in body.get("attachments", []):
        if not _is_base64(a.get("content")) or not a.get("filename"):
            return ("attachments.0.content", "The attachment content must be base64 encoded.")
        if a.get("disposition") == "inline" and not a.get("content_id"):
            return ("attachments.0.content_id", "content_id is required for inline attachments")
    headers = body.get("headers", {})
    if not all(isinstance(v, str) for v in headers.values()):
        return ("headers", "Invalid type. Expected: string")
    if not all(isinstance(v, str) for v in body.get("custom_args", {}).values()):
        return ("custom_args", "Invalid type. Expected: string")
    categories = body.get("categories", [])
    if len(categories) > 10 or any(len(c) > 255 for c in categories):
        return ("categories", "Too many categories, or one longer than 255 characters")
    return None


# --- Resend ----------------------------------------------------------------------------------


class FakeResend(FakeApi):
    """``POST /emails``: 200 ``{"id"}``; errors ``{"statusCode", "name", "message"}``;
    ``Idempotency-Key`` replays the first response for the same body, 409 for another."""

    def __init__(self, api_key: str = "re_test_key") -> None:
        super().__init__()
        self.api_key = api_key
        self._ids = itertools.count(1)
        self._keys: dict[str, tuple[str, str]] = {}
        #: Emails Resend actually sent (an idempotent replay sends nothing).
        self.sent: list[dict[str, Any]] = []

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/emails", self.emails)]

    async def emails(self, request: web.Request) -> web.Response:
        received = await self._record(request)
        key = _bearer(request)
        if key is None:
            return _resend_error(
                401, "missing_api_key", "Missing API key in the authorization header."
            )
        if key != self.api_key:
            return _resend_error(403, "invalid_api_key", "API key is invalid")
        if self.hold is not None:
            await self.hold()
        problem = _resend_problem(received.json)
        if problem is not None:
            return _resend_error(422, *problem)
        scripted = self._scripted()
        if scripted is not None:
            return scripted
        idempotency_key = request.headers.get("Idempotency-Key")
        digest = hashlib.sha256(orjson.dumps(received.json)).hexdigest()
        if idempotency_key is not None:
            if len(idempotency_key) > 256:
                return _resend_error(400, "invalid_idempotency_key", "Key too long")
            known = self._keys.get(idempotency_key)
            if known is not None:
                if known[0] != digest:
                    return _resend_error(
                        409,
                        "invalid_idempotent_request",
                        "Same idempotency key used with a different request payload.",
                    )
                return _json(200, {"id": known[1]})
        message_id = f"re-{next(self._ids):04d}"
        if idempotency_key is not None:
            self._keys[idempotency_key] = (digest, message_id)
        self.sent.append(received.json)
        return _json(200, {"id": message_id})


def resend_error_body(status: int, name: str, message: str) -> dict[str, Any]:
    return {"statusCode": status, "name": name, "message": message}


def _resend_error(status: int, name: str, message: str) -> web.Response:
    return _json(status, resend_error_body(status, name, message))


def _resend_problem(body: Any) -> tuple[str, str] | None:
    """The first violation Resend reports, as (name, message)."""
    if not isinstance(body, dict):
        return ("validation_error", "Invalid JSON body")
    for required in ("from", "to", "subject"):
        if not body.get(required):
            return ("missing_required_field", f"Missing `{required}` field.")
    if "<" in body["from"] and not body["from"].rstrip().endswith(">"):
        return ("invalid_from_address", "Invalid `from` field.")
    to = body["to"] if isinstance(body["to"], list) else [body["to"]]
    if len(to) > 50:
        return ("validation_error", "Too many recipients: at most 50.")
    if "html" not in body and "text" not in body:
        return ("validation_error", "Missing `html` or `text` field.")
    for attachment in body.get("attachments", []):
        if not _is_base64(attachment.get("content")) or not attachment.get("filename"):
            return ("invalid_attachment", "Attachment must have content and a filename.")
    for tag in body.get("tags", []):
        for part in (tag.get("name", ""), tag.get("value", "")):
            if not part or not all(c.isascii() and (c.isalnum() or c in "_-") for c in part):
                return ("validation_error", "Tags may only contain ASCII letters, numbers, _ or -.")
    return None


# --- Postmark ----------------------------------------------------------------------------------


class FakePostmark(FakeApi):
    """``POST /email`` with ``X-Postmark-Server-Token``: 200 with ``MessageID`` and
    ``ErrorCode: 0``; API errors as HTTP 422 ``{"ErrorCode", "Message"}``."""

    def __init__(self, token: str = "pm-server-token") -> None:  # noqa: S107
        super().__init__()
        self.token = token
        self._ids = itertools.count(1)
        #: Addresses Postmark has marked inactive (hard bounce, spam complaint).
        self.inactive: set[str] = set()
        self.accepted: list[dict[str, Any]] = []

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/email", self.email)]

    async def email(self, request: web.Request) -> web.Response:
        received = await self._record(request)
        if request.headers.get("X-Postmark-Server-Token") != self.token:
            return _json(
                401,
                {"ErrorCode": 10, "Message": "Request does not contain a valid Server token."},
            )
        if request.headers.get("Accept") != "application/json":
            return _json(422, {"ErrorCode": 409, "Message": "JSON Required"})
        if self.hold is not None:
            await self.hold()
        problem = _postmark_problem(received.json, self.inactive)
        if problem is not None:
            return _json(422, {"ErrorCode": problem[0], "Message": problem[1]})
        scripted = self._scripted()
        if scripted is not None:
            return scripted
        self.accepted.append(received.json)
        return _json(
            200,
            {
                "To": received.json["To"],
                "SubmittedAt": "2026-11-22T15:00:00.0000000-05:00",
                "MessageID": f"0a129aee-e1cd-480d-b08d-4f48548f{next(self._ids):04d}",
                "ErrorCode": 0,
                "Message": "OK",
            },
        )


def _postmark_problem(body: Any, inactive: set[str]) -> tuple[int, str] | None:
    if not isinstance(body, dict):
        return (402, "Invalid JSON")
    if "@" not in body.get("From", ""):
        return (300, "Invalid 'From' address: ''.")
    if not body.get("To"):
        return (300, "Zero recipients specified")
    if "TextBody" not in body and "HtmlBody" not in body:
        return (300, "Provide either email TextBody or HtmlBody or both.")
    if any(len(key) > 20 for key in body.get("Metadata", {})):
        return (300, "Metadata field names are limited to 20 characters.")
    for attachment in body.get("Attachments", []):
        if not _is_base64(attachment.get("Content")) or not attachment.get("Name"):
            return (300, "Attachments must have a Name and base64 Content.")
    recipients = ",".join(body.get(f, "") for f in ("To", "Cc", "Bcc"))
    if any(address in recipients for address in inactive):
        return (
            406,
            "You tried to send to recipient(s) that have been marked as inactive. Found "
            "inactive addresses: " + ", ".join(sorted(inactive)) + ".",
        )
    return None


# --- A chat webhook (Apprise json:// and ntfy://) ----------------------------------------------


class FakeChat(FakeApi):
    """Accepts any POST (Apprise's ``json://`` posts to its path, ``ntfy://`` to ``/``)."""

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/{path:.*}", self.post)]

    async def post(self, request: web.Request) -> web.Response:
        await self._record(request)
        scripted = self._scripted()
        if scripted is not None:
            return scripted
        return _json(200, {"ok": True})
