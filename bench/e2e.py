"""End-to-end benchmark: HTTP accept → queue → worker → SMTP sink, in one ``herald serve``.

    python -m bench email --db sqlite --mode batch -n 20000
    python -m bench email --db postgresql --mode single -n 5000
    python -m bench email --db postgresql --rate 1500 -n 15000   # latency at a fixed load

Starts Postfix's ``smtp-sink`` (C, discards mail), a fresh database, and ``herald serve``
pointed at the sink; loads it over HTTP with aiohttp; reads timings back from the
database. Prints one JSON object.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

HERALD = Path(sys.executable).with_name("herald")
PG_ADMIN = os.environ.get("HERALD_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


@dataclass
class Options:
    db: str = "sqlite"
    mode: str = "batch"  # batch | single
    n: int = 20000
    batch_size: int = 1000
    in_flight: int = 4  # concurrent requests (batch mode); single mode uses 64
    rate: float | None = None  # notifications/s; None = as fast as possible
    pool_size: int = 8
    concurrency: int = 128
    body_bytes: int = 1024


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def smtp_sink() -> Iterator[int]:
    """Postfix's smtp-sink: accepts and discards mail, ~17,000 msgs/s on this machine."""
    binary = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
    if not Path(binary).exists():
        raise SystemExit("smtp-sink not found: apt-get install postfix")
    port = free_port()
    proc = subprocess.Popen([binary, "-u", "nobody", f"127.0.0.1:{port}", "1000"])
    try:
        wait_port(port)
        yield port
    finally:
        proc.terminate()
        proc.wait()


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise SystemExit(f"nothing listening on {port}")


@contextlib.asynccontextmanager
async def database(kind: str) -> AsyncIterator[str]:
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="herald-bench-") as directory:
            yield f"sqlite:///{Path(directory) / 'bench.db'}"
        return
    name = f"herald_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(PG_ADMIN)
    await admin.execute(f"CREATE DATABASE {name}")
    base = PG_ADMIN.rpartition("/")[0]
    try:
        yield f"{base}/{name}"
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()


@contextlib.contextmanager
def herald_serve(
    env: dict[str, str], port: int, command: str = "serve"
) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(
        [str(HERALD), command, "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_port(port)
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


@contextlib.contextmanager
def herald_processes(
    env: dict[str, str], port: int, workers: int
) -> Iterator[list[subprocess.Popen[bytes]]]:
    """``herald serve`` (workers = 0), or ``herald api`` and ``workers`` ``herald worker``
    processes (the scaled-out layout; PostgreSQL only)."""
    if workers == 0:
        with herald_serve(env, port) as proc:
            yield [proc]
        return
    started = [
        subprocess.Popen(
            [str(HERALD), "worker"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        for _ in range(workers)
    ]
    try:
        with herald_serve(env, port, "api") as api:
            yield [api, *started]
    finally:
        for proc in started:
            proc.send_signal(signal.SIGTERM)
        for proc in started:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a running process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def notification(i: int, body_bytes: int) -> dict[str, Any]:
    filler = ("Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 40)[: body_bytes // 2]
    return {
        "channel": "email",
        "to": f"user{i}@example.com",
        "subject": f"Your order #{i} has shipped",
        "text": f"Hello user {i},\n{filler}\n",
        "html": f"<p>Hello user {i},</p><p>{filler}</p>",
    }


async def load(
    opts: Options, url: str, build: Callable[[int, int], dict[str, Any]] = notification
) -> tuple[float, float]:
    """Send every notification (``build(i, body_bytes)``); returns (first request start,
    last accept) as Unix times."""
    connector = aiohttp.TCPConnector(limit=256)
    async with aiohttp.ClientSession(connector=connector) as session:
        if opts.mode == "batch":
            bodies = [
                {
                    "notifications": [
                        build(i, opts.body_bytes)
                        for i in range(start, min(start + opts.batch_size, opts.n))
                    ]
                }
                for start in range(0, opts.n, opts.batch_size)
            ]
            target = f"{url}/v1/notifications/batch"
            per_request, in_flight = opts.batch_size, opts.in_flight
        else:
            bodies = [build(i, opts.body_bytes) for i in range(opts.n)]
            target, per_request, in_flight = f"{url}/v1/notifications", 1, 64
        payloads = [json.dumps(b).encode() for b in bodies]
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        for payload in payloads:
            queue.put_nowait(payload)
        interval = per_request / opts.rate if opts.rate else 0.0
        started = time.time()
        next_at = time.monotonic()
        lock = asyncio.Lock()

        async def client() -> None:
            nonlocal next_at
            while not queue.empty():
                payload = queue.get_nowait()
                if interval:
                    async with lock:
                        delay = next_at - time.monotonic()
                        next_at = max(next_at, time.monotonic()) + interval
                    if delay > 0:
                        await asyncio.sleep(delay)
                async with session.post(
                    target, data=payload, headers={"content-type": "application/json"}
                ) as response:
                    if response.status != 202:
                        raise SystemExit(f"{response.status}: {await response.text()}")
                    await response.read()

        await asyncio.gather(*(client() for _ in range(in_flight)))
        return started, time.time()


def progress(conn: Any) -> tuple[int, list[Any]]:
    import sqlalchemy as sa

    done = conn.execute(
        sa.text("SELECT count(*) FROM notifications WHERE status = 'sent'")
    ).scalar_one()
    other = conn.execute(
        sa.text(
            "SELECT status, count(*) FROM notifications "
            "WHERE status NOT IN ('sent', 'queued', 'sending') GROUP BY status"
        )
    ).all()
    return int(done), list(other)


async def wait_delivered(
    db_url: str, n: int, give_up_after: float = 600.0
) -> list[tuple[float, float, float]]:
    """(created_at, sent_at, send_at) of every notification once all are sent."""
    import sqlalchemy as sa

    from herald.store.database import Database

    database = Database(db_url)
    deadline = time.monotonic() + give_up_after
    try:
        while True:
            done, other = await database.run(progress, readonly=True)
            if done >= n:
                break
            if other:
                print(f"  note: {dict(other)}", file=sys.stderr)
            if time.monotonic() > deadline:
                raise SystemExit(f"only {done}/{n} sent after {give_up_after} s")
            await asyncio.sleep(0.25)
        rows = await database.run(
            lambda conn: conn.execute(
                sa.text("SELECT created_at, sent_at, send_at FROM notifications")
            ).all(),
            readonly=True,
        )
        return [(float(a), float(b), float(c)) for a, b, c in rows]
    finally:
        await database.dispose()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def email_env(db_url: str, sink_port: int, pool_size: int, concurrency: int) -> dict[str, str]:
    """Herald's environment for delivering into the SMTP sink."""
    return {
        **os.environ,
        "HERALD_DATABASE_URL": db_url,
        "HERALD_EMAIL": (
            f"smtp://127.0.0.1:{sink_port}?tls=none&from=bench%40example.com"
            f"&pool_size={pool_size}&max_messages=100000"
        ),
        "HERALD_WORKER_CONCURRENCY": str(concurrency),
        "HERALD_LOG_LEVEL": "warning",
        "HERALD_LOG_FORMAT": "json",
    }


async def migrate(env: dict[str, str]) -> None:
    process = await asyncio.create_subprocess_exec(
        str(HERALD), "migrate", env=env, stdout=subprocess.DEVNULL
    )
    if await process.wait():
        raise SystemExit("herald migrate failed")


async def run(opts: Options) -> dict[str, Any]:
    with smtp_sink() as sink_port:
        async with database(opts.db) as db_url:
            port = free_port()
            env = email_env(db_url, sink_port, opts.pool_size, opts.concurrency)
            if opts.db != "sqlite":
                await migrate(env)
            with herald_serve(env, port) as proc:
                started, accepted = await load(opts, f"http://127.0.0.1:{port}")
                times = await wait_delivered(db_url, opts.n)
                rss = peak_rss_mb(proc.pid)
    return {
        **summary("email", opts, started, accepted, times, rss),
        "smtp_pool_size": opts.pool_size,
        "worker_concurrency": opts.concurrency,
    }


async def run_accept_only(opts: Options) -> dict[str, Any]:
    """The accept endpoints alone: ``herald api`` (no worker), nothing delivered."""
    async with database(opts.db) as db_url:
        port = free_port()
        env = {
            **os.environ,
            "HERALD_DATABASE_URL": db_url,
            "HERALD_LOG_LEVEL": "warning",
            "HERALD_LOG_FORMAT": "json",
        }
        await migrate(env)
        with herald_serve(env, port, "api") as proc:
            cpu_before = cpu_seconds(proc.pid)
            started, accepted = await load(opts, f"http://127.0.0.1:{port}")
            cpu = cpu_seconds(proc.pid) - cpu_before
            rss = peak_rss_mb(proc.pid)
    return {
        "scenario": "accept",
        "db": opts.db,
        "mode": opts.mode,
        "n": opts.n,
        "batch_size": opts.batch_size if opts.mode == "batch" else 1,
        "accepted_per_s": round(opts.n / (accepted - started)),
        "api_cpu_us_per_notification": round(cpu / opts.n * 1e6, 1),
        "peak_rss_mb": round(rss, 1),
    }


def summary(
    scenario: str,
    opts: Options,
    started: float,
    accepted: float,
    times: list[tuple[float, float, float]],
    rss: float,
) -> dict[str, Any]:
    """The figures every end-to-end scenario prints."""
    last_sent = max(sent for _c, sent, _s in times)
    latencies = [sent - created for created, sent, _s in times]
    return {
        "scenario": scenario,
        "db": opts.db,
        "mode": opts.mode,
        "n": opts.n,
        "rate_target": opts.rate,
        "accepted_per_s": round(opts.n / (accepted - started)),
        "delivered_per_s_end_to_end": round(opts.n / (last_sent - started)),
        "accept_to_sent_ms": {
            "p50": round(percentile(latencies, 0.50) * 1000, 1),
            "p99": round(percentile(latencies, 0.99) * 1000, 1),
            "max": round(max(latencies) * 1000, 1),
            "mean": round(statistics.fmean(latencies) * 1000, 1),
        },
        "peak_rss_mb": round(rss, 1),
    }
