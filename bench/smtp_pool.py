"""Throughput of the SMTP provider's connection pool against a local sink.

    python -m bench.smtp_pool [--messages 5000] [--pool-size 4] [--concurrency 64]
                              [--prebuilt] [--uvloop] [--no-pipelining] [--repeat 1]
                              [--url smtp://127.0.0.1:2525?tls=none&from=bench@example.org]

Without ``--url`` it starts Postfix's ``smtp-sink`` (a C sink that accepts everything) on a
free loopback port, so the figure is the client's; ``--no-pipelining`` starts it without
announcing PIPELINING (RFC 2920), so the client sends one command at a time. It prints
messages/s for the whole ``send()`` path, the process's CPU time per message and,
separately, what building the MIME bytes alone costs per message; ``--prebuilt`` takes the
MIME build out of ``send()`` to measure the pool and SMTP alone. ``--repeat N`` runs N
times (a fresh sink each) and sums up the best run and the spread: the figures move with
whatever else the machine runs, so the load average is printed too.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
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


def _email(i: int) -> Email:
    return Email(
        message_id=f"bench-{i}@example.org",
        date=time.time(),
        subject=f"Order {i} shipped",
        to=(Address("Customer", f"user{i % 100}@example.org"),),
        text=_BODY,
    )


def _delivery(i: int) -> Delivery:
    return Delivery(notification_id=f"n{i}", channel=Channel.EMAIL, attempt=1, content=_email(i))


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


def _one_run(args: argparse.Namespace) -> tuple[float, float]:
    """(messages/s, µs of CPU per message) for one run against a fresh sink (or --url)."""
    sink: subprocess.Popen[bytes] | None = None
    url = args.url
    if url is None:
        binary = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
        port = _free_port()
        options = ["-p"] if args.no_pipelining else []  # -p: do not announce PIPELINING
        sink = subprocess.Popen([binary, *options, "-u", "nobody", f"127.0.0.1:{port}", "256"])
        time.sleep(0.3)
        url = f"smtp://127.0.0.1:{port}?tls=none&from=bench@example.org"
    url += f"&pool_size={args.pool_size}"
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
    return args.messages / elapsed, cpu / args.messages * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--pool-size", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--url", default=None)
    parser.add_argument("--prebuilt", action="store_true", help="leave MIME building out")
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop")
    parser.add_argument(
        "--no-pipelining", action="store_true", help="the sink does not offer PIPELINING"
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs; best and spread")
    args = parser.parse_args()
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        cache_logger_on_first_use=True,
    )
    if args.prebuilt:
        prebuilt = build_email_bytes(_email(0), Address("", "bench@example.org"))
        # The provider's own reference to the builder, replaced: the bytes are made once.
        vars(smtp)["build_email_bytes"] = lambda _email, _sender: prebuilt

    mode = " ".join(
        [
            *(["prebuilt"] if args.prebuilt else []),
            "uvloop" if args.uvloop else "asyncio",
            "one command at a time" if args.no_pipelining else "pipelining",
        ]
    )
    label = f"smtp {mode} pool_size={args.pool_size} concurrency={args.concurrency}"
    load_before = os.getloadavg()[0]
    runs: list[tuple[float, float]] = []
    for _ in range(args.repeat):
        rate, cpu_us = _one_run(args)
        runs.append((rate, cpu_us))
        print(f"{label}: {args.messages} messages, {rate:,.0f}/s, {cpu_us:.0f} µs of CPU each")

    sample = [_email(i) for i in range(1000)]
    sender = Address("", "bench@example.org")
    started = time.perf_counter()
    for email in sample:
        build_email_bytes(email, sender)
    build_us = (time.perf_counter() - started) / len(sample) * 1e6

    rates = [rate for rate, _ in runs]
    cpus = [cpu for _, cpu in runs]
    print(
        f"{label}: best {max(rates):,.0f}/s and {min(cpus):.0f} µs of CPU a message "
        f"(over {len(runs)} runs: {min(rates):,.0f}–{max(rates):,.0f}/s, "
        f"{min(cpus):.0f}–{max(cpus):.0f} µs); building the MIME alone ≈ {build_us:.0f} µs; "
        f"load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after"
    )


if __name__ == "__main__":
    main()
