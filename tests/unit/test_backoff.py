import random

from hypothesis import given
from hypothesis import strategies as st

from herald.domain.backoff import RetryPolicy

policies = st.builds(
    RetryPolicy,
    max_attempts=st.integers(1, 20),
    initial_delay=st.floats(0, 100, allow_nan=False),
    multiplier=st.floats(1, 10, allow_nan=False),
    max_delay=st.floats(0, 86400, allow_nan=False),
)


@given(policies, st.integers(1, 10_000), st.integers(0, 2**32))
def test_delay_is_within_zero_and_capped_ceiling(policy: RetryPolicy, attempt: int, seed: int):
    delay = policy.delay_for(attempt, rng=random.Random(seed))
    assert 0 <= delay <= policy.ceiling(attempt) <= policy.max_delay


@given(policies, st.integers(1, 60))
def test_ceiling_never_shrinks_as_attempts_grow(policy: RetryPolicy, attempt: int):
    assert policy.ceiling(attempt + 1) >= policy.ceiling(attempt)


@given(policies, st.integers(1, 100), st.floats(0, 10**6, allow_nan=False))
def test_retry_after_hint_is_a_floor(policy: RetryPolicy, attempt: int, hint: float):
    assert policy.delay_for(attempt, retry_after=hint) >= hint


def test_ceiling_grows_exponentially_until_the_cap():
    policy = RetryPolicy(initial_delay=1, multiplier=2, max_delay=60)
    assert [policy.ceiling(n) for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]


@given(policies, st.integers(0, 40))
def test_exhausted_exactly_at_max_attempts(policy: RetryPolicy, attempts: int):
    assert policy.exhausted(attempts) == (attempts >= policy.max_attempts)
