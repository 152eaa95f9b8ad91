"""Herald embedded in an application: the async API, herald.testing, and SyncHerald."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import asyncpg
import pytest

from herald import (
    Channel,
    Conflict,
    Delivery,
    Herald,
    InvalidRequest,
    NotFound,
    NotificationRequest,
    PermanentError,
    Receipt,
    SyncHerald,
    TransientError,
)
from herald.testing import RecordingProvider, recording_herald
from tests.integration.api import eventually

UNKNOWN_ID = "0190c8d2-0000-7000-8000-000000000000"


class SignallingProvider(RecordingProvider):
    """Records, and lets a test wait for the n-th delivery instead of sleeping."""

    def __init__(self) -> None:
        super().__init__("signalling")
        self.delivered = asyncio.Condition()

    async def send(self, delivery: Delivery) -> Receipt:
        receipt = await super().send(delivery)
        async with self.delivered:
            self.delivered.notify_all()
        return receipt

    async def wait_for(self, count: int) -> None:
        async with asyncio.timeout(30), self.delivered:
            await self.delivered.wait_for(lambda: len(self.outbox) >= count)


@pytest.fixture
def recorder() -> RecordingProvider:
    return RecordingProvider()


@pytest.fixture
async def herald(database_url: str, recorder: RecordingProvider) -> AsyncIterator[Herald]:
    async with Herald(
        database_url, providers={Channel.EMAIL: [recorder]}, retry_initial_delay=0.0
    ) as running:
        yield running


async def test_send_email_then_drain(herald: Herald, recorder: RecordingProvider):
    accepted = await herald.send_email(
        to="alice@example.org", subject="Welcome", html="<p>Hello <b>Alice</b></p>"
    )
    assert accepted.status == "queued"
    assert accepted.to == ["alice@example.org"]

    await herald.drain()

    sent = await herald.get(accepted.id)
    assert sent.status == "sent"
    assert sent.attempts == 1
    assert sent.provider == "recorder"
    assert sent.events is not None
    assert [e.status for e in sent.events] == ["queued", "sending", "sent"]
    assert sent.content is not None
    assert "Hello **Alice**" in (sent.content.text or "")
    (delivery,) = recorder.outbox
    assert delivery.content.subject == "Welcome"
    assert delivery.content.html == "<p>Hello <b>Alice</b></p>"


async def test_send_takes_a_mapping_fields_or_a_request(
    herald: Herald, recorder: RecordingProvider
):
    from_mapping = await herald.send(
        {"channel": "email", "to": ["a@example.org"], "from": "Shop <shop@example.org>"},
        subject="From a mapping",
        text="one",
    )
    from_fields = await herald.send(
        channel="email", to="b@example.org", subject="From fields", text="two", priority=9
    )
    from_model = await herald.send(
        NotificationRequest(channel=Channel.EMAIL, to=["c@example.org"], subject="Model", text="3")
    )
    await herald.drain()

    assert from_fields.priority == 9
    content = (await herald.get(from_mapping.id)).content
    assert content is not None
    assert content.from_ == "Shop <shop@example.org>"
    assert {d.notification_id for d in recorder.outbox} == {
        from_mapping.id,
        from_fields.id,
        from_model.id,
    }


async def test_idempotency_keys_in_the_library(herald: Herald, recorder: RecordingProvider):
    first = await herald.send_email(
        to="a@example.org", subject="Receipt", text="Thanks", idempotency_key="receipt-77"
    )
    again = await herald.send_email(
        to="a@example.org", subject="Receipt", text="Thanks", idempotency_key="receipt-77"
    )
    assert again.id == first.id
    assert again.replayed is True

    with pytest.raises(Conflict) as caught:
        await herald.send_email(
            to="a@example.org", subject="Other", text="Thanks", idempotency_key="receipt-77"
        )
    assert caught.value.code == "idempotency_key_reused"
    await herald.drain()
    assert len(recorder.outbox) == 1


async def test_invalid_input_raises_with_field_level_reasons(herald: Herald):
    with pytest.raises(InvalidRequest) as caught:
        await herald.send_email(
            to=["ok@example.org", "nope"], subject="Hi\r\nBcc: x@y.org", text=""
        )
    assert set(caught.value.fields) == {"to[1]", "subject"}

    with pytest.raises(InvalidRequest) as caught:
        await herald.send(channel="email", to="a@example.org", subject="s", text="t", priority=12)
    assert set(caught.value.fields) == {"priority"}

    with pytest.raises(InvalidRequest) as caught:
        await herald.send_email(to="a@example.org", subject="s", text="t", metadata={"ids": {1}})
    assert set(caught.value.fields) == {"metadata.ids"}

    for key in ("", "k" * 256, "line\nbreak"):
        with pytest.raises(InvalidRequest) as caught:
            await herald.send_email(to="a@example.org", subject="s", text="t", idempotency_key=key)
        assert set(caught.value.fields) == {"idempotency_key"}
        with pytest.raises(InvalidRequest) as caught:  # the argument, not a body field
            await herald.send(
                {"channel": "email", "to": "a@example.org", "subject": "s", "text": "t"},
                idempotency_key=key,
            )
        assert set(caught.value.fields) == {"idempotency_key"}
        with pytest.raises(InvalidRequest) as caught:
            await herald.send_batch(
                [{"channel": "email", "to": "a@example.org", "subject": "s", "text": "t"}],
                idempotency_key=key,
            )
        assert set(caught.value.fields) == {"idempotency_key"}

    with pytest.raises(InvalidRequest) as caught:
        await herald.send_email(to="a@example.org", subject="s", text="t", colour="blue")
    assert caught.value.fields == {"colour": "unknown field"}
    page = await herald.notifications.list()
    assert page == []


async def test_send_batch_is_all_or_nothing(herald: Herald, recorder: RecordingProvider):
    good = [
        {"channel": "email", "to": f"user{n}@example.org", "subject": "s", "text": "t"}
        for n in range(3)
    ]
    with pytest.raises(InvalidRequest) as caught:
        await herald.send_batch([*good, {**good[0], "to": "broken"}])
    assert set(caught.value.fields) == {"notifications[3].to"}
    assert await herald.notifications.list() == []

    views = await herald.send_batch(good, idempotency_key="nightly")
    assert [(await herald.get(v.id)).to for v in views] == [
        [f"user{n}@example.org"] for n in range(3)
    ]
    replayed = await herald.send_batch(good, idempotency_key="nightly")
    assert [v.id for v in replayed] == [v.id for v in views]
    await herald.drain()
    assert len(recorder.outbox) == 3


async def test_cancel_and_errors_for_unknown_ids(herald: Herald, recorder: RecordingProvider):
    accepted = await herald.send_email(to="a@example.org", subject="s", text="t")
    cancelled = await herald.cancel(accepted.id)
    assert cancelled.status == "cancelled"
    await herald.drain()
    assert recorder.outbox == []

    with pytest.raises(Conflict) as caught:
        await herald.cancel(accepted.id)
    assert caught.value.code == "not_cancellable"
    with pytest.raises(NotFound):
        await herald.get(UNKNOWN_ID)
    with pytest.raises(NotFound):
        await herald.cancel(UNKNOWN_ID)


async def test_a_dead_letter_can_be_retried(herald: Herald, recorder: RecordingProvider):
    recorder.fail_next(PermanentError("550 5.7.1 relaying denied"))
    accepted = await herald.send_email(to="a@example.org", subject="s", text="t")
    await herald.drain()
    assert (await herald.get(accepted.id)).status == "dead"

    assert (await herald.retry_dead(accepted.id)).status == "queued"
    await herald.drain()
    assert (await herald.get(accepted.id)).status == "sent"


async def test_the_worker_delivers_in_the_background(database_url: str):
    provider = SignallingProvider()
    herald = Herald(database_url, providers={Channel.EMAIL: [provider]})
    async with herald, herald.worker():
        first = await herald.send_email(to="a@example.org", subject="one", text="1")
        second = await herald.send_email(to="b@example.org", subject="two", text="2")
        await provider.wait_for(2)

        async def both_sent() -> bool:
            views = [await herald.get(first.id), await herald.get(second.id)]
            return all(view.status == "sent" for view in views)

        await eventually(both_sent)
    assert sorted(d.content.subject for d in provider.outbox) == ["one", "two"]


async def test_the_timeline_names_the_library_as_the_actor(herald: Herald):
    accepted = await herald.send_email(to="a@example.org", subject="s", text="t")
    events = (await herald.get(accepted.id)).events
    assert events is not None
    assert events[0].actor == "library"


# -- herald.testing, as a user's own tests would use it ----------------------------------------


async def signup(herald: Herald, address: str) -> str:
    """Stands for application code under test."""
    view = await herald.send_email(to=address, subject="Welcome!", text="Glad you joined.")
    return view.id


async def test_recording_herald_outbox():
    async with recording_herald() as herald:
        notification_id = await signup(herald, "alice@example.org")
        await herald.drain()

        (sent,) = herald.recorder.outbox
        assert sent.notification_id == notification_id
        assert sent.content.subject == "Welcome!"
        assert [a.addr for a in sent.content.to] == ["alice@example.org"]
        assert (await herald.get(notification_id)).status == "sent"


async def test_recording_herald_fail_next_exercises_retries_and_dead_letters():
    async with recording_herald(retry_max_attempts=2) as herald:
        herald.recorder.fail_next(TransientError("421 busy"))
        retried = await signup(herald, "alice@example.org")
        async with herald.worker():

            async def sent() -> bool:
                return (await herald.get(retried)).status == "sent"

            await eventually(sent)
        assert (await herald.get(retried)).attempts == 2

        herald.recorder.fail_next(PermanentError("550 no such user"))
        dead = await signup(herald, "nobody@example.org")
        await herald.drain()
        view = await herald.get(dead)
        assert view.status == "dead"
        assert view.last_error == "550 no such user"
        assert len(herald.recorder.outbox) == 1


async def test_drain_delivers_a_retry_that_is_due_at_once():
    async with recording_herald() as herald:
        herald.recorder.fail_next(TransientError("421 busy"))
        notification_id = await signup(herald, "alice@example.org")
        await herald.drain()
        assert (await herald.get(notification_id)).status == "sent"


async def test_recording_herald_on_a_given_database(database_url: str):
    async with recording_herald(database_url) as herald:
        await signup(herald, "alice@example.org")
        await herald.drain()
        assert len(herald.recorder.outbox) == 1


# -- SyncHerald, from plain synchronous code ---------------------------------------------------


def test_sync_herald_with_a_background_worker(database_url: str):
    recorder = RecordingProvider()
    with SyncHerald(
        database_url,
        run_worker=True,
        providers={Channel.EMAIL: [recorder]},
        poll_interval=0.05,
    ) as herald:
        accepted = herald.send_email(to="alice@example.org", subject="Hi", text="Hello")
        assert accepted.status == "queued"
        deadline = time.monotonic() + 30
        while herald.get(accepted.id).status != "sent":
            assert time.monotonic() < deadline, "not delivered within 30 s"
            time.sleep(0.02)

        with pytest.raises(InvalidRequest) as caught:
            herald.send_email(to="nope", subject="Hi", text="Hello")
        assert set(caught.value.fields) == {"to"}
    assert [d.notification_id for d in recorder.outbox] == [accepted.id]


def test_sync_herald_drain_batch_and_cancel(sqlite_url: str):
    recorder = RecordingProvider()
    herald = SyncHerald(sqlite_url, providers={Channel.EMAIL: [recorder]})
    try:
        views = herald.send_batch(
            [
                {"channel": "email", "to": f"user{n}@example.org", "subject": "s", "text": "t"}
                for n in range(3)
            ]
        )
        assert herald.cancel(views[0].id).status == "cancelled"
        one = herald.send({"channel": "email", "to": "x@example.org", "subject": "s", "text": "t"})
        herald.drain()
        assert herald.get(views[1].id).status == "sent"
        assert herald.get(one.id).status == "sent"
        with pytest.raises(Conflict):
            herald.cancel(views[1].id)
    finally:
        herald.close()
    assert sorted(d.notification_id for d in recorder.outbox) == sorted(
        [views[1].id, views[2].id, one.id]
    )


# -- stopping a worker -------------------------------------------------------------------------


class GatedProvider(RecordingProvider):
    """Holds each send until the test releases it."""

    def __init__(self) -> None:
        super().__init__("gated")
        self.started = asyncio.Event()
        self.release = asyncio.Event()

    async def send(self, delivery: Delivery) -> Receipt:
        self.started.set()
        await self.release.wait()
        return await super().send(delivery)


async def test_stopping_the_worker_keeps_an_outcome_that_is_being_written(postgres_url: str):
    provider = GatedProvider()
    async with Herald(postgres_url, providers={Channel.EMAIL: [provider]}) as herald:
        accepted = await herald.send_email(to="a@example.org", subject="s", text="t")
        stop = asyncio.Event()
        worker = asyncio.create_task(herald.run_worker(stop))
        await asyncio.wait_for(provider.started.wait(), 30)

        # Another session locks the row, so the worker's outcome write has to wait for it.
        locker = await asyncpg.connect(postgres_url)
        try:
            transaction = locker.transaction()
            await transaction.start()
            await locker.execute(
                "SELECT 1 FROM notifications WHERE id = $1 FOR UPDATE", accepted.id
            )
            provider.release.set()

            async def write_waits() -> bool:
                # Inside a transaction pg_stat_activity is a snapshot taken at its first
                # use; clear it so each check sees the sessions as they are now.
                await locker.execute("SELECT pg_stat_clear_snapshot()")
                blocked = await locker.fetchval(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE pg_backend_pid() = ANY(pg_blocking_pids(pid))"
                )
                return bool(blocked)

            await eventually(write_waits)
            # A graceful stop should wait for that write; give it a moment to show whether
            # it does, then let the write through either way.
            stop.set()
            await asyncio.wait({worker}, timeout=2)
            await transaction.rollback()
            await asyncio.wait_for(worker, 30)
        finally:
            await locker.close()

        assert [d.notification_id for d in provider.outbox] == [accepted.id]
        assert (await herald.get(accepted.id)).status == "sent"
