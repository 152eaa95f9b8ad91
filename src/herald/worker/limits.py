"""Per-provider rate limits (messages per second, minute or hour) and concurrency caps.

A rate is a moving window: at most ``amount`` sends in any ``per`` seconds. With
``HERALD_REDIS_URL`` set the window lives in Redis (:mod:`herald.worker.redis_windows`), so
every worker process on every node shares it; otherwise each process keeps its own. A
sender that finds the window full sleeps until the oldest send leaves it, and gives up once
the wait would pass ``max_wait`` seconds: the dispatcher then fails over or defers the
notification (no attempt is used).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import deque
from dataclasses import dataclass
from typing import Protocol

from herald.domain.errors import ConfigurationError

_RATE = re.compile(r"^\s*(\d+)\s*/\s*([1-9]\d*)?\s*(s|sec|second|m|min|minute|h|hour)s?\s*$", re.I)
_UNIT_SECONDS = {
    **dict.fromkeys(("s", "sec", "second"), 1),
    **dict.fromkeys(("m", "min", "minute"), 60),
    **dict.fromkeys(("h", "hour"), 3600),
}
#: Never sleep less than this for a slot (a clock at the window's edge must not spin).
_MIN_SLEEP = 0.001


@dataclass(frozen=True, slots=True)
class Rate:
    """At most ``amount`` sends in any ``per`` seconds."""

    amount: int
    per: int

    @classmethod
    def parse(cls, text: str) -> Rate:
        """``10/s``, ``600/m``, ``1000/h`` (also ``5/10s``, ``100/minute``)."""
        match = _RATE.match(text)
        if match is None or int(match[1]) < 1:
            raise ConfigurationError(f"rate={text!r}: expected N/s, N/m or N/h with N >= 1")
        multiple = int(match[2] or 1)
        return cls(int(match[1]), multiple * _UNIT_SECONDS[match[3].lower()])

    def __str__(self) -> str:
        return f"{self.amount}/{self.per}s"


class Window(Protocol):
    """A moving window of sends for one provider."""

    async def take(self) -> float | None:
        """Take a slot (None), or say in how many seconds the next one frees up."""
        ...


class LocalWindow:
    """The window in this process: the times of the last ``amount`` sends."""

    def __init__(self, rate: Rate) -> None:
        self._rate = rate
        self._sent: deque[float] = deque()

    async def take(self) -> float | None:
        return self.take_now(time.monotonic())

    def take_now(self, now: float) -> float | None:
        sent, rate = self._sent, self._rate
        while sent and sent[0] <= now - rate.per:
            sent.popleft()
        if len(sent) < rate.amount:
            sent.append(now)
            return None
        return sent[0] + rate.per - now


class ProviderLimiter:
    """A provider's rate window and/or concurrency cap, as one gate around each send."""

    def __init__(self, *, window: Window | None, concurrency: int | None, max_wait: float) -> None:
        self._window = window
        self._slots = asyncio.Semaphore(concurrency) if concurrency else None
        self.max_wait = max_wait

    async def enter(self) -> float | None:
        """Wait for a slot (None: go ahead, then :meth:`exit`), or return how many seconds
        to come back after when the wait would pass ``max_wait``."""
        deadline = time.monotonic() + self.max_wait
        if self._slots is not None:
            if self._slots.locked():  # every slot taken: wait, but not past max_wait
                try:
                    async with asyncio.timeout(self.max_wait):
                        await self._slots.acquire()
                except TimeoutError:
                    return self.max_wait
            else:
                await self._slots.acquire()  # free: taken at once, no timer needed
        if self._window is None:
            return None
        try:
            while (wait := await self._window.take()) is not None:
                wait = max(wait, _MIN_SLEEP)
                if time.monotonic() + wait > deadline:
                    self._release_slot()
                    return wait
                await asyncio.sleep(wait)
        except BaseException:  # cancelled while waiting (shutdown): give the slot back
            self._release_slot()
            raise
        return None

    def exit(self) -> None:
        self._release_slot()

    def _release_slot(self) -> None:
        if self._slots is not None:
            self._slots.release()
