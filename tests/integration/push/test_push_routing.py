"""Several push providers on one channel: each notification goes to the provider for its
token's platform, and failover and verdicts only involve providers that can carry it."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode

from herald import Herald
from tests.integration.push.apns_service import DEVICE, ApnsService, apns_url
from tests.integration.push.conftest import VapidKey
from tests.integration.push.fcm_service import TOKEN, FcmService, fcm_url
from tests.integration.push.test_webpush import LOOPBACK
from tests.integration.push.webpush_service import WebPushService


def webpush_url(vapid_key: VapidKey, ca_file: Path) -> str:
    query = {
        "vapid_private_key": vapid_key.private,
        "subject": "mailto:ops@example.org",
        "ca_file": str(ca_file),
    }
    return f"webpush://?{urlencode(query)}"


async def test_each_token_goes_to_its_platforms_provider(
    database_url: str,
    fcm_service: FcmService,
    fcm_credentials: Path,
    apns_service: ApnsService,
    apns_key_file: Path,
    webpush_service: WebPushService,
    vapid_key: VapidKey,
    push_ca_file: Path,
):
    push = ",".join(
        [
            fcm_url(fcm_service, fcm_credentials),
            apns_url(apns_service, apns_key_file, push_ca_file),
            webpush_url(vapid_key, push_ca_file),
        ]
    )
    async with Herald(
        database_url, migrate=True, push=push, webhook_allowed_networks=LOOPBACK
    ) as herald:
        subscription = webpush_service.subscribe(vapid_key.public)
        web = await herald.send(channel="push", to=subscription, body="to the browser")
        ios = await herald.send(channel="push", to=DEVICE, body="to the iPhone")
        android = await herald.send(channel="push", to=TOKEN, body="to the Pixel")
        await herald.drain()

        for view, provider in ((web, "webpush"), (ios, "apns"), (android, "fcm")):
            sent = await herald.get(view.id)
            assert (sent.status, sent.provider) == ("sent", provider)
            assert sent.events is not None
            assert not any("failing over" in (e.detail or "") for e in sent.events)
        assert [r.payload["body"] for r in webpush_service.received] == ["to the browser"]
        assert [r.payload["aps"]["alert"]["body"] for r in apns_service.received] == [
            "to the iPhone"
        ]
        assert [m["notification"]["body"] for m in fcm_service.received] == ["to the Pixel"]


async def test_an_outage_is_retried_not_blamed_on_the_next_platforms_provider(
    sqlite_url: str,
    apns_service: ApnsService,
    apns_key_file: Path,
    vapid_key: VapidKey,
    push_ca_file: Path,
):
    apns = apns_url(apns_service, apns_key_file, push_ca_file)
    push = f"{apns},{webpush_url(vapid_key, push_ca_file)}"
    apns_service.fail(503, "ServiceUnavailable")
    async with Herald(
        sqlite_url, migrate=True, push=push, webhook_allowed_networks=LOOPBACK
    ) as herald:
        view = await herald.send(channel="push", to=DEVICE, body="hello")
        await herald.drain()
        retrying = await herald.get(view.id)
        assert (retrying.status, retrying.provider) == ("retrying", "apns")
        assert retrying.last_error is not None
        assert "ServiceUnavailable" in retrying.last_error


async def test_a_platform_no_provider_serves_dies_with_the_reason(
    sqlite_url: str, fcm_service: FcmService, fcm_credentials: Path
):
    async with Herald(
        sqlite_url, migrate=True, push=fcm_url(fcm_service, fcm_credentials)
    ) as herald:
        view = await herald.send(channel="push", to=DEVICE, body="hello")
        await herald.drain()
        dead = await herald.get(view.id)
        assert dead.status == "dead"
        assert dead.last_error == "fcm sends fcm pushes, not apns [wrong-platform]"
        assert fcm_service.received == []
