"""What each push provider builds from a notification, without the network."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from herald.domain.message import Push
from herald.providers.apns import apns_payload, collapse_id
from herald.providers.fcm import fcm_message
from herald.providers.push_routing import serves_platform
from herald.providers.webpush import topic, web_push_payload

SUBSCRIPTION = '{"endpoint": "https://push.example.org/x", "keys": {"p256dh": "a", "auth": "b"}}'


@given(st.text(min_size=1, max_size=200))
def test_a_topic_is_always_what_rfc_8030_allows_and_stable(key: str):
    value = topic(key)
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,32}", value)
    assert topic(key) == value


@given(st.text(min_size=1, max_size=200))
def test_a_collapse_id_fits_in_64_bytes(key: str):
    assert len(collapse_id(key).encode()) <= 64


def test_short_keys_are_kept_as_they_are():
    assert topic("order-42") == "order-42"
    assert collapse_id("order 42 ✓") == "order 42 ✓"


def test_apns_custom_data_cannot_replace_aps():
    push = Push(to="ab" * 32, body="hi", data={"aps": "mine", "k": "v"}, link="app://x")
    assert apns_payload(push) == {"aps": {"alert": {"body": "hi"}}, "k": "v", "link": "app://x"}


def test_fcm_leaves_out_what_is_not_set_and_non_https_links_for_the_web():
    push = Push(to="fcm-token-0123456789abcdef", title="t", link="myapp://orders/1")
    assert fcm_message(push) == {
        "token": "fcm-token-0123456789abcdef",
        "notification": {"title": "t"},
        "data": {"link": "myapp://orders/1"},
    }


def test_fcm_ttl_zero_means_now_or_never():
    message = fcm_message(Push(to="fcm-token-0123456789abcdef", body="b", ttl=0))
    assert message["android"] == {"ttl": "0s"}
    assert message["apns"] == {"headers": {"apns-expiration": "0"}}


def test_web_push_payload_has_only_what_is_set():
    assert web_push_payload(Push(to=SUBSCRIPTION, body="b", badge=0)) == b'{"body":"b","badge":0}'


def test_each_platform_is_served_by_its_provider_only():
    tokens = {"webpush": SUBSCRIPTION, "apns": "ab" * 32, "fcm": "fcm-token-0123456789abcdef"}
    for platform, to in tokens.items():
        content = Push(to=to, body="b")
        assert [p for p in tokens if serves_platform(content, p)] == [platform]
