"""Helpers for testing code that uses Herald — no servers, no network.

    from herald.testing import recording_herald

    async def test_signup_sends_welcome():
        async with recording_herald() as herald:
            await signup(herald, "alice@example.org")
            await herald.drain()
            (sent,) = herald.recorder.outbox
            assert sent.content.subject == "Welcome!"

``recorder.fail_next(TransientError("..."))`` makes the next send fail, to test retries.
"""

from __future__ import annotations

import tempfile
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from herald.domain.channels import Channel
from herald.domain.errors import DeliveryError
from herald.domain.message import Delivery, Receipt
from herald.runtime import Herald

__all__ = ["RecordingHerald", "RecordingProvider", "recording_herald"]


class RecordingProvider:
    """A provider that records every delivery; it serves every channel."""

    def __init__(self, name: str = "recorder") -> None:
        self.name = name
        self.channel = Channel.EMAIL
        self.outbox: list[Delivery] = []
        self._failures: deque[DeliveryError] = deque()

    def fail_next(self, *errors: DeliveryError) -> None:
        """Raise these errors, one per send, before recording succeeds again."""
        self._failures.extend(errors)

    async def send(self, delivery: Delivery) -> Receipt:
        if self._failures:
            raise self._failures.popleft()
        self.outbox.append(delivery)
        return Receipt(provider_message_id=f"recorded-{len(self.outbox)}", detail="recorded")

    async def check(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


class RecordingHerald(Herald):
    """A Herald whose every channel delivers to :attr:`recorder`."""

    def __init__(self, database_url: str, recorder: RecordingProvider, **overrides: Any) -> None:
        super().__init__(
            database_url, providers={channel: [recorder] for channel in Channel}, **overrides
        )
        self.recorder = recorder


@asynccontextmanager
async def recording_herald(
    database_url: str | None = None, **overrides: Any
) -> AsyncIterator[RecordingHerald]:
    """A started Herald on a throwaway SQLite file (or ``database_url``), fast retries."""
    with tempfile.TemporaryDirectory(prefix="herald-test-") as directory:
        url = database_url or f"sqlite:///{Path(directory) / 'herald.db'}"
        settings = {"retry_initial_delay": 0.0, "poll_interval": 0.05, **overrides}
        herald = RecordingHerald(url, RecordingProvider(), **settings)
        async with herald:
            yield herald
