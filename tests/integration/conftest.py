"""Fixtures for integration tests against real services."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
import trustme

from tests.integration.api import Api, running_api
from tests.integration.http_fakes import (
    FakeChat,
    FakePostmark,
    FakeResend,
    FakeSendGrid,
    serving,
)
from tests.integration.smtp_server import SmtpTestServer, TlsMode
from tests.integration.twilio_server import TwilioServer
from tests.integration.vonage_server import VonageServer

# --- SMTP: a real aiosmtpd server (tests/integration/smtp_server.py) ---------------------


@pytest.fixture(scope="session")
def smtp_ca() -> trustme.CA:
    """A throwaway certificate authority for the test SMTP server's TLS."""
    return trustme.CA()


@pytest.fixture(scope="session")
def smtp_certificate(smtp_ca: trustme.CA) -> trustme.LeafCert:
    return smtp_ca.issue_cert("localhost", "127.0.0.1")


@pytest.fixture
def smtp_ca_file(smtp_ca: trustme.CA, tmp_path: Path) -> Path:
    """The test CA as a PEM file, for a client's ``ca_file``."""
    path = tmp_path / "smtp-test-ca.pem"
    smtp_ca.cert_pem.write_to_path(str(path))
    return path


SmtpServerFactory = Callable[..., SmtpTestServer]


@pytest.fixture
def smtp_server_factory(smtp_certificate: trustme.LeafCert) -> Iterator[SmtpServerFactory]:
    """``start(tls="none"|"starttls"|"tls", username=None, password=None, pipelining=True)``
    → a running server.

    Every server started is stopped at the end of the test.
    """
    servers: list[SmtpTestServer] = []

    def start(
        *,
        tls: TlsMode = "none",
        username: str | None = None,
        password: str | None = None,
        pipelining: bool = True,
    ) -> SmtpTestServer:
        server = SmtpTestServer(
            tls=tls,
            certificate=smtp_certificate if tls != "none" else None,
            username=username,
            password=password,
            pipelining=pipelining,
        )
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(params=[True, False], ids=["pipelining", "lockstep"])
def smtp_server(
    request: pytest.FixtureRequest, smtp_server_factory: SmtpServerFactory
) -> SmtpTestServer:
    """A running plain-TCP SMTP server on 127.0.0.1 that accepts everything.

    Each test runs twice: against a server offering PIPELINING (the client sends MAIL, RCPT
    and DATA at once) and one that does not (one command at a time).
    """
    return smtp_server_factory(pipelining=request.param)


# --- The HTTP API in-process (tests/integration/api.py) -------------------------------------


@pytest.fixture
async def api(database_url: str) -> AsyncIterator[Api]:
    """The API on SQLite and on PostgreSQL, delivering to a recorder (on ``drain()``)."""
    async with running_api(database_url) as running:
        yield running


@pytest.fixture
async def sqlite_api(sqlite_url: str) -> AsyncIterator[Api]:
    """The API on SQLite only, for tests where the database does not matter."""
    async with running_api(sqlite_url) as running:
        yield running


# --- Third-party HTTP APIs on loopback (tests/integration/http_fakes.py) --------------------


@pytest.fixture
async def sendgrid() -> AsyncIterator[FakeSendGrid]:
    async with serving(FakeSendGrid()) as api:
        yield api


@pytest.fixture
async def resend() -> AsyncIterator[FakeResend]:
    async with serving(FakeResend()) as api:
        yield api


@pytest.fixture
async def postmark() -> AsyncIterator[FakePostmark]:
    async with serving(FakePostmark()) as api:
        yield api


@pytest.fixture
async def chat_server() -> AsyncIterator[FakeChat]:
    async with serving(FakeChat()) as api:
        yield api


# --- SMS: local stand-ins for Twilio and Vonage (tests/integration/*_server.py) ---------------


@pytest.fixture
async def twilio_server() -> AsyncIterator[TwilioServer]:
    server = TwilioServer()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def vonage_server() -> AsyncIterator[VonageServer]:
    server = VonageServer()
    await server.start()
    yield server
    await server.stop()
