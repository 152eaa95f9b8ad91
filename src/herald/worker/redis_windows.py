"""Rate windows kept in Redis, shared by every worker process on every node.

The ``limits`` library's moving-window strategy: one Lua call per send. This module is
imported only when ``HERALD_REDIS_URL`` is set (coredis and limits add ~13 MB to a process).
"""

from __future__ import annotations

import asyncio
import time

import coredis
import structlog
from limits import RateLimitItemPerSecond
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter

from herald.domain.errors import ConfigurationError
from herald.worker.limits import LocalWindow, Rate

log = structlog.get_logger(__name__)


class RedisWindow:
    """The window in Redis, shared by every process that names the same provider.

    If Redis cannot be reached the process falls back to its own window (logged) rather
    than stop delivering: the provider's own limit then answers with 429s, which are
    transient failures."""

    def __init__(self, limiter: MovingWindowRateLimiter, rate: Rate, key: str) -> None:
        self._limiter = limiter
        self._item = RateLimitItemPerSecond(rate.amount, rate.per)
        self._key = key
        self._fallback = LocalWindow(rate)

    async def take(self) -> float | None:
        try:
            if await self._limiter.hit(self._item, self._key):
                return None
            stats = await self._limiter.get_window_stats(self._item, self._key)
        except Exception as exc:
            log.warning("rate_limit_storage_failed", provider=self._key, error=str(exc))
            return await self._fallback.take()
        return stats.reset_time - time.time()


class RedisWindows:
    """One Redis connection pool for every provider's window (ours, so it can be closed)."""

    def __init__(self, redis_url: str) -> None:
        plain = redis_url.removeprefix("async+")
        try:
            self._pool = coredis.ConnectionPool.from_url(plain)
            storage = RedisStorage(
                f"async+{plain}",
                key_prefix="herald:rate",
                # Documented by limits, though its signature types options as scalars.
                connection_pool=self._pool,  # type: ignore[arg-type]
            )
        except Exception as exc:
            raise ConfigurationError(f"HERALD_REDIS_URL: {exc}") from None
        self._limiter = MovingWindowRateLimiter(storage)

    def window(self, rate: Rate, provider: str) -> RedisWindow:
        return RedisWindow(self._limiter, rate, provider)

    async def aclose(self) -> None:
        self._pool.disconnect()
        await asyncio.sleep(0)  # let the transports close before the loop moves on
