"""The ``herald`` command, run as a user runs it: the installed entry point, in a subprocess."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from herald import Channel, Herald, NotificationView, PermanentError
from herald.store.webhooks import record_gone
from herald.testing import RecordingProvider

HERALD = Path(sys.executable).with_name("herald")


@pytest.fixture
def env(sqlite_url: str) -> dict[str, str]:
    """The environment of a shell with only the database configured."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}
    return {**clean, "HERALD_DATABASE_URL": sqlite_url, "HERALD_CONFIG": "/nonexistent.toml"}


def herald(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(HERALD), *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_migrate(env: dict[str, str]):
    for _ in range(2):  # and again: nothing left to do
        result = herald(env, "migrate")
        assert result.returncode == 0, result.stderr
        assert "up to date" in result.stdout


def test_the_database_url_option_overrides_the_environment(env: dict[str, str], tmp_path: Path):
    other = tmp_path / "other.db"
    result = herald(env, "--database-url", f"sqlite:///{other}", "migrate")
    assert result.returncode == 0, result.stderr
    assert other.exists()


def test_send_email_prints_the_accepted_notification(env: dict[str, str], sqlite_url: str):
    result = herald(
        env,
        *("send", "email", "--to", "alice@example.org", "--to", "bob@example.org"),
        *("--cc", "carol@example.org", "--from", "Shop <shop@example.org>"),
        *("--subject", "Your order shipped", "--text", "It is on its way."),
    )

    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert printed["status"] == "queued"
    assert printed["to"] == ["alice@example.org", "bob@example.org"]

    async def stored() -> NotificationView:
        async with Herald(sqlite_url) as embedded:
            return await embedded.get(printed["id"])

    view = asyncio.run(stored())
    assert view.status == "queued"
    assert view.content is not None
    assert view.content.cc == ["carol@example.org"]
    assert view.content.from_ == "Shop <shop@example.org>"
    assert view.content.text == "It is on its way."


def test_send_email_with_an_idempotency_key_replays(env: dict[str, str]):
    args = ("send", "email", "--to", "a@example.org", "--subject", "s", "--text", "t")
    first = json.loads(herald(env, *args, "--idempotency-key", "cli-1").stdout)
    again = json.loads(herald(env, *args, "--idempotency-key", "cli-1").stdout)
    assert again["id"] == first["id"]
    assert again["replayed"] is True


def test_send_email_with_an_invalid_address_exits_2_naming_the_field(env: dict[str, str]):
    result = herald(
        env, "send", "email", "--to", "not-an-address", "--subject", "Hi", "--text", "Hello"
    )

    assert result.returncode == 2
    assert result.stdout == ""
    assert "to: 'not-an-address' is not a valid email address" in result.stderr
    assert "Traceback" not in result.stderr


def test_send_email_with_a_header_injection_attempt_exits_2(env: dict[str, str]):
    result = herald(
        env, "send", "email", "--to", "a@example.org", "--subject", "Hi\r\nBcc: evil@x.org"
    )
    assert result.returncode == 2
    assert "subject:" in result.stderr
    assert "html:" in result.stderr  # and no content was given either


def test_keys_create_list_revoke(env: dict[str, str]):
    created = herald(env, "keys", "create", "--name", "billing service")
    assert created.returncode == 0, created.stderr
    lines = dict(line.split(":", 1) for line in created.stdout.splitlines() if ":" in line)
    key_id, key = lines["id"].strip(), lines["key"].strip()
    assert key.startswith("hk_")

    listed = herald(env, "keys", "list")
    assert listed.returncode == 0
    (row,) = listed.stdout.splitlines()
    assert row.startswith(key_id)
    assert "active" in row
    assert "billing service" in row
    assert key[:10] in row
    assert key not in row  # the key itself is never shown again

    revoked = herald(env, "keys", "revoke", key_id)
    assert revoked.returncode == 0
    assert revoked.stdout.strip() == "revoked"
    assert "revoked" in herald(env, "keys", "list").stdout

    again = herald(env, "keys", "revoke", key_id)
    assert again.returncode == 1
    assert "no such active key" in again.stderr


def test_dlq_list_and_retry(env: dict[str, str], sqlite_url: str):
    recorder = RecordingProvider()
    recorder.fail_next(PermanentError("550 5.1.1 mailbox unavailable"))

    async def make_a_dead_letter() -> str:
        async with Herald(sqlite_url, providers={Channel.EMAIL: [recorder]}) as embedded:
            view = await embedded.send_email(to="gone@example.org", subject="s", text="t")
            await embedded.drain()
            return view.id

    dead_id = asyncio.run(make_a_dead_letter())

    listed = herald(env, "dlq", "list")
    assert listed.returncode == 0, listed.stderr
    (row,) = listed.stdout.splitlines()
    assert row.startswith(dead_id)
    assert "gone@example.org" in row
    assert "550 5.1.1 mailbox unavailable" in row

    retried = herald(env, "dlq", "retry", dead_id)
    assert retried.returncode == 0, retried.stderr
    assert json.loads(retried.stdout)["status"] == "queued"
    assert herald(env, "dlq", "list").stdout == ""


@pytest.fixture
def serve(env: dict[str, str]) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """``herald serve`` on a free port; stopped with SIGTERM at the end if still running."""
    port = free_port()
    process = subprocess.Popen(
        [str(HERALD), "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_answering(process, url)
        yield process, url
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()


def wait_until_answering(process: subprocess.Popen[str], url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[1]
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.05)
    raise AssertionError(f"{url} did not answer within 60 s")


def assert_stopped_cleanly(process: subprocess.Popen[str], stderr: str) -> None:
    # uvicorn shuts down gracefully (lifespan: the worker stops, the database closes), then
    # re-raises the signal so that supervisors see how the process ended.
    assert process.returncode in {0, -signal.SIGTERM}, stderr
    assert "worker_stopped" in stderr
    assert "Traceback" not in stderr
    assert '"level": "error"' not in stderr


def test_serve_answers_accepts_delivers_and_stops_on_sigterm(
    serve: tuple[subprocess.Popen[str], str],
):
    process, url = serve
    with httpx.Client(base_url=url, timeout=10) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        response = client.post(
            "/v1/notifications",
            json={"channel": "email", "to": "a@example.org", "subject": "Hi", "text": "Hello"},
        )
        assert response.status_code == 202, response.text
        notification_id = response.json()["id"]

        # serve runs the worker too; with no provider configured, email is captured.
        deadline = time.monotonic() + 30
        while client.get(f"/v1/notifications/{notification_id}").json()["status"] != "sent":
            assert time.monotonic() < deadline, "not delivered within 30 s"
            time.sleep(0.05)
        captured = client.get("/v1/captured").json()["items"]
        assert [item["notification_id"] for item in captured] == [notification_id]

    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=60)
    assert_stopped_cleanly(process, stderr)
    assert f"Herald listening on {url}" in stdout


def test_serve_refuses_a_public_address_without_keys(env: dict[str, str]):
    result = herald(env, "serve", "--host", "0.0.0.0", "--port", str(free_port()))  # noqa: S104

    assert result.returncode != 0
    assert "--insecure" in result.stderr
    assert "HERALD_API_KEYS" in result.stderr


@pytest.mark.parametrize("how", ["--insecure", "HERALD_API_KEYS"])
def test_serve_binds_a_public_address_when_allowed(env: dict[str, str], how: str):
    port = free_port()
    args = [str(HERALD), "serve", "--host", "0.0.0.0", "--port", str(port)]  # noqa: S104
    if how == "--insecure":
        args.append("--insecure")
    else:
        env = {**env, "HERALD_API_KEYS": "k1"}
    process = subprocess.Popen(
        args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        wait_until_answering(process, f"http://127.0.0.1:{port}")
        listing = httpx.get(f"http://127.0.0.1:{port}/v1/notifications", timeout=10)
        assert listing.status_code == (200 if how == "--insecure" else 401)
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    assert_stopped_cleanly(process, stderr)


def test_webhooks_secret_is_generated_once_and_printed(env: dict[str, str]):
    first = herald(env, "webhooks", "secret")
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("whsec_")
    assert herald(env, "webhooks", "secret").stdout == first.stdout
    configured = {**env, "HERALD_WEBHOOK_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}
    assert (
        herald(configured, "webhooks", "secret").stdout.strip()
        == configured["HERALD_WEBHOOK_SECRET"]
    )


def test_webhooks_gone_lists_and_forgets(env: dict[str, str], sqlite_url: str):
    async def register() -> None:
        async with Herald(sqlite_url) as running:
            await running.db.run(
                lambda conn: record_gone(
                    conn,
                    "sqlite",
                    [
                        {
                            "url": "https://x.org/h",
                            "at": 1.0,
                            "notification_id": "n1",
                            "detail": None,
                        }
                    ],
                )
            )

    asyncio.run(register())
    listed = herald(env, "webhooks", "gone")
    assert listed.stdout.strip() == "https://x.org/h  since n1"
    assert herald(env, "webhooks", "forget").returncode == 2
    assert herald(env, "webhooks", "forget", "https://x.org/h").stdout.strip() == "forgot 1"
    assert herald(env, "webhooks", "gone").stdout == ""
