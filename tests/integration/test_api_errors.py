"""Bad input is a clear 4xx naming the field, in one error shape; nothing is queued; never 500."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.integration.api import Api, assert_error, email, running_api


async def post_json_text(client: httpx.AsyncClient, body: Any) -> httpx.Response:
    """POST ``body`` encoded by the json module (ASCII escapes, so lone surrogates survive)."""
    return await client.post(
        "/v1/notifications",
        content=json.dumps(body).encode(),
        headers={"content-type": "application/json"},
    )


async def assert_nothing_queued(api: Api) -> None:
    assert await api.count() == 0
    await api.herald.drain()
    assert api.recorder.outbox == []


def attachment(**fields: str) -> list[dict[str, str]]:
    return [{"filename": "a.pdf", "content_base64": "YQ==", **fields}]


INVALID = [
    pytest.param(email(to="not-an-address"), "to", id="bad to"),
    pytest.param(email(to=["bob@example.org", "bob@@example.org"]), "to[1]", id="bad to in a list"),
    pytest.param(email(cc=["carol@example.org", "carol"]), "cc[1]", id="bad cc"),
    pytest.param(email(bcc="x@"), "bcc", id="bad bcc"),
    pytest.param(email(reply_to=["@example.org"]), "reply_to", id="bad reply_to"),
    pytest.param(email({"from": "Support <support@>"}), "from", id="bad from"),
    pytest.param(email(to=[]), "to", id="empty to"),
    pytest.param(email(to=[42]), "to[0]", id="to not a string"),
    pytest.param(email(to="a@example.org\r\nBcc: evil@x.org"), "to", id="CR/LF in to"),
    pytest.param(email(subject="Hello\r\nBcc: evil@x.org"), "subject", id="CR/LF in subject"),
    pytest.param(email(subject="Hello\nX-Evil: 1"), "subject", id="LF in subject"),
    pytest.param(
        email(headers={"X-Note": "x\r\nBcc: evil@x.org"}),
        "headers.X-Note",
        id="CR/LF in a header value",
    ),
    pytest.param(
        email(headers={"Subject": "x\r\nBcc: evil@x.org"}),
        "headers.Subject",
        id="header injection via Subject",
    ),
    pytest.param(email(headers={"Bcc": "evil@x.org"}), "headers.Bcc", id="reserved header Bcc"),
    pytest.param(
        email(headers={"Message-ID": "<a@b>"}),
        "headers.Message-ID",
        id="reserved header Message-ID",
    ),
    pytest.param(
        email(headers={"content-TYPE": "text/html"}),
        "headers.content-TYPE",
        id="reserved header, other case",
    ),
    pytest.param(email(headers={"X-A:B": "1"}), "headers.X-A:B", id="header name with a colon"),
    pytest.param(
        email(headers={"Resent-To": "a@"}), "headers.Resent-To", id="unparsable structured header"
    ),
    pytest.param(email(headers={"X A": "1"}), "headers.X A", id="header name with a space"),
    pytest.param(
        {"channel": "email", "to": "a@example.org", "text": "hi"}, "subject", id="missing subject"
    ),
    pytest.param(
        {"channel": "email", "to": "a@example.org", "subject": "Hi"}, "html", id="missing content"
    ),
    pytest.param(email(html="<p>a\u0000b</p>"), "html", id="NUL in html"),
    pytest.param(
        {"to": "a@example.org", "subject": "Hi", "text": "hi"}, "channel", id="missing channel"
    ),
    pytest.param(email(channel="pigeon"), "channel", id="unknown channel"),
    pytest.param(email(channel="sms"), "subject", id="a field the channel does not use"),
    pytest.param(email(sujbect="typo"), "sujbect", id="unknown field"),
    pytest.param(
        email(attachments=attachment(size="1")),
        "attachments[0].size",
        id="unknown attachment field",
    ),
    pytest.param(email(priority=10), "priority", id="priority too high"),
    pytest.param(email(priority=-1), "priority", id="priority too low"),
    pytest.param(email(priority="urgent"), "priority", id="priority not a number"),
    pytest.param(email(send_at="2030-01-01T09:00:00"), "send_at", id="naive send_at"),
    pytest.param(email(send_at="tomorrow"), "send_at", id="send_at not a date"),
    pytest.param(
        email(send_at="9999-12-31T23:59:59-12:00"), "send_at", id="send_at past year 9999 in UTC"
    ),
    pytest.param(
        email(expires_at="2001-01-01T00:00:00Z"), "expires_at", id="expires_at in the past"
    ),
    pytest.param(
        email(send_at="2030-01-02T00:00:00Z", expires_at="2030-01-01T00:00:00Z"),
        "expires_at",
        id="expires_at before send_at",
    ),
    pytest.param(
        email(attachments=attachment(content_base64="not base64!")),
        "attachments[0].content_base64",
        id="bad base64",
    ),
    pytest.param(
        email(attachments=attachment(content_base64="YWJ")),
        "attachments[0].content_base64",
        id="truncated base64",
    ),
    pytest.param(
        email(attachments=attachment(content_base64="YWJj\u00e9")),
        "attachments[0].content_base64",
        id="non-ASCII base64",
    ),
    pytest.param(
        email(attachments=attachment(filename="../etc/passwd")),
        "attachments[0].filename",
        id="slash in a filename",
    ),
    pytest.param(
        email(attachments=attachment(content_type="pdf")),
        "attachments[0].content_type",
        id="bad content type",
    ),
    pytest.param(email(category="no spaces please"), "category", id="bad category"),
    pytest.param(email(recipient_id="user\u000042"), "recipient_id", id="NUL in recipient_id"),
    pytest.param(
        email(idempotency_key="key\u0000"), "idempotency_key", id="NUL in idempotency_key"
    ),
    pytest.param(email(idempotency_key=""), "idempotency_key", id="empty idempotency_key"),
    pytest.param(email(metadata=[1, 2]), "metadata", id="metadata not an object"),
    pytest.param(
        email(metadata={"order": {"total": 2**70}}),
        "metadata.order.total",
        id="metadata integer past 64 bits",
    ),
    pytest.param(email(text="broken \ud800 text"), "text", id="lone surrogate in text"),
    pytest.param(
        email(metadata={"note": ["ok", "\udc00"]}),
        "metadata.note[1]",
        id="lone surrogate in metadata",
    ),
]


@pytest.mark.parametrize(("body", "field"), INVALID)
async def test_invalid_input_is_a_422_naming_the_field(api: Api, body: dict[str, Any], field: str):
    response = await post_json_text(api.client, body)

    error = assert_error(response, 422, "invalid_request")
    assert field in error["fields"], error
    assert error["fields"][field]
    await assert_nothing_queued(api)


async def test_every_problem_is_reported_at_once(api: Api):
    body = {
        "channel": "email",
        "to": ["ok@example.org", "nope"],
        "cc": "also-nope",
        "headers": {"Bcc": "x@y.org"},
        "priority": 12,
    }
    response = await api.client.post("/v1/notifications", json=body)

    # Shape errors (pydantic) come first; the email checks run once the shape is right.
    error = assert_error(response, 422, "invalid_request")
    assert set(error["fields"]) == {"priority"}

    del body["priority"]
    error = assert_error(
        await api.client.post("/v1/notifications", json=body), 422, "invalid_request"
    )
    assert set(error["fields"]) == {"to[1]", "cc", "headers.Bcc", "subject", "html"}
    assert "'nope' is not a valid email address" in error["fields"]["to[1]"]
    await assert_nothing_queued(api)


async def test_a_header_injection_attempt_never_reaches_a_message(api: Api):
    attempts = [
        email(subject="Hi\r\nBcc: evil@x.org"),
        email(headers={"X-Campaign": "spring\r\nBcc: evil@x.org"}),
        email(headers={"Subject": "x\r\nBcc: evil@x.org"}),
        email({"from": "a@example.org\r\nBcc: evil@x.org"}),
    ]
    for body in attempts:
        assert_error(await api.client.post("/v1/notifications", json=body), 422, "invalid_request")
    accepted = await api.send(subject="The real one")
    await api.herald.drain()

    (delivered,) = api.recorder.outbox
    assert delivered.notification_id == accepted["id"]
    assert delivered.content.subject == "The real one"
    assert delivered.content.bcc == ()


@pytest.fixture
async def small_api(database_url: str) -> AsyncIterator[Api]:
    async with running_api(
        database_url, max_recipients=3, max_message_bytes=1_000, max_request_bytes=4_096
    ) as running:
        yield running


async def test_too_many_recipients(small_api: Api):
    body = email(to=["a@example.org", "b@example.org"], cc=["c@example.org", "d@example.org"])
    error = assert_error(
        await small_api.client.post("/v1/notifications", json=body), 422, "invalid_request"
    )
    assert "at most 3 recipients" in error["fields"]["to"]

    three = email(to=["a@example.org", "b@example.org"], bcc="c@example.org")
    assert (await small_api.client.post("/v1/notifications", json=three)).status_code == 202


async def test_an_oversize_message_names_the_part_that_is_too_big(small_api: Api):
    error = assert_error(
        await small_api.client.post("/v1/notifications", json=email(html="<p>x</p>" * 200)),
        422,
        "invalid_request",
    )
    assert "the limit is 1,000" in error["fields"]["html"]

    attachment = {"filename": "big.bin", "content_base64": base64.b64encode(b"x" * 1_500).decode()}
    # 2 kB of base64 fits the 4 kB request limit; the decoded 1.5 kB breaks the message limit.
    error = assert_error(
        await small_api.client.post("/v1/notifications", json=email(attachments=[attachment])),
        422,
        "invalid_request",
    )
    assert "the limit is 1,000" in error["fields"]["attachments"]
    await assert_nothing_queued(small_api)


async def test_an_oversize_body_is_413_by_content_length(small_api: Api):
    response = await small_api.client.post("/v1/notifications", json=email(text="x" * 5_000))
    error = assert_error(response, 413, "payload_too_large")
    assert "4,096 bytes" in error["message"]
    await assert_nothing_queued(small_api)


async def test_an_oversize_chunked_body_is_413(small_api: Api):
    encoded = json.dumps(email(text="x" * 5_000)).encode()

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(encoded), 1_000):
            yield encoded[start : start + 1_000]

    response = await small_api.client.post(
        "/v1/notifications", content=chunks(), headers={"content-type": "application/json"}
    )
    assert "content-length" not in response.request.headers
    assert response.request.headers["transfer-encoding"] == "chunked"
    assert_error(response, 413, "payload_too_large")
    await assert_nothing_queued(small_api)


async def test_a_chunked_body_within_the_limit_is_accepted(small_api: Api):
    encoded = json.dumps(email()).encode()

    async def chunks() -> AsyncIterator[bytes]:
        yield encoded[:10]
        yield encoded[10:]

    response = await small_api.client.post(
        "/v1/notifications", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 202, response.text


@pytest.mark.parametrize(
    "raw",
    [b"{", b'{"channel": "email",}', b"{'channel': 'email'}", b"\xff\xfe", b'{"a": 1} trailing'],
)
async def test_malformed_json_is_400(api: Api, raw: bytes):
    response = await api.client.post(
        "/v1/notifications", content=raw, headers={"content-type": "application/json"}
    )
    error = assert_error(response, 400, "malformed_json")
    assert "not valid JSON" in error["message"]
    await assert_nothing_queued(api)


@pytest.mark.parametrize(
    "body",
    [b"", b"null", b"[]", b'"email"', b"42"],
    ids=["empty", "null", "array", "string", "number"],
)
async def test_a_body_that_is_not_an_object_is_422(api: Api, body: bytes):
    response = await api.client.post(
        "/v1/notifications", content=body, headers={"content-type": "application/json"}
    )
    error = assert_error(response, 422, "invalid_request")
    assert "body" in error["fields"]


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"],
)
async def test_a_body_that_is_not_declared_json_is_415(api: Api, content_type: str | None):
    headers = {"content-type": content_type} if content_type else {}
    for path in ("/v1/notifications", "/v1/notifications/batch"):
        response = await api.client.post(
            path, content=json.dumps(email()).encode(), headers=headers
        )
        error = assert_error(response, 415, "unsupported_media_type")
        assert "application/json" in error["message"]
    await assert_nothing_queued(api)


@pytest.mark.parametrize(
    "content_type", ["application/json; charset=utf-8", "application/vnd.api+json"]
)
async def test_json_media_types_with_parameters_or_suffixes_are_accepted(
    api: Api, content_type: str
):
    response = await api.client.post(
        "/v1/notifications",
        content=json.dumps(email()).encode(),
        headers={"content-type": content_type},
    )
    assert response.status_code == 202, response.text


async def test_unknown_routes_and_methods_use_the_error_shape(api: Api):
    assert_error(await api.client.get("/v1/nothing-here"), 404, "not_found")
    assert_error(await api.client.delete("/v1/notifications"), 405, "method_not_allowed")
    missing = await api.client.get("/v1/notifications/0190c8d2-0000-7000-8000-000000000000")
    assert (
        "0190c8d2-0000-7000-8000-000000000000" in assert_error(missing, 404, "not_found")["message"]
    )


async def test_bad_query_parameters_are_422(api: Api):
    for params, field in [
        ({"limit": 0}, "limit"),
        ({"limit": 201}, "limit"),
        ({"status": "posted"}, "status[0]"),
        ({"channel": "fax"}, "channel"),
        ({"cursor": "zzz"}, "cursor"),
        ({"cursor": "0190C8D2-0000-7000-8000-000000000000"}, "cursor"),
    ]:
        response = await api.client.get("/v1/notifications", params=params)
        assert field in assert_error(response, 422, "invalid_request")["fields"], params
    for path in ("/v1/dead-letters", "/v1/captured"):
        response = await api.client.get(path, params={"cursor": "not-a-cursor"})
        assert "cursor" in assert_error(response, 422, "invalid_request")["fields"], path


@pytest.mark.parametrize("path", ["/v1/notifications", "/v1/notifications/batch"])
async def test_an_empty_idempotency_key_header_is_422(api: Api, path: str):
    body = email() if path.endswith("notifications") else {"notifications": [email()]}
    for _ in range(2):  # the second one used to collide with the first and fail with a 500
        response = await api.client.post(path, json=body, headers={"Idempotency-Key": ""})
        error = assert_error(response, 422, "invalid_request")
        assert error["fields"] == {"idempotency_key": "must not be empty"}
    assert await api.count() == 0


async def test_idempotency_key_header_length(api: Api):
    response = await api.client.post(
        "/v1/notifications", json=email(), headers={"Idempotency-Key": "k" * 256}
    )
    assert "Idempotency-Key" in assert_error(response, 422, "invalid_request")["fields"]

    # A batch derives "<key>:<i>" for item i, and that has to fit too.
    batch = {"notifications": [email(to=f"u{n}@example.org") for n in range(11)]}
    response = await api.client.post(
        "/v1/notifications/batch", json=batch, headers={"Idempotency-Key": "k" * 253}
    )
    error = assert_error(response, 422, "invalid_request")
    assert "at most 252 characters" in error["fields"]["idempotency_key"]
    assert await api.count() == 0

    response = await api.client.post(
        "/v1/notifications/batch", json=batch, headers={"Idempotency-Key": "k" * 252}
    )
    assert response.status_code == 202, response.text
    assert response.json()["items"][10]["idempotency_key"] == "k" * 252 + ":10"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/notifications/{}"),
        ("POST", "/v1/notifications/{}/cancel"),
        ("POST", "/v1/dead-letters/{}/retry"),
    ],
)
@pytest.mark.parametrize("bad_id", ["a%00b", "not-an-id", "0190C8D2-0000-7000-8000-000000000000"])
async def test_what_cannot_be_an_id_is_404(api: Api, method: str, path: str, bad_id: str):
    response = await api.client.request(method, path.format(bad_id))
    assert "no notification" in assert_error(response, 404, "not_found")["message"]


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/v1/notifications", "to"),
        ("/v1/notifications", "recipient_id"),
        ("/v1/notifications", "category"),
        ("/v1/captured", "notification_id"),
    ],
)
async def test_control_characters_in_filters_are_422(api: Api, path: str, name: str):
    response = await api.client.get(path, params={name: "a\x00b"})
    error = assert_error(response, 422, "invalid_request")
    assert error["fields"] == {name: "must not contain control characters"}
