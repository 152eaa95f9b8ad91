"""The Apprise chat provider against a local webhook (Apprise's json:// and ntfy://)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import pytest

from herald import Herald
from herald.domain.channels import Channel
from herald.domain.errors import ConfigurationError, PermanentError, TransientError
from herald.domain.message import Chat, Delivery, Sms
from herald.providers.apprise_chat import AppriseProvider
from herald.providers.base import ProviderURL
from herald.providers.registry import build_providers
from tests.integration.http_fakes import FakeChat


def json_url(server: FakeChat, path: str = "hook", **options: str) -> str:
    query = "&".join(f"{k}={v}" for k, v in options.items())
    host = server.url.removeprefix("http://")
    return f"apprise+json://{host}/{path}" + (f"?{query}" if query else "")


def build(url: str, name: str = "chat") -> AppriseProvider:
    return AppriseProvider.from_url(ProviderURL.parse(url), name=name)


@pytest.fixture
async def provider(chat_server: FakeChat) -> AsyncIterator[AppriseProvider]:
    built = build(json_url(chat_server))
    yield built
    await built.aclose()


def chat(body: str = "v2 is live", title: str | None = "Deploy", to: str | None = None) -> Delivery:
    return Delivery("n1", Channel.CHAT, 1, Chat(body=body, title=title, to=to))


async def test_title_and_body_arrive(provider: AppriseProvider, chat_server: FakeChat):
    receipt = await provider.send(chat())
    (request,) = chat_server.requests
    assert request.path == "/hook"
    assert request.json["title"] == "Deploy"
    assert request.json["message"] == "v2 is live"
    assert receipt.detail == "accepted by JSON"


async def test_ntfy_receives_topic_title_and_message(chat_server: FakeChat):
    host = chat_server.url.removeprefix("http://")
    provider = build(f"apprise+ntfy://{host}/deploys")
    await provider.send(chat())
    (request,) = chat_server.requests
    assert request.json == {"topic": "deploys", "title": "Deploy", "message": "v2 is live"}


@pytest.mark.parametrize(
    ("status", "kind", "recipient_fault"),
    [
        (400, PermanentError, True),
        (401, PermanentError, False),
        (403, PermanentError, False),
        (404, PermanentError, False),
        (413, PermanentError, True),
        (429, TransientError, None),
        (500, TransientError, None),
        (503, TransientError, None),
    ],
)
async def test_every_http_status_apprise_reports_is_classified(
    provider: AppriseProvider,
    chat_server: FakeChat,
    status: int,
    kind: type[Exception],
    recipient_fault: bool | None,
):
    chat_server.fail(status, {"error": "refused"})
    with pytest.raises(kind) as caught:
        await provider.send(chat())
    error = caught.value
    assert isinstance(error, PermanentError | TransientError)
    assert error.code == str(status)
    assert f"error={status}" in error.message  # Apprise's own words
    assert error.message.startswith("chat (JSON): ")
    if isinstance(error, PermanentError):
        assert error.recipient_fault is recipient_fault


async def test_an_unreachable_service_is_transient():
    provider = build("apprise+json://127.0.0.1:9/hook")
    with pytest.raises(TransientError) as caught:
        await provider.send(chat())
    assert caught.value.code == "connection"
    assert "Connection error" in caught.value.message


async def test_a_label_selects_the_tagged_destination(chat_server: FakeChat):
    ops = build(json_url(chat_server, "ops", tag="ops+oncall"))
    await ops.send(chat(to="oncall"))
    await ops.send(chat(to=None))  # no label: every destination
    with pytest.raises(PermanentError) as caught:
        await ops.send(chat(to="sales"))
    assert caught.value.code == "no_tag_match"
    assert not caught.value.recipient_fault  # the next provider may be tagged "sales"
    assert [r.path for r in chat_server.requests] == ["/ops", "/ops"]
    assert all("tag" not in r.path for r in chat_server.requests)


async def test_sends_run_in_at_most_concurrency_threads(chat_server: FakeChat):
    release = asyncio.Event()
    in_flight = 0
    most = 0

    async def hold() -> None:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        if in_flight == 2:
            release.set()
        await release.wait()
        in_flight -= 1

    chat_server.hold = hold
    provider = build(json_url(chat_server, concurrency="2"))
    await asyncio.gather(*(provider.send(chat(body=f"m{i}")) for i in range(5)))
    assert most <= 2
    assert sorted(r.json["message"] for r in chat_server.requests) == [f"m{i}" for i in range(5)]


async def test_other_channels_content_is_refused(provider: AppriseProvider):
    with pytest.raises(PermanentError) as caught:
        await provider.send(Delivery("n1", Channel.CHAT, 1, Sms("+14155552671", "hi")))
    assert not caught.value.recipient_fault


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("apprise+nosuchservice://x/y", "Apprise does not accept this URL"),
        ("apprise+slack://only-one-token", "Apprise does not accept this URL"),
        ("apprise://apprise.example.org/token", "write the Apprise URL after 'apprise+'"),
        ("apprise+json://127.0.0.1/x?concurrency=0", "must be ≥ 1"),
    ],
)
def test_urls_apprise_cannot_use_fail_at_start_up(url: str, problem: str):
    with pytest.raises(ConfigurationError, match=re.escape(problem)):
        build_providers({Channel.CHAT: url})


def test_any_apprise_service_is_accepted_and_its_secrets_stay_hidden():
    built = build_providers(
        {
            Channel.CHAT: "apprise+slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ,"
            "apprise+tgram://123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/-1001234?name=tg"
        }
    )
    slack, telegram = built[Channel.CHAT]
    assert (slack.name, telegram.name) == ("apprise+slack", "tg")
    assert "TIiajkdnlazkcOXrIdevi7FQ" not in repr(slack)
    assert "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw" not in repr(telegram)


def test_an_apprise_url_cannot_serve_email():
    with pytest.raises(ConfigurationError, match="serves chat, not email"):
        build_providers({Channel.EMAIL: "apprise+json://127.0.0.1/x"})


# --- End to end through Herald ---------------------------------------------------------------


async def test_herald_posts_chat_messages_and_retries_a_busy_service(
    database_url: str, chat_server: FakeChat
):
    async with Herald(
        database_url,
        migrate=True,
        chat=json_url(chat_server, name="team"),
        poll_interval=0.05,
        retry_initial_delay=0.0,
    ) as herald:
        chat_server.fail(429, {"error": "slow down"})
        view = await herald.send(channel="chat", title="Deploy", body="v2 is live")
        await herald.drain()

        stored = await herald.get(view.id)
        assert (stored.status, stored.provider, stored.attempts) == ("sent", "team", 2)
        retrying = [e for e in stored.events or [] if e.status == "retrying"]
        assert "error=429" in (retrying[0].detail or "")
        assert [(r.json["title"], r.json["message"]) for r in chat_server.requests] == [
            ("Deploy", "v2 is live")
        ] * 2


async def test_a_refused_chat_message_is_dead_and_a_bad_token_fails_over(
    database_url: str, chat_server: FakeChat
):
    async with Herald(
        database_url,
        migrate=True,
        chat=f"{json_url(chat_server, 'primary')},{json_url(chat_server, 'backup')}",
        poll_interval=0.05,
    ) as herald:
        chat_server.fail(403, {"error": "invalid token"})
        moved = await herald.send(channel="chat", body="first")
        await herald.drain()
        chat_server.fail(400, {"error": "bad payload"})
        refused = await herald.send(channel="chat", body="second")
        await herald.drain()

        first = await herald.get(moved.id)
        assert (first.status, first.provider) == ("sent", "apprise+json#2")
        assert any("failing over to apprise+json#2" in (e.detail or "") for e in first.events or [])
        second = await herald.get(refused.id)
        assert second.status == "dead"
        assert second.last_error is not None
        assert "error=400" in second.last_error
        assert second.last_error.endswith("[400]")
        assert [r.path for r in chat_server.requests] == ["/primary", "/backup", "/primary"]
