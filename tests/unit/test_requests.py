"""The request model and the translation of its errors into field paths (no I/O)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from herald.domain.errors import InvalidRequest
from herald.pipeline.accept import request_hash
from herald.pipeline.errors import field_path
from herald.pipeline.requests import NotificationRequest
from herald.runtime import validate_request


def request(**fields: Any) -> NotificationRequest:
    return validate_request(
        {"channel": "email", "to": "a@example.org", "subject": "s", "text": "t", **fields}
    )


def fields_of(**fields: Any) -> dict[str, str]:
    with pytest.raises(InvalidRequest) as caught:
        request(**fields)
    return caught.value.fields


@pytest.mark.parametrize(
    ("loc", "path"),
    [
        ((), "body"),
        (("to",), "to"),
        (("to", 0), "to[0]"),
        (("notifications", 3, "to", 1), "notifications[3].to[1]"),
        (("headers", "X-Order"), "headers.X-Order"),
        (("attachments", 0, "content_base64"), "attachments[0].content_base64"),
    ],
)
def test_field_path(loc: tuple[int | str, ...], path: str):
    assert field_path(loc) == path


@given(st.lists(st.one_of(st.integers(0, 99), st.from_regex(r"[a-z_]{1,8}", fullmatch=True))))
def test_field_path_keeps_every_part_in_order(loc: list[int | str]):
    path = field_path(loc)
    position = 0
    for part in loc:
        token = f"[{part}]" if isinstance(part, int) else str(part)
        found = path.find(token, position)
        assert found >= position
        position = found + len(token)


def test_a_single_address_becomes_a_list():
    parsed = request(to="a@example.org", cc="c@example.org", bcc=["b@example.org"])
    assert parsed.to == ["a@example.org"]
    assert parsed.cc == ["c@example.org"]
    assert parsed.bcc == ["b@example.org"]


def test_from_is_the_wire_name_of_the_sender():
    parsed = request(**{"from": "Shop <shop@example.org>"})
    assert parsed.sender == "Shop <shop@example.org>"
    assert parsed.model_dump(by_alias=True)["from"] == "Shop <shop@example.org>"


def test_shape_errors_name_their_fields():
    assert fields_of(priority=10) == {"priority": "Input should be less than or equal to 9"}
    assert fields_of(colour="blue") == {"colour": "unknown field"}
    assert fields_of(to=[]).keys() == {"to"}
    assert fields_of(to=["a@example.org", 7]).keys() == {"to[1]"}
    assert fields_of(attachments=[{"filename": "a"}]) == {
        "attachments[0].content_base64": "required"
    }
    assert fields_of(send_at="2030-01-01T10:00:00").keys() == {"send_at"}
    assert fields_of(send_at="9999-12-31T23:00:00-05:00").keys() == {"send_at"}
    assert fields_of(expires_at="0001-01-01T00:00:00+01:00").keys() == {"expires_at"}


@pytest.mark.parametrize("value", ["a\x00b", "line\nbreak", "tab\there", "del\x7f"])
def test_ids_refuse_control_characters(value: str):
    assert fields_of(recipient_id=value) == {"recipient_id": "must not contain control characters"}
    assert fields_of(idempotency_key=value).keys() == {"idempotency_key"}


def test_ids_may_use_any_printable_text():
    parsed = request(recipient_id="user 42 · Zoë", idempotency_key="order/42#shipped")
    assert parsed.recipient_id == "user 42 · Zoë"


def test_the_request_hash_ignores_the_key_and_field_order():
    base = request(metadata={"a": 1, "b": [1, 2]}, idempotency_key="k1")
    same = validate_request(
        {
            "metadata": {"b": [1, 2], "a": 1},
            "text": "t",
            "subject": "s",
            "to": ["a@example.org"],
            "channel": "email",
            "idempotency_key": "k2",
        }
    )
    assert request_hash(base) == request_hash(same)
    assert request_hash(base) != request_hash(request(metadata={"a": 2, "b": [1, 2]}))
    assert request_hash(base) != request_hash(request(metadata={"a": 1, "b": [2, 1]}))
