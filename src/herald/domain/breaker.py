"""A circuit breaker for one provider: the pure state machine, the clock passed in.

    closed ──N consecutive provider-side failures──> open
    open ──cool-down elapsed──> half-open (lets ``probes`` deliveries through)
    half-open ──a probe succeeds──> closed      half-open ──a probe fails──> open

Each trip in a row doubles the cool-down, up to ``max_cooldown``; closing resets it.
Only provider-side failures count (the caller decides which those are); an answer from
the provider, even a refusal of a bad address, is a success here: the provider is up.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from herald.domain.errors import DeliveryError, PermanentError

#: Asked again this soon when every probe slot of a half-open breaker is taken.
PROBE_BUSY_RETRY = 1.0


class CircuitState(IntEnum):
    """Values are what the ``herald_provider_circuit_state`` gauge shows."""

    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2

    @property
    def label(self) -> str:
        return self.name.lower().replace("_", "-")


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    """``failures`` consecutive provider-side failures open the circuit (0: never)."""

    failures: int = 5
    cooldown: float = 30.0
    max_cooldown: float = 600.0
    probes: int = 1

    def __post_init__(self) -> None:
        if self.failures < 0 or self.probes < 1:
            raise ValueError("breaker failures must be >= 0 and probes >= 1")
        if self.cooldown <= 0 or self.max_cooldown < self.cooldown:
            raise ValueError("breaker cooldown must be > 0 and <= max_cooldown")

    def cooldown_for(self, trips: int) -> float:
        """The cool-down after the ``trips``-th trip in a row (1-based)."""
        return min(self.cooldown * 2.0 ** min(trips - 1, 60), self.max_cooldown)


class CircuitBreaker:
    """One provider's breaker. Call :meth:`allow` before a send; if it returns True,
    report the send with :meth:`succeeded` or :meth:`failed`, or :meth:`abandon` it."""

    __slots__ = ("_failures", "_open_until", "_probes", "_state", "_trips", "policy")

    def __init__(self, policy: BreakerPolicy) -> None:
        self.policy = policy
        self._state = CircuitState.CLOSED
        self._failures = 0  # consecutive, while closed
        self._trips = 0  # trips since the circuit was last closed
        self._open_until = 0.0
        self._probes = 0  # probes in flight, while half-open

    def state(self, now: float) -> CircuitState:
        """The state as of ``now`` (an open circuit whose cool-down ended is half-open)."""
        if self._state is CircuitState.OPEN and now >= self._open_until:
            return CircuitState.HALF_OPEN
        return self._state

    @property
    def closed(self) -> bool:
        """Closed (cheaper than :meth:`state`: no clock needed)."""
        return self._state is CircuitState.CLOSED

    @property
    def trips(self) -> int:
        """Trips since the circuit was last closed."""
        return self._trips

    def allow(self, now: float) -> bool:
        """Whether a send may go to the provider now (a half-open circuit counts it as a
        probe)."""
        if self._state is CircuitState.CLOSED:
            return True
        if self._state is CircuitState.OPEN:
            if now < self._open_until:
                return False
            self._state, self._probes = CircuitState.HALF_OPEN, 0
        if self._probes >= self.policy.probes:
            return False
        self._probes += 1
        return True

    def retry_at(self, now: float) -> float:
        """When a refused send may ask again."""
        if self._state is CircuitState.OPEN and now < self._open_until:
            return self._open_until
        return now + PROBE_BUSY_RETRY

    def succeeded(self) -> None:
        """The provider answered: a probe closes the circuit, and the failure run ends."""
        self._failures = 0
        if self._state is not CircuitState.CLOSED:
            self._state, self._trips, self._probes = CircuitState.CLOSED, 0, 0

    def failed(self, now: float) -> bool:
        """A provider-side failure; True if it opened the circuit (a trip)."""
        if self._state is CircuitState.CLOSED:
            self._failures += 1
            if self.policy.failures == 0 or self._failures < self.policy.failures:
                return False
        elif self._state is CircuitState.OPEN:
            return False  # a send let through before the trip ended after it: already open
        self._trip(now)
        return True

    def abandon(self) -> None:
        """A send :meth:`allow` let through never reached the provider."""
        if self._state is CircuitState.HALF_OPEN and self._probes > 0:
            self._probes -= 1

    def _trip(self, now: float) -> None:
        self._trips += 1
        self._state = CircuitState.OPEN
        self._open_until = now + self.policy.cooldown_for(self._trips)
        self._failures = 0
        self._probes = 0


def provider_fault(error: DeliveryError) -> bool:
    """Whether a failure counts against the provider: transient ones (and unknown outcomes)
    and permanent ones that are not the recipient's fault (auth, policy, configuration)."""
    if isinstance(error, PermanentError):
        return not error.recipient_fault
    return True
