"""Throughput of the SMTP provider's connection pool against a local sink.

    python -m bench.smtp_pool [--messages 5000] [--pool-size 4] [--concurrency 64]
                              [--prebuilt] [--uvloop]
                              [--url smtp://127.0.0.1:2525?tls=none&from=bench@example.org]

Without ``--url`` it starts Postfix's ``smtp-sink`` (a C sink that accepts everything) on a
free loopback port, so the figure is the client's. It prints messages/s for the whole
``send()`` path and, separately, what building the MIME bytes alone costs per message;
``--prebuilt`` takes the MIME build out of ``send()`` to measure the pool and SMTP alone.
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
from herald.providers import smtp
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


async def _run(url: str, messages: int, concurrency: int) -> tuple[float, float]:
    provider = SmtpProvider.from_url(ProviderURL.parse(url), name="bench")
    deliveries = [_delivery(i) for i in range(messages)]
    queue = iter(deliveries)

    async def worker() -> None:
        for delivery in queue:
            await provider.send(delivery)

    await provider.send(_delivery(-1))  # connect outside the timing
    started, cpu_started = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    await provider.aclose()
    return elapsed, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--pool-size", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--url", default=None)
    parser.add_argument("--prebuilt", action="store_true", help="leave MIME building out")
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop")
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
    if args.prebuilt:
        prebuilt = build_email_bytes(_delivery(0).content, Address("", "bench@example.org"))
        smtp.build_email_bytes = lambda _email, _sender: prebuilt  # type: ignore[assignment]
    run = asyncio.run
    if args.uvloop:
        import uvloop

        run = uvloop.run
    try:
        elapsed, cpu = run(_run(url, args.messages, args.concurrency))
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
    mode = ("prebuilt " if args.prebuilt else "") + ("uvloop" if args.uvloop else "asyncio")
    print(
        f"smtp {mode} pool_size={args.pool_size} concurrency={args.concurrency}: "
        f"{args.messages} messages in {elapsed:.2f}s = {rate:,.0f}/s "
        f"({cpu / args.messages * 1e6:.0f} µs of CPU each; building the MIME alone "
        f"≈ {build_us:.0f} µs)"
    )


if __name__ == "__main__":
    main()
