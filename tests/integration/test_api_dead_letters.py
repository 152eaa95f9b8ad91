"""Failures: transient ones retry, permanent ones and exhausted attempts go to the DLQ."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from herald.domain.errors import PermanentError, TransientError
from tests.integration.api import Api, assert_error, running_api, status_becomes


@pytest.fixture
async def api(database_url: str) -> AsyncIterator[Api]:
    """Retries without waiting, and three attempts at most."""
    async with running_api(database_url, retry_initial_delay=0.0, retry_max_attempts=3) as running:
        yield running


def statuses(notification: dict[str, object]) -> list[str]:
    events = notification["events"]
    assert isinstance(events, list)
    return [event["status"] for event in events]


async def test_a_permanent_failure_is_a_dead_letter_that_can_be_retried(api: Api):
    api.recorder.fail_next(PermanentError("550 5.1.1 mailbox unavailable", code="5.1.1"))
    accepted = await api.send()
    await api.herald.drain()

    dead = await api.get(accepted["id"])
    assert dead["status"] == "dead"
    assert dead["attempts"] == 1
    assert "mailbox unavailable" in dead["last_error"]
    assert statuses(dead) == ["queued", "sending", "dead"]
    assert api.recorder.outbox == []

    listed = (await api.client.get("/v1/dead-letters")).json()
    assert [item["id"] for item in listed["items"]] == [accepted["id"]]
    assert "mailbox unavailable" in listed["items"][0]["last_error"]
    assert listed["next_cursor"] is None

    response = await api.client.post(f"/v1/dead-letters/{accepted['id']}/retry")
    assert response.status_code == 200
    assert response.json()["status"] == "queued"
    assert response.json()["attempts"] == 0
    assert (await api.client.get("/v1/dead-letters")).json()["items"] == []

    await api.herald.drain()
    sent = await api.get(accepted["id"])
    assert sent["status"] == "sent"
    assert sent["attempts"] == 1
    assert statuses(sent) == ["queued", "sending", "dead", "queued", "sending", "sent"]
    assert [d.notification_id for d in api.recorder.outbox] == [accepted["id"]]


async def test_retrying_what_is_not_dead_is_409_and_unknown_is_404(api: Api):
    accepted = await api.send()
    response = await api.client.post(f"/v1/dead-letters/{accepted['id']}/retry")
    assert "queued" in assert_error(response, 409, "not_dead")["message"]

    await api.herald.drain()
    response = await api.client.post(f"/v1/dead-letters/{accepted['id']}/retry")
    assert_error(response, 409, "not_dead")

    response = await api.client.post("/v1/dead-letters/0190c8d2-0000-7000-8000-000000000000/retry")
    assert_error(response, 404, "not_found")


async def test_a_transient_failure_is_retried_then_sent(api: Api):
    api.recorder.fail_next(TransientError("421 4.7.0 try again later", code="421"))
    accepted = await api.send()

    async with api.herald.worker():
        sent = await status_becomes(api, accepted["id"], "sent")

    assert sent["attempts"] == 2
    # A retry is queued again when it comes due.
    assert statuses(sent) == ["queued", "sending", "retrying", "queued", "sending", "sent"]
    assert "try again later" in sent["events"][2]["detail"]
    assert len(api.recorder.outbox) == 1


async def test_exhausting_the_attempts_is_a_dead_letter(api: Api):
    api.recorder.fail_next(*(TransientError("connection refused") for _ in range(3)))
    accepted = await api.send()

    async with api.herald.worker():
        dead = await status_becomes(api, accepted["id"], "dead")

    assert dead["attempts"] == 3
    assert "attempts exhausted" in dead["last_error"]
    assert "connection refused" in dead["last_error"]
    assert statuses(dead) == ["queued"] + ["sending", "retrying", "queued"] * 2 + [
        "sending",
        "dead",
    ]
    listed = (await api.client.get("/v1/dead-letters", params={"channel": "email"})).json()
    assert [item["id"] for item in listed["items"]] == [accepted["id"]]
    assert (await api.client.get("/v1/dead-letters", params={"channel": "sms"})).json()[
        "items"
    ] == []
    assert api.recorder.outbox == []
