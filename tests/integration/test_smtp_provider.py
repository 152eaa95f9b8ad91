"""The SMTP provider against a real SMTP server (aiosmtpd, tests/integration/smtp_server.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from urllib.parse import quote, urlencode

import pytest

from herald.domain.channels import Channel
from herald.domain.errors import PermanentError, TransientError, UnknownOutcome
from herald.domain.message import Address, Delivery, Email
from herald.providers.base import ProviderURL
from herald.providers.smtp import SmtpProvider
from tests.integration.conftest import SmtpServerFactory
from tests.integration.smtp_server import SmtpTestServer, Stage

SENDER = "Herald <noreply@example.org>"
_counter = iter(range(1_000_000))

MakeProvider = Callable[..., SmtpProvider]


def delivery(
    to: tuple[str, ...] = ("alice@example.org",),
    *,
    cc: tuple[str, ...] = (),
    bcc: tuple[str, ...] = (),
    text: str = "Hello from Herald.\n",
    subject: str = "Your order shipped",
) -> Delivery:
    n = next(_counter)
    email = Email(
        message_id=f"msg-{n}@herald.test",
        date=time.time(),
        subject=subject,
        to=tuple(Address("", a) for a in to),
        cc=tuple(Address("", a) for a in cc),
        bcc=tuple(Address("", a) for a in bcc),
        text=text,
    )
    return Delivery(notification_id=f"n-{n}", channel=Channel.EMAIL, attempt=1, content=email)


@pytest.fixture
async def make_provider(smtp_ca_file: Path) -> AsyncIterator[MakeProvider]:
    """``make_provider(server_or_port, user=None, password=None, **options)``; closed after."""
    providers: list[SmtpProvider] = []

    def make(
        target: SmtpTestServer | int,
        *,
        user: str | None = None,
        password: str | None = None,
        **options: object,
    ) -> SmtpProvider:
        port = target.port if isinstance(target, SmtpTestServer) else target
        query: dict[str, object] = {
            "tls": target.tls if isinstance(target, SmtpTestServer) else "none",
            "from": SENDER,
            "timeout": 2,
            "helo": "client.herald.test",
        }
        if query["tls"] != "none":
            query["ca_file"] = str(smtp_ca_file)
        query.update(options)
        query = {k: v for k, v in query.items() if v is not None}
        userinfo = f"{quote(user, safe='')}:{quote(password or '', safe='')}@" if user else ""
        url = f"smtp://{userinfo}127.0.0.1:{port}?{urlencode(query)}"
        provider = SmtpProvider.from_url(ProviderURL.parse(url), name="smtp")
        providers.append(provider)
        return provider

    yield make
    for provider in providers:
        await provider.aclose()


async def eventually(condition: Callable[[], bool]) -> None:
    """Wait (up to 3 s) for something the server thread or a background task will do."""
    for _ in range(150):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met within 3 s")


# --- the message that arrives ------------------------------------------------------------


async def test_message_arrives_with_headers_and_bcc_only_in_the_envelope(
    smtp_server: SmtpTestServer, make_provider: MakeProvider
):
    provider = make_provider(smtp_server)
    sent = delivery(("alice@example.org",), cc=("carol@example.org",), bcc=("bob@example.org",))

    receipt = await provider.send(sent)

    [message] = smtp_server.wait_for_messages(1)
    assert message.mail_from == "noreply@example.org"
    assert message.rcpt_tos == ("alice@example.org", "carol@example.org", "bob@example.org")
    parsed = message.parsed
    assert parsed["From"] == SENDER
    assert parsed["To"] == "alice@example.org"
    assert parsed["Cc"] == "carol@example.org"
    assert parsed["Bcc"] is None
    assert b"bob@example.org" not in message.data
    assert parsed["Subject"] == "Your order shipped"
    assert parsed["Message-ID"] == f"<{sent.content.message_id}>"
    assert parsed.get_content() == "Hello from Herald.\n"
    assert message.message_id == sent.content.message_id
    assert receipt.provider_message_id == sent.content.message_id
    assert receipt.detail == "250 2.0.0 OK"
    assert receipt.rejected == ()


async def test_lines_starting_with_a_dot_survive(
    smtp_server: SmtpTestServer, make_provider: MakeProvider
):
    text = ".leading dot\n..two dots\n.\nend\n"
    await make_provider(smtp_server).send(delivery(text=text))
    [message] = smtp_server.wait_for_messages(1)
    assert message.parsed.get_content() == text


async def test_envelope_from_and_queue_id(smtp_server: SmtpTestServer, make_provider: MakeProvider):
    smtp_server.queue_replies("data", (250, "2.0.0 Ok: queued as 4Xk2ABC123"))
    provider = make_provider(smtp_server, envelope_from="bounces@example.org")

    receipt = await provider.send(delivery())

    [message] = smtp_server.wait_for_messages(1)
    assert message.mail_from == "bounces@example.org"
    assert message.parsed["From"] == SENDER
    assert receipt.provider_message_id == "4Xk2ABC123"
    assert receipt.detail == "250 2.0.0 Ok: queued as 4Xk2ABC123"


# --- TLS and AUTH ------------------------------------------------------------------------


@pytest.mark.parametrize("tls", ["starttls", "tls"])
async def test_tls_verified_against_the_test_ca(
    tls: str, smtp_server_factory: SmtpServerFactory, make_provider: MakeProvider
):
    server = smtp_server_factory(tls=tls)
    await make_provider(server).send(delivery())
    [message] = server.wait_for_messages(1)
    assert message.tls


@pytest.mark.parametrize("tls", ["starttls", "tls"])
async def test_untrusted_certificate_is_transient(
    tls: str, smtp_server_factory: SmtpServerFactory, make_provider: MakeProvider
):
    server = smtp_server_factory(tls=tls)
    provider = make_provider(server, ca_file=None)  # verify=true against the system CAs only
    with pytest.raises(TransientError, match="certificate verify failed"):
        await provider.send(delivery())
    assert server.message_count == 0


async def test_verify_false_accepts_an_untrusted_certificate(
    smtp_server_factory: SmtpServerFactory, make_provider: MakeProvider
):
    server = smtp_server_factory(tls="starttls")
    await make_provider(server, ca_file=None, verify="false").send(delivery())
    assert server.wait_for_messages(1)[0].tls


async def test_auth_succeeds(smtp_server_factory: SmtpServerFactory, make_provider: MakeProvider):
    server = smtp_server_factory(tls="starttls", username="herald", password="s3cret:@/")
    await make_provider(server, user="herald", password="s3cret:@/").send(delivery())
    [message] = server.wait_for_messages(1)
    assert message.authenticated


async def test_auth_refused_is_permanent_and_not_the_recipients_fault(
    smtp_server_factory: SmtpServerFactory, make_provider: MakeProvider
):
    server = smtp_server_factory(tls="starttls", username="herald", password="right")
    provider = make_provider(server, user="herald", password="wrong")
    with pytest.raises(PermanentError) as raised:
        await provider.send(delivery())
    assert raised.value.code == "535 5.7.8"
    assert not raised.value.recipient_fault
    assert not raised.value.suppress
    assert "wrong" not in raised.value.message
    assert server.message_count == 0


# --- the pool ----------------------------------------------------------------------------


async def test_connections_are_reused_across_messages(
    smtp_server: SmtpTestServer, make_provider: MakeProvider
):
    provider = make_provider(smtp_server, pool_size=2)
    sent = [delivery() for _ in range(30)]

    await asyncio.gather(*(provider.send(d) for d in sent))

    messages = smtp_server.wait_for_messages(30)
    assert {m.message_id for m in messages} == {d.content.message_id for d in sent}
    assert smtp_server.duplicates() == {}
    assert smtp_server.connections_accepted <= 2


async def test_callers_wait_for_a_free_session(
    smtp_server: SmtpTestServer, make_provider: MakeProvider
):
    provider = make_provider(smtp_server, pool_size=1)
    await asyncio.gather(*(provider.send(delivery()) for _ in range(10)))
    assert smtp_server.message_count == 10
    assert smtp_server.connections_accepted == 1


async def test_session_recycled_after_max_messages(
    smtp_server: SmtpTestServer, make_provider: MakeProvider
):
    provider = make_provider(smtp_server, pool_size=1, max_messages=3)
    for _ in range(7):
        await provider.send(delivery())
    connections = [m.connection for m in smtp_server.wait_for_messages(7)]
    assert connections == [1, 1, 1, 2, 2, 2, 3]
    # A recycled session is QUIT, not left open.
    await eventually(lambda: smtp_server.open_connections == 1)


async def test_never_more_connections_than_pool_size_while_recycling(
    smtp_server: SmtpTestServer, make_provider: MakeProvider
):
    provider = make_provider(smtp_server, pool_size=2, max_messages=2)
    await asyncio.gather(*(provider.send(delivery()) for _ in range(20)))
    assert smtp_server.message_count == 20
    assert smtp_server.connections_accepted >= 10
    assert smtp_server.peak_open_connections <= 2


async def test_idle_session_closed_after_idle_timeout(
    smtp_server: SmtpTestServer, make_provider: MakeProvider
):
    provider = make_provider(smtp_server, idle_timeout=0.2)
    await provider.send(delivery())
    assert smtp_server.open_connections == 1
    await eventually(lambda: smtp_server.open_connections == 0)
    await provider.send(delivery())
    assert smtp_server.connections_accepted == 2


async def test_reconnects_after_the_server_drops_an_idle_connection(
    smtp_server: SmtpTestServer, make_provider: MakeProvider
):
    provider = make_provider(smtp_server)
    await provider.send(delivery())
    smtp_server.drop_connections()
    # No pause: the client may not have noticed yet, MAIL FROM finds out.
    await provider.send(delivery())
    assert smtp_server.message_count == 2
    assert smtp_server.connections_accepted == 2


async def test_cancelled_send_discards_its_session(
    smtp_server: SmtpTestServer, make_provider: MakeProvider
):
    provider = make_provider(smtp_server, pool_size=1)
    smtp_server.stall("rcpt", seconds=5)
    sending = asyncio.create_task(provider.send(delivery()))
    await eventually(lambda: smtp_server.open_connections == 1)
    await asyncio.sleep(0.05)
    sending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await sending

    await provider.send(delivery())
    assert smtp_server.message_count == 1
    assert smtp_server.connections_accepted == 2


async def test_dropped_mid_transaction_is_transient_then_reconnects(
    smtp_server: SmtpTestServer, make_provider: MakeProvider
):
    provider = make_provider(smtp_server)
    smtp_server.drop("rcpt")
    with pytest.raises(TransientError, match="during RCPT TO") as raised:
        await provider.send(delivery())
    assert not isinstance(raised.value, UnknownOutcome)

    await provider.send(delivery())
    assert smtp_server.message_count == 1
    assert smtp_server.connections_accepted == 2


async def test_aclose_quits_every_session(smtp_server: SmtpTestServer, make_provider: MakeProvider):
    provider = make_provider(smtp_server, pool_size=3)
    await asyncio.gather(*(provider.send(delivery()) for _ in range(6)))
    assert smtp_server.open_connections >= 1

    await provider.aclose()

    await eventually(lambda: smtp_server.open_connections == 0)
    with pytest.raises(TransientError, match="closed"):
        await provider.send(delivery())


# --- refusals ----------------------------------------------------------------------------


async def test_refused_recipients_are_recorded_and_the_rest_still_get_it(
    smtp_server: SmtpTestServer, make_provider: MakeProvider
):
    smtp_server.reject_recipient("gone@example.org", 550, "5.1.1 No such user")
    smtp_server.reject_recipient("busy@example.org", 450, "4.2.1 Mailbox busy")
    provider = make_provider(smtp_server)

    receipt = await provider.send(
        delivery(("alice@example.org", "gone@example.org"), cc=("busy@example.org",))
    )

    [message] = smtp_server.wait_for_messages(1)
    assert message.rcpt_tos == ("alice@example.org",)
    rejected = {r.address: r for r in receipt.rejected}
    assert set(rejected) == {"gone@example.org", "busy@example.org"}
    assert rejected["gone@example.org"].code == "550 5.1.1"
    assert rejected["gone@example.org"].suppress
    assert "No such user" in rejected["gone@example.org"].message
    assert rejected["busy@example.org"].code == "450 4.2.1"
    assert not rejected["busy@example.org"].suppress


async def test_single_recipient_refused_is_permanent_and_suppress_worthy(
    smtp_server: SmtpTestServer, make_provider: MakeProvider
):
    smtp_server.reject_recipient("gone@example.org", 550, "5.1.1 No such user")
    provider = make_provider(smtp_server)
    with pytest.raises(PermanentError) as raised:
        await provider.send(delivery(("gone@example.org",)))
    assert raised.value.suppress
    assert raised.value.recipient_fault
    assert raised.value.code == "550 5.1.1"
    # The transaction was reset: the same session carries the next message.
    await provider.send(delivery())
    assert smtp_server.message_count == 1
    assert smtp_server.connections_accepted == 1


async def test_every_recipient_refused_permanently(
    smtp_server: SmtpTestServer, make_provider: MakeProvider
):
    smtp_server.reject_recipient("a@example.org", 550, "5.1.1 No such user")
    smtp_server.reject_recipient("b@example.org", 553, "5.1.3 Bad address syntax")
    with pytest.raises(PermanentError) as raised:
        await make_provider(smtp_server).send(delivery(("a@example.org", "b@example.org")))
    assert "a@example.org" in raised.value.message
    assert "b@example.org" in raised.value.message
    assert not raised.value.suppress  # which address? the rejections say, per recipient
    assert smtp_server.message_count == 0


async def test_every_recipient_refused_with_one_4xx_is_transient(
    smtp_server: SmtpTestServer, make_provider: MakeProvider
):
    smtp_server.reject_recipient("a@example.org", 550, "5.1.1 No such user")
    smtp_server.reject_recipient("b@example.org", 451, "4.3.0 Try later")
    with pytest.raises(TransientError) as raised:
        await make_provider(smtp_server).send(delivery(("a@example.org", "b@example.org")))
    assert raised.value.code == "451 4.3.0"


async def test_policy_refusal_5_7_1_fails_over(
    smtp_server: SmtpTestServer, make_provider: MakeProvider
):
    smtp_server.reject_recipient("alice@example.org", 554, "5.7.1 Relaying denied")
    with pytest.raises(PermanentError) as raised:
        await make_provider(smtp_server).send(delivery())
    assert not raised.value.recipient_fault
    assert not raised.value.suppress
    assert raised.value.code == "554 5.7.1"


async def test_4xx_after_data_is_transient_and_the_retry_succeeds(
    smtp_server: SmtpTestServer, make_provider: MakeProvider
):
    smtp_server.queue_replies("data", (451, "4.3.0 Local error, try again"))
    provider = make_provider(smtp_server)
    sent = delivery()

    with pytest.raises(TransientError) as raised:
        await provider.send(sent)
    assert not isinstance(raised.value, UnknownOutcome)
    assert raised.value.code == "451 4.3.0"
    assert smtp_server.message_count == 0

    await provider.send(sent)
    assert [m.message_id for m in smtp_server.messages] == [sent.content.message_id]
    assert smtp_server.connections_accepted == 1


async def test_5xx_after_data_is_permanent(
    smtp_server: SmtpTestServer, make_provider: MakeProvider
):
    smtp_server.queue_replies("data", (554, "5.6.0 Message content rejected"))
    with pytest.raises(PermanentError) as raised:
        await make_provider(smtp_server).send(delivery())
    assert raised.value.code == "554 5.6.0"


async def test_mail_from_refused_is_not_the_recipients_fault(
    smtp_server: SmtpTestServer, make_provider: MakeProvider
):
    smtp_server.queue_replies("mail", (553, "5.1.1 Sender address rejected"))
    provider = make_provider(smtp_server)
    with pytest.raises(PermanentError) as raised:
        await provider.send(delivery())
    assert not raised.value.recipient_fault
    assert not raised.value.suppress  # 5.1.1 about our sender, not the recipient
    await provider.send(delivery())
    assert smtp_server.message_count == 1
    assert smtp_server.connections_accepted == 1


async def test_421_is_transient_and_discards_the_session(
    smtp_server: SmtpTestServer, make_provider: MakeProvider
):
    smtp_server.queue_replies("rcpt", (421, "4.3.2 Service shutting down"))
    provider = make_provider(smtp_server)
    with pytest.raises(TransientError, match="421"):
        await provider.send(delivery())
    await eventually(lambda: smtp_server.open_connections == 0)
    await provider.send(delivery())
    assert smtp_server.connections_accepted == 2


async def test_421_at_mail_on_a_reused_session_retries_on_a_fresh_one(
    smtp_server: SmtpTestServer, make_provider: MakeProvider
):
    provider = make_provider(smtp_server)
    await provider.send(delivery())
    smtp_server.queue_replies("mail", (421, "4.7.0 Too many messages on this connection"))
    await provider.send(delivery())
    assert smtp_server.message_count == 2
    assert smtp_server.connections_accepted == 2


# --- timeouts and the unknown outcome ----------------------------------------------------


async def test_timeout_after_the_final_dot_is_an_unknown_outcome(
    smtp_server: SmtpTestServer, make_provider: MakeProvider
):
    smtp_server.stall("end_of_data", seconds=5)
    provider = make_provider(smtp_server, timeout=0.3)
    sent = delivery()

    with pytest.raises(UnknownOutcome):
        await provider.send(sent)

    # The server did store it: a retry (same Message-ID) is a duplicate to count.
    assert [m.message_id for m in smtp_server.messages] == [sent.content.message_id]
    await provider.send(sent)
    assert smtp_server.duplicates() == {sent.content.message_id: 2}


async def test_disconnect_after_the_final_dot_is_an_unknown_outcome(
    smtp_server: SmtpTestServer, make_provider: MakeProvider
):
    smtp_server.drop("end_of_data")
    with pytest.raises(UnknownOutcome):
        await make_provider(smtp_server).send(delivery())
    assert smtp_server.message_count == 1


@pytest.mark.parametrize("stage", ["mail", "rcpt", "data"])
async def test_timeout_before_the_body_is_transient(
    stage: Stage, smtp_server: SmtpTestServer, make_provider: MakeProvider
):
    smtp_server.stall(stage, seconds=5)
    provider = make_provider(smtp_server, timeout=0.3)
    with pytest.raises(TransientError, match="timed out") as raised:
        await provider.send(delivery())
    assert not isinstance(raised.value, UnknownOutcome)
    assert smtp_server.message_count == 0


async def test_nothing_listening_is_transient(unused_tcp_port: int, make_provider: MakeProvider):
    provider = make_provider(unused_tcp_port)
    with pytest.raises(TransientError):
        await provider.send(delivery())


# --- readiness ---------------------------------------------------------------------------


async def test_check_passes_against_a_live_server(
    smtp_server: SmtpTestServer, make_provider: MakeProvider
):
    provider = make_provider(smtp_server)
    await provider.check()
    await provider.send(delivery())
    await provider.check()
    assert smtp_server.connections_accepted == 1


async def test_check_reconnects_after_the_server_dropped_the_session(
    smtp_server: SmtpTestServer, make_provider: MakeProvider
):
    provider = make_provider(smtp_server)
    await provider.check()
    smtp_server.drop_connections()
    await provider.check()
    assert smtp_server.connections_accepted == 2


async def test_check_fails_when_nothing_listens(unused_tcp_port: int, make_provider: MakeProvider):
    provider = make_provider(unused_tcp_port)
    with pytest.raises(TransientError, match=f"127.0.0.1:{unused_tcp_port}"):
        await provider.check()


async def test_check_fails_on_bad_credentials(
    smtp_server_factory: SmtpServerFactory, make_provider: MakeProvider
):
    server = smtp_server_factory(tls="starttls", username="herald", password="right")
    provider = make_provider(server, user="herald", password="wrong")
    with pytest.raises(TransientError, match="535"):
        await provider.check()


# --- pipelining (RFC 2920) and the replies it can bring ------------------------------------


def _command_reads(server: SmtpTestServer) -> list[bytes]:
    """The reads that carried transaction commands (not EHLO/QUIT, not the body)."""
    return [r for r in server.reads() if r.startswith((b"MAIL", b"RCPT", b"DATA", b"RSET"))]


async def test_pipelined_commands_go_out_in_one_write(
    smtp_server_factory: SmtpServerFactory, make_provider: MakeProvider
):
    server = smtp_server_factory(pipelining=True)
    await make_provider(server).send(delivery(("alice@example.org", "bob@example.org")))

    [message] = server.wait_for_messages(1)
    assert message.rcpt_tos == ("alice@example.org", "bob@example.org")
    [group] = _command_reads(server)
    assert group.startswith(b"MAIL FROM:<noreply@example.org> SIZE=")
    assert group.endswith(
        b"\r\nRCPT TO:<alice@example.org>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n"
    )


async def test_without_pipelining_commands_go_one_at_a_time(
    smtp_server_factory: SmtpServerFactory, make_provider: MakeProvider
):
    server = smtp_server_factory(pipelining=False)
    await make_provider(server).send(delivery(("alice@example.org", "bob@example.org")))

    server.wait_for_messages(1)
    reads = _command_reads(server)
    assert [r.split(b":")[0] for r in reads] == [b"MAIL FROM", b"RCPT TO", b"RCPT TO", b"DATA\r\n"]
    assert all(r.count(b"\r\n") == 1 for r in reads)


async def test_pipelining_false_sends_one_command_at_a_time_to_a_server_offering_it(
    smtp_server_factory: SmtpServerFactory, make_provider: MakeProvider
):
    server = smtp_server_factory(pipelining=True)
    provider = make_provider(server, pipelining="false", pool_size=1)
    await provider.send(delivery(("alice@example.org", "bob@example.org")))
    server.clear()
    sent = [delivery(), delivery()]
    results = await asyncio.gather(*(provider.send(d) for d in sent), return_exceptions=True)

    assert all(not isinstance(r, BaseException) for r in results), results
    assert [m.message_id for m in server.messages] == [d.content.message_id for d in sent]
    reads = _command_reads(server)
    assert [r.split(b":")[0] for r in reads] == [b"MAIL FROM", b"RCPT TO", b"DATA\r\n"] * 2
    assert all(r.count(b"\r\n") == 1 for r in reads)
    assert not any(b".\r\nMAIL FROM:" in r for r in server.reads())  # no body + next group
    assert server.connections_accepted == 0  # since clear(): the same session


@pytest.mark.parametrize("tls", ["starttls", "tls"])
async def test_pipelining_over_tls_and_close_notify_on_aclose(
    tls: str, smtp_server_factory: SmtpServerFactory, make_provider: MakeProvider
):
    server = smtp_server_factory(tls=tls, username="herald", password="pw")
    provider = make_provider(server, user="herald", password="pw", pool_size=2)
    server.reject_recipient("gone@example.org", 550, "5.1.1 No such user")

    receipts = await asyncio.gather(
        *(provider.send(delivery(("alice@example.org", "gone@example.org"))) for _ in range(6))
    )

    assert [[r.address for r in receipt.rejected] for receipt in receipts] == [
        ["gone@example.org"]
    ] * 6
    messages = server.wait_for_messages(6)
    assert all(m.tls and m.authenticated for m in messages)
    # One group per message; those after the first on a session follow the previous body.
    assert sum(r.count(b"MAIL FROM:") for r in server.reads()) == 6
    await provider.aclose()
    await eventually(lambda: server.open_connections == 0)


async def test_many_recipients_refusals_are_matched_to_the_right_address(
    smtp_server: SmtpTestServer, make_provider: MakeProvider
):
    to = tuple(f"user{i}@example.org" for i in range(30))
    for address in to[::3]:
        smtp_server.reject_recipient(address, 550, f"5.1.1 <{address}> No such user")
    smtp_server.reject_recipient(to[4], 452, "4.5.3 Too many recipients")

    receipt = await make_provider(smtp_server).send(delivery(to))

    refused = {r.address: r for r in receipt.rejected}
    assert list(refused) == sorted({*to[::3], to[4]}, key=to.index)
    assert all(address in refused[address].message for address in to[::3])
    assert refused[to[4]].code == "452 4.5.3"
    [message] = smtp_server.wait_for_messages(1)
    assert message.rcpt_tos == tuple(a for a in to if a not in refused)


@pytest.mark.parametrize(
    "end", [(554, "5.5.1 Error: no valid recipients"), (250, "2.0.0 Ok: nothing to deliver")]
)
async def test_every_recipient_refused_but_data_accepted_ends_with_a_lone_dot(
    end: tuple[int, str], smtp_server: SmtpTestServer, make_provider: MakeProvider
):
    smtp_server.answer_data_without_recipients(end)
    smtp_server.reject_recipient("a@example.org", 550, "5.1.1 No such user")
    smtp_server.reject_recipient("b@example.org", 550, "5.1.1 No such user")
    provider = make_provider(smtp_server)

    with pytest.raises(PermanentError) as raised:
        await provider.send(delivery(("a@example.org", "b@example.org")))

    assert raised.value.code == "550 5.1.1"
    assert "a@example.org" in raised.value.message
    assert "b@example.org" in raised.value.message
    # Pipelined, DATA went out with the RCPTs and got a 354: the client ended it with a lone
    # dot (RFC 2920 §3.1). One at a time, DATA is never sent when no recipient was accepted.
    assert smtp_server.empty_data == ([b""] if smtp_server.pipelining else [])
    assert smtp_server.message_count == 0
    # The transaction is over; the session carries the next message.
    await provider.send(delivery())
    assert smtp_server.message_count == 1
    assert smtp_server.connections_accepted == 1


async def test_refused_mail_from_is_reset_and_the_session_reused(
    smtp_server: SmtpTestServer, make_provider: MakeProvider
):
    # Pipelined, RCPT and DATA are refused too (503, bad sequence): those replies must be
    # read before RSET, or they would be taken for the next transaction's.
    smtp_server.queue_replies("mail", (451, "4.3.0 Sender check failed, try later"))
    provider = make_provider(smtp_server)

    with pytest.raises(TransientError) as raised:
        await provider.send(delivery())
    assert raised.value.code == "451 4.3.0"
    assert "MAIL FROM refused" in raised.value.message

    await provider.send(delivery())
    assert smtp_server.message_count == 1
    assert smtp_server.connections_accepted == 1


@pytest.mark.parametrize("stage", ["mail", "rcpt"])
async def test_421_then_close_mid_transaction_is_transient_with_the_421(
    stage: Stage, smtp_server: SmtpTestServer, make_provider: MakeProvider
):
    smtp_server.shut_down(stage, (421, "4.3.2 Service shutting down"))
    provider = make_provider(smtp_server)
    with pytest.raises(TransientError) as raised:
        await provider.send(delivery())
    assert not isinstance(raised.value, UnknownOutcome)
    assert raised.value.code == "421 4.3.2"

    await provider.send(delivery())
    assert smtp_server.message_count == 1
    assert smtp_server.connections_accepted == 2


async def test_421_then_close_at_mail_on_a_reused_session_retries_on_a_fresh_one(
    smtp_server: SmtpTestServer, make_provider: MakeProvider
):
    provider = make_provider(smtp_server)
    await provider.send(delivery())
    smtp_server.shut_down("mail", (421, "4.7.0 Too many messages on this connection"))
    await provider.send(delivery())
    assert smtp_server.message_count == 2
    assert smtp_server.connections_accepted == 2


@pytest.mark.parametrize("close", [True, False])
async def test_a_reply_nobody_asked_for_retires_the_session(
    close: bool, smtp_server: SmtpTestServer, make_provider: MakeProvider
):
    provider = make_provider(smtp_server)
    await provider.send(delivery())
    if close:  # what Postfix does when an idle connection times out
        smtp_server.drop_connections(saying="421 4.4.2 localhost Error: timeout exceeded")
    else:  # a confused server: pairing this with MAIL would misread every reply after
        smtp_server.say_unasked("250 2.0.0 Ok")
    await asyncio.sleep(0.05)

    receipt = await provider.send(delivery())

    assert receipt.detail == "250 2.0.0 OK"
    assert smtp_server.message_count == 2
    assert smtp_server.connections_accepted == 2


# --- pipelining across transactions (RFC 2920 §3.1) -----------------------------------------


@pytest.fixture
def piped_server(smtp_server_factory: SmtpServerFactory) -> SmtpTestServer:
    """A server offering PIPELINING: the only kind a message's commands may follow a body to."""
    return smtp_server_factory(pipelining=True)


async def _two_on_one_session(
    server: SmtpTestServer, provider: SmtpProvider
) -> tuple[list[Delivery], list[object]]:
    """Send two messages at once through a one-session pool: the second's MAIL, RCPT and
    DATA follow the first's body, before its final reply."""
    await provider.send(delivery())  # connect outside
    server.clear()
    sent = [delivery(), delivery()]
    results = await asyncio.gather(*(provider.send(d) for d in sent), return_exceptions=True)
    return sent, results


def _ids(server: SmtpTestServer) -> list[str | None]:
    return [m.message_id for m in server.messages]


async def test_next_message_commands_follow_the_body_in_one_write(
    piped_server: SmtpTestServer, make_provider: MakeProvider
):
    provider = make_provider(piped_server, pool_size=1)
    sent, results = await _two_on_one_session(piped_server, provider)

    assert all(not isinstance(r, BaseException) for r in results)
    assert _ids(piped_server) == [d.content.message_id for d in sent]
    assert any(b".\r\nMAIL FROM:" in r for r in piped_server.reads())  # body 1 + group 2
    assert piped_server.connections_accepted == 0  # since clear(): the same session


@pytest.mark.parametrize(
    ("reply", "error"),
    [((554, "5.6.0 Message content rejected"), PermanentError), ((451, "4.3.0 Later"), None)],
)
async def test_refused_first_message_leaves_the_pipelined_second_untouched(
    reply: tuple[int, str],
    error: type[Exception] | None,
    piped_server: SmtpTestServer,
    make_provider: MakeProvider,
):
    provider = make_provider(piped_server, pool_size=1)
    await provider.send(delivery())
    piped_server.clear()
    piped_server.queue_replies("data", reply)  # the first message's final reply
    sent = [delivery(), delivery()]
    first, second = await asyncio.gather(*(provider.send(d) for d in sent), return_exceptions=True)

    assert isinstance(first, error or TransientError)
    assert not isinstance(first, UnknownOutcome)
    assert str(reply[0]) in str(first)
    assert not isinstance(second, BaseException)
    assert _ids(piped_server) == [sent[1].content.message_id]
    assert any(b".\r\nMAIL FROM:" in r for r in piped_server.reads())
    assert piped_server.connections_accepted == 0  # since clear(): the same session


async def test_421_to_the_first_message_retries_the_pipelined_second_on_a_fresh_session(
    piped_server: SmtpTestServer, make_provider: MakeProvider
):
    provider = make_provider(piped_server, pool_size=1)
    await provider.send(delivery())
    piped_server.clear()
    piped_server.shut_down("end_of_data", (421, "4.3.2 Service shutting down"))
    sent = [delivery(), delivery()]
    first, second = await asyncio.gather(*(provider.send(d) for d in sent), return_exceptions=True)

    assert isinstance(first, TransientError)
    assert not isinstance(first, UnknownOutcome)
    assert "421" in str(first)
    assert not isinstance(second, BaseException)  # not a failure counted against it
    # The server had stored the first before its 421; the second arrives once, on a new
    # session.
    assert _ids(piped_server) == [d.content.message_id for d in sent]
    assert piped_server.connections_accepted == 1  # since clear(): one new, for the second


@pytest.mark.parametrize("how", ["drop", "stall"])
async def test_lost_after_the_first_body_is_unknown_for_it_and_a_retry_for_the_second(
    how: str, piped_server: SmtpTestServer, make_provider: MakeProvider
):
    provider = make_provider(piped_server, pool_size=1, timeout=0.3)
    await provider.send(delivery())
    piped_server.clear()
    if how == "drop":
        piped_server.drop("end_of_data")
    else:
        piped_server.stall("end_of_data", seconds=3)
    sent = [delivery(), delivery()]
    first, second = await asyncio.gather(*(provider.send(d) for d in sent), return_exceptions=True)

    assert isinstance(first, UnknownOutcome)
    assert not isinstance(second, BaseException)
    assert _ids(piped_server) == [d.content.message_id for d in sent]
    assert piped_server.connections_accepted == 1  # since clear(): one new, for the second
    assert piped_server.duplicates() == {}


async def test_cancelled_after_its_body_leaves_the_session_to_the_next_message(
    piped_server: SmtpTestServer, make_provider: MakeProvider
):
    piped_server.stall("end_of_data", seconds=0.3)
    provider = make_provider(piped_server, pool_size=1)
    first = asyncio.ensure_future(provider.send(delivery()))
    second_delivery = delivery()
    second = asyncio.ensure_future(provider.send(second_delivery))
    await eventually(lambda: piped_server.message_count == 1)
    first.cancel()  # waiting for its final reply, the session already lent on
    receipt = await second
    assert receipt.provider_message_id
    assert _ids(piped_server)[-1] == second_delivery.content.message_id
    assert piped_server.connections_accepted == 1
