"""Retry policy: exponential backoff with full jitter (AWS Architecture Blog, 2015)."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 5
    initial_delay: float = 1.0
    multiplier: float = 2.0
    max_delay: float = 3600.0

    def ceiling(self, attempt: int) -> float:
        """Largest delay after failed attempt number ``attempt`` (1-based)."""
        try:
            growth = self.multiplier ** max(attempt - 1, 0)
        except OverflowError:  # far past any cap
            return self.max_delay
        return min(self.max_delay, self.initial_delay * growth)

    def delay_for(
        self, attempt: int, *, retry_after: float | None = None, rng: random.Random | None = None
    ) -> float:
        """Seconds to wait after failed attempt ``attempt``: uniform in [0, ceiling].

        A provider's ``retry_after`` hint is a floor: never retry sooner than asked,
        even past ``max_delay``.
        """
        jittered = (rng or random).uniform(0.0, self.ceiling(attempt))
        if retry_after is not None and retry_after > jittered:
            return retry_after
        return jittered

    def exhausted(self, attempts: int) -> bool:
        """Whether ``attempts`` made so far leave no attempt to retry with."""
        return attempts >= self.max_attempts
