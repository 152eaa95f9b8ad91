"""POST/GET /v1/notifications: accept, deliver, idempotency, listing, cancel, schedule, expiry."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from herald.runtime import Herald
from tests.integration.api import (
    Api,
    assert_error,
    email,
    running_api,
    status_becomes,
)


def iso(seconds_from_now: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds_from_now)).isoformat()


def statuses(notification: dict[str, Any]) -> list[str]:
    return [event["status"] for event in notification["events"]]


# -- accepting and delivering ----------------------------------------------------------------


async def test_accepting_returns_202_with_a_location_once_the_row_is_committed(
    api: Api, database_url: str
):
    response = await api.client.post("/v1/notifications", json=email(recipient_id="user-42"))

    assert response.status_code == 202
    accepted = response.json()
    assert accepted["status"] == "queued"
    assert accepted["attempts"] == 0
    assert accepted["replayed"] is False
    assert accepted["to"] == ["alice@example.org"]
    assert accepted["subject"] == "Your order shipped"
    assert response.headers["location"] == f"/v1/notifications/{accepted['id']}"
    assert "idempotent-replayed" not in response.headers

    found = await api.get(accepted["id"])
    assert found["status"] == "queued"
    assert found["recipient_id"] == "user-42"
    assert statuses(found) == ["queued"]
    assert found["events"][0]["actor"] == "api"

    # Committed: another Herald on the same database (another process, say) sees it.
    async with Herald(database_url) as other:
        seen = await other.get(accepted["id"])
    assert seen.status == "queued"


async def test_drain_delivers_and_the_notification_shows_its_timeline(api: Api):
    accepted = await api.send(
        to=["Alice Liddell <alice@example.org>", "bob@example.org"],
        cc="carol@example.org",
        headers={"X-Order": "1234"},
        metadata={"order": 1234},
    )
    await api.herald.drain()

    sent = await api.get(accepted["id"])
    assert sent["status"] == "sent"
    assert sent["attempts"] == 1
    assert sent["provider"] == "recorder"
    assert sent["provider_message_id"] == "recorded-1"
    assert sent["sent_at"] is not None
    assert sent["last_error"] is None
    assert sent["metadata"] == {"order": 1234}
    assert statuses(sent) == ["queued", "sending", "sent"]
    assert sent["events"][-1]["provider"] == "recorder"
    assert sent["events"][-1]["actor"].startswith("worker:")
    content = sent["content"]
    assert content["to"] == ["Alice Liddell <alice@example.org>", "bob@example.org"]
    assert content["cc"] == ["carol@example.org"]
    assert content["subject"] == "Your order shipped"
    assert content["text"] == "It is on its way."
    assert content["html"] is None
    assert content["headers"] == {"X-Order": "1234"}
    assert content["message_id"].startswith(accepted["id"] + "@")

    (delivery,) = api.recorder.outbox
    assert delivery.notification_id == accepted["id"]
    assert delivery.attempt == 1
    assert delivery.content.message_id == content["message_id"]
    assert [a.addr for a in delivery.content.to] == ["alice@example.org", "bob@example.org"]
    assert delivery.content.to[0].name == "Alice Liddell"
    assert delivery.content.text == "It is on its way."


async def test_text_is_derived_from_html_when_only_html_is_given(api: Api):
    html = (
        "<h1>Welcome, Alice</h1><p>Confirm your address "
        "<a href='https://example.org/confirm?t=1'>here</a>.</p>"
    )
    accepted = await api.send({"text": None, "html": html})
    await api.herald.drain()

    content = (await api.get(accepted["id"]))["content"]
    assert content["html"] == html
    assert "Welcome, Alice" in content["text"]
    assert "https://example.org/confirm?t=1" in content["text"]
    assert "<h1>" not in content["text"]
    (delivery,) = api.recorder.outbox
    assert delivery.content.text == content["text"]
    assert delivery.content.html == html


async def test_with_run_worker_the_app_delivers_by_itself(database_url: str):
    async with running_api(database_url, run_worker=True) as api:
        accepted = await api.send()
        sent = await status_becomes(api, accepted["id"], "sent")

    assert sent["attempts"] == 1
    assert [d.notification_id for d in api.recorder.outbox] == [accepted["id"]]


# -- idempotency -----------------------------------------------------------------------------


async def test_the_idempotency_key_header_replays_the_same_notification(api: Api):
    first = await api.client.post(
        "/v1/notifications", json=email(), headers={"Idempotency-Key": "order-1234-shipped"}
    )
    again = await api.client.post(
        "/v1/notifications", json=email(), headers={"Idempotency-Key": "order-1234-shipped"}
    )

    assert first.status_code == again.status_code == 202
    assert first.json()["replayed"] is False
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["replayed"] is True
    assert again.headers["idempotent-replayed"] == "true"
    assert again.headers["location"] == first.headers["location"]
    assert again.json()["idempotency_key"] == "order-1234-shipped"
    assert await api.count() == 1

    await api.herald.drain()
    assert len(api.recorder.outbox) == 1
    # Still the same one after delivery, now showing its current status.
    late = await api.client.post(
        "/v1/notifications", json=email(), headers={"Idempotency-Key": "order-1234-shipped"}
    )
    assert late.json()["id"] == first.json()["id"]
    assert late.json()["status"] == "sent"
    await api.herald.drain()
    assert len(api.recorder.outbox) == 1


async def test_the_idempotency_key_in_the_body_works_like_the_header(api: Api):
    first = await api.send(idempotency_key="welcome-user-42")
    again = await api.send(idempotency_key="welcome-user-42")
    # The key is not part of the body's identity: the header form matches the body form.
    by_header = await api.client.post(
        "/v1/notifications", json=email(), headers={"Idempotency-Key": "welcome-user-42"}
    )

    assert again["id"] == first["id"]
    assert again["replayed"] is True
    assert by_header.json()["id"] == first["id"]
    assert await api.count() == 1


async def test_field_order_does_not_change_the_identity_of_a_body(api: Api):
    body = email(cc="carol@example.org", metadata={"a": 1, "b": 2})
    reordered = dict(reversed(body.items()))
    reordered["metadata"] = {"b": 2, "a": 1}
    first = await api.send(body, idempotency_key="k-order")
    again = await api.send(reordered, idempotency_key="k-order")
    assert again["id"] == first["id"]
    assert again["replayed"] is True


async def test_the_same_key_with_another_body_is_409(api: Api):
    await api.send(idempotency_key="k-1")
    for changed in (email(subject="Something else"), email(to="bob@example.org")):
        response = await api.client.post(
            "/v1/notifications", json=changed, headers={"Idempotency-Key": "k-1"}
        )
        error = assert_error(response, 409, "idempotency_key_reused")
        assert "k-1" in error["message"]
    assert await api.count() == 1


async def test_header_and_body_keys_that_differ_are_422(api: Api):
    response = await api.client.post(
        "/v1/notifications",
        json=email(idempotency_key="body-key"),
        headers={"Idempotency-Key": "header-key"},
    )
    error = assert_error(response, 422, "invalid_request")
    assert "idempotency_key" in error["fields"]
    assert await api.count() == 0


async def test_concurrent_requests_with_one_key_make_one_notification(api: Api):
    responses = await asyncio.gather(
        *(
            api.client.post("/v1/notifications", json=email(), headers={"Idempotency-Key": "race"})
            for _ in range(10)
        )
    )

    assert {r.status_code for r in responses} == {202}
    assert len({r.json()["id"] for r in responses}) == 1
    assert sum(not r.json()["replayed"] for r in responses) == 1
    assert await api.count() == 1
    await api.herald.drain()
    assert len(api.recorder.outbox) == 1


# -- listing ---------------------------------------------------------------------------------


async def list_ids(api: Api, **params: Any) -> list[str]:
    response = await api.client.get("/v1/notifications", params=params)
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


async def test_listing_is_newest_first_and_filters(api: Api):
    a = await api.send(to="Alice@Example.org", recipient_id="u1", category="receipts")
    b = await api.send(to="bob@example.org", category="marketing")
    c = await api.send(to="Alice Liddell <alice@example.org>", recipient_id="u2")
    d = await api.send(to="dave@example.org", send_at=iso(3600))
    await api.client.post(f"/v1/notifications/{b['id']}/cancel")
    await api.herald.drain()

    page = (await api.client.get("/v1/notifications")).json()
    assert {item["id"] for item in page["items"]} == {a["id"], b["id"], c["id"], d["id"]}
    assert page["next_cursor"] is None
    # Newest first: ids are time-ordered (to the millisecond), and so is created_at.
    ids = [item["id"] for item in page["items"]]
    assert ids == sorted(ids, reverse=True)
    created = [datetime.fromisoformat(item["created_at"]) for item in page["items"]]
    milliseconds = [int(moment.timestamp() * 1000) for moment in created]
    assert milliseconds == sorted(milliseconds, reverse=True)
    assert page["items"][0]["content"] is None  # content and events only on GET /{id}
    assert page["items"][0]["events"] is None

    assert set(await list_ids(api, status="sent")) == {a["id"], c["id"]}
    assert set(await list_ids(api, status="cancelled,scheduled")) == {b["id"], d["id"]}
    assert set(await list_ids(api, status=["sent", "cancelled"])) == {a["id"], b["id"], c["id"]}
    assert set(await list_ids(api, status=" sent , scheduled ")) == {a["id"], c["id"], d["id"]}
    assert await list_ids(api, status="dead") == []
    assert len(await list_ids(api, channel="email")) == 4
    assert await list_ids(api, channel="sms") == []
    assert set(await list_ids(api, to="ALICE@example.org")) == {a["id"], c["id"]}
    assert set(await list_ids(api, to=" alice@EXAMPLE.org ")) == {a["id"], c["id"]}
    assert await list_ids(api, recipient_id="u1") == [a["id"]]
    assert await list_ids(api, category="receipts") == [a["id"]]
    assert await list_ids(api, status="sent", recipient_id="u2") == [c["id"]]
    assert await list_ids(api, status="cancelled", to="alice@example.org") == []


@pytest.mark.parametrize("total", [23, 21])
async def test_cursor_paging_walks_every_row_exactly_once(api: Api, total: int):
    batch = [email(to=f"user{n}@example.org") for n in range(total)]
    response = await api.client.post("/v1/notifications/batch", json={"notifications": batch})
    assert response.status_code == 202

    seen: list[str] = []
    pages = 0
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 7, **({"cursor": cursor} if cursor else {})}
        page = (await api.client.get("/v1/notifications", params=params)).json()
        pages += 1
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert len(page["items"]) == 7

    assert len(seen) == len(set(seen)) == total
    assert set(seen) == {item["id"] for item in response.json()["items"]}
    assert seen == sorted(seen, reverse=True)
    assert pages == -(-total // 7)  # no empty page at the end when 7 divides the total


async def test_an_empty_cursor_is_the_first_page(api: Api):
    """Clients that always send the parameter send ``?cursor=`` for the first page."""
    accepted = await api.send()
    await api.herald.drain()
    for path in ("/v1/notifications", "/v1/captured", "/v1/dead-letters"):
        response = await api.client.get(path, params={"cursor": ""})
        assert response.status_code == 200, (path, response.text)
        first = await api.client.get(path)
        assert response.json() == first.json(), path
    page = (await api.client.get("/v1/notifications", params={"cursor": ""})).json()
    assert [item["id"] for item in page["items"]] == [accepted["id"]]


# -- cancelling ------------------------------------------------------------------------------


async def test_cancelling_a_queued_notification(api: Api):
    accepted = await api.send()

    response = await api.client.post(f"/v1/notifications/{accepted['id']}/cancel")

    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    await api.herald.drain()
    assert api.recorder.outbox == []
    cancelled = await api.get(accepted["id"])
    assert cancelled["status"] == "cancelled"
    assert statuses(cancelled) == ["queued", "cancelled"]
    assert cancelled["events"][-1]["actor"] == "api"
    again = await api.client.post(f"/v1/notifications/{accepted['id']}/cancel")
    assert_error(again, 409, "not_cancellable")


async def test_cancelling_a_scheduled_notification(api: Api):
    accepted = await api.send(send_at=iso(3600))
    assert accepted["status"] == "scheduled"

    response = await api.client.post(f"/v1/notifications/{accepted['id']}/cancel")

    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    assert statuses(await api.get(accepted["id"])) == ["scheduled", "cancelled"]


async def test_a_sent_notification_cannot_be_cancelled(api: Api):
    accepted = await api.send()
    await api.herald.drain()

    response = await api.client.post(f"/v1/notifications/{accepted['id']}/cancel")

    error = assert_error(response, 409, "not_cancellable")
    assert "sent" in error["message"]
    assert (await api.get(accepted["id"]))["status"] == "sent"


async def test_cancelling_an_unknown_notification_is_404(api: Api):
    response = await api.client.post(
        "/v1/notifications/0190c8d2-0000-7000-8000-000000000000/cancel"
    )
    assert_error(response, 404, "not_found")


# -- scheduling and expiry -------------------------------------------------------------------


async def test_a_scheduled_notification_waits_for_its_time(api: Api):
    # Far enough ahead that drain() is surely over before it is due.
    accepted = await api.send(send_at=iso(2.5))
    assert accepted["status"] == "scheduled"
    await api.herald.drain()
    assert api.recorder.outbox == []
    assert (await api.get(accepted["id"]))["status"] == "scheduled"

    async with api.herald.worker():
        sent = await status_becomes(api, accepted["id"], "sent")

    assert statuses(sent) == ["scheduled", "queued", "sending", "sent"]
    assert [d.notification_id for d in api.recorder.outbox] == [accepted["id"]]


async def test_a_send_at_in_the_past_is_queued_at_once(api: Api):
    accepted = await api.send(send_at="2001-01-01T00:00:00+00:00")
    assert accepted["status"] == "queued"
    await api.herald.drain()
    assert (await api.get(accepted["id"]))["status"] == "sent"


async def test_a_notification_whose_expires_at_passed_is_never_delivered(api: Api):
    accepted = await api.send(expires_at=iso(1))
    deadline = datetime.fromisoformat(accepted["expires_at"]).timestamp()
    # Time has to pass here: there is no event for "expires_at is behind us".
    await asyncio.sleep(max(deadline - time.time(), 0) + 0.05)

    await api.herald.drain()

    expired = await api.get(accepted["id"])
    assert expired["status"] == "expired"
    assert "expires_at" in expired["last_error"]
    assert statuses(expired) == ["queued", "sending", "expired"]
    assert api.recorder.outbox == []
