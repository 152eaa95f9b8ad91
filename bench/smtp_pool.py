"""Throughput of the SMTP provider's connection pool against a local sink.

    python -m bench.smtp_pool [--messages 5000] [--pool-size 4] [--concurrency 64]
                              [--url smtp://127.0.0.1:2525?tls=none&from=bench@example.org]

Without ``--url`` it starts Postfix's ``smtp-sink`` (a C sink that accepts everything) on a
free loopback port, so the figure is the client's. It prints messages/s for the whole
``send()`` path and, separately, what building the MIME bytes alone costs per message.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import shutil
import socket
import subprocess
import time
from contextlib import closing

import structlog

from herald.domain.channels import Channel
from herald.domain.message import Address, Delivery, Email
from herald.domain.mime import build_email_bytes
from herald.providers.base import ProviderURL
from herald.providers.smtp import SmtpProvider

_BODY = ("Hello,\n\nyour order has shipped and is on its way.\n" * 20)[:1000]


def _delivery(i: int) -> Delivery:
    email = Email(
        message_id=f"bench-{i}@example.org",
        date=time.time(),
        subject=f"Order {i} shipped",
        to=(Address("Customer", f"user{i % 100}@example.org"),),
        text=_BODY,
    )
    return Delivery(notification_id=f"n{i}", channel=Channel.EMAIL, attempt=1, content=email)


def _free_port() -> int:
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _run(url: str, messages: int, concurrency: int) -> float:
    provider = SmtpProvider.from_url(ProviderURL.parse(url), name="bench")
    deliveries = [_delivery(i) for i in range(messages)]
    queue = iter(deliveries)

    async def worker() -> None:
        for delivery in queue:
            await provider.send(delivery)

    await provider.send(_delivery(-1))  # connect outside the timing
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    await provider.aclose()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--pool-size", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--url", default=None)
    args = parser.parse_args()
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        cache_logger_on_first_use=True,
    )

    sink: subprocess.Popen[bytes] | None = None
    url = args.url
    if url is None:
        binary = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
        port = _free_port()
        sink = subprocess.Popen([binary, "-u", "nobody", f"127.0.0.1:{port}", "256"])
        time.sleep(0.3)
        url = f"smtp://127.0.0.1:{port}?tls=none&from=bench@example.org"
    url += f"&pool_size={args.pool_size}"
    try:
        elapsed = asyncio.run(_run(url, args.messages, args.concurrency))
    finally:
        if sink is not None:
            sink.terminate()
            sink.wait()

    sample = [_delivery(i).content for i in range(1000)]
    sender = Address("", "bench@example.org")
    started = time.perf_counter()
    for email in sample:
        build_email_bytes(email, sender)
    build_us = (time.perf_counter() - started) / len(sample) * 1e6

    rate = args.messages / elapsed
    print(
        f"smtp pool_size={args.pool_size} concurrency={args.concurrency}: "
        f"{args.messages} messages in {elapsed:.2f}s = {rate:,.0f}/s "
        f"({elapsed / args.messages * 1e6:.0f} µs each, of which MIME build ≈ {build_us:.0f} µs)"
    )


if __name__ == "__main__":
    main()
