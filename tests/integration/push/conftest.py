"""Fixtures for the push providers: a test CA, and local stand-ins for the push services."""

from __future__ import annotations

import json
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.integration.push.apns_service import ApnsService
from tests.integration.push.fcm_service import FcmService
from tests.integration.push.webpush_service import WebPushService, b64url


@pytest.fixture(scope="session")
def push_ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def push_ca_file(push_ca: trustme.CA, tmp_path: Path) -> Path:
    path = tmp_path / "push-test-ca.pem"
    push_ca.cert_pem.write_to_path(str(path))
    return path


@pytest.fixture
def server_tls(push_ca: trustme.CA) -> ssl.SSLContext:
    """A server context with a certificate for 127.0.0.1 and localhost."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    push_ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


@dataclass(frozen=True)
class VapidKey:
    private: str  # the raw 32-byte private key, base64url
    public: str  # the uncompressed public point, base64url: the browser's applicationServerKey
    pem: bytes


@pytest.fixture
def vapid_key() -> VapidKey:
    key = ec.generate_private_key(ec.SECP256R1())
    raw = key.private_numbers().private_value.to_bytes(32, "big")
    public = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return VapidKey(b64url(raw), b64url(public), pem)


@pytest.fixture
async def webpush_service(server_tls: ssl.SSLContext) -> AsyncIterator[WebPushService]:
    service = WebPushService(server_tls)
    await service.start()
    yield service
    await service.stop()


@pytest.fixture(scope="session")
def service_account_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
async def fcm_service(service_account_key: rsa.RSAPrivateKey) -> AsyncIterator[FcmService]:
    service = FcmService(
        project_id="herald-test",
        client_email="herald@herald-test.iam.gserviceaccount.com",
        public_key=service_account_key.public_key(),
    )
    await service.start()
    yield service
    await service.stop()


@pytest.fixture
def fcm_credentials(
    fcm_service: FcmService, service_account_key: rsa.RSAPrivateKey, tmp_path: Path
) -> Path:
    """A service-account key file, as the Firebase console downloads it."""
    pem = service_account_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path = tmp_path / "service-account.json"
    path.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": fcm_service.project_id,
                "private_key_id": "0123456789abcdef",
                "private_key": pem.decode(),
                "client_email": fcm_service.client_email,
                "client_id": "1234567890",
                "token_uri": fcm_service.token_url,
            }
        )
    )
    return path


@pytest.fixture
def apns_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def apns_key_file(apns_key: ec.EllipticCurvePrivateKey, tmp_path: Path) -> Path:
    """An ``AuthKey_<key id>.p8``, as Apple's developer site hands it out (PKCS#8 PEM)."""
    path = tmp_path / "AuthKey_ABC123DEFG.p8"
    path.write_bytes(
        apns_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


@pytest.fixture
async def apns_service(
    apns_key: ec.EllipticCurvePrivateKey, push_ca: trustme.CA, tmp_path: Path
) -> AsyncIterator[ApnsService]:
    certificate = tmp_path / "apns-server.pem"
    push_ca.issue_cert("127.0.0.1", "localhost").private_key_and_cert_chain_pem.write_to_path(
        str(certificate)
    )
    service = ApnsService(
        team_id="TEAM123456",
        key_id="ABC123DEFG",
        topic="com.example.app",
        public_key=apns_key.public_key(),
        certificate=certificate,
    )
    await service.start()
    yield service
    await service.stop()
