"""Every channel accepted, validated and delivered (to the capture provider), and channel
fallback from a failing email to SMS."""

from __future__ import annotations

import json
from typing import Any

import pytest

from herald import Herald, InvalidRequest
from herald.domain.channels import Channel
from herald.domain.errors import PermanentError
from tests.integration.scripted import ScriptedProvider

WEB_PUSH = json.dumps(
    {"endpoint": "https://push.example.org/send/abc", "keys": {"p256dh": "BN3x_y", "auth": "k9_z"}}
)


async def captured(herald: Herald, channel: str) -> list[dict[str, Any]]:
    return [json.loads(row["content"]) for row in await herald.captured.list(channel=channel)]


async def test_sms_push_webhook_and_chat_reach_their_providers(database_url: str):
    async with Herald(database_url, migrate=True, sms_default_region="US") as herald:
        sms = await herald.send(channel="sms", to="(415) 555-2671", body="Your code is 123456")
        push = await herald.send(
            channel="push",
            to="fcm-token-0123456789abcdef:APA91b",
            title="Shipped",
            body="Order 42 is on its way",
            badge=3,
            data={"order": 42, "screen": "orders"},
            collapse_key="order-42",
        )
        web = await herald.send(channel="push", to=WEB_PUSH, body="hello browser")
        hook = await herald.send(
            channel="webhook",
            to="https://hooks.example.org/herald",
            category="order.shipped",
            data={"order": 42},
        )
        chat = await herald.send(channel="chat", title="Deploy", body="v2 is live")
        await herald.drain()

        for view in (sms, push, web, hook, chat):
            assert (await herald.get(view.id)).status == "sent"
        assert sms.to == ["+14155552671"]
        (sms_sent,) = await captured(herald, "sms")
        assert sms_sent == {
            "to": "+14155552671",
            "body": "Your code is 123456",
            "segments": 1,
            "encoding": "GSM-7",
        }
        pushes = await captured(herald, "push")
        fcm = next(p for p in pushes if p["to"].startswith("fcm"))
        assert fcm["data"] == {"order": "42", "screen": "orders"}  # push data is a string map
        assert (fcm["badge"], fcm["collapse_key"]) == (3, "order-42")
        (hook_sent,) = await captured(herald, "webhook")
        assert hook_sent["url"] == "https://hooks.example.org/herald"
        assert hook_sent["event_type"] == "order.shipped"
        assert hook_sent["data"] == {"order": 42}
        (chat_sent,) = await captured(herald, "chat")
        assert (chat_sent["title"], chat_sent["body"]) == ("Deploy", "v2 is live")


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"channel": "sms", "to": "12345", "body": "x"}, "to"),
        ({"channel": "sms", "to": "+14155552671"}, "body"),
        ({"channel": "sms", "to": ["+14155552671", "+14155552672"], "body": "x"}, "to"),
        ({"channel": "sms", "to": "+14155552671", "body": "ł" * 700}, "body"),
        ({"channel": "sms", "to": "+14155552671", "body": "x", "subject": "s"}, "subject"),
        ({"channel": "push", "to": "short", "body": "x"}, "to"),
        ({"channel": "push", "to": '{"endpoint": "http://x.org"}', "body": "x"}, "to"),
        ({"channel": "push", "to": "fcm-token-0123456789abcdef"}, "body"),
        ({"channel": "push", "to": "fcm-token-0123456789abcdef", "body": "x" * 5000}, "data"),
        ({"channel": "webhook", "to": "http://127.0.0.1:8080/hook"}, "to"),
        ({"channel": "webhook", "to": "http://2130706433/hook"}, "to"),
        ({"channel": "webhook", "to": "http://169.254.169.254/latest/meta-data"}, "to"),
        ({"channel": "webhook", "to": "ftp://example.org/x"}, "to"),
        ({"channel": "webhook", "to": "https://user:pw@example.org/x"}, "to"),
        ({"channel": "chat", "title": "no body"}, "body"),
        (
            {"channel": "email", "to": "a@x.org", "subject": "s", "text": "t", "fallback": ["sms"]},
            "fallback_to.sms",
        ),
        (
            {
                "channel": "email",
                "to": "a@x.org",
                "subject": "s",
                "text": "t",
                "fallback": ["sms"],
                "fallback_to": {"sms": "not a number"},
            },
            "fallback_to.sms",
        ),
        (
            {
                "channel": "email",
                "to": "a@x.org",
                "subject": "s",
                "text": "t",
                "fallback": ["email"],
            },
            "fallback",
        ),
    ],
)
async def test_bad_input_on_each_channel_names_the_field(
    sqlite_url: str, fields: dict[str, Any], field: str
):
    async with Herald(sqlite_url, migrate=True) as herald:
        with pytest.raises(InvalidRequest) as caught:
            await herald.send(fields)
        assert field in caught.value.fields, caught.value.fields
        assert await herald.notifications.list() == []


async def test_webhooks_to_allowed_networks_are_accepted(sqlite_url: str):
    async with Herald(sqlite_url, migrate=True, webhook_allowed_networks="127.0.0.0/8") as herald:
        view = await herald.send(channel="webhook", to="http://127.0.0.1:9/hook", data={})
        assert view.status == "queued"


async def test_an_email_that_dies_falls_back_to_sms(database_url: str):
    broken = ScriptedProvider("broken", PermanentError("550 5.1.1 no such user", suppress=True))
    async with Herald(
        database_url, migrate=True, providers={Channel.EMAIL: [broken]}, poll_interval=0.05
    ) as herald:
        email = await herald.send_email(
            to="gone@example.org",
            subject="Your code",
            text="Your verification code is 123456. It expires in 10 minutes.",
            fallback=["sms"],
            fallback_to={"sms": "+14155552671"},
        )
        assert email.fallback == ["sms"]
        await herald.drain()

        original = await herald.get(email.id)
        assert original.status == "dead"
        assert original.fallback == []
        rows = await herald.notifications.list(channel="sms")
        (sms_row,) = rows
        sms = await herald.get(sms_row["id"])
        assert sms.status == "sent"
        assert sms.fallback_of == email.id
        assert sms.content == {
            "to": "+14155552671",
            "body": "Your verification code is 123456. It expires in 10 minutes.",
            "segments": 1,
            "encoding": "GSM-7",
        }
        assert any(e.detail == f"falling back to sms: {sms.id}" for e in original.events or [])
        assert (sms.events or [])[0].detail == f"queued as the fallback of {email.id}"

        # A fallback happens once: retrying the dead email does not send a second SMS.
        await herald.retry_dead(email.id)
        await herald.drain()
        assert len(await herald.notifications.list(channel="sms")) == 1
