"""Rate parsing, the in-process moving window, and resilience options on provider URLs."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from herald.domain.channels import Channel
from herald.domain.errors import ConfigurationError
from herald.providers.base import RESILIENCE_OPTIONS, ProviderURL
from herald.providers.capture import CaptureProvider
from herald.providers.registry import build_providers, provider_urls
from herald.worker.limits import LocalWindow, ProviderLimiter, Rate
from herald.worker.resilience import build_guards


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("10/s", Rate(10, 1)),
        ("600/m", Rate(600, 60)),
        ("1000/h", Rate(1000, 3600)),
        ("5/10s", Rate(5, 10)),
        ("100 / minute", Rate(100, 60)),
        ("2/hours", Rate(2, 3600)),
    ],
)
def test_rates_parse(text: str, rate: Rate):
    assert Rate.parse(text) == rate


@pytest.mark.parametrize("text", ["", "10", "0/s", "10/d", "-1/s", "ten/s", "10/0s"])
def test_bad_rates_are_configuration_errors(text: str):
    with pytest.raises(ConfigurationError, match="rate="):
        Rate.parse(text)


@given(
    amount=st.integers(1, 20),
    per=st.integers(1, 5),
    steps=st.lists(st.floats(0, 2, allow_nan=False), max_size=100),
)
def test_the_local_window_never_lets_more_than_the_rate_through(amount, per, steps):
    window, now, taken = LocalWindow(Rate(amount, per)), 0.0, []
    for step in steps:
        now += step
        wait = window.take_now(now)
        if wait is None:
            taken.append(now)
        else:
            assert 0 < wait <= per + 1e-6  # the next slot, never "now" (no spinning)
            now += wait + 1e-9  # float sums: a hair past the reported time
            assert window.take_now(now) is None  # and it is free then
            taken.append(now)
    for i, start in enumerate(taken):
        assert sum(1 for t in taken[i:] if t < start + per) <= amount


async def test_a_limiter_gives_up_when_the_next_slot_is_past_its_wait():
    limiter = ProviderLimiter(window=LocalWindow(Rate(1, 3600)), concurrency=None, max_wait=0.05)
    assert await limiter.enter() is None
    limiter.exit()
    wait = await limiter.enter()
    assert wait is not None
    assert wait > 3000


async def test_concurrency_slots_are_returned_when_the_rate_refuses():
    limiter = ProviderLimiter(window=LocalWindow(Rate(1, 3600)), concurrency=1, max_wait=0)
    assert await limiter.enter() is None
    assert await limiter.enter() is not None  # concurrency full
    limiter.exit()
    assert await limiter.enter() is not None  # rate full: the slot must come back
    assert await limiter.enter() is not None  # still refused by the rate, not deadlocked


def test_resilience_options_are_read_by_the_worker_and_hidden_from_the_provider():
    urls = {
        Channel.SMS: "capture://?name=sms-a&rate=20/s&concurrency=4&breaker_failures=3"
        "&breaker_cooldown=10&breaker_max_cooldown=60&breaker_probes=2&limit_wait=1.5"
    }
    providers = build_providers(urls)
    guards = build_guards(providers[Channel.SMS], provider_urls(urls), redis_url=None)
    guard = guards["sms-a"]
    policy = guard.breaker.policy
    assert (policy.failures, policy.cooldown, policy.max_cooldown, policy.probes) == (
        3,
        10.0,
        60.0,
        2,
    )
    assert guard.limiter is not None
    assert guard.limiter.max_wait == 1.5


def test_a_provider_given_in_code_gets_the_default_breaker_and_no_limiter():
    guards = build_guards([CaptureProvider(Channel.EMAIL)], {}, redis_url=None)
    assert guards["capture"].limiter is None
    assert guards["capture"].breaker.policy.failures == 5


@pytest.mark.parametrize(
    "query",
    [
        "rate=fast",
        "concurrency=-1",
        "limit_wait=-2",
        "breaker_failures=many",
        "breaker_cooldown=0",
        "breaker_probes=0",
        "breaker_cooldown=60&breaker_max_cooldown=30",
    ],
)
def test_bad_resilience_options_fail_at_start(query: str):
    url = ProviderURL.parse(f"capture://?name=x&{query}")
    with pytest.raises(ConfigurationError):
        build_guards([CaptureProvider(Channel.EMAIL, name="x")], {"x": url}, redis_url=None)


async def test_a_send_cancelled_while_waiting_gives_its_slots_back():
    limiter = ProviderLimiter(window=LocalWindow(Rate(1, 3600)), concurrency=1, max_wait=7200)
    assert await limiter.enter() is None
    limiter.exit()
    waiting = asyncio.create_task(limiter.enter())  # holds the concurrency slot, sleeps
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    limiter.max_wait = 0
    assert await limiter.enter() is not None  # refused by the rate, not stuck on concurrency


def test_providers_get_their_url_without_the_workers_options():
    url = ProviderURL.parse("apprise+json://chat.example.org/hook?rate=2/s&breaker_failures=3&x=1")
    stripped = url.without(RESILIENCE_OPTIONS)
    assert stripped.query == {"x": "1"}
    assert stripped.raw == "apprise+json://chat.example.org/hook?x=1"
    plain = ProviderURL.parse("apprise+json://chat.example.org/hook?x=%2F")
    assert plain.without(RESILIENCE_OPTIONS) is plain  # Apprise reads its own encoding
