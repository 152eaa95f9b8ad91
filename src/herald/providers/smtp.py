"""SMTP delivery through a small pool of persistent sessions.

``smtp://user:pass@host:port?tls=starttls&from=Name%20%3Cnoreply@example.org%3E`` — see
``docs/providers.md`` for every option. aiosmtplib opens each session (TLS, EHLO, AUTH);
transactions then run on Herald's own protocol (:mod:`herald.providers.smtp_wire`): MAIL,
RCPT per recipient and DATA in one write when the server offers PIPELINING (RFC 2920) and
``pipelining=false`` does not turn it off, one at a time otherwise, then the message; with
PIPELINING the next transaction's commands follow that message in the same write, before its
final reply (RFC 2920 §3.1). Every reply is classified: per-recipient refusals become
:class:`RecipientRejection`\\ s, a lost reply to the end of DATA becomes
:class:`UnknownOutcome`, everything else a transient or permanent error.
"""

from __future__ import annotations

import asyncio
import functools
import re
import socket
import ssl
from dataclasses import dataclass
from email.utils import getaddresses
from pathlib import Path
from typing import Final, Literal, cast

import aiosmtplib
import structlog
from aiosmtplib.protocol import SMTPProtocol

from herald.domain.channels import Channel
from herald.domain.errors import (
    ConfigurationError,
    DeliveryError,
    PermanentError,
    TransientError,
    UnknownOutcome,
)
from herald.domain.message import Address, Delivery, Email, Receipt, RecipientRejection
from herald.domain.mime import build_email_bytes
from herald.domain.smtp_replies import classify_smtp_reply, queue_id_from_reply
from herald.providers.base import ProviderURL, content_of, tls_context
from herald.providers.smtp_pool import SessionPool, SmtpSession
from herald.providers.smtp_wire import SessionBroken, SmtpReply, SmtpWire

log = structlog.get_logger(__name__)

TlsMode = Literal["starttls", "tls", "none"]

_TLS_MODES: Final[dict[str, TlsMode]] = {"starttls": "starttls", "tls": "tls", "none": "none"}
_DEFAULT_PORTS: Final[dict[TlsMode, int]] = {"starttls": 587, "tls": 465, "none": 25}
_OPTIONS: Final = frozenset(
    {
        "tls",
        "from",
        "envelope_from",
        "pool_size",
        "max_messages",
        "idle_timeout",
        "timeout",
        "verify",
        "ca_file",
        "helo",
        "pipelining",
    }
)
_MAILBOX = re.compile(r"^[^\s<>@,;\"]+@[^\s<>@,;\"]+$")
_REPLY_OK: Final = 250
_RCPT_ACCEPTED: Final = frozenset({250, 251})
_REPLY_START_INPUT: Final = 354
_REPLY_421: Final = 421  # service closing: the session is gone
_UNSAFE_ADDRESS = re.compile(r"[\x00-\x20<>\x7f]")


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    """Everything an SMTP provider URL says, validated."""

    host: str
    port: int
    tls: TlsMode
    sender: Address
    envelope_from: str | None = None
    username: str | None = None
    password: str | None = None
    pool_size: int = 4
    max_messages: int = 100
    idle_timeout: float = 30.0
    timeout: float = 30.0
    verify: bool = True
    ca_file: str | None = None
    helo: str | None = None
    #: False: one command at a time even when the server offers PIPELINING (for relays
    #: that advertise it and mishandle it).
    pipelining: bool = True

    @classmethod
    def from_url(cls, url: ProviderURL) -> SmtpSettings:
        """Parse and check an ``smtp://`` (or ``smtps://``) URL; no I/O."""
        where = url.redacted
        if url.scheme not in {"smtp", "smtps"}:
            raise ConfigurationError(f"{where}: not an smtp:// URL")
        if not url.host:
            raise ConfigurationError(f"{where}: no SMTP host")
        raw_tls = url.option("tls") or ("tls" if url.scheme == "smtps" else "starttls")
        tls = _TLS_MODES.get(raw_tls.lower())
        if tls is None:
            raise ConfigurationError(f"{where}: tls={raw_tls!r} must be starttls, tls or none")
        raw_from = url.option("from")
        if not raw_from:
            raise ConfigurationError(
                f"{where}: option from= (the default sender, e.g. from=noreply@example.org) "
                "is required"
            )
        sender = _parse_sender(raw_from, where)
        envelope_from = url.option("envelope_from") or None
        if envelope_from is not None and not _MAILBOX.match(envelope_from):
            raise ConfigurationError(f"{where}: envelope_from={envelope_from!r} is not an address")
        if url.password is not None and not url.username:
            raise ConfigurationError(f"{where}: a password without a user name")
        helo = url.option("helo") or None
        if helo is not None and (not helo.isascii() or any(c.isspace() for c in helo)):
            raise ConfigurationError(f"{where}: helo={helo!r} is not a host name")
        ca_file = url.option("ca_file") or None
        if ca_file is not None and not Path(ca_file).is_file():
            raise ConfigurationError(f"{where}: ca_file={ca_file!r} is not a readable file")
        url.warn_unknown(_OPTIONS)
        settings = cls(
            host=url.host,
            port=url.port or _DEFAULT_PORTS[tls],
            tls=tls,
            sender=sender,
            envelope_from=envelope_from,
            username=url.username or None,
            password=url.password,
            pool_size=url.integer("pool_size", 4),
            max_messages=url.integer("max_messages", 100),
            idle_timeout=url.number("idle_timeout", 30.0),
            timeout=url.number("timeout", 30.0),
            verify=url.flag("verify", True),
            ca_file=ca_file,
            helo=helo,
            pipelining=url.flag("pipelining", True),
        )
        for key, value in (
            ("pool_size", settings.pool_size),
            ("max_messages", settings.max_messages),
            ("idle_timeout", settings.idle_timeout),
            ("timeout", settings.timeout),
        ):
            if value <= 0:
                raise ConfigurationError(f"{where}: {key}={value} must be positive")
        return settings


def _parse_sender(value: str, where: str) -> Address:
    parsed = getaddresses([value])
    if len(parsed) != 1 or not _MAILBOX.match(parsed[0][1]):
        raise ConfigurationError(
            f"{where}: from={value!r} is not one address (e.g. 'Name <noreply@example.org>')"
        )
    name, addr = parsed[0]
    return Address(name, addr)


class _StaleSession(Exception):
    """A reused session turned out dead before anything was committed: try a fresh one."""


class _Lease:
    """A session borrowed from the pool for one transaction, given back at most once: with
    PIPELINING, as soon as the message is written (the next transaction's commands follow
    it while its final reply is on the way), else when the transaction is over."""

    __slots__ = ("held", "pool", "session")

    def __init__(self, pool: SessionPool, session: SmtpSession) -> None:
        self.pool = pool
        self.session = session
        self.held = True

    def release(self) -> None:
        if self.held:
            self.held = False
            self.pool.release(self.session)


class SmtpProvider:
    """Delivers email over SMTP (RFC 5321) with a pool of persistent sessions."""

    name: str
    channel: Channel

    def __init__(self, settings: SmtpSettings, *, name: str = "smtp", url: str = "") -> None:
        self.name = name
        self.channel = Channel.EMAIL
        self.settings = settings
        self._where = url or f"smtp://{settings.host}:{settings.port}"
        self._sender = settings.sender
        self._envelope_from = settings.envelope_from
        self._helo = settings.helo
        self._tls_context = _tls_context(settings) if settings.tls != "none" else None
        self._pool = SessionPool(
            self._connect,
            size=settings.pool_size,
            max_messages=settings.max_messages,
            idle_timeout=settings.idle_timeout,
            command_timeout=settings.timeout,
        )

    @classmethod
    def from_url(cls, url: ProviderURL, *, name: str) -> SmtpProvider:
        """Build from ``smtp://…``; raises ConfigurationError naming what is wrong."""
        return cls(SmtpSettings.from_url(url), name=name, url=url.redacted)

    def __repr__(self) -> str:
        return f"<SmtpProvider {self.name} {self._where}>"

    @property
    def sender(self) -> Address:
        """The default From; its domain also names this provider's Message-IDs."""
        return self._sender

    async def send(self, delivery: Delivery) -> Receipt:
        """One SMTP transaction; docs/providers.md tables how each failure is classified."""
        if self._pool.closed:
            raise TransientError(f"{self.name}: provider is closed")
        content = content_of(delivery, Email, self.name)
        sender = content.sender or self._sender
        body = _wire_body(build_email_bytes(content, sender))
        mail_from = self._envelope_from or sender.addr
        recipients = content.envelope_recipients
        if not recipients:
            raise PermanentError(f"{self.name}: the message has no recipients")
        # A session that sat idle may have been closed by the server an instant ago; that
        # shows only at MAIL, before anything is committed, so retry on a fresh one.
        for _ in range(self.settings.pool_size + 1):
            session = await self._pool.acquire()
            lease = _Lease(self._pool, session)
            try:
                receipt = await self._transact(
                    lease, body, mail_from, recipients, content.message_id
                )
            except _StaleSession:
                continue
            except DeliveryError:
                raise
            except BaseException:
                if lease.held:  # cancelled or a bug: the session state is unknown
                    session.wire.close()
                raise
            finally:
                lease.release()
            return receipt
        raise TransientError(f"{self.name}: SMTP connections keep closing before MAIL FROM")

    async def check(self) -> None:
        """Borrow a session and NOOP; TransientError says what failed."""
        if self._pool.closed:
            raise TransientError(f"{self.name}: provider is closed")
        for _ in range(self.settings.pool_size + 1):
            try:
                session = await self._pool.acquire()
            except DeliveryError as exc:
                raise TransientError(f"{self._where}: {exc.message}", code=exc.code) from exc
            reused = session.reused
            wire = session.wire
            failure: str | None = "cancelled"  # then its reply may still come: drop the session
            try:
                wire.write(b"NOOP\r\n", 1)
                [reply] = await wire.read(1)
                failure = None if reply.code == _REPLY_OK else str(reply)
            except SessionBroken as exc:
                failure = exc.reason
            finally:
                if failure is not None:
                    wire.close()  # before release() could hand it to a sender
                self._pool.release(session)
            if failure is None:
                return
            if not reused:
                raise TransientError(f"{self._where}: NOOP failed: {failure}")
        raise TransientError(f"{self._where}: SMTP connections keep closing")

    async def aclose(self) -> None:
        """QUIT and close every pooled session."""
        await self._pool.aclose()

    async def _connect(self) -> SmtpSession:
        """Connect, TLS, EHLO and AUTH with aiosmtplib, then drive the session ourselves."""
        settings = self.settings
        if self._helo is None:
            self._helo = await asyncio.to_thread(socket.getfqdn)
        client = aiosmtplib.SMTP(
            hostname=settings.host,
            port=settings.port,
            local_hostname=self._helo,
            timeout=settings.timeout,
            use_tls=settings.tls == "tls",
            start_tls=settings.tls == "starttls",
            tls_context=self._tls_context,
        )
        try:
            await client.connect()
            if client.is_ehlo_or_helo_needed:
                try:
                    await client.ehlo()
                except aiosmtplib.SMTPHeloError:
                    await client.helo()
            if settings.username is not None:
                await client.login(settings.username, settings.password or "")
            if not client.is_connected:
                raise aiosmtplib.SMTPServerDisconnected("Connection lost")
        except (aiosmtplib.SMTPException, OSError) as exc:
            protocol = client.protocol
            client.close()
            await _wait_closed([protocol], settings.timeout)
            error = self._connect_error(exc)
            log.warning(
                "smtp.connect_failed", provider=self.name, url=self._where, error=str(error)
            )
            raise error from exc
        # No await since the is_connected check: nothing can have happened to the transport.
        # aiosmtplib is done with it; its protocol cannot pipeline (replies that arrive
        # together are dropped), so transactions go through Herald's own (smtp_wire).
        # (uvloop's transports have asyncio.Transport's methods but do not subclass it.)
        transport = cast(asyncio.Transport, client.transport)
        wire = SmtpWire.take_over(transport, timeout=settings.timeout)
        return SmtpSession(wire, dict(client.esmtp_extensions), pipelining=settings.pipelining)

    def _connect_error(self, exc: Exception) -> DeliveryError:
        """Failures before MAIL FROM are never the recipient's fault."""
        if isinstance(exc, aiosmtplib.SMTPResponseException):
            error = classify_smtp_reply(exc.code, exc.message)
            if isinstance(error, PermanentError):  # e.g. 535 bad credentials, 554 no service
                return PermanentError(
                    f"{self._where}: {error.message}", code=error.code, recipient_fault=False
                )
            return TransientError(f"{self._where}: {error.message}", code=error.code)
        if isinstance(exc, ssl.SSLError):
            return TransientError(f"{self._where}: TLS failed: {exc}")
        return TransientError(f"{self._where}: {exc}")

    async def _transact(
        self,
        lease: _Lease,
        body: bytes,
        mail_from: str,
        recipients: list[str],
        message_id: str,
    ) -> Receipt:
        session = lease.session
        wire = session.wire
        reused = session.reused
        mail, encoding = self._mail_command(session, mail_from, recipients, body)
        refused: list[tuple[str, DeliveryError]] = []
        commands = [mail]
        to: list[str] = []  # the recipients RCPT TO is sent for
        for recipient in recipients:
            try:
                commands.append(b"RCPT " + _path(b"TO:", recipient, encoding) + b"\r\n")
            except ValueError as exc:
                refused.append((recipient, PermanentError(str(exc))))
                continue
            to.append(recipient)
        if not to:
            raise _all_refused(refused)
        commands.append(b"DATA\r\n")
        session.transactions += 1
        stage = "MAIL FROM"
        body_sent = False
        try:
            broken: SessionBroken | None = None
            try:
                if session.pipelining:
                    # RFC 2920 §3.1: MAIL, RCPT and DATA in one group, DATA last (its reply
                    # decides whether the message may follow); the replies come in order.
                    wire.write(b"".join(commands), len(commands))
                    replies = await wire.read(len(commands))
                else:
                    replies = await _one_at_a_time(wire, commands)
            except SessionBroken as exc:
                replies, broken = exc.replies, exc  # those that came may say why (a 421)

            reply = replies[0] if replies else _lost(broken)
            if reply.code != _REPLY_OK:
                if reused and reply.code == _REPLY_421:
                    wire.close()
                    raise _StaleSession
                await _end_refused(wire, replies, len(commands), reply.code)
                raise _sender_refused(reply.code, reply.message)

            stage = "RCPT TO"
            for index, recipient in enumerate(to, 1):
                reply = replies[index] if index < len(replies) else _lost(broken)
                if reply.code in _RCPT_ACCEPTED:
                    continue
                error = classify_smtp_reply(reply.code, reply.message)
                if _ends_session(reply.code):
                    wire.close()
                    raise TransientError(f"RCPT TO refused: {error.message}", code=error.code)
                refused.append((recipient, error))
            accepted = len(recipients) - len(refused)
            if accepted == 0:
                await _end_refused(wire, replies, len(commands))
                raise _all_refused(refused)

            stage = "DATA"
            reply = replies[-1] if len(replies) == len(commands) else _lost(broken)
            if reply.code != _REPLY_START_INPUT:
                await _end_refused(wire, replies, len(commands), reply.code)
                raise _refusal("DATA refused", reply.code, reply.message, single=accepted == 1)

            # The body goes out on its own, after the 354: only a reply lost after it went
            # out leaves the outcome unknown (the server may have the message).
            stage = "end of DATA"
            if session.pipelining:
                # RFC 2920 §3.1: the message may start a group the next transaction's MAIL,
                # RCPT… and DATA end. Its final reply is read first (reads are served in
                # order); then the session goes to the next caller, whose commands join the
                # held message in one send().
                wire.write(body, 1, hold=True)
                body_sent = True
                final = wire.read(1)
                lease.release()
                wire.flush_soon()
                [reply] = await final
            else:
                wire.write(body, 1)
                body_sent = True
                [reply] = await wire.read(1)
        except SessionBroken as exc:
            # Connection lost (also what the watchdog's time_out causes) or unreadable reply.
            wire.close()
            what = "timed out" if wire.timed_out else exc.reason
            if body_sent:
                log.warning("smtp.outcome_unknown", provider=self.name, url=self._where)
                raise UnknownOutcome(
                    f"{self._where}: {what} waiting for the reply to the end of DATA; "
                    "the server may have accepted the message"
                ) from exc
            if stage == "MAIL FROM" and (exc.queued or (reused and not wire.timed_out)):
                # Lost before MAIL could be answered (behind the previous message's final
                # reply, or on a session the server had closed): nothing was committed.
                raise _StaleSession from exc
            log.warning("smtp.connection_lost", provider=self.name, url=self._where, stage=stage)
            raise TransientError(f"{self._where}: {what} during {stage}") from exc

        if not 200 <= reply.code < 300:
            if _ends_session(reply.code):
                wire.close()
            raise _refusal("message refused", reply.code, reply.message, single=accepted == 1)
        return Receipt(
            provider_message_id=queue_id_from_reply(reply.message) or message_id,
            detail=f"{reply.code} {reply.message}",
            rejected=tuple(
                RecipientRejection(
                    address=address,
                    code=error.code,
                    message=error.message,
                    suppress=isinstance(error, PermanentError) and error.suppress,
                )
                for address, error in refused
            )
            if refused
            else (),
        )

    def _mail_command(
        self, session: SmtpSession, mail_from: str, recipients: list[str], body: bytes
    ) -> tuple[bytes, str]:
        """MAIL FROM with the ESMTP parameters the server allows, and the address encoding."""
        encoding = "ascii"
        params: list[bytes] = []
        if not (mail_from.isascii() and all(map(str.isascii, recipients))):
            if not session.smtputf8:
                raise PermanentError(
                    f"{self._where}: the server does not support SMTPUTF8, needed for a "
                    "non-ASCII address",
                    recipient_fault=False,
                )
            params.append(b"SMTPUTF8")
            encoding = "utf-8"
        if session.size:
            params.append(b"SIZE=%d" % (len(body) - 3))  # RFC 1870: without the final ".\r\n"
        if session.eight_bit and not body.isascii():
            params.append(b"BODY=8BITMIME")
        try:
            mail = _mail_from(mail_from, encoding)
        except ValueError as exc:
            raise PermanentError(f"invalid sender: {exc}") from exc
        return b" ".join([mail, *params]) + b"\r\n", encoding


async def _one_at_a_time(wire: SmtpWire, commands: list[bytes]) -> list[SmtpReply]:
    """MAIL, RCPT…, DATA without PIPELINING: each after the previous reply, stopping where
    the transaction cannot go on (MAIL refused, a RCPT reply that ends the session, DATA
    with no recipient accepted). SessionBroken carries the replies that came."""
    replies: list[SmtpReply] = []
    last = len(commands) - 1
    try:
        for index, command in enumerate(commands):
            if index == last and not any(r.code in _RCPT_ACCEPTED for r in replies[1:]):
                break
            wire.write(command, 1)
            [reply] = await wire.read(1)
            replies.append(reply)
            if index == 0:
                if reply.code != _REPLY_OK:
                    break
            elif reply.code not in _RCPT_ACCEPTED and _ends_session(reply.code):
                break
    except SessionBroken as exc:
        raise SessionBroken(exc.reason, replies) from exc
    return replies


def _lost(broken: SessionBroken | None) -> SmtpReply:
    """A reply that did not come: the session broke before it."""
    raise broken or SessionBroken("connection lost", [])


async def _end_refused(
    wire: SmtpWire, replies: list[SmtpReply], sent: int, code: int | None = None
) -> None:
    """End a refused transaction (RSET, or a lone dot after a 354), or drop the session.

    ``replies`` are those to the ``sent`` commands of the envelope (DATA's is last when all
    came); ``code`` is the refusal's: one that means the session is gone closes it.
    """
    if code is not None and _ends_session(code):
        wire.close()
        return
    data = replies[-1] if len(replies) == sent else None
    try:
        if data is not None and data.code == _REPLY_START_INPUT:
            # RFC 2920 §3.1: the client "cannot assume that the DATA command will be
            # rejected just because none of the RCPT TO commands worked"; if it "was
            # accepted the client SMTP should send a single dot". The end of that empty
            # message clears the transaction (RFC 5321 §4.1.1.4): no RSET after it.
            wire.write(b".\r\n", 1)
            [reply] = await wire.read(1)
            if reply.code == _REPLY_421 or not 200 <= reply.code < 600:  # any verdict will do
                wire.close()
            return
        if data is not None and _ends_session(data.code):
            wire.close()
            return
        wire.write(b"RSET\r\n", 1)
        [reply] = await wire.read(1)
    except SessionBroken:
        wire.close()
        return
    if reply.code != _REPLY_OK:
        wire.close()


def _ends_session(code: int) -> bool:
    """For a refusal: 421 (service closing, RFC 5321 §3.8) or no SMTP error code at all
    (a protocol mix-up): the session is gone."""
    return code == _REPLY_421 or not 400 <= code < 600


@functools.lru_cache(maxsize=64)  # a provider sends from a handful of addresses
def _mail_from(address: str, encoding: str) -> bytes:
    """``MAIL FROM:<addr>``; ValueError for an address :func:`_path` refuses."""
    return b"MAIL " + _path(b"FROM:", address, encoding)


def _path(prefix: bytes, address: str, encoding: str) -> bytes:
    """``FROM:<addr>`` / ``TO:<addr>``, refusing anything that could smuggle in a parameter."""
    if _UNSAFE_ADDRESS.search(address) or "@" not in address:
        raise ValueError(f"invalid address {address!r}")
    return prefix + b"<" + address.encode(encoding) + b">"


def _sender_refused(code: int, message: str) -> DeliveryError:
    """MAIL FROM refused: about our sender, so never suppress the recipient; fail over."""
    error = classify_smtp_reply(code, message)
    if isinstance(error, PermanentError):
        return PermanentError(
            f"MAIL FROM refused: {error.message}", code=error.code, recipient_fault=False
        )
    return TransientError(f"MAIL FROM refused: {error.message}", code=error.code)


def _refusal(what: str, code: int, message: str, *, single: bool) -> DeliveryError:
    """A refusal of the whole message; suppress only when it names the one recipient."""
    error = classify_smtp_reply(code, message)
    if isinstance(error, PermanentError):
        return PermanentError(
            f"{what}: {error.message}",
            code=error.code,
            suppress=error.suppress and single,
            recipient_fault=error.recipient_fault,
        )
    return TransientError(f"{what}: {error.message}", code=error.code)


def _all_refused(refused: list[tuple[str, DeliveryError]]) -> DeliveryError:
    """Every recipient refused: transient if any refusal was, else permanent."""
    if len(refused) == 1:
        address, error = refused[0]
        if isinstance(error, PermanentError):
            return PermanentError(
                f"RCPT TO <{address}> refused: {error.message}",
                code=error.code,
                suppress=error.suppress,
                recipient_fault=error.recipient_fault,
            )
        return TransientError(f"RCPT TO <{address}> refused: {error.message}", code=error.code)
    summary = "; ".join(f"<{address}> {error.message}" for address, error in refused)
    transient = [error for _, error in refused if not isinstance(error, PermanentError)]
    if transient:
        return TransientError(f"every recipient refused: {summary}", code=transient[0].code)
    return PermanentError(
        f"every recipient refused: {summary}",
        code=refused[0][1].code,
        recipient_fault=any(
            isinstance(error, PermanentError) and error.recipient_fault for _, error in refused
        ),
    )


def _wire_body(message: bytes) -> bytes:
    """The message as DATA sends it: leading dots doubled, ``.`` line at the end.

    build_email_bytes writes CRLF line endings and nothing else, ending in CRLF (its tests
    check every shape): so every line start but the first follows ``\n``, and no full-message
    scan for stray CR or LF is needed (three of them cost more than the rest of this).
    """
    if message[:1] == b".":
        message = b"." + message
    return message.replace(b"\n.", b"\n..") + b".\r\n"  # RFC 5321 §4.5.2


async def _wait_closed(protocols: list[SMTPProtocol | None], grace: float) -> None:
    """Wait until these closed connections have released their sockets; abort after grace.

    A TLS connection closes only after the close_notify exchange: returning before it would
    leave a socket open for the garbage collector once the event loop stops.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace
    while pending := [p for p in protocols if p is not None and p.transport is not None]:
        if loop.time() >= deadline:
            for protocol in pending:
                # uvloop's transports have abort() but do not subclass asyncio.Transport.
                cast(asyncio.Transport, protocol.transport).abort()
            await asyncio.sleep(0)
            return
        await asyncio.sleep(0.005)


def _tls_context(settings: SmtpSettings) -> ssl.SSLContext:
    context = tls_context(settings.ca_file, "smtp")
    if not settings.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context
