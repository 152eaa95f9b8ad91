"""A webhook receiver on 127.0.0.1 that verifies Standard Webhooks signatures the way a
real one does (with the ``standardwebhooks`` package) and can be told how to answer."""

from __future__ import annotations

import asyncio
import socket
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import standardwebhooks
from aiohttp import web


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    #: The parsed body if the signature verified with the receiver's secret, else None.
    verified: dict[str, Any] | None


@dataclass
class Reply:
    """What to answer: a status (with headers and body), or ``slow``/``reset``/``redirect``."""

    status: int = 204
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    action: str | None = None


class WebhookReceiver:
    def __init__(self, secret: str) -> None:
        self.verifier = standardwebhooks.Webhook(secret)
        self.received: list[Received] = []
        #: Replies per path, used in order; when a path's run out, 204.
        self.script: dict[str, deque[Reply]] = {}
        self._release = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0

    def url(self, path: str = "/hook", host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def reply(self, path: str, *replies: Reply) -> None:
        self.script.setdefault(path, deque()).extend(replies)

    def at(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = dict(request.headers)
        try:
            verified = self.verifier.verify(body, headers)
        except standardwebhooks.webhooks.WebhookVerificationError:
            verified = None
        self.received.append(Received(request.path, headers, body, verified))
        replies = self.script.get(request.path)
        reply = replies.popleft() if replies else Reply()
        if reply.action == "slow":
            await self._release.wait()
        elif reply.action == "reset":
            assert request.transport is not None
            sock = request.transport.get_extra_info("socket")
            # SO_LINGER 0: close() sends a TCP RST instead of a FIN.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00" * 2)
            request.transport.abort()
        elif reply.action == "redirect":
            raise web.HTTPFound(self.url("/elsewhere"))
        elif verified is None and not reply.headers.get("x-ignore-signature"):
            return web.Response(status=401, text="signature did not verify")
        return web.Response(status=reply.status, headers=reply.headers, body=reply.body)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()

    async def stop(self) -> None:
        self._release.set()
        if self._runner is not None:
            await self._runner.cleanup()
