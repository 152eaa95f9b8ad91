"""Push providers' send rate against the local stand-ins the tests use (same process, so
client and server share one core: a lower bound for the client alone).

    python -m bench.push_providers -n 2000 --in-flight 64

Prints one JSON object: sends/s and CPU per send for webpush (encryption + VAPID), fcm
(OAuth token cached) and apns (HTTP/2 over TLS, one connection).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import trustme
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from tests.integration.push.apns_service import DEVICE, ApnsService, apns_url
from tests.integration.push.fcm_service import TOKEN, FcmService, fcm_url
from tests.integration.push.webpush_service import WebPushService, b64url

from herald.domain.channels import Channel
from herald.domain.message import Delivery, Push
from herald.providers.apns import ApnsProvider
from herald.providers.base import Provider, ProviderURL
from herald.providers.fcm import FcmProvider
from herald.providers.webpush import WebPushProvider

PEM = serialization.Encoding.PEM
PKCS8 = serialization.PrivateFormat.PKCS8
NONE = serialization.NoEncryption()


async def measure(provider: Provider, to: str, n: int, in_flight: int) -> dict[str, float]:
    async def one() -> None:
        delivery = Delivery(
            notification_id=str(uuid.uuid4()),
            channel=Channel.PUSH,
            attempt=1,
            content=Push(to=to, title="Shipped", body="Order 42 is on its way", badge=1),
        )
        await provider.send(delivery)

    await one()  # connections, tokens, signatures
    queue = iter(range(n))

    async def sender() -> None:
        for _ in queue:
            await one()

    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(sender() for _ in range(in_flight)))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    await provider.aclose()
    return {"sends_per_s": round(n / wall), "cpu_us_per_send": round(cpu / n * 1e6)}


async def run(n: int, in_flight: int) -> dict[str, Any]:
    ca = trustme.CA()
    tmp = Path(tempfile.mkdtemp(prefix="herald-bench-push-"))
    ca_file = tmp / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_tls)
    results: dict[str, Any] = {"n": n, "in_flight": in_flight}
    stops: list[Callable[[], Awaitable[None]]] = []
    try:
        # Web Push
        vapid = ec.generate_private_key(ec.SECP256R1())
        public = vapid.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        web = WebPushService(server_tls)
        await web.start()
        stops.append(web.stop)
        raw = b64url(vapid.private_numbers().private_value.to_bytes(32, "big"))
        query = {"vapid_private_key": raw, "subject": "mailto:b@x.org", "ca_file": str(ca_file)}
        url = ProviderURL.parse(f"webpush://?{urlencode(query)}")
        webpush = WebPushProvider.from_url(url, name="webpush")
        results["webpush"] = await measure(webpush, web.subscribe(b64url(public)), n, in_flight)

        # FCM
        account = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        fcm_service = FcmService("bench", "b@bench.iam.gserviceaccount.com", account.public_key())
        await fcm_service.start()
        stops.append(fcm_service.stop)
        credentials = tmp / "sa.json"
        credentials.write_text(
            json.dumps(
                {
                    "type": "service_account",
                    "project_id": "bench",
                    "private_key": account.private_bytes(PEM, PKCS8, NONE).decode(),
                    "client_email": fcm_service.client_email,
                    "token_uri": fcm_service.token_url,
                }
            )
        )
        fcm = FcmProvider.from_url(ProviderURL.parse(fcm_url(fcm_service, credentials)), name="f")
        results["fcm"] = await measure(fcm, TOKEN, n, in_flight)

        # APNs
        key = ec.generate_private_key(ec.SECP256R1())
        key_file = tmp / "AuthKey.p8"
        key_file.write_bytes(key.private_bytes(PEM, PKCS8, NONE))
        certificate = tmp / "apns.pem"
        ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(certificate))
        apns_service = ApnsService(
            "TEAM",
            "KEY",
            "com.example.app",
            key.public_key(),
            certificate,
            max_requests_per_connection=10**9,
        )
        await apns_service.start()
        stops.append(apns_service.stop)
        url = ProviderURL.parse(apns_url(apns_service, key_file, ca_file))
        apns = ApnsProvider.from_url(url, name="apns")
        results["apns"] = await measure(apns, DEVICE, n, in_flight)
    finally:
        for stop in reversed(stops):
            await stop()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.push_providers")
    parser.add_argument("-n", type=int, default=2000)
    parser.add_argument("--in-flight", type=int, default=64)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.n, args.in_flight))))


if __name__ == "__main__":
    main()
