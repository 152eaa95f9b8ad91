"""Accept-time preparation: validation, the stored payload, and that bad input is always an
InvalidRequest, never another exception (no I/O: the store is not used before commit)."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any, cast

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from herald.domain.errors import InvalidRequest
from herald.domain.message import Address, Email
from herald.domain.mime import build_email_bytes
from herald.pipeline.accept import AcceptPolicy, Pipeline, key_problem, unstorable_values
from herald.pipeline.email import EmailLimits
from herald.pipeline.requests import NotificationRequest
from herald.runtime import validate_request
from herald.store.notifications import NotificationStore

NOW = 1_800_000_000.0
POLICY = AcceptPolicy(
    max_attempts=5,
    email=EmailLimits(max_message_bytes=2_000, max_recipients=4),
    message_id_domain="herald.test",
)
# prepare() validates and builds rows; only commit() talks to the store.
PIPELINE = Pipeline(cast(NotificationStore, None), POLICY)


def prepare(**fields: Any) -> dict[str, Any]:
    parsed = validate_request(
        {"channel": "email", "to": "a@example.org", "subject": "s", "text": "t", **fields}
    )
    return dict(PIPELINE.prepare(parsed, now=NOW))


def errors(**fields: Any) -> dict[str, str]:
    with pytest.raises(InvalidRequest) as caught:
        prepare(**fields)
    return caught.value.fields


def test_the_row_holds_what_will_be_sent():
    row = prepare(
        to="Alice <Alice@Example.ORG>",
        subject="Hello",
        html="<p>Hi <a href='https://example.org'>there</a></p>",
        text=None,
        headers={"X-Order": "42"},
        category="receipts",
        priority=7,
        metadata={"order": 42},
    )
    payload = orjson.loads(row["payload"])

    assert row["status"] == "queued"
    assert row["recipient"] == "alice@example.org"  # lowercased, for filtering
    assert row["priority"] == 7
    assert row["category"] == "receipts"
    assert row["send_at"] == row["due_at"] == NOW
    assert orjson.loads(row["metadata"]) == {"order": 42}
    assert payload["to"] == [["Alice", "Alice@example.org"]]
    assert payload["headers"] == [["X-Order", "42"]]
    assert payload["message_id"] == f"{row['id']}@herald.test"
    assert "https://example.org" in payload["text"]  # derived from the html


def test_the_message_id_uses_the_senders_domain():
    row = prepare(**{"from": "Shop <shop@shop.example>"})
    assert orjson.loads(row["payload"])["message_id"].endswith("@shop.example")


def test_a_future_send_at_is_scheduled():
    row = prepare(send_at="2030-01-01T00:00:00+00:00")
    assert row["status"] == "scheduled"
    assert row["due_at"] > NOW


def test_attachment_types_are_guessed_from_the_filename():
    data = base64.b64encode(b"%PDF").decode()
    row = prepare(attachments=[{"filename": "invoice.pdf", "content_base64": data}])
    (attachment,) = orjson.loads(row["payload"])["attachments"]
    assert attachment["content_type"] == "application/pdf"


@pytest.mark.parametrize("name", ["Bcc", "BCC", "message-id", "Content-Type", "Return-Path"])
def test_reserved_headers_in_any_case(name: str):
    assert f"headers.{name}" in errors(headers={name: "x"})


def test_recipients_count_to_cc_and_bcc_together():
    assert "to" in errors(to=["a@x.org", "b@x.org"], cc="c@x.org", bcc=["d@x.org", "e@x.org"])
    prepare(to=["a@x.org", "b@x.org"], cc="c@x.org", bcc="d@x.org")


def test_the_message_size_limit():
    assert "html" in errors(html="x" * 1_500, text=None)  # html and the text derived from it
    prepare(html="x" * 900, text=None)
    big = base64.b64encode(b"x" * 2_100).decode()
    assert "attachments" in errors(attachments=[{"filename": "a.bin", "content_base64": big}])


def test_a_field_the_channel_does_not_use():
    parsed = validate_request({"channel": "sms", "to": "+14155552671", "text": "hi"})
    with pytest.raises(InvalidRequest) as caught:
        PIPELINE.prepare(parsed, now=NOW)
    assert caught.value.fields == {
        "text": "not used by the sms channel",
        "body": "an SMS needs a body",
    }


def test_batch_errors_are_prefixed_with_the_index():
    good = validate_request({"channel": "email", "to": "a@x.org", "subject": "s", "text": "t"})
    bad = validate_request({"channel": "email", "to": "nope", "subject": "s"})
    with pytest.raises(InvalidRequest) as caught:
        PIPELINE.prepare_batch([good, bad, good], now=NOW, idempotency_key="b")
    assert set(caught.value.fields) == {"notifications[1].to", "notifications[1].html"}

    rows = PIPELINE.prepare_batch([good, good], now=NOW, idempotency_key="b")
    assert [row["idempotency_key"] for row in rows] == ["b:0", "b:1"]


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("order-42", None),
        ("k" * 255, None),
        ("Zoë's order · 42", None),
        ("", "must not be empty"),
        ("k" * 256, "at most 255 characters"),
        ("a\x00b", "must not contain control characters"),
        ("a\r\nb", "must not contain control characters"),
    ],
)
def test_key_problem(key: str, problem: str | None):
    assert key_problem(key) == problem


def test_keys_from_outside_the_body_are_checked():
    parsed = validate_request({"channel": "email", "to": "a@x.org", "subject": "s", "text": "t"})
    for key in ("", "k" * 256):
        with pytest.raises(InvalidRequest) as caught:
            PIPELINE.prepare(parsed, now=NOW, idempotency_key=key)
        assert caught.value.fields.keys() == {"idempotency_key"}
    # A batch key must leave room for ":<index>" of its last item.
    PIPELINE.prepare_batch([parsed] * 10, now=NOW, idempotency_key="k" * 253)
    with pytest.raises(InvalidRequest) as caught:
        PIPELINE.prepare_batch([parsed] * 11, now=NOW, idempotency_key="k" * 253)
    assert "at most 252 characters" in caught.value.fields["idempotency_key"]


@pytest.mark.parametrize(
    ("fields", "path"),
    [
        ({"metadata": {"n": 2**64}}, "metadata.n"),
        ({"metadata": {"n": -(2**63) - 1}}, "metadata.n"),
        ({"metadata": {"list": [1, {"deep": 10**30}]}}, "metadata.list[1].deep"),
        ({"metadata": {"s": {1, 2}}}, "metadata.s"),
        ({"text": "a\ud800b"}, "text"),
        ({"to": ["a@x.org", "\udc00@x.org"]}, "to[1]"),
        ({"headers": {"X-A": "\ud800"}}, "headers.X-A"),
        ({"metadata": {"\ud800": 1}}, "metadata"),
    ],
)
def test_values_json_cannot_carry_are_named(fields: dict[str, Any], path: str):
    parsed = NotificationRequest.model_validate(
        {"channel": "email", "to": "a@example.org", "subject": "s", "text": "t", **fields}
    )
    assert path in unstorable_values(parsed)
    assert path in errors(**fields)


def test_ordinary_values_are_storable():
    parsed = NotificationRequest.model_validate(
        {
            "channel": "email",
            "to": "a@example.org",
            "metadata": {"n": 2**64 - 1, "m": -(2**63), "f": 1.5, "z": None, "ok": "✓ 😀"},
            "send_at": "2030-01-01T00:00:00+02:00",
        }
    )
    assert unstorable_values(parsed) == {}


# -- whatever arrives, prepare() returns a row or raises InvalidRequest ------------------------

texts = st.one_of(
    st.text(max_size=20),
    st.text(st.characters(exclude_categories=()), max_size=20),
    st.sampled_from(["", "\r\n", "\x00", "\ud800", "a@b", "a@example.org", "é@ü.de"]),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=8,
)
addresses = st.one_of(st.emails(), texts, st.builds("{} <{}>".format, texts, st.emails()))
request_fields = st.fixed_dictionaries(
    {"channel": st.just("email"), "to": addresses | st.lists(addresses, max_size=3)},
    optional={
        "subject": texts,
        "html": texts,
        "text": texts,
        "from": addresses,
        "cc": st.lists(addresses, max_size=3),
        "reply_to": addresses,
        "headers": st.dictionaries(texts, texts, max_size=3),
        "attachments": st.lists(
            st.fixed_dictionaries(
                {"filename": texts, "content_base64": texts},
                optional={"content_type": texts, "content_id": texts},
            ),
            max_size=2,
        ),
        "metadata": st.dictionaries(texts, json_values, max_size=3),
        "recipient_id": texts,
        "idempotency_key": texts,
        "send_at": st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
        "expires_at": st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
    },
)


@settings(max_examples=300, deadline=None)
@given(request_fields)
def test_prepare_accepts_or_raises_invalid_request(fields: dict[str, Any]):
    try:
        parsed = NotificationRequest.model_validate(fields)
    except ValidationError:
        return  # the shape is refused before preparation (422 from the API)
    try:
        row = PIPELINE.prepare(parsed, now=NOW)
    except InvalidRequest as exc:
        refused = exc.fields
    else:
        # Accepted: everything in the row can be stored (and read back).
        assert orjson.loads(row["payload"])["to"]
        assert row["recipient"].encode()
        return
    assert refused
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in refused.items())


# -- what is accepted can be built: the worker must never meet a message it cannot send -----


def build(row: Mapping[str, Any]) -> bytes:
    email = Email.from_payload(orjson.loads(row["payload"]))
    return build_email_bytes(email, email.sender or Address("Herald", "herald@localhost"))


@pytest.mark.parametrize(
    "headers",
    [
        {"Resent-To": "a@"},
        {"Resent-From": '"'},
        {"Resent-Sender": "a@"},
        {"Resent-Date": "not a date"},
    ],
)
def test_structured_headers_the_email_package_cannot_parse_are_refused(headers: dict[str, str]):
    (name,) = headers
    assert errors(headers=headers)[f"headers.{name}"].startswith(f"not a valid {name} header")


def test_well_formed_structured_headers_are_kept():
    row = prepare(
        headers={
            "Resent-To": "Bob <bob@example.org>",
            "Resent-Date": "Mon, 20 Nov 2023 10:00:00 +0000",
            "List-Unsubscribe": "<https://example.org/u/1>",
            "X-Note": "Zoë",
        }
    )
    assert b"Resent-To: Bob <bob@example.org>" in build(row)


def test_an_internationalized_local_part_is_either_refused_or_buildable():
    try:
        row = prepare(to="Ünïcode@example.org")
    except InvalidRequest:
        return
    build(row)


header_names = st.one_of(
    st.sampled_from(
        [
            *("X-Tag", "Resent-To", "Resent-Cc", "Resent-Date", "Resent-Message-ID"),
            *("Received", "Keywords", "Comments", "In-Reply-To", "References", "List-Unsubscribe"),
        ]
    ),
    st.from_regex(r"[!-9;-~]{1,20}", fullmatch=True),
)


valid_addresses = st.one_of(
    st.emails(),
    st.builds("{} <{}>".format, texts, st.emails()),
    st.sampled_from(["Ünïcode@example.org", "Zoë Ångström <zoe@example.org>", "a@bücher.example"]),
)


@settings(max_examples=300, deadline=None)
@given(
    st.fixed_dictionaries(
        {
            "channel": st.just("email"),
            "to": valid_addresses | st.lists(valid_addresses, min_size=1, max_size=3),
        },
        optional={
            "subject": texts,
            "html": texts,
            "text": texts,
            "from": st.builds("{} <{}>".format, texts, valid_addresses),
            "cc": st.lists(valid_addresses, max_size=2),
            "reply_to": valid_addresses,
            "headers": st.dictionaries(header_names, texts, max_size=3),
            "attachments": st.lists(
                st.fixed_dictionaries(
                    {
                        "filename": texts,
                        "content_base64": st.binary(max_size=20).map(
                            lambda b: base64.b64encode(b).decode()
                        ),
                    },
                    optional={"content_type": texts, "content_id": texts},
                ),
                max_size=2,
            ),
        },
    )
)
def test_an_accepted_email_can_be_built(fields: dict[str, Any]):
    try:
        row = PIPELINE.prepare(NotificationRequest.model_validate(fields), now=NOW)
    except (ValidationError, InvalidRequest):
        return
    message = build(row)
    assert message.startswith(b"From: ") or b"\r\nFrom: " in message
