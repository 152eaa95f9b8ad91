"""End-to-end SMS benchmark: HTTP accept → queue → worker → Twilio provider → a Twilio sink.

    python -m bench sms --db sqlite -n 20000
    python -m bench sms --db postgresql --mode single -n 5000

The sink (``bench.twilio_sink``) runs in its own process; Herald's Twilio provider posts to it
as to api.twilio.com (with a StatusCallback, as when HERALD_PUBLIC_URL is set). Prints one
JSON object, shaped like the email scenario's.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

from bench import e2e
from bench.twilio_sink import ACCOUNT_SID, AUTH_TOKEN


@contextlib.contextmanager
def twilio_sink() -> Iterator[int]:
    port = e2e.free_port()
    proc = subprocess.Popen([sys.executable, "-m", "bench.twilio_sink", str(port)])
    try:
        e2e.wait_port(port)
        yield port
    finally:
        proc.terminate()
        proc.wait()


def sms(i: int, body_bytes: int) -> dict[str, Any]:
    """One single-segment text (an SMS body is at most a few hundred bytes, whatever
    ``body_bytes`` says)."""
    return {
        "channel": "sms",
        "to": f"+1415555{i % 10000:04d}",
        "body": f"Your verification code is {i % 1000000:06d}. It expires in 10 minutes.",
    }


async def run(opts: e2e.Options) -> dict[str, Any]:
    with twilio_sink() as sink_port:
        async with e2e.database(opts.db) as db_url:
            port = e2e.free_port()
            env = {
                **os.environ,
                "HERALD_DATABASE_URL": db_url,
                "HERALD_SMS": (
                    f"twilio://{ACCOUNT_SID}:{AUTH_TOKEN}@+15550001111"
                    f"?base_url=http://127.0.0.1:{sink_port}&max_connections={opts.pool_size}"
                ),
                "HERALD_PUBLIC_URL": "https://herald.example.org",
                "HERALD_WORKER_CONCURRENCY": str(opts.concurrency),
                "HERALD_LOG_LEVEL": "warning",
                "HERALD_LOG_FORMAT": "json",
            }
            if opts.db != "sqlite":
                await e2e.migrate(env)
            with e2e.herald_serve(env, port) as proc:
                started, accepted = await e2e.load(opts, f"http://127.0.0.1:{port}", build=sms)
                times = await e2e.wait_delivered(db_url, opts.n)
                rss = e2e.peak_rss_mb(proc.pid)
    return {
        **e2e.summary("sms", opts, started, accepted, times, rss),
        "http_connections": opts.pool_size,
        "worker_concurrency": opts.concurrency,
    }
