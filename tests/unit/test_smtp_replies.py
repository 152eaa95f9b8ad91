import pytest
from hypothesis import given
from hypothesis import strategies as st

from herald.domain.errors import PermanentError, TransientError
from herald.domain.smtp_replies import (
    _QUEUE_ID_PATTERNS,
    classify_smtp_reply,
    enhanced_code,
    queue_id_from_reply,
)


@pytest.mark.parametrize(
    ("code", "text"),
    [
        (421, "4.3.2 Service shutting down"),
        (450, "4.2.1 Mailbox busy"),
        (451, "Local error in processing"),
        (452, "4.5.3 Too many recipients"),
    ],
)
def test_4xx_is_transient(code: int, text: str):
    assert isinstance(classify_smtp_reply(code, text), TransientError)


@pytest.mark.parametrize("enhanced", ["5.1.1", "5.1.2", "5.2.1"])
def test_bad_mailbox_codes_are_permanent_and_suppress_worthy(enhanced: str):
    error = classify_smtp_reply(550, f"{enhanced} No such user here")
    assert isinstance(error, PermanentError)
    assert error.suppress
    assert error.recipient_fault
    assert error.code == f"550 {enhanced}"


@pytest.mark.parametrize("text", ["5.7.1 Relaying denied", "5.7.26 DMARC policy violation"])
def test_5_7_x_is_permanent_and_not_the_recipients_fault(text: str):
    error = classify_smtp_reply(550, text)
    assert isinstance(error, PermanentError)
    assert not error.suppress
    assert not error.recipient_fault


def test_auth_failure_is_the_senders_fault():
    error = classify_smtp_reply(535, "Authentication credentials invalid")
    assert isinstance(error, PermanentError)
    assert not error.recipient_fault


def test_plain_5xx_is_permanent_without_suppression():
    error = classify_smtp_reply(554, "Transaction failed")
    assert isinstance(error, PermanentError)
    assert not error.suppress
    assert error.recipient_fault


def test_enhanced_code_parsing():
    assert enhanced_code("5.1.1 <x@y.z>: Recipient address rejected") == "5.1.1"
    assert enhanced_code("Recipient address rejected 5.1.1") is None
    assert enhanced_code("  4.7.0 Try again") == "4.7.0"


@pytest.mark.parametrize(
    ("reply", "queue_id"),
    [
        ("2.0.0 Ok: queued as 4Xk2abC1", "4Xk2abC1"),
        ("Ok: queued as ABC123.", "ABC123"),
        ("OK id=1rXyZq-000Abc-Cd", "1rXyZq-000Abc-Cd"),
        (
            "2.6.0 <a@b> [InternalId=1234567, Hostname=EX1.example.com] Queued mail for delivery",
            "1234567",
        ),
        ("2.0.0 4ABCdEF1234567 Message accepted for delivery", "4ABCdEF1234567"),
        (
            "Ok 0100018b2c3d4e5f-1a2b3c4d-5e6f-7a8b-9c0d-1e2f3a4b5c6d-000000",
            "0100018b2c3d4e5f-1a2b3c4d-5e6f-7a8b-9c0d-1e2f3a4b5c6d-000000",
        ),
        ("2.0.0 OK  1700000000 a1-20020a05600csm123wmb.7 - gsmtp", "a1-20020a05600csm123wmb.7"),
    ],
)
def test_queue_id_from_common_servers(reply: str, queue_id: str):
    assert queue_id_from_reply(reply) == queue_id


@pytest.mark.parametrize("reply", ["OK", "2.0.0 Ok", "Great success", ""])
def test_no_queue_id(reply: str):
    assert queue_id_from_reply(reply) is None


_reply_text = st.lists(
    st.sampled_from(
        [
            "2.0.0",
            "Ok",
            "OK",
            "ok:",
            "queued as",
            "id=",
            "[InternalId=",
            "1700000000",
            "-",
            "gsmtp",
            "Message accepted",
            "0100018b2c3d4e5f-1a2b",
            "4Xk2abC1",
            " ",
            "  ",
            "<",
            ">",
        ]
    )
    | st.text(max_size=4),
    max_size=8,
).map("".join)


@given(_reply_text)
def test_the_prefilter_never_hides_a_queue_id(reply: str):
    """queue_id_from_reply skips the patterns when one search says none can match."""
    expected = next(
        (m.group(1).rstrip(".,;:)>") for p in _QUEUE_ID_PATTERNS if (m := p.search(reply))),
        None,
    )
    assert queue_id_from_reply(reply) == expected
