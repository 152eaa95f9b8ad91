"""POST /v1/notifications/batch: up to 1,000 in one transaction, all or nothing."""

from __future__ import annotations

from typing import Any

from tests.integration.api import Api, assert_error, email


def batch(size: int, **fields: Any) -> dict[str, Any]:
    return {
        "notifications": [
            email(to=f"user{n}@example.org", subject=f"Notice {n}", **fields) for n in range(size)
        ]
    }


async def test_a_batch_is_accepted_and_delivered(api: Api):
    response = await api.client.post("/v1/notifications/batch", json=batch(5))

    assert response.status_code == 202
    items = response.json()["items"]
    # Compact items (GET one for the details), in request order.
    assert [set(item) for item in items] == [{"id", "status", "idempotency_key", "replayed"}] * 5
    assert {item["status"] for item in items} == {"queued"}
    for n, item in enumerate(items):
        assert (await api.get(item["id"]))["to"] == [f"user{n}@example.org"]
    await api.herald.drain()
    delivered = {d.notification_id: d.content.subject for d in api.recorder.outbox}
    assert delivered == {item["id"]: f"Notice {n}" for n, item in enumerate(items)}
    for item in items:
        assert (await api.get(item["id"]))["status"] == "sent"


async def test_a_thousand_notifications_in_one_request(api: Api):
    response = await api.client.post("/v1/notifications/batch", json=batch(1_000))

    assert response.status_code == 202, response.text
    items = response.json()["items"]
    assert len(items) == 1_000
    assert len({item["id"] for item in items}) == 1_000
    assert {item["status"] for item in items} == {"queued"}
    # In request order: item n is the notification to user n.
    recipient: dict[str, str] = {}
    cursor = None
    while True:
        params = {"limit": 200, **({"cursor": cursor} if cursor else {})}
        page = (await api.client.get("/v1/notifications", params=params)).json()
        recipient.update({row["id"]: row["to"][0] for row in page["items"]})
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(recipient) == 1_000
    assert [recipient[item["id"]] for item in items] == [
        f"user{n}@example.org" for n in range(1_000)
    ]


async def test_the_ids_of_a_batch_increase_in_request_order(sqlite_api: Api):
    response = await sqlite_api.client.post("/v1/notifications/batch", json=batch(50))
    ids = [item["id"] for item in response.json()["items"]]
    assert ids == sorted(ids)


async def test_more_than_a_thousand_is_422(sqlite_api: Api):
    response = await sqlite_api.client.post("/v1/notifications/batch", json=batch(1_001))
    error = assert_error(response, 422, "invalid_request")
    assert "1000" in error["fields"]["notifications"]
    assert await sqlite_api.count() == 0


async def test_an_empty_batch_is_422(api: Api):
    response = await api.client.post("/v1/notifications/batch", json={"notifications": []})
    assert "notifications" in assert_error(response, 422, "invalid_request")["fields"]


async def test_one_invalid_item_rejects_the_whole_batch(api: Api):
    body = batch(6)
    body["notifications"][3]["to"] = "not-an-address"
    body["notifications"][5]["headers"] = {"Bcc": "evil@x.org"}

    response = await api.client.post("/v1/notifications/batch", json=body)

    error = assert_error(response, 422, "invalid_request")
    assert set(error["fields"]) == {"notifications[3].to", "notifications[5].headers.Bcc"}
    assert "not-an-address" in error["fields"]["notifications[3].to"]
    assert await api.count() == 0
    await api.herald.drain()
    assert api.recorder.outbox == []


async def test_a_badly_shaped_item_is_named_by_its_index(api: Api):
    body = batch(3)
    body["notifications"][1]["sujbect"] = "typo"
    body["notifications"][2]["priority"] = 99

    response = await api.client.post("/v1/notifications/batch", json=body)

    error = assert_error(response, 422, "invalid_request")
    assert set(error["fields"]) == {"notifications[1].sujbect", "notifications[2].priority"}
    assert await api.count() == 0


async def test_a_batch_with_an_idempotency_key_replays(api: Api):
    headers = {"Idempotency-Key": "import-2024-06"}
    first = await api.client.post("/v1/notifications/batch", json=batch(4), headers=headers)
    again = await api.client.post("/v1/notifications/batch", json=batch(4), headers=headers)

    assert first.status_code == again.status_code == 202
    first_items, again_items = first.json()["items"], again.json()["items"]
    assert [i["id"] for i in again_items] == [i["id"] for i in first_items]
    assert [i["replayed"] for i in first_items] == [False] * 4
    assert [i["replayed"] for i in again_items] == [True] * 4
    # Item i gets the key "<key>:<i>".
    assert [i["idempotency_key"] for i in first_items] == [f"import-2024-06:{n}" for n in range(4)]
    assert await api.count() == 4
    await api.herald.drain()
    assert len(api.recorder.outbox) == 4


async def test_an_item_with_its_own_key_keeps_it(api: Api):
    body = batch(2)
    body["notifications"][1]["idempotency_key"] = "own-key"
    response = await api.client.post(
        "/v1/notifications/batch", json=body, headers={"Idempotency-Key": "batch-key"}
    )
    keys = [item["idempotency_key"] for item in response.json()["items"]]
    assert keys == ["batch-key:0", "own-key"]


async def test_a_reused_key_with_another_body_rejects_the_whole_batch(api: Api):
    await api.send(idempotency_key="taken")
    body = batch(3)
    body["notifications"][2]["idempotency_key"] = "taken"

    response = await api.client.post("/v1/notifications/batch", json=body)

    assert_error(response, 409, "idempotency_key_reused")
    assert await api.count() == 1
