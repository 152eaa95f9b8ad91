"""Bearer API keys: HERALD_API_KEYS and keys created with ``herald keys create``."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.integration.api import Api, assert_error, email, running_api

PROTECTED = [
    ("GET", "/v1/notifications"),
    ("POST", "/v1/notifications"),
    ("POST", "/v1/notifications/batch"),
    ("GET", "/v1/notifications/0190c8d2-0000-7000-8000-000000000000"),
    ("POST", "/v1/notifications/0190c8d2-0000-7000-8000-000000000000/cancel"),
    ("GET", "/v1/dead-letters"),
    ("POST", "/v1/dead-letters/0190c8d2-0000-7000-8000-000000000000/retry"),
    ("GET", "/v1/captured"),
    ("DELETE", "/v1/captured"),
]


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def request(client: httpx.AsyncClient, method: str, path: str) -> httpx.Response:
    body = email() if method == "POST" and path.endswith("/notifications") else None
    return await client.request(method, path, json=body)


@pytest.fixture
async def api(database_url: str) -> AsyncIterator[Api]:
    async with running_api(database_url, api_keys="k1, k2") as running:
        yield running


@pytest.mark.parametrize(("method", "path"), PROTECTED)
async def test_every_v1_route_needs_a_key(api: Api, method: str, path: str):
    response = await request(api.client, method, path)

    error = assert_error(response, 401, "unauthorized")
    assert "Bearer" in error["message"]
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "authorization",
    ["Bearer wrong", "Bearer k1k2", "Bearer ", "Basic azE6", "k1", "Bearer k3"],
)
async def test_a_wrong_or_malformed_key_is_401(api: Api, authorization: str):
    response = await api.client.get("/v1/notifications", headers={"Authorization": authorization})
    assert_error(response, 401, "unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"


async def test_the_configured_keys_open_the_api(api: Api):
    for key in ("k1", "k2"):
        response = await api.client.get("/v1/notifications", headers=bearer(key))
        assert response.status_code == 200, response.text
    response = await api.client.post("/v1/notifications", json=email(), headers=bearer("k1"))
    assert response.status_code == 202
    # The scheme is case-insensitive (RFC 7235).
    response = await api.client.get("/v1/notifications", headers={"Authorization": "bearer k2"})
    assert response.status_code == 200


async def test_nothing_is_accepted_without_a_key(api: Api):
    await api.client.post("/v1/notifications", json=email())
    response = await api.client.get("/v1/notifications", headers=bearer("k1"))
    assert response.json()["items"] == []


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"])
async def test_operations_and_docs_stay_open(api: Api, path: str):
    response = await api.client.get(path)
    assert response.status_code == 200


async def test_stored_keys_work_and_a_revoked_one_is_refused(database_url: str):
    async with running_api(database_url) as api:
        # Created before the first request, so no cached "no keys exist" answer is in play.
        first_id, first = await api.herald.api_keys.create("billing service")
        second_id, second = await api.herald.api_keys.create("old script")
        assert first.startswith("hk_")
        assert first != second

        assert_error(await api.client.get("/v1/notifications"), 401, "unauthorized")
        assert (await api.client.get("/v1/notifications", headers=bearer(first))).status_code == 200

        assert await api.herald.api_keys.revoke(second_id) is True
        assert await api.herald.api_keys.revoke(second_id) is False  # already revoked
        # Never used before revocation, so no cache can still vouch for it.
        refused = await api.client.get("/v1/notifications", headers=bearer(second))
        assert_error(refused, 401, "unauthorized")
        assert (await api.client.get("/v1/notifications", headers=bearer(first))).status_code == 200

        listed = {row["id"]: row for row in await api.herald.api_keys.list()}
        assert listed[first_id]["revoked_at"] is None
        assert listed[second_id]["revoked_at"] is not None
        assert listed[first_id]["name"] == "billing service"
        # Only a digest is stored, never the key.
        assert all(first not in str(dict(row)) for row in listed.values())


async def test_configured_and_stored_keys_work_together(database_url: str):
    async with running_api(database_url, api_keys="k1") as api:
        _, stored = await api.herald.api_keys.create("cli")
        for key in ("k1", stored):
            response = await api.client.get("/v1/notifications", headers=bearer(key))
            assert response.status_code == 200, key


async def test_without_any_key_the_api_is_open(database_url: str):
    async with running_api(database_url) as api:
        response = await api.client.get("/v1/notifications")
        assert response.status_code == 200
