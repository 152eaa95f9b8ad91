"""A local stand-in for Vonage's SMS API (aiohttp.web on 127.0.0.1).

``POST /sms/json`` form-encoded with ``api_key``/``api_secret``; always HTTP 200, each part's
``status`` saying what happened (``"0"`` sent, else an error code with ``error-text``), as the
real API does. Can be told to refuse with any status, and builds the delivery receipts Vonage
would send to the ``callback`` URL. Like the Twilio stand-in, it can take a message and then
close the connection instead of replying.
"""

from __future__ import annotations

import re
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from aiohttp import web

_MSISDN = re.compile(r"[1-9]\d{1,14}")  # international format, no leading +


@dataclass
class Received:
    message_id: str
    form: dict[str, str]


class VonageServer:
    def __init__(self) -> None:
        self.api_key = "abcd1234"
        self.api_secret = "s3cr3tS3cr3t"
        #: Statuses (with error text) the next requests get; an int alone uses a stock text.
        self.failures: deque[tuple[int, str]] = deque()
        #: HTTP failures (status) the next requests get, before any body is considered.
        self.http_failures: deque[int] = deque()
        self.parts_per_message = 1
        #: Take the next this-many messages, then close the connection instead of replying.
        self.lost_replies = 0
        #: Awaited after a message is taken, before the reply (a slow answer).
        self.hold: Callable[[], Awaitable[object]] | None = None
        #: Refuse the last part of a multi-part message with this (status, text).
        self.last_part_refused: tuple[int, str] | None = None
        self.messages: list[Received] = []
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, sender: str = "Herald", **options: str) -> str:
        query = urlencode({"base_url": self.base_url, **options})
        return f"vonage://{self.api_key}:{self.api_secret}@{sender}?{query}"

    def fail(self, status: int, text: str = "scripted failure") -> None:
        self.failures.append((status, text))

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/sms/json", self._sms)
        app.router.add_get("/account/get-balance", self._balance)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def _refused(self, status: int, text: str) -> web.Response:
        return web.json_response(
            {"message-count": "1", "messages": [{"status": str(status), "error-text": text}]}
        )

    async def _balance(self, request: web.Request) -> web.Response:
        query = request.query
        if (query.get("api_key"), query.get("api_secret")) != (self.api_key, self.api_secret):
            return web.json_response({"error-code": "401", "error-code-label": "auth"}, status=401)
        return web.json_response({"value": 10.5, "autoReload": False})

    async def _sms(self, request: web.Request) -> web.Response:
        if self.http_failures:
            return web.Response(status=self.http_failures.popleft(), text="scripted")
        if request.content_type != "application/x-www-form-urlencoded":
            return self._refused(2, "Missing api_key")
        form = dict(parse_qsl(await request.text(), keep_blank_values=True))
        for name in ("api_key", "from", "to", "text"):
            if not form.get(name):
                return self._refused(2, f"Missing {name}")
        if (form["api_key"], form.get("api_secret")) != (self.api_key, self.api_secret):
            return self._refused(4, "Bad Credentials")
        if not _MSISDN.fullmatch(form["to"]):
            return self._refused(3, "Invalid to param")
        if form.get("type", "text") not in {"text", "unicode"}:
            return self._refused(3, "Invalid type")
        if self.failures:
            return self._refused(*self.failures.popleft())
        parts: list[dict[str, Any]] = []
        for _ in range(self.parts_per_message):
            message_id = uuid.uuid4().hex.upper()[:16]
            parts.append(
                {
                    "to": form["to"],
                    "message-id": message_id,
                    "status": "0",
                    "remaining-balance": "10.49",
                    "message-price": "0.0075",
                    "network": "310260",
                    "client-ref": form.get("client-ref", ""),
                }
            )
            self.messages.append(Received(message_id, form))
        if self.last_part_refused is not None and len(parts) > 1:
            status, text = self.last_part_refused
            parts[-1] = {"status": str(status), "error-text": text}
            self.messages.pop()
        if self.hold is not None:
            await self.hold()
        if self.lost_replies and request.transport is not None:
            self.lost_replies -= 1
            request.transport.close()
        return web.json_response({"message-count": str(len(parts)), "messages": parts})

    def receipt(
        self, message: Received, status: str, err_code: int = 0
    ) -> tuple[str, dict[str, str]]:
        """The delivery receipt Vonage would send: (path with query, JSON body)."""
        callback = urlsplit(message.form["callback"])
        body = {
            "msisdn": message.form["to"],
            "to": message.form["from"],
            "network-code": "310260",
            "messageId": message.message_id,
            "price": "0.0075",
            "status": status,
            "scts": "2611221530",
            "err-code": str(err_code),
            "api-key": self.api_key,
            "client-ref": message.form.get("client-ref", ""),
            "message-timestamp": "2026-11-22 15:30:00",
        }
        return f"{callback.path}?{callback.query}", body
