"""Helpers for API tests: the app in-process with its lifespan run, on a real database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from herald.api.app import create_app
from herald.domain.channels import Channel
from herald.providers.base import Provider
from herald.runtime import Herald
from herald.testing import RecordingProvider


@dataclass
class Api:
    client: httpx.AsyncClient
    herald: Herald
    recorder: RecordingProvider

    async def send(self, body: Mapping[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
        """POST a notification that must be accepted; returns the 202 body."""
        response = await self.client.post("/v1/notifications", json=email(body, **fields))
        assert response.status_code == 202, response.text
        accepted: dict[str, Any] = response.json()
        return accepted

    async def get(self, notification_id: str) -> dict[str, Any]:
        response = await self.client.get(f"/v1/notifications/{notification_id}")
        assert response.status_code == 200, response.text
        found: dict[str, Any] = response.json()
        return found

    async def count(self) -> int:
        """How many notifications exist, whatever their status (walks every page)."""
        total, cursor = 0, None
        while True:
            params = {"limit": 200, **({"cursor": cursor} if cursor else {})}
            page = (await self.client.get("/v1/notifications", params=params)).json()
            total += len(page["items"])
            cursor = page["next_cursor"]
            if cursor is None:
                return total


def email(body: Mapping[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    """A valid email notification request, with ``body``/``fields`` overriding parts of it."""
    return {
        "channel": "email",
        "to": "alice@example.org",
        "subject": "Your order shipped",
        "text": "It is on its way.",
        **(body or {}),
        **fields,
    }


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The response is an error in Herald's one shape; returns ``error``."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert set(error) == {"code", "message", "fields"}, error
    assert error["code"] == code, error
    assert isinstance(error["message"], str)
    assert error["message"]
    assert isinstance(error["fields"], dict)
    return error


@asynccontextmanager
async def running_api(
    database_url: str,
    *,
    providers: Mapping[Channel, Sequence[Provider]] | None = None,
    capture: bool = False,
    run_worker: bool = False,
    **settings: Any,
) -> AsyncIterator[Api]:
    """The app with its lifespan (migrations, key check) and a client talking to it.

    Email goes to a :class:`RecordingProvider` unless ``providers`` is given, or ``capture``
    asks for the default (the capture provider, as on a fresh install).
    """
    recorder = RecordingProvider()
    if providers is None and not capture:
        providers = {Channel.EMAIL: [recorder]}
    settings.setdefault("poll_interval", 0.05)
    herald = Herald(database_url, providers=providers, **settings)
    app = create_app(herald, run_worker=run_worker)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app), base_url="http://herald.test"
        ) as client,
    ):
        yield Api(client=client, herald=herald, recorder=recorder)


async def eventually(check: Callable[[], Awaitable[bool]], *, within: float = 30.0) -> None:
    """Wait until ``check()`` is true, for work done in the background (a worker, a server).

    The deadline is generous on purpose: it only guards against hanging, never measures.
    """
    try:
        async with asyncio.timeout(within):
            # Polling: the state lives in the database, there is no event to wait on.
            while True:
                if await check():
                    return
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"not true within {within} s") from None


async def status_becomes(api: Api, notification_id: str, status: str) -> dict[str, Any]:
    """Wait for a background worker to move a notification to ``status``; returns it."""
    found: dict[str, Any] = {}

    async def reached() -> bool:
        found.update(await api.get(notification_id))
        return bool(found["status"] == status)

    await eventually(reached)
    return found
