"""Whatever JSON-ish body arrives, POST /v1/notifications answers 202 or a 4xx in the error
shape: never a 5xx (property-based, on both databases)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from datetime import timedelta, timezone
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from herald.domain.channels import Channel
from tests.integration.api import running_api

# Text as JSON can carry it: any code point, lone surrogates included ("\ud800" is valid JSON).
any_text = st.text(st.characters(exclude_categories=()), max_size=30)
texts = st.one_of(
    st.text(max_size=30),
    any_text,
    st.sampled_from(["", " ", "\r\n", "\x00", "\ud800", "a\udfffb", "\u2028", "\x7f"]),
)

integers = st.one_of(st.integers(), st.sampled_from([2**63 - 1, 2**63, 2**64, -(2**63) - 1]))
scalars = st.one_of(
    st.none(),
    st.booleans(),
    integers,  # past 64 bits too
    st.floats(),  # NaN and ±Infinity too: Python's json module reads them
    texts,
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=10,
)

addresses = st.one_of(
    st.emails(),
    st.builds("{} <{}>".format, texts, st.emails()),
    st.sampled_from(["a@example.org", "a@b", "@x.org", "a@example.org\r\nBcc: e@x.org", "ä@ü.de"]),
    texts,
)
recipients = st.one_of(addresses, st.lists(addresses, max_size=4))

offsets = st.builds(
    timezone, st.timedeltas(min_value=timedelta(hours=-23), max_value=timedelta(hours=23))
)
moments = st.one_of(
    st.datetimes(timezones=st.none() | offsets).map(lambda d: d.isoformat()),
    st.sampled_from(["9999-12-31T23:59:59-12:00", "0001-01-01T00:00:00+01:00", "2030-01-01"]),
    texts,
)
attachments = st.lists(
    st.fixed_dictionaries(
        {
            "filename": texts,
            "content_base64": st.binary(max_size=30).map(lambda b: base64.b64encode(b).decode())
            | texts,
        },
        optional={"content_type": texts, "content_id": texts},
    ),
    max_size=2,
)

# Values of the right JSON type, with hostile content.
typed = {
    "to": recipients,
    "cc": recipients,
    "bcc": recipients,
    "reply_to": recipients,
    "from": addresses,
    "subject": texts,
    "html": texts,
    "text": texts,
    "headers": st.dictionaries(texts, texts, max_size=3),
    "attachments": attachments,
    "category": st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,10}", fullmatch=True) | texts,
    "priority": st.integers(-2, 11),
    "send_at": moments,
    "expires_at": moments,
    "idempotency_key": texts,
    "recipient_id": texts,
    "metadata": st.dictionaries(texts, values, max_size=4),
}
# Anything at all in any field, unknown fields included.
untyped = {
    **{name: strategy | values for name, strategy in typed.items()},
    "channel": st.sampled_from([c.value for c in Channel]) | values,
    "template": values,
}
# A valid email with one or two of its fields (or new ones) replaced by hostile values:
# most code paths only run once everything else about a request is right.
valid = st.fixed_dictionaries(
    {
        "channel": st.just("email"),
        "to": st.emails(),
        "subject": st.text(st.characters(codec="utf-8", exclude_categories=("C",)), max_size=20),
        "text": st.text(max_size=20),
    }
)
replaced = st.lists(st.sampled_from(sorted(typed)), max_size=2, unique=True).flatmap(
    lambda names: st.fixed_dictionaries({name: typed[name] for name in names})
)
email_like = st.builds(lambda base, changes: {**base, **changes}, valid, replaced)
bodies = st.one_of(
    email_like,
    st.fixed_dictionaries({}, optional=untyped),
    st.dictionaries(texts, values, max_size=5),
    values,
)


def test_arbitrary_bodies_never_cause_a_server_error(database_url: str):
    # One app and database for all examples: a sync test drives its own event loop.
    # Logs are captured: structlog's default renderer takes seconds per traceback, which
    # would make shrinking a failure (should there be one) outlast the test timeout.
    with asyncio.Runner() as runner, capture_logs():
        stack = contextlib.AsyncExitStack()
        api = runner.run(stack.enter_async_context(running_api(database_url)))
        try:

            @settings(
                max_examples=300,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
                report_multiple_bugs=False,
            )
            @given(
                body=bodies, header_key=st.none() | st.from_regex(r"[ -~]{1,40}", fullmatch=True)
            )
            def check(body: Any, header_key: str | None) -> None:
                headers = {"content-type": "application/json"}
                if header_key is not None:
                    headers["idempotency-key"] = header_key
                response = runner.run(
                    api.client.post(
                        "/v1/notifications", content=json.dumps(body).encode(), headers=headers
                    )
                )
                assert response.status_code < 500, response.text
                if response.status_code == 202:
                    assert response.json()["status"] in {"queued", "scheduled"}
                    return
                assert 400 <= response.status_code < 500
                error = response.json()["error"]
                assert set(error) == {"code", "message", "fields"}
                assert isinstance(error["code"], str)
                assert isinstance(error["message"], str)
                assert all(
                    isinstance(k, str) and isinstance(v, str) for k, v in error["fields"].items()
                )

            check()
        finally:
            runner.run(stack.aclose())
