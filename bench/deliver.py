"""Delivery alone: a queue filled beforehand, drained by ``herald worker`` processes.

    python -m bench deliver --db postgresql -n 30000 --workers 1

``herald api`` accepts N emails and stops; then W ``herald worker`` processes deliver them
into Postfix's ``smtp-sink``. Prints JSON: delivered/s (first worker start → last sent)
and the workers' CPU time per delivered message (user + system, from /proc), which moves
less than wall-clock rates with whatever else the machine runs.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from dataclasses import dataclass
from typing import Any

from bench import e2e
from herald.store.database import Database


@dataclass
class Options:
    db: str = "postgresql"
    n: int = 30000
    workers: int = 1
    pool_size: int = 8
    concurrency: int = 128


async def _first_delivery(
    db_url: str, workers: list[asyncio.subprocess.Process]
) -> tuple[int, float]:
    """Once something is sent: how much, and the workers' CPU time so far."""
    database = Database(db_url)
    try:
        while True:
            done, _other = await database.run(e2e.progress, readonly=True)
            if done:
                return done, sum(e2e.cpu_seconds(w.pid) for w in workers)
            await asyncio.sleep(0.01)
    finally:
        await database.dispose()


async def run(opts: Options) -> dict[str, Any]:
    with e2e.smtp_sink() as sink_port:
        async with e2e.database(opts.db) as db_url:
            env = e2e.email_env(db_url, sink_port, opts.pool_size, opts.concurrency)
            await e2e.migrate(env)
            port = e2e.free_port()
            load = e2e.Options(db=opts.db, n=opts.n)
            with e2e.herald_serve(env, port, "api"):
                await e2e.load(load, f"http://127.0.0.1:{port}")
            started = time.time()
            workers = [
                await asyncio.create_subprocess_exec(
                    str(e2e.HERALD),
                    "worker",
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                for _ in range(opts.workers)
            ]
            try:
                # CPU counted from the first delivery on: start-up is not per message.
                first_done, first_cpu = await _first_delivery(db_url, workers)
                times = await e2e.wait_delivered(db_url, opts.n)
                cpu = sum(e2e.cpu_seconds(w.pid) for w in workers) - first_cpu
                rss = max(e2e.peak_rss_mb(w.pid) for w in workers)
            finally:
                for worker in workers:
                    worker.send_signal(signal.SIGTERM)
                for worker in workers:
                    await asyncio.wait_for(worker.wait(), 30)
    last_sent = max(sent for _created, sent, _due in times)
    return {
        "scenario": "deliver",
        "db": opts.db,
        "n": opts.n,
        "workers": opts.workers,
        "delivered_per_s": round(opts.n / (last_sent - started)),
        "worker_cpu_us_per_message": round(cpu / (opts.n - first_done) * 1e6),
        "peak_rss_mb": round(rss, 1),
    }
