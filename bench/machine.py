"""What this machine can do without Herald: the limits ../shared/PERFORMANCE.md measured.

    python -m bench machine

Herald's figures only compare across machines through these. Prints JSON: Postfix's C
``smtp-source`` into ``smtp-sink`` (4 sessions, 1 KB, connections reused), ``wrk`` into an
nginx ``return 204`` sink (1 KB POSTs, 64 connections; skipped when wrk is not installed),
a bare aiohttp client into the same sink (64 requests in flight), and plain Jinja2 rendering
seed 001's order template, each beside the figure PERFORMANCE.md gives for its machine.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import tempfile
import time
from typing import Any

import aiohttp

from bench import e2e, templates, webhook

#: PERFORMANCE.md's figures (its machine: 2 cores, 24 GiB, like this kind of machine).
REFERENCE = {
    "smtp_source_4_sessions_per_s": 17000,
    "wrk_nginx_204_per_s": 98000,
    "aiohttp_64_in_flight_per_s": "7,000-10,000",
}
_BODY = b"x" * 1024


def smtp_source(messages: int = 50000) -> float:
    binary = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
    with e2e.smtp_sink() as port:
        started = time.perf_counter()
        command = [binary, "-d", "-s", "4", "-m", str(messages), "-l", "1024"]
        command += ["-f", "bench@example.org", "-t", "sink@example.org", f"127.0.0.1:{port}"]
        subprocess.run(command, check=True)
        return messages / (time.perf_counter() - started)


def wrk(port: int, seconds: int = 5) -> float | None:
    binary = shutil.which("wrk")
    if binary is None:
        return None
    script = f"wrk.method = 'POST'\nwrk.body = string.rep('x', {len(_BODY)})\n"
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as lua:
        lua.write(script)
        lua.flush()
        command = [binary, "-t", "2", "-c", "64", "-d", f"{seconds}s", "-s", lua.name]
        command.append(f"http://127.0.0.1:{port}/")
        output = subprocess.run(
            command,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    found = re.search(r"Requests/sec:\s+([\d.]+)", output)
    return float(found.group(1)) if found else None


async def aiohttp_client(port: int, requests: int = 30000, in_flight: int = 64) -> float:
    url = f"http://127.0.0.1:{port}/hooks/0"
    left = requests
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=in_flight)) as session:

        async def client() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                async with session.post(url, data=_BODY) as response:
                    await response.read()

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(in_flight)))
        return requests / (time.perf_counter() - started)


async def run() -> dict[str, Any]:
    results: dict[str, Any] = {"smtp_source_4_sessions_per_s": round(smtp_source())}
    with webhook.nginx_sink() as port:
        rate = wrk(port)
        results["wrk_nginx_204_per_s"] = round(rate) if rate is not None else "wrk not installed"
        results["aiohttp_64_in_flight_per_s"] = round(await aiohttp_client(port))
    plain = templates.renders(repeat=5)["baseline_plain_jinja_html_renders_per_s"]
    results["plain_jinja_order_renders_per_s"] = plain
    return {"scenario": "machine", **results, "performance_md": REFERENCE}
