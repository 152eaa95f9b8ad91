"""Each provider's circuit breaker and rate limit, configured by its URL options.

Options (all optional): ``breaker_failures`` (5; 0 turns the breaker off),
``breaker_cooldown`` (30 s), ``breaker_max_cooldown`` (600 s), ``breaker_probes`` (1),
``rate`` (``10/s``, ``600/m``, ``1000/h``), ``concurrency`` (sends in flight per process)
and ``limit_wait`` (5 s: the longest a send waits for a rate or concurrency slot).

Breaker state is per worker process; rate windows are global when ``HERALD_REDIS_URL``
is set.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

from herald import metrics
from herald.domain.breaker import BreakerPolicy, CircuitBreaker, CircuitState, provider_fault
from herald.domain.errors import ConfigurationError, DeliveryError
from herald.providers.base import CONCURRENCY_OPTION, Provider, ProviderURL
from herald.worker.limits import LocalWindow, ProviderLimiter, Rate, Window

if TYPE_CHECKING:
    from herald.worker.redis_windows import RedisWindows

log = structlog.get_logger(__name__)

DEFAULT_LIMIT_WAIT = 5.0


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a provider was not called, and when it may be asked again (epoch seconds)."""

    reason: str
    retry_at: float


class ProviderGuard:
    """Wraps each send to one provider: breaker first (no I/O), then the limiter."""

    __slots__ = ("_shown", "breaker", "limiter", "name")

    def __init__(
        self, name: str, breaker: CircuitBreaker, limiter: ProviderLimiter | None = None
    ) -> None:
        self.name = name
        self.breaker = breaker
        self.limiter = limiter
        self._shown = CircuitState.CLOSED
        metrics.CIRCUIT_STATE.labels(name).set(CircuitState.CLOSED)

    def state(self, now: float) -> CircuitState:
        """The breaker's state now (an open circuit half-opens with time alone: this also
        brings the gauge up to date)."""
        self._show(now)
        return self._shown

    @property
    def unhindered(self) -> bool:
        """No limiter and the circuit closed: :meth:`enter` would let the send through
        (the dispatcher skips it then; the hot path stays free of it)."""
        return self.limiter is None and self.breaker.closed

    async def enter(self) -> Refusal | None:
        """None: send now, then call :meth:`exit` (or :meth:`abandon`)."""
        now = time.time()
        if not self.breaker.allow(now):
            self._show(now)
            return Refusal(f"{self.name} circuit open", self.breaker.retry_at(now))
        if self._shown is not CircuitState.CLOSED:
            self._show(now)
        if self.limiter is not None:
            try:
                wait = await self.limiter.enter()
            except BaseException:
                self.breaker.abandon()
                raise
            if wait is not None:
                self.breaker.abandon()
                metrics.RATE_LIMITED.labels(self.name).inc()
                return Refusal(f"{self.name} rate limit reached", time.time() + wait)
        return None

    def exit(self, error: DeliveryError | None) -> None:
        """Report how the send went."""
        if self.limiter is not None:
            self.limiter.exit()
        if error is None or not provider_fault(error):
            was_closed = self.breaker.closed
            self.breaker.succeeded()
            if not was_closed:
                self._show(time.time())
            return
        now = time.time()
        if self.breaker.failed(now):
            metrics.CIRCUIT_TRIPS.labels(self.name).inc()
            log.warning(
                "circuit_opened",
                provider=self.name,
                trips=self.breaker.trips,
                retry_at=self.breaker.retry_at(now),
                error=error.message,
            )
        self._show(now)

    def abandon(self) -> None:
        """The send was interrupted before any outcome (shutdown)."""
        if self.limiter is not None:
            self.limiter.exit()
        self.breaker.abandon()

    def _show(self, now: float) -> None:
        state = self.breaker.state(now)
        if state is not self._shown:
            self._shown = state
            metrics.CIRCUIT_STATE.labels(self.name).set(state)


class Guards(Mapping[str, ProviderGuard]):
    """Every provider's guard by provider name, and the Redis pool their windows share."""

    def __init__(self, guards: dict[str, ProviderGuard], redis: RedisWindows | None) -> None:
        self._guards = guards
        self._redis = redis

    def __getitem__(self, name: str) -> ProviderGuard:
        return self._guards[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._guards)

    def __len__(self) -> int:
        return len(self._guards)

    async def aclose(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()


def build_guards(
    providers: Sequence[Provider],
    urls: Mapping[str, ProviderURL],
    *,
    redis_url: str | None,
) -> Guards:
    """A guard per provider name; a provider given in code (no URL) gets the defaults."""
    redis: RedisWindows | None = None
    guards: dict[str, ProviderGuard] = {}
    for provider in providers:
        url = urls.get(provider.name)
        if url is None:
            guards[provider.name] = ProviderGuard(provider.name, CircuitBreaker(BreakerPolicy()))
            continue
        window: Window | None = None
        if raw := url.option("rate"):
            rate = Rate.parse(raw)
            if redis_url:
                if redis is None:
                    # Imported only when used: coredis and limits add ~13 MB.
                    from herald.worker.redis_windows import RedisWindows

                    redis = RedisWindows(redis_url)
                window = redis.window(rate, provider.name)
            else:
                window = LocalWindow(rate)
        concurrency = url.integer(CONCURRENCY_OPTION, 0)
        limit_wait = url.number("limit_wait", DEFAULT_LIMIT_WAIT)
        if concurrency < 0 or limit_wait < 0:
            raise ConfigurationError(f"{url.redacted}: concurrency and limit_wait must be >= 0")
        limiter = None
        if window is not None or concurrency:
            limiter = ProviderLimiter(
                window=window, concurrency=concurrency or None, max_wait=limit_wait
            )
        breaker = CircuitBreaker(_breaker_policy(url))
        guards[provider.name] = ProviderGuard(provider.name, breaker, limiter)
    return Guards(guards, redis)


def _breaker_policy(url: ProviderURL) -> BreakerPolicy:
    defaults = BreakerPolicy()
    try:
        return BreakerPolicy(
            failures=url.integer("breaker_failures", defaults.failures),
            cooldown=url.number("breaker_cooldown", defaults.cooldown),
            max_cooldown=url.number(
                "breaker_max_cooldown",
                max(defaults.max_cooldown, url.number("breaker_cooldown", defaults.cooldown)),
            ),
            probes=url.integer("breaker_probes", defaults.probes),
        )
    except ValueError as exc:
        raise ConfigurationError(f"{url.redacted}: {exc}") from None
