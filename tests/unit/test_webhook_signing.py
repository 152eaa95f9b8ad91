"""Standard Webhooks signatures match the spec's reference library."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import standardwebhooks
from hypothesis import given
from hypothesis import strategies as st

from herald.domain.webhook_signing import generate_secret, parse_secrets, signature_header


@given(msg_id=st.text(min_size=1), timestamp=st.integers(0, 2**33), body=st.text())
def test_the_signature_is_the_reference_one(msg_id: str, timestamp: int, body: str):
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    reference = standardwebhooks.Webhook(secret).sign(
        msg_id, datetime.fromtimestamp(timestamp, UTC), body
    )
    assert signature_header(parse_secrets(secret), msg_id, timestamp, body.encode()) == reference


def test_several_secrets_give_several_signatures():
    one, two = generate_secret(), generate_secret()
    keys = parse_secrets(f"{one}, {two}")
    header = signature_header(keys, "msg_1", 1_700_000_000, b"{}")
    assert header.split(" ") == [
        signature_header(parse_secrets(one), "msg_1", 1_700_000_000, b"{}"),
        signature_header(parse_secrets(two), "msg_1", 1_700_000_000, b"{}"),
    ]


def test_generated_secrets_are_24_random_bytes():
    secret = generate_secret()
    assert secret.startswith("whsec_")
    assert len(parse_secrets(secret)[0]) == 24
    assert generate_secret() != secret


@pytest.mark.parametrize("value", ["", "  ", "abc", "whsec_", "whsec_***", "whsec_abc def"])
def test_what_is_not_a_secret(value: str):
    with pytest.raises(ValueError, match="secret"):
        parse_secrets(value)
