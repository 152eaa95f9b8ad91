"""Twilio error codes and Vonage statuses map onto Herald's failure classes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from herald.domain.delivery_reports import DeliveryReport, ReportedState, describe
from herald.domain.errors import DeliveryError, PermanentError, TransientError
from herald.domain.twilio_errors import classify_twilio_error
from herald.domain.vonage_errors import classify_vonage_receipt, classify_vonage_status


def kind(error: DeliveryError) -> str:
    return describe(error) + ("" if getattr(error, "recipient_fault", True) else ", fail over")


@pytest.mark.parametrize(
    ("code", "http_status", "expected"),
    [
        (21610, 400, "opt-out"),
        (30004, None, "opt-out"),
        (21211, 400, "permanent, suppress"),
        (21614, 400, "permanent, suppress"),
        (30005, None, "permanent, suppress"),
        (30006, None, "permanent, suppress"),
        (30007, None, "permanent"),
        (30008, None, "transient"),
        (30500, None, "transient"),
        (20429, 429, "transient"),
        (None, 429, "transient"),
        (None, 502, "transient"),
        (20003, 401, "permanent, fail over"),
        (None, 403, "permanent, fail over"),
        (21608, 400, "permanent, fail over"),
        (21617, 400, "permanent"),
    ],
)
def test_twilio_codes(code: int | None, http_status: int | None, expected: str):
    assert kind(classify_twilio_error(code, "m", http_status=http_status)) == expected


@given(attempt=st.integers(1, 50), retries=st.integers(0, 10))
def test_an_unreachable_handset_is_transient_for_exactly_the_allowed_attempts(
    attempt: int, retries: int
):
    error = classify_twilio_error(30003, "m", attempt=attempt, unreachable_retries=retries)
    assert isinstance(error, TransientError) == (attempt <= retries)
    assert not (isinstance(error, PermanentError) and error.suppress)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (1, "transient"),
        (5, "transient"),
        (2, "permanent"),
        (3, "permanent"),
        (6, "permanent"),
        (7, "permanent, suppress"),
        (33, "permanent, suppress"),
        (4, "permanent, fail over"),
        (8, "permanent, fail over"),
        (9, "permanent, fail over"),
        (15, "permanent, fail over"),
        (29, "permanent, fail over"),
        (1234, "permanent, fail over"),
    ],
)
def test_vonage_statuses(status: int, expected: str):
    assert kind(classify_vonage_status(status)) == expected


@pytest.mark.parametrize(
    ("err_code", "expected"),
    [(4, "opt-out"), (3, "permanent, suppress"), (2, "transient"), (52, "permanent")],
)
def test_vonage_receipt_codes(err_code: int, expected: str):
    assert kind(classify_vonage_receipt(err_code)) == expected


def test_a_reports_timeline_entry_names_the_code_and_its_class():
    error = classify_twilio_error(21610, "Attempt to send to unsubscribed recipient")
    report = DeliveryReport("twilio", "SM1", ReportedState.FAILED, "failed", error)

    assert report.suppress
    assert report.detail == (
        "twilio reports failed: error 21610 (opt-out): twilio 21610: Attempt to send to "
        "unsubscribed recipient (the recipient opted out)"
    )
    progress = DeliveryReport("twilio", "SM1", ReportedState.PROGRESS, "sent")
    assert (progress.detail, progress.suppress) == ("twilio reports sent", False)
