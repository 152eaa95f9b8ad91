"""A parked delivery report keeps its error as (kind, message, code): the same report must
come back, or a replay of it would not be recognised."""

from __future__ import annotations

import pytest

from herald.domain.delivery_reports import DeliveryReport, ReportedState, classified, describe
from herald.domain.errors import DeliveryError, PermanentError, TransientError


@pytest.mark.parametrize(
    "error",
    [
        TransientError("twilio 30003: Unreachable destination handset", code="30003"),
        PermanentError("twilio 30007: Message filtered", code="30007"),
        PermanentError("twilio 30005: Unknown destination handset", code="30005", suppress=True),
        PermanentError("vonage receipt error 4: call barred by user", code="4", opt_out=True),
        DeliveryError("unclassified"),
    ],
)
def test_a_kept_error_gives_back_the_same_report(error: DeliveryError):
    report = DeliveryReport("twilio", "SM1", ReportedState.FAILED, "undelivered", error)

    kept = classified(describe(error), error.message, error.code)
    again = DeliveryReport("twilio", "SM1", ReportedState.FAILED, "undelivered", kept)

    assert type(kept) is type(error)
    assert again.detail == report.detail
    assert again.suppress == report.suppress
