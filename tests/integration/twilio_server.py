"""A local stand-in for Twilio's Messages API (aiohttp.web on 127.0.0.1).

It speaks the documented wire format: ``POST /2010-04-01/Accounts/{sid}/Messages.json``
form-encoded, HTTP basic auth with the account SID and auth token, ``201`` with the message
resource as JSON, errors as ``{"code", "message", "more_info", "status"}``. It checks what
Twilio checks, can be told to fail with any error code, and builds the status callbacks Twilio
would send (signed with the auth token, computed here independently of Herald's code). It can
also create a message and then lose the reply (hang, or close the connection), as a network
failure after Twilio took the request would.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import re
import secrets
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode

from aiohttp import web

_E164 = re.compile(r"\+[1-9]\d{1,14}")
_API = "/2010-04-01/Accounts/{sid}"


@dataclass
class Failure:
    """What the next request gets instead of a 201."""

    status: int
    code: int | None
    message: str = "scripted failure"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class RawFailure:
    """A response that is not Twilio's JSON: a proxy's error page, a truncated body."""

    status: int
    body: str
    content_type: str = "text/html"


#: What happens to the reply of a message that was created: never sent, or the connection
#: closed instead.
LostReply = Literal["hang", "close"]


@dataclass
class Received:
    """A message the server accepted."""

    sid: str
    form: dict[str, str]


class TwilioServer:
    def __init__(self) -> None:
        self.account_sid = "AC" + "0" * 32
        self.auth_token = "t0ken"
        self.failures: deque[Failure | RawFailure] = deque()
        #: The next created messages' replies are lost this way.
        self.lost_replies: deque[LostReply] = deque()
        #: Awaited after a message is created, before the reply (a slow answer).
        self.hold: Callable[[], Awaitable[object]] | None = None
        self._release = asyncio.Event()
        self.messages: list[Received] = []
        self.requests: list[dict[str, str]] = []  # every form posted, accepted or not
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, sender: str = "+15550001111", **options: str) -> str:
        """A ``twilio://`` URL pointing Herald at this server."""
        query = urlencode({"base_url": self.base_url, **options})
        return f"twilio://{self.account_sid}:{self.auth_token}@{sender}?{query}"

    def fail(
        self, status: int, code: int | None, message: str = "scripted failure", **headers: str
    ) -> None:
        self.failures.append(Failure(status, code, message, headers))

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post(_API + "/Messages.json", self._messages)
        app.router.add_get(_API + ".json", self._account)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        self._release.set()
        if self._runner is not None:
            await self._runner.cleanup()

    # -- the API ---------------------------------------------------------------------------

    def _error(self, status: int, code: int | None, message: str, **headers: str) -> web.Response:
        body: dict[str, Any] = {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        }
        return web.json_response(body, status=status, headers=headers)

    def _authenticated(self, request: web.Request) -> bool:
        expected = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        given = request.headers.get("Authorization", "")
        return request.match_info["sid"] == self.account_sid and hmac.compare_digest(
            given, f"Basic {expected}"
        )

    async def _account(self, request: web.Request) -> web.Response:
        if not self._authenticated(request):
            return self._error(401, 20003, "Authenticate")
        return web.json_response({"sid": self.account_sid, "status": "active"})

    async def _messages(self, request: web.Request) -> web.Response:
        if not self._authenticated(request):
            return self._error(401, 20003, "Authenticate")
        if request.content_type != "application/x-www-form-urlencoded":
            return self._error(400, 20001, "Content-Type must be form-encoded")
        form = dict(parse_qsl(await request.text(), keep_blank_values=True))
        self.requests.append(form)
        if ("From" in form) == ("MessagingServiceSid" in form):
            return self._error(400, 21603, "Exactly one of From and MessagingServiceSid")
        if not _E164.fullmatch(form.get("To", "")):
            return self._error(400, 21211, f"The 'To' number {form.get('To')} is not valid.")
        if not form.get("Body"):
            return self._error(400, 21602, "Message body is required.")
        if self.failures:
            failure = self.failures.popleft()
            if isinstance(failure, RawFailure):
                return web.Response(
                    status=failure.status, text=failure.body, content_type=failure.content_type
                )
            return self._error(failure.status, failure.code, failure.message, **failure.headers)
        sid = "SM" + secrets.token_hex(16)
        self.messages.append(Received(sid, form))
        if self.hold is not None:
            await self.hold()
        if self.lost_replies:
            if self.lost_replies.popleft() == "hang":
                await self._release.wait()
            elif request.transport is not None:
                request.transport.close()
        return web.json_response(
            {
                "account_sid": self.account_sid,
                "api_version": "2010-04-01",
                "body": form["Body"],
                "direction": "outbound-api",
                "error_code": None,
                "error_message": None,
                "from": form.get("From"),
                "messaging_service_sid": form.get("MessagingServiceSid"),
                "num_media": "0",
                "num_segments": "1",
                "price": None,
                "price_unit": "USD",
                "sid": sid,
                "status": "accepted" if "MessagingServiceSid" in form else "queued",
                "to": form["To"],
                "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}.json",
            },
            status=201,
        )

    # -- status callbacks ------------------------------------------------------------------

    def status_callback(
        self, message: Received, status: str, error_code: int | None = None
    ) -> tuple[str, dict[str, str], dict[str, str]]:
        """The callback Twilio would POST for ``message``: (URL, form, headers)."""
        url = message.form["StatusCallback"]
        form = {
            "AccountSid": self.account_sid,
            "ApiVersion": "2010-04-01",
            "From": message.form.get("From", "+15550001111"),
            "MessageSid": message.sid,
            "MessageStatus": status,
            "SmsSid": message.sid,
            "SmsStatus": status,
            "To": message.form["To"],
        }
        if error_code is not None:
            form["ErrorCode"] = str(error_code)
        return url, form, {"X-Twilio-Signature": self.signature(url, form)}

    def signature(self, url: str, form: dict[str, str], token: str | None = None) -> str:
        """Twilio's documented algorithm: the URL, then each parameter's name and value in
        name order, HMAC-SHA1 with the auth token, base64."""
        data = url + "".join(name + form[name] for name in sorted(form))
        key = (token or self.auth_token).encode()
        return base64.b64encode(hmac.new(key, data.encode(), hashlib.sha1).digest()).decode()
