"""Herald end to end over real SMTP: accept → worker → aiosmtpd, then read what arrived."""

from __future__ import annotations

import base64
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest

from herald import Herald
from tests.integration.conftest import SmtpServerFactory
from tests.integration.smtp_server import SmtpTestServer


def smtp_url(server: SmtpTestServer, **options: str) -> str:
    query = "&".join(
        f"{k}={v}"
        for k, v in {"tls": "none", "from": "Shop%20%3Cshop@example.org%3E", **options}.items()
    )
    return f"smtp://{server.host}:{server.port}?{query}"


@pytest.fixture
async def herald(database_url: str, smtp_server: SmtpTestServer) -> AsyncIterator[Herald]:
    async with Herald(
        database_url,
        migrate=True,
        email=smtp_url(smtp_server, timeout="1"),
        poll_interval=0.05,
        retry_initial_delay=0.0,
    ) as instance:
        yield instance


async def test_the_message_that_arrives_is_the_one_accepted(
    herald: Herald, smtp_server: SmtpTestServer
):
    picture = base64.b64encode(b"\x89PNG fake image bytes").decode()
    view = await herald.send_email(
        to=["Zoë Ångström <zoe@example.org>", "bob@example.org"],
        cc="carol@example.org",
        bcc="audit@example.org",
        reply_to="support@example.org",
        subject="Votre commande n° 42 est expédiée ✓",
        html="<h1>Merci !</h1><p>Total: 12 €</p>",
        headers={"X-Campaign": "autumn"},
        attachments=[{"filename": "reçu.png", "content_base64": picture}],
    )
    await herald.drain()

    (received,) = smtp_server.wait_for_messages(1)
    message = received.parsed
    assert sorted(received.rcpt_tos) == sorted(
        ["zoe@example.org", "bob@example.org", "carol@example.org", "audit@example.org"]
    )
    assert received.mail_from == "shop@example.org"
    assert message["From"] == "Shop <shop@example.org>"
    assert message["To"].addresses[0].display_name == "Zoë Ångström"
    assert message["Cc"] == "carol@example.org"
    assert message["Bcc"] is None
    assert b"audit@example.org" not in received.data
    assert message["Reply-To"] == "support@example.org"
    assert message["Subject"] == "Votre commande n° 42 est expédiée ✓"
    assert message["X-Campaign"] == "autumn"
    assert message["Message-ID"] == f"<{view.id}@example.org>"
    assert message["Date"] is not None
    body = message.get_body(("plain",))
    assert body is not None
    assert "Merci" in body.get_content()  # text derived from the HTML
    html = message.get_body(("html",))
    assert html is not None
    assert "12 €" in html.get_content()
    (attachment,) = list(message.iter_attachments())
    assert attachment.get_filename() == "reçu.png"
    assert attachment.get_content() == b"\x89PNG fake image bytes"
    assert attachment.get_content_type() == "image/png"

    stored = await herald.get(view.id)
    assert stored.status == "sent"
    assert stored.provider == "smtp"
    assert [e.status for e in stored.events] == ["queued", "sending", "sent"]
    assert (stored.events[-1].detail or "").startswith("250")


async def test_refused_recipients_are_recorded_and_the_rest_still_receive(
    herald: Herald, smtp_server: SmtpTestServer
):
    smtp_server.reject_recipient("gone@example.org", 550, "5.1.1 No such user")
    view = await herald.send_email(
        to=["ok@example.org", "gone@example.org"], subject="hi", text="hello"
    )
    await herald.drain()

    (received,) = smtp_server.wait_for_messages(1)
    assert received.rcpt_tos == ("ok@example.org",)
    stored = await herald.get(view.id)
    assert stored.status == "sent"
    (rejected,) = stored.rejected_recipients
    assert (rejected.address, rejected.code, rejected.suppress) == (
        "gone@example.org",
        "550 5.1.1",
        True,
    )


async def test_a_mailbox_that_does_not_exist_is_dead_and_suppress_worthy(
    herald: Herald, smtp_server: SmtpTestServer
):
    smtp_server.reject_recipient("gone@example.org", 550, "5.1.1 No such user")
    view = await herald.send_email(to="gone@example.org", subject="hi", text="hello")
    await herald.drain()

    stored = await herald.get(view.id)
    assert stored.status == "dead"
    assert "5.1.1" in (stored.last_error or "")
    assert [(r.address, r.suppress) for r in stored.rejected_recipients] == [
        ("gone@example.org", True)
    ]
    assert smtp_server.message_count == 0


async def test_a_temporary_refusal_is_retried_with_the_same_message_id(
    herald: Herald, smtp_server: SmtpTestServer
):
    smtp_server.queue_replies("data", (451, "4.3.0 Try again later"))
    view = await herald.send_email(to="a@example.org", subject="hi", text="hello")
    await herald.drain()
    assert (await herald.get(view.id)).status in {"retrying", "sent"}
    await herald.drain()
    await herald.drain()

    stored = await herald.get(view.id)
    assert (stored.status, stored.attempts) == ("sent", 2)
    (received,) = smtp_server.wait_for_messages(1)
    assert received.message_id == f"{view.id}@example.org"
    assert any("451" in (e.detail or "") for e in stored.events)


async def test_a_lost_reply_after_the_data_is_a_counted_possible_duplicate(
    herald: Herald, smtp_server: SmtpTestServer
):
    smtp_server.stall("end_of_data", seconds=3)  # stores the message, then goes quiet
    view = await herald.send_email(to="a@example.org", subject="hi", text="hello")
    await herald.drain()  # the retry is due at once (retry_initial_delay=0)

    stored = await herald.get(view.id)
    assert (stored.status, stored.attempts, stored.possible_duplicates) == ("sent", 2, 1)
    unknown = [e for e in stored.events if e.status == "retrying"]
    assert "may have accepted" in (unknown[0].detail or "")
    copies = smtp_server.message_id_counts()
    assert sum(copies.values()) == 2
    assert len(copies) == 1, "both copies carry the same Message-ID"


async def test_failover_to_a_second_smtp_server(
    database_url: str, smtp_server_factory: SmtpServerFactory
):
    backup = smtp_server_factory()
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    primary = f"smtp://127.0.0.1:{dead_port}?tls=none&from=shop%40example.org&name=primary"
    urls = f"{primary},{smtp_url(backup, name='backup')}"
    async with Herald(database_url, migrate=True, email=urls, poll_interval=0.05) as herald:
        view = await herald.send_email(to="a@example.org", subject="hi", text="hello")
        await herald.drain()
        stored = await herald.get(view.id)
    assert (stored.status, stored.provider) == ("sent", "backup")
    assert backup.message_count == 1
    failover = [e for e in stored.events if e.provider == "primary"]
    assert failover
    assert "failing over to backup" in (failover[0].detail or "")


async def test_smtp_auth_and_starttls_from_the_url(
    database_url: str, smtp_server_factory: SmtpServerFactory, smtp_ca_file: Any
):
    server = smtp_server_factory(tls="starttls", username="mailer", password="s3cret")
    url = (
        f"smtp://mailer:s3cret@localhost:{server.port}?tls=starttls"
        f"&from=shop%40example.org&ca_file={smtp_ca_file}"
    )
    async with Herald(database_url, migrate=True, email=url, poll_interval=0.05) as herald:
        view = await herald.send_email(to="a@example.org", subject="hi", text="hello")
        await herald.drain()
        stored = await herald.get(view.id)
    assert stored.status == "sent"
    (received,) = server.wait_for_messages(1)
    assert received.authenticated
    assert received.tls
