"""End-to-end webhook benchmark: HTTP accept → queue → worker → signed POST → nginx.

    python -m bench webhook --db postgresql -n 30000              # as fast as it goes
    python -m bench webhook --db postgresql --rate 1500 -n 15000  # latency at a fixed load

Starts nginx with a private config (``return 204`` on a loopback port, ~98,000 requests/s
here, so the sink is never the limit), a fresh database, and ``herald serve`` sending to
it through the ``webhook://`` provider (Standard Webhooks signatures, SSRF guard with
127.0.0.1 allowed). Prints one JSON object.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import statistics
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import e2e
from herald.domain.webhook_signing import generate_secret

_NGINX_CONF = """
daemon off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 120s;
    server {{
        listen 127.0.0.1:{port};
        location / {{ return 204; }}
    }}
}}
"""


@dataclass
class Options:
    db: str = "postgresql"
    mode: str = "batch"  # batch | single
    n: int = 30000
    batch_size: int = 1000
    in_flight: int = 4
    rate: float | None = None
    concurrency: int = 64
    max_connections: int = 64
    body_bytes: int = 1024
    targets: int = 16  # distinct webhook URLs (paths) on the sink
    workers: int = 0  # 0: one ``herald serve``; N: ``herald api`` + N ``herald worker``


@contextlib.contextmanager
def nginx_sink() -> Iterator[int]:
    """nginx answering 204 to everything, as a non-daemon child with its own config."""
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(binary).exists():
        raise SystemExit("nginx not found: apt-get install nginx-light")
    port = e2e.free_port()
    with tempfile.TemporaryDirectory(prefix="herald-bench-nginx-") as directory:
        conf = Path(directory) / "nginx.conf"
        conf.write_text(_NGINX_CONF.format(dir=directory, port=port))
        proc = subprocess.Popen(
            [binary, "-c", str(conf), "-p", directory, "-e", f"{directory}/error.log"]
        )
        try:
            e2e.wait_port(port)
            yield port
        finally:
            proc.terminate()
            proc.wait()


def hook(sink_port: int, targets: int) -> Any:
    def make(i: int, body_bytes: int) -> dict[str, Any]:
        return {
            "channel": "webhook",
            "to": f"http://127.0.0.1:{sink_port}/hooks/{i % targets}",
            "category": "order.shipped",
            "data": {"order": i, "customer": f"user{i}", "note": "x" * (body_bytes - 100)},
        }

    return make


async def run(opts: Options) -> dict[str, Any]:
    with nginx_sink() as sink_port:
        async with e2e.database(opts.db) as db_url:
            port = e2e.free_port()
            env = {
                **os.environ,
                "HERALD_DATABASE_URL": db_url,
                "HERALD_WEBHOOK": f"webhook://?timeout=10&max_connections={opts.max_connections}",
                "HERALD_WEBHOOK_SECRET": generate_secret(),
                "HERALD_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.1/32",
                "HERALD_WORKER_CONCURRENCY": str(opts.concurrency),
                "HERALD_LOG_LEVEL": "warning",
                "HERALD_LOG_FORMAT": "json",
            }
            if opts.db != "sqlite":
                await e2e.migrate(env)
            load_opts = e2e.Options(
                db=opts.db,
                mode=opts.mode,
                n=opts.n,
                batch_size=opts.batch_size,
                in_flight=opts.in_flight,
                rate=opts.rate,
                body_bytes=opts.body_bytes,
            )
            with e2e.herald_processes(env, port, opts.workers) as procs:
                started, accepted = await e2e.load(
                    load_opts, f"http://127.0.0.1:{port}", hook(sink_port, opts.targets)
                )
                times = await e2e.wait_delivered(db_url, opts.n)
                rss = max(e2e.peak_rss_mb(proc.pid) for proc in procs)
    last_sent = max(sent for _c, sent, _s in times)
    latencies = [sent - created for created, sent, _s in times]
    return {
        "scenario": "webhook",
        "processes": "serve" if opts.workers == 0 else f"api + {opts.workers} workers",
        "db": opts.db,
        "mode": opts.mode,
        "n": opts.n,
        "rate_target": opts.rate,
        "accepted_per_s": round(opts.n / (accepted - started)),
        "delivered_per_s_end_to_end": round(opts.n / (last_sent - started)),
        "accept_to_delivered_ms": {
            "p50": round(e2e.percentile(latencies, 0.50) * 1000, 1),
            "p99": round(e2e.percentile(latencies, 0.99) * 1000, 1),
            "max": round(max(latencies) * 1000, 1),
            "mean": round(statistics.fmean(latencies) * 1000, 1),
        },
        "peak_rss_mb": round(rss, 1),
        "worker_concurrency": opts.concurrency,
        "http_max_connections": opts.max_connections,
    }
