import pytest

from herald.domain.errors import PermanentError, TransientError
from herald.providers.http import HttpResponse, classify_status, retry_after


def response(status: int, body: bytes = b"", **headers: str) -> HttpResponse:
    return HttpResponse(status, headers, body)


@pytest.mark.parametrize("status", [200, 201, 202, 204])
def test_2xx_is_success(status: int):
    assert classify_status(response(status), what="x") is None


@pytest.mark.parametrize("status", [408, 425, 429, 500, 502, 503, 504])
def test_retryable_statuses_are_transient(status: int):
    assert isinstance(classify_status(response(status), what="x"), TransientError)


def test_retry_after_seconds_and_dates():
    assert retry_after({"Retry-After": "120"}) == 120.0
    assert retry_after({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, now=1445412470.0) == 10.0
    assert retry_after({"Retry-After": "soon"}) is None
    error = classify_status(response(429, **{"Retry-After": "7"}), what="x")
    assert isinstance(error, TransientError)
    assert error.retry_after == 7.0


def test_credentials_refused_is_not_the_recipients_fault():
    error = classify_status(response(401, b"bad token"), what="api")
    assert isinstance(error, PermanentError)
    assert not error.recipient_fault
    assert "bad token" in error.message


@pytest.mark.parametrize("status", [400, 404, 410, 422, 301])
def test_other_client_errors_are_permanent(status: int):
    error = classify_status(response(status), what="x")
    assert isinstance(error, PermanentError)
    assert error.recipient_fault
