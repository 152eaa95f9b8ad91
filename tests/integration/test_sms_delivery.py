"""SMS end to end: accepted over the API, delivered by the worker through Twilio or Vonage
(local stand-ins), completed by their status callbacks; on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from herald.domain.message import Email
from tests.integration.api import Api, eventually, running_api, status_becomes
from tests.integration.settle import drain_until_settled
from tests.integration.twilio_server import LostReply, Received, TwilioServer
from tests.integration.vonage_server import VonageServer

PUBLIC = "https://herald.example.org"
TO = "+14155552671"


@asynccontextmanager
async def herald_with(database_url: str, sms: str, **settings: Any) -> AsyncIterator[Api]:
    async with running_api(database_url, sms=sms, public_url=PUBLIC, **settings) as api:
        yield api


async def send_sms(api: Api, body: str = "Your code is 123456", **fields: Any) -> str:
    response = await api.client.post(
        "/v1/notifications", json={"channel": "sms", "to": TO, "body": body, **fields}
    )
    assert response.status_code == 202, response.text
    notification_id: str = response.json()["id"]
    return notification_id


async def post_twilio_callback(
    api: Api, url: str, form: dict[str, str], headers: dict[str, str]
) -> httpx.Response:
    """POST what Twilio would send to ``url`` (under PUBLIC) to the app."""
    assert url.startswith(PUBLIC)
    return await api.client.post(urlsplit(url).path, data=form, headers=headers)


def callback_events(view: dict[str, Any]) -> list[tuple[str, str]]:
    return [(e["status"], e["detail"]) for e in view["events"] if e["actor"] == "provider-callback"]


async def test_twilio_delivers_and_its_callbacks_complete_the_timeline(
    database_url: str, twilio_server: TwilioServer
):
    async with herald_with(database_url, twilio_server.url()) as api:
        nid = await send_sms(api)
        await api.herald.drain()

        view = await api.get(nid)
        (message,) = twilio_server.messages
        assert (view["status"], view["provider"]) == ("sent", "twilio")
        assert view["provider_message_id"] == message.sid
        assert message.form["To"] == TO
        assert message.form["Body"] == "Your code is 123456"
        assert message.form["StatusCallback"] == f"{PUBLIC}/inbound/twilio/status"

        for status in ("sent", "delivered", "delivered"):  # the last one a replay
            response = await post_twilio_callback(
                api, *twilio_server.status_callback(message, status)
            )
            assert response.status_code == 204, response.text

        view = await api.get(nid)
        assert view["status"] == "delivered"
        assert view["last_error"] is None
        assert callback_events(view) == [
            ("sent", "twilio reports sent"),
            ("delivered", "twilio reports delivered"),
        ]


async def test_an_undelivered_callback_fails_the_notification_and_flags_the_number(
    database_url: str, twilio_server: TwilioServer
):
    async with herald_with(database_url, twilio_server.url()) as api:
        nid = await send_sms(api)
        await api.herald.drain()
        (message,) = twilio_server.messages

        callback = twilio_server.status_callback(message, "undelivered", error_code=30005)
        for _ in range(2):  # a replay changes nothing
            assert (await post_twilio_callback(api, *callback)).status_code == 204

        view = await api.get(nid)
        assert view["status"] == "failed"
        assert view["last_error"] == "twilio 30005: Unknown destination handset [30005]"
        assert view["rejected_recipients"] == [
            {
                "address": TO,
                "code": "30005",
                "message": "twilio 30005: Unknown destination handset",
                "suppress": True,
            }
        ]
        assert callback_events(view) == [
            (
                "failed",
                "twilio reports undelivered: error 30005 (permanent, suppress): "
                "twilio 30005: Unknown destination handset",
            )
        ]


async def test_a_failed_callback_for_a_filtered_message_keeps_the_number(
    sqlite_url: str, twilio_server: TwilioServer
):
    async with herald_with(sqlite_url, twilio_server.url()) as api:
        nid = await send_sms(api)
        await api.herald.drain()
        (message,) = twilio_server.messages

        callback = twilio_server.status_callback(message, "failed", error_code=30007)
        assert (await post_twilio_callback(api, *callback)).status_code == 204

        view = await api.get(nid)
        assert view["status"] == "failed"
        assert view["rejected_recipients"][0]["suppress"] is False
        assert "(permanent)" in callback_events(view)[0][1]


async def test_badly_signed_callbacks_are_refused(database_url: str, twilio_server: TwilioServer):
    async with herald_with(database_url, twilio_server.url()) as api:
        nid = await send_sms(api)
        await api.herald.drain()
        (message,) = twilio_server.messages
        url, form, _ = twilio_server.status_callback(message, "delivered")
        path = urlsplit(url).path

        forged = [
            {},  # no signature
            {"X-Twilio-Signature": twilio_server.signature(url, form, token="guess")},
            {"X-Twilio-Signature": twilio_server.signature(url + "?x=1", form)},
            {"X-Twilio-Signature": twilio_server.signature(url, {**form, "MessageStatus": "x"})},
        ]
        for headers in forged:
            response = await api.client.post(path, data=form, headers=headers)
            assert response.status_code == 403, response.text
            assert response.json()["error"]["code"] == "forbidden"

        view = await api.get(nid)
        assert view["status"] == "sent"
        assert callback_events(view) == []


async def parked_reports(api: Api) -> int:
    """Delivery reports waiting for their message's send to be recorded, as /metrics says."""
    response = await api.client.get("/metrics")
    for family in text_string_to_metric_families(response.text):
        if family.name == "herald_delivery_reports_parked":
            return int(family.samples[0].value)
    raise AssertionError("/metrics has no herald_delivery_reports_parked")


@asynccontextmanager
async def holding_replies(server: TwilioServer | VonageServer) -> AsyncIterator[asyncio.Event]:
    """The provider takes each message but answers only once the event is set: its status
    callbacks can reach Herald before the send is recorded."""
    release = asyncio.Event()
    server.hold = release.wait
    try:
        yield release
    finally:
        release.set()


async def created(twilio_server: TwilioServer) -> Received:
    async def one() -> bool:
        return len(twilio_server.messages) == 1

    await eventually(one)
    return twilio_server.messages[0]


async def test_callbacks_before_the_send_is_recorded_are_applied_once_it_is(
    database_url: str, twilio_server: TwilioServer
):
    # Upkeep (lease renewal, and the sweep of parked reports) runs every lease_seconds / 3.
    settings = {"run_worker": True, "lease_seconds": 0.6}
    async with (
        herald_with(database_url, twilio_server.url(), **settings) as api,
        holding_replies(twilio_server) as release,
    ):
        nid = await send_sms(api)
        message = await created(twilio_server)

        for status in ("sent", "delivered", "delivered"):  # the last one a replay
            response = await post_twilio_callback(
                api, *twilio_server.status_callback(message, status)
            )
            assert response.status_code == 202, response.text
        assert await parked_reports(api) == 3
        view = await api.get(nid)
        assert view["status"] == "sending"
        assert callback_events(view) == []

        release.set()
        view = await status_becomes(api, nid, "delivered")
        assert view["provider_message_id"] == message.sid
        assert callback_events(view) == [
            ("sent", "twilio reports sent"),
            ("delivered", "twilio reports delivered"),
        ]
        assert await parked_reports(api) == 0


async def test_a_parked_failure_fails_the_notification_once_the_send_is_recorded(
    database_url: str, twilio_server: TwilioServer
):
    settings = {"run_worker": True, "lease_seconds": 0.6}
    async with (
        herald_with(database_url, twilio_server.url(), **settings) as api,
        holding_replies(twilio_server) as release,
    ):
        nid = await send_sms(api)
        message = await created(twilio_server)
        callback = twilio_server.status_callback(message, "undelivered", error_code=30005)
        assert (await post_twilio_callback(api, *callback)).status_code == 202

        release.set()
        view = await status_becomes(api, nid, "failed")
        assert view["last_error"] == "twilio 30005: Unknown destination handset [30005]"
        assert view["rejected_recipients"][0]["suppress"] is True
        assert callback_events(view) == [
            (
                "failed",
                "twilio reports undelivered: error 30005 (permanent, suppress): "
                "twilio 30005: Unknown destination handset",
            )
        ]


async def test_the_next_callback_applies_parked_ones_first(
    database_url: str, twilio_server: TwilioServer
):
    """Without waiting for a sweep (the default lease makes upkeep wait 20 s), in order."""
    async with (
        herald_with(database_url, twilio_server.url()) as api,
        holding_replies(twilio_server) as release,
    ):
        nid = await send_sms(api)
        draining = asyncio.create_task(api.herald.drain())
        message = await created(twilio_server)
        sent = twilio_server.status_callback(message, "sent")
        assert (await post_twilio_callback(api, *sent)).status_code == 202
        release.set()
        await draining
        assert (await api.get(nid))["status"] == "sent"

        delivered = twilio_server.status_callback(message, "delivered")
        assert (await post_twilio_callback(api, *delivered)).status_code == 204

        view = await api.get(nid)
        assert view["status"] == "delivered"
        assert callback_events(view) == [
            ("sent", "twilio reports sent"),
            ("delivered", "twilio reports delivered"),
        ]
        assert await parked_reports(api) == 0


async def test_a_callback_for_a_message_never_recorded_is_dropped_after_the_retention(
    database_url: str, twilio_server: TwilioServer
):
    async with herald_with(database_url, twilio_server.url()) as api:
        await send_sms(api)
        await api.herald.drain()
        (message,) = twilio_server.messages
        message.sid = "SM" + "f" * 32  # a message Herald never sent

        response = await post_twilio_callback(
            api, *twilio_server.status_callback(message, "delivered")
        )
        assert response.status_code == 202
        assert response.content == b""

        reports = api.herald.delivery_reports
        day = 86400.0
        assert await reports.sweep(now=time.time() + day - 60, retention=day) == (0, 0)
        assert await parked_reports(api) == 1
        assert await reports.sweep(now=time.time() + day + 60, retention=day) == (0, 1)
        assert await parked_reports(api) == 0


async def test_the_worker_drops_parked_reports_after_the_configured_retention(
    sqlite_url: str, twilio_server: TwilioServer
):
    settings = {"run_worker": True, "lease_seconds": 0.6, "pending_reports_retention": 0.5}
    async with herald_with(sqlite_url, twilio_server.url(), **settings) as api:
        form = {"MessageSid": "SM" + "e" * 32, "MessageStatus": "delivered"}
        url = f"{PUBLIC}/inbound/twilio/status"
        headers = {"X-Twilio-Signature": twilio_server.signature(url, form)}
        assert (await post_twilio_callback(api, url, form, headers)).status_code == 202

        async def dropped() -> bool:
            return await parked_reports(api) == 0

        await eventually(dropped)


async def test_a_callback_without_the_fields_is_422(sqlite_url: str, twilio_server: TwilioServer):
    async with herald_with(sqlite_url, twilio_server.url()) as api:
        url = f"{PUBLIC}/inbound/twilio/status"
        form = {"AccountSid": twilio_server.account_sid, "MessageStatus": "delivered"}
        headers = {"X-Twilio-Signature": twilio_server.signature(url, form)}

        response = await post_twilio_callback(api, url, form, headers)

        assert response.status_code == 422
        assert response.json()["error"]["fields"] == {"MessageSid": "required"}


async def test_an_opted_out_recipient_is_never_retried(
    database_url: str, twilio_server: TwilioServer
):
    async with herald_with(database_url, twilio_server.url()) as api:
        twilio_server.fail(400, 21610, "Attempt to send to unsubscribed recipient")
        nid = await send_sms(api)
        await api.herald.drain()

        view = await api.get(nid)
        assert (view["status"], view["attempts"]) == ("dead", 1)
        assert view["last_error"] == (
            "twilio 21610: Attempt to send to unsubscribed recipient "
            "(the recipient opted out) [21610]"
        )
        assert view["rejected_recipients"][0]["suppress"] is True
        assert twilio_server.messages == []


async def test_an_unreachable_handset_is_retried(database_url: str, twilio_server: TwilioServer):
    # Full jitter may draw a delay near zero: a long first delay keeps the retry from
    # falling due, and being sent, within this drain.
    async with herald_with(database_url, twilio_server.url(), retry_initial_delay=600) as api:
        twilio_server.fail(400, 30003, "Unreachable destination handset")
        nid = await send_sms(api)
        await api.herald.drain()

        view = await api.get(nid)
        assert view["status"] == "retrying"
        assert view["last_error"] == "twilio 30003: Unreachable destination handset [30003]"


@pytest.mark.parametrize("lost", ["hang", "close"])
async def test_a_reply_lost_after_twilio_took_the_message_is_a_possible_duplicate(
    database_url: str, twilio_server: TwilioServer, lost: LostReply
):
    url = twilio_server.url(timeout="0.5")
    async with herald_with(database_url, url, retry_initial_delay=0.0) as api:
        twilio_server.lost_replies.append(lost)
        nid = await send_sms(api)
        await drain_until_settled(api.herald, nid)

        view = await api.get(nid)
        first, second = twilio_server.messages  # the duplicate is real
        assert (view["status"], view["attempts"], view["possible_duplicates"]) == ("sent", 2, 1)
        assert view["provider_message_id"] == second.sid
        (retrying,) = [e for e in view["events"] if e["status"] == "retrying"]
        assert "may have been accepted" in retrying["detail"]
        assert first.form == second.form


async def test_rejected_credentials_fail_over_to_vonage(
    database_url: str, twilio_server: TwilioServer, vonage_server: VonageServer
):
    broken = twilio_server.url().replace(twilio_server.auth_token, "revoked")
    async with herald_with(database_url, f"{broken},{vonage_server.url()}") as api:
        nid = await send_sms(api)
        await api.herald.drain()

        view = await api.get(nid)
        (message,) = vonage_server.messages
        assert (view["status"], view["provider"]) == ("sent", "vonage")
        assert view["provider_message_id"] == message.message_id
        assert any("failing over to vonage" in (e["detail"] or "") for e in view["events"])
        assert twilio_server.messages == []


async def test_vonage_receipts_complete_the_timeline(
    database_url: str, vonage_server: VonageServer
):
    async with herald_with(database_url, vonage_server.url()) as api:
        delivered_id = await send_sms(api)
        failed_id = await send_sms(api, body="Zażółć")
        await api.herald.drain()
        delivered, failed = vonage_server.messages
        assert failed.form["type"] == "unicode"

        path, body = vonage_server.receipt(delivered, "delivered")
        for _ in range(2):
            assert (await api.client.post(path, json=body)).status_code == 204
        path, body = vonage_server.receipt(failed, "failed", err_code=9)
        form = await api.client.post(path, data=body)  # Vonage may send a form, too
        assert form.status_code == 204, form.text

        view = await api.get(delivered_id)
        assert view["status"] == "delivered"
        assert callback_events(view) == [("delivered", "vonage reports delivered")]
        view = await api.get(failed_id)
        assert view["status"] == "failed"
        assert view["last_error"] == "vonage receipt error 9: illegal number [9]"
        assert view["rejected_recipients"][0]["suppress"] is True

        bad = await api.client.post(path.replace("token=", "token=x"), json=body)
        assert bad.status_code == 403


async def test_a_failed_callback_queues_the_channel_fallback(
    database_url: str, twilio_server: TwilioServer
):
    async with herald_with(database_url, twilio_server.url()) as api:
        nid = await send_sms(
            api, fallback=["email"], fallback_to={"email": "alice@example.org"}, subject="Code"
        )
        await api.herald.drain()
        (message,) = twilio_server.messages

        callback = twilio_server.status_callback(message, "undelivered", error_code=30006)
        assert (await post_twilio_callback(api, *callback)).status_code == 204
        await api.herald.drain()

        view = await api.get(nid)
        assert view["status"] == "failed"
        fallback = next(e for e in view["events"] if e["detail"].startswith("falling back"))
        email_id = fallback["detail"].rsplit(" ", 1)[1]
        assert (await api.get(email_id))["status"] == "sent"
        (sent,) = api.recorder.outbox
        assert isinstance(sent.content, Email)
        assert sent.content.to[0].addr == "alice@example.org"


async def test_a_vonage_receipt_with_a_null_message_id_is_422(
    sqlite_url: str, vonage_server: VonageServer
):
    async with herald_with(sqlite_url, vonage_server.url()) as api:
        await send_sms(api)
        await api.herald.drain()
        (message,) = vonage_server.messages
        path, body = vonage_server.receipt(message, "delivered")

        response = await api.client.post(path, json={**body, "messageId": None})

        assert response.status_code == 422, response.text
        assert response.json()["error"]["fields"] == {"messageId": "required"}


async def test_a_long_vonage_message_is_delivered_once_every_part_is(
    database_url: str, vonage_server: VonageServer
):
    vonage_server.parts_per_message = 3
    async with herald_with(database_url, vonage_server.url()) as api:
        nid = await send_sms(api, body="x" * 400)
        await api.herald.drain()
        first, second, third = vonage_server.messages
        assert (await api.get(nid))["provider_message_id"] == first.message_id

        for part in (second, first, second):  # the last one a replay
            path, body = vonage_server.receipt(part, "delivered")
            assert (await api.client.post(path, json=body)).status_code == 204
        assert (await api.get(nid))["status"] == "sent"

        path, body = vonage_server.receipt(third, "delivered")
        assert (await api.client.post(path, json=body)).status_code == 204

        view = await api.get(nid)
        assert view["status"] == "delivered"
        assert callback_events(view) == [
            ("sent", "vonage reports delivered (part 2 of 3)"),
            ("sent", "vonage reports delivered (part 1 of 3)"),
            ("delivered", "vonage reports delivered (part 3 of 3)"),
        ]


async def test_one_failed_part_fails_a_long_vonage_message(
    database_url: str, vonage_server: VonageServer
):
    vonage_server.parts_per_message = 2
    async with herald_with(database_url, vonage_server.url()) as api:
        nid = await send_sms(api, body="x" * 300)
        await api.herald.drain()
        first, second = vonage_server.messages

        for part, status, code in ((second, "failed", 9), (first, "delivered", 0)):
            path, body = vonage_server.receipt(part, status, err_code=code)
            assert (await api.client.post(path, json=body)).status_code == 204

        view = await api.get(nid)
        assert view["status"] == "failed"
        assert view["last_error"] == "vonage receipt error 9: illegal number [9]"
        assert callback_events(view) == [
            (
                "failed",
                "vonage reports failed: error 9 (permanent, suppress): "
                "vonage receipt error 9: illegal number (part 2 of 2)",
            ),
            ("failed", "vonage reports delivered (part 1 of 2)"),
        ]


async def test_part_receipts_before_the_send_is_recorded_are_applied_in_arrival_order(
    database_url: str, vonage_server: VonageServer
):
    vonage_server.parts_per_message = 3
    settings = {"run_worker": True, "lease_seconds": 0.6}
    async with (
        herald_with(database_url, vonage_server.url(), **settings) as api,
        holding_replies(vonage_server) as release,
    ):
        nid = await send_sms(api, body="x" * 400)

        async def taken() -> bool:
            return len(vonage_server.messages) == 3

        await eventually(taken)
        first, second, third = vonage_server.messages
        for part in (third, first, second):
            path, body = vonage_server.receipt(part, "delivered")
            assert (await api.client.post(path, json=body)).status_code == 202

        release.set()
        view = await status_becomes(api, nid, "delivered")
        assert callback_events(view) == [
            ("sent", "vonage reports delivered (part 3 of 3)"),
            ("sent", "vonage reports delivered (part 1 of 3)"),
            ("delivered", "vonage reports delivered (part 2 of 3)"),
        ]
        assert await parked_reports(api) == 0
