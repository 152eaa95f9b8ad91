"""A blocking facade for synchronous callers (Flask, Django, scripts).

    herald = SyncHerald("sqlite:///herald.db")
    herald.send_email(to="a@example.org", subject="Hi", text="Hello")
    herald.close()

It runs Herald on an event loop in a background thread; ``run_worker=True`` also delivers
from that thread, so one process needs nothing else.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine, Mapping, Sequence
from typing import Any, TypeVar

from herald.pipeline.views import AcceptedItem, NotificationView
from herald.runtime import Herald

T = TypeVar("T")


class SyncHerald:
    def __init__(
        self, database_url: str | None = None, *, run_worker: bool = False, **overrides: Any
    ) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="herald", daemon=True)
        self._thread.start()
        self.herald = Herald(database_url, **overrides)
        self._stop: asyncio.Event | None = None
        self._worker: concurrent.futures.Future[None] | None = None
        try:
            self._call(self.herald.start())
            if run_worker:
                self._stop = self._call(_new_event())
                self._worker = asyncio.run_coroutine_threadsafe(
                    self.herald.run_worker(self._stop), self._loop
                )
        except BaseException:
            self._shutdown_loop()
            raise

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def send(self, request: Mapping[str, Any] | None = None, **fields: Any) -> NotificationView:
        return self._call(self.herald.send(request, **fields))

    def send_email(self, **fields: Any) -> NotificationView:
        return self._call(self.herald.send_email(**fields))

    def send_batch(
        self, requests: Sequence[Mapping[str, Any]], *, idempotency_key: str | None = None
    ) -> list[AcceptedItem]:
        return self._call(self.herald.send_batch(requests, idempotency_key=idempotency_key))

    def get(self, notification_id: str) -> NotificationView:
        return self._call(self.herald.get(notification_id))

    def cancel(self, notification_id: str) -> NotificationView:
        return self._call(self.herald.cancel(notification_id))

    def drain(self) -> None:
        """Deliver everything due now (when not running a background worker)."""
        self._call(self.herald.drain())

    def close(self) -> None:
        if self._stop is not None and self._worker is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
            self._worker.result()
        self._call(self.herald.aclose())
        self._shutdown_loop()

    def _shutdown_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def __enter__(self) -> SyncHerald:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


async def _new_event() -> asyncio.Event:
    return asyncio.Event()
