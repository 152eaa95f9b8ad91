"""Throughput of the HTTP email API providers and the Apprise chat provider against a sink.

    python -m bench.http_providers [--messages 5000] [--concurrency 64] [--chat-messages 1000]

A child process runs an aiohttp sink on a free loopback port that answers like the APIs do
(SendGrid ``202`` with ``X-Message-Id``, Resend and Postmark ``200`` with an id, a chat
webhook ``200``), so the figure is the client's ``send()`` path: JSON building, the shared
keep-alive ``HttpClient``, classification. Apprise runs each send in a thread (requests, a
new connection per send), at its ``concurrency`` (4 and 16). Prints JSON: messages/s and
the client process's CPU time per message, with the load average (the figures move with
whatever else the machine runs).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import socket
import time
from typing import Any

from aiohttp import web

from herald.domain.channels import Channel
from herald.domain.message import Address, Chat, Delivery, Email
from herald.providers.base import Provider
from herald.providers.registry import build_providers

_BODY = ("Hello,\n\nyour order has shipped and is on its way.\n" * 20)[:1000]


def _sink(port: int) -> None:
    """The child process: answer every API as it answers a success."""

    async def sendgrid(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=202, headers={"X-Message-Id": "sg-1"})

    async def with_id(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"id": "re-1", "MessageID": "pm-1", "ErrorCode": 0})

    app = web.Application()
    app.add_routes(
        [
            web.post("/v3/mail/send", sendgrid),
            web.post("/emails", with_id),
            web.post("/email", with_id),
            web.post("/hook", with_id),
        ]
    )
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def _wait_listening(port: int) -> None:
    for _ in range(200):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        await writer.wait_closed()
        return
    raise RuntimeError("the sink did not start")


def _email(i: int) -> Delivery:
    content = Email(
        message_id=f"bench-{i}@example.org",
        date=time.time(),
        subject="Your order has shipped",
        to=(Address("Customer", f"customer{i}@example.org"),),
        text=_BODY,
    )
    return Delivery(f"n{i}", Channel.EMAIL, 1, content, idempotency_key=f"n{i}")


def _chat(i: int) -> Delivery:
    return Delivery(f"c{i}", Channel.CHAT, 1, Chat(body=_BODY, title="Deploy"))


async def _run(provider: Provider, deliveries: list[Delivery], concurrency: int) -> dict[str, Any]:
    queue = list(reversed(deliveries))

    async def sender() -> None:
        while queue:
            await provider.send(queue.pop())

    await provider.send(deliveries[0])  # warm up: connect, import
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(sender() for _ in range(concurrency)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    await provider.aclose()
    return {
        "provider": provider.name,
        "messages": len(deliveries),
        "in_flight": concurrency,
        "messages_per_s": round(len(deliveries) / wall),
        "cpu_us_per_message": round(cpu / len(deliveries) * 1e6),
    }


async def bench(messages: int, concurrency: int, chat_messages: int) -> list[dict[str, Any]]:
    port = _free_port()
    child = multiprocessing.Process(target=_sink, args=(port,), daemon=True)
    child.start()
    try:
        await _wait_listening(port)
        base = f"http://127.0.0.1:{port}"
        common = f"from=bench@example.org&base_url={base}"
        email = build_providers(
            {
                Channel.EMAIL: f"sendgrid://SG.k@?{common},resend://re_k@?{common},"
                f"postmark://pm@?{common}"
            }
        )[Channel.EMAIL]
        results = [await _run(p, [_email(i) for i in range(messages)], concurrency) for p in email]
        for threads in (4, 16):
            url = f"apprise+json://127.0.0.1:{port}/hook?concurrency={threads}"
            chat = build_providers({Channel.CHAT: url})[Channel.CHAT][0]
            results.append(await _run(chat, [_chat(i) for i in range(chat_messages)], threads))
        return results
    finally:
        child.terminate()
        child.join()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.http_providers")
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--chat-messages", type=int, default=1000)
    args = parser.parse_args()
    results = asyncio.run(bench(args.messages, args.concurrency, args.chat_messages))
    print(json.dumps({"load_average": os.getloadavg(), "results": results}, indent=2))


if __name__ == "__main__":
    main()
