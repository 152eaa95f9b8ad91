"""The circuit breaker state machine: examples, then hypothesis against its invariants."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from herald.domain.breaker import (
    BreakerPolicy,
    CircuitBreaker,
    CircuitState,
    provider_fault,
)
from herald.domain.errors import PermanentError, TransientError, UnknownOutcome


def tripped(policy: BreakerPolicy, now: float = 0.0) -> CircuitBreaker:
    breaker = CircuitBreaker(policy)
    for _ in range(policy.failures):
        assert breaker.allow(now)
        breaker.failed(now)
    return breaker


def test_consecutive_failures_open_the_circuit_and_a_success_resets_the_count():
    breaker = CircuitBreaker(BreakerPolicy(failures=3, cooldown=10))
    assert not breaker.failed(0)
    assert not breaker.failed(0)
    breaker.succeeded()
    assert not breaker.failed(1)
    assert not breaker.failed(1)
    assert breaker.failed(1)
    assert breaker.state(1) is CircuitState.OPEN
    assert not breaker.allow(10.9)
    assert breaker.retry_at(5) == 11


def test_half_open_lets_probes_through_and_a_successful_probe_closes():
    breaker = tripped(BreakerPolicy(failures=2, cooldown=10, probes=2))
    assert breaker.state(10) is CircuitState.HALF_OPEN
    assert breaker.allow(10)
    assert breaker.allow(10)
    assert not breaker.allow(10)  # both probe slots taken
    assert breaker.retry_at(10) > 10
    breaker.succeeded()
    assert breaker.state(10.5) is CircuitState.CLOSED
    assert breaker.trips == 0


def test_a_failed_probe_reopens_with_a_longer_cooldown_up_to_the_cap():
    breaker = tripped(BreakerPolicy(failures=1, cooldown=10, max_cooldown=25))
    opened = [10.0]
    now = 0.0
    for _ in range(3):
        now = breaker.retry_at(now)
        assert breaker.allow(now)  # the probe
        assert breaker.failed(now)
        opened.append(breaker.retry_at(now) - now)
    assert opened == [10, 20, 25, 25]
    assert breaker.trips == 4


def test_an_abandoned_probe_frees_its_slot():
    breaker = tripped(BreakerPolicy(failures=1, cooldown=1))
    assert breaker.allow(1)
    assert not breaker.allow(1)
    breaker.abandon()
    assert breaker.allow(1)


def test_failures_zero_never_opens():
    breaker = CircuitBreaker(BreakerPolicy(failures=0))
    for _ in range(100):
        assert breaker.allow(0)
        assert not breaker.failed(0)
    assert breaker.state(0) is CircuitState.CLOSED


@pytest.mark.parametrize(
    ("error", "counts"),
    [
        (TransientError("421 busy"), True),
        (UnknownOutcome("timeout after DATA"), True),
        (PermanentError("535 auth failed", recipient_fault=False), True),
        (PermanentError("550 no such user"), False),
        (PermanentError("STOP received", opt_out=True), False),
    ],
)
def test_only_provider_side_failures_count(error, counts):
    assert provider_fault(error) is counts


@given(st.integers(-1, 0), st.floats(-1, 0))
def test_policy_refuses_values_that_cannot_work(probes, cooldown):
    with pytest.raises(ValueError, match="breaker"):
        BreakerPolicy(probes=probes, cooldown=cooldown)


class BreakerMachine(RuleBasedStateMachine):
    """Random sends, outcomes and clock steps; the invariants hold after every step."""

    @initialize(
        failures=st.integers(0, 4),
        cooldown=st.floats(0.5, 20),
        growth=st.floats(1, 8),
        probes=st.integers(1, 3),
    )
    def setup(self, failures: int, cooldown: float, growth: float, probes: int) -> None:
        self.policy = BreakerPolicy(failures, cooldown, cooldown * growth, probes)
        self.breaker = CircuitBreaker(self.policy)
        self.now = 0.0
        self.in_flight = 0
        self.run = 0  # failures reported in a row while the circuit was closed
        self.probes = 0  # sends let through since the circuit last left closed

    @rule(dt=st.floats(0, 30))
    def tick(self, dt: float) -> None:
        self.now += dt

    @rule()
    def send(self) -> None:
        before = self.breaker.state(self.now)
        allowed = self.breaker.allow(self.now)
        if before is CircuitState.CLOSED:
            assert allowed
        elif before is CircuitState.OPEN:
            assert not allowed
        if allowed:
            self.in_flight += 1
            if before is not CircuitState.CLOSED:
                self.probes += 1
                assert self.probes <= self.policy.probes
        else:
            assert self.breaker.retry_at(self.now) > self.now  # never asked to spin

    @precondition(lambda self: self.in_flight > 0)
    @rule()
    def success(self) -> None:
        self.in_flight -= 1
        self.breaker.succeeded()
        assert self.breaker.state(self.now) is CircuitState.CLOSED
        assert self.breaker.trips == 0
        self.run = self.probes = 0

    @precondition(lambda self: self.in_flight > 0)
    @rule()
    def failure(self) -> None:
        self.in_flight -= 1
        before = self.breaker.state(self.now)
        trips = self.breaker.trips
        opened = self.breaker.failed(self.now)
        if before is CircuitState.CLOSED:
            self.run += 1
            assert opened == (self.policy.failures > 0 and self.run == self.policy.failures)
        if opened:
            assert self.breaker.trips == trips + 1
            assert self.breaker.state(self.now) is CircuitState.OPEN
            cooldown = self.breaker.retry_at(self.now) - self.now
            assert cooldown == pytest.approx(self.policy.cooldown_for(self.breaker.trips))
            tolerance = 1e-9 * (1 + self.now)  # retry_at - now is float arithmetic
            assert self.policy.cooldown - tolerance <= cooldown
            assert cooldown <= self.policy.max_cooldown + tolerance
            self.run = self.probes = 0

    @precondition(lambda self: self.in_flight > 0)
    @rule()
    def abandon(self) -> None:
        self.in_flight -= 1
        if self.breaker.state(self.now) is CircuitState.HALF_OPEN and self.probes:
            self.probes -= 1
        self.breaker.abandon()

    @invariant()
    def open_only_with_a_trip(self) -> None:
        if self.breaker.state(self.now) is not CircuitState.CLOSED:
            assert self.breaker.trips >= 1


TestBreakerMachine = BreakerMachine.TestCase
TestBreakerMachine.settings = settings(max_examples=150, stateful_step_count=30, deadline=None)
