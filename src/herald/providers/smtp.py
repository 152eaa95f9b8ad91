"""SMTP delivery through a small pool of persistent aiosmtplib sessions.

``smtp://user:pass@host:port?tls=starttls&from=Name%20%3Cnoreply@example.org%3E`` — see
``docs/providers.md`` for every option. One transaction per message (MAIL, RCPT per
recipient, DATA) is driven step by step so each reply can be classified precisely:
per-recipient refusals become :class:`RecipientRejection`\\ s, a lost reply to the end of
DATA becomes :class:`UnknownOutcome`, everything else a transient or permanent error.
"""

from __future__ import annotations

import asyncio
import re
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.utils import getaddresses
from pathlib import Path
from typing import Final, Literal

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
from herald.domain.message import Address, Delivery, Receipt, RecipientRejection
from herald.domain.mime import build_email_bytes
from herald.domain.smtp_replies import classify_smtp_reply, queue_id_from_reply
from herald.providers.base import ProviderURL

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
        "name",  # every provider URL accepts it; the registry reads it
    }
)
_MAILBOX = re.compile(r"^[^\s<>@,;\"]+@[^\s<>@,;\"]+$")
_LINE_ENDINGS = re.compile(rb"\r\n|\r|\n")
_LEADING_DOT = re.compile(rb"^\.", re.MULTILINE)
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
        for key in url.query.keys() - _OPTIONS:
            log.warning("smtp.unknown_option", url=where, option=key)
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


class _Session:
    """One pooled SMTP connection and its bookkeeping."""

    __slots__ = ("client", "deadline", "idle_since", "protocol", "timed_out", "transactions")

    def __init__(self, client: aiosmtplib.SMTP) -> None:
        self.client = client
        # Kept past client.close(): its transport becomes None once the socket is gone.
        self.protocol = client.protocol
        self.transactions = 0
        self.idle_since = 0.0
        #: Loop time by which the pending reply must arrive (0: none pending); the pool's
        #: watchdog aborts the connection after it and sets ``timed_out``.
        self.deadline = 0.0
        self.timed_out = False

    @property
    def reused(self) -> bool:
        """It has sat idle in the pool, so the server may have closed it meanwhile."""
        return self.idle_since > 0.0

    @property
    def closing(self) -> bool:
        """Closed on our side, but the socket is not released yet (e.g. TLS close_notify)."""
        return (
            self.client.protocol is None
            and self.protocol is not None
            and self.protocol.transport is not None
        )

    def abort(self) -> None:
        """Drop the connection now, without QUIT or TLS close_notify."""
        transport = self.protocol.transport if self.protocol is not None else None
        if isinstance(transport, asyncio.Transport):
            transport.abort()


class _SessionPool:
    """Up to ``size`` sessions, lent out one caller at a time.

    Sessions are opened lazily and kept idle in LIFO order (the busiest stay warm, the
    rest age out). A session is retired (QUIT) after ``max_messages`` transactions or
    ``idle_timeout`` seconds idle, and dropped at once if it broke. Retiring one keeps its
    slot until QUIT is answered, so no more than ``size`` connections are ever open.

    A watchdog ticking while any session is open enforces ``session.deadline`` and the idle
    timeout. Arming a deadline is a float store per command, where asyncio.timeout() or
    wait_for() cost a timer handle each (about a quarter of the CPU an SMTP transaction
    takes); the price is precision: a timeout fires up to one tick late.
    """

    def __init__(
        self,
        connect: Callable[[], Awaitable[aiosmtplib.SMTP]],
        *,
        size: int,
        max_messages: int,
        idle_timeout: float,
        command_timeout: float,
    ) -> None:
        self._connect = connect
        self._slots = asyncio.Semaphore(size)
        self._max_messages = max_messages
        self._idle_timeout = idle_timeout
        self._command_timeout = command_timeout
        self._tick_every = min(1.0, command_timeout / 4, idle_timeout / 4)
        self._idle: list[_Session] = []  # [0] has been idle longest
        self._sessions: set[_Session] = set()  # every one whose socket may still be open
        self._retiring: set[asyncio.Task[None]] = set()
        self._ticker: asyncio.TimerHandle | None = None
        self.closed = False

    async def acquire(self) -> _Session:
        """A live session: an idle one if any, else a new connection (waits for a slot)."""
        await self._slots.acquire()
        try:
            if self._idle:
                deadline = asyncio.get_running_loop().time() - self._idle_timeout
                while self._idle:
                    session = self._idle.pop()
                    if session.client.is_connected and session.idle_since > deadline:
                        return session
                    session.client.close()
            session = _Session(await self._connect())
            self._sessions.add(session)
            if self._ticker is None:
                self._ticker = asyncio.get_running_loop().call_later(self._tick_every, self._tick)
            return session
        except BaseException:
            self._slots.release()
            raise

    def release(self, session: _Session) -> None:
        """Give a session back: kept if still usable, else retired or dropped."""
        session.deadline = 0.0
        client = session.client
        if not client.is_connected:
            client.close()
            self._slots.release()
        elif self.closed or session.transactions >= self._max_messages:
            self._retire(session, holds_slot=True)
        else:
            session.idle_since = asyncio.get_running_loop().time()
            self._idle.append(session)
            self._slots.release()

    async def aclose(self) -> None:
        """QUIT every idle session and wait until their sockets are released.

        Sessions in use are retired when given back.
        """
        self.closed = True
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None
        idle, self._idle = self._idle, []
        for session in idle:
            self._retire(session, holds_slot=False)
        if self._retiring:
            await asyncio.gather(*self._retiring, return_exceptions=True)
        await _wait_closed([s.protocol for s in self._sessions if s.closing], self._command_timeout)

    def _tick(self) -> None:
        self._ticker = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        for session in self._sessions:
            if session.deadline and now > session.deadline:
                session.deadline = 0.0
                session.timed_out = True
                session.abort()  # the pending read fails with SMTPServerDisconnected
        idle_limit = now - self._idle_timeout
        while self._idle and self._idle[0].idle_since <= idle_limit:
            self._retire(self._idle.pop(0), holds_slot=False)
        self._sessions = {s for s in self._sessions if s.protocol and s.protocol.transport}
        if self._sessions and not self.closed:
            self._ticker = loop.call_later(self._tick_every, self._tick)

    def _retire(self, session: _Session, *, holds_slot: bool) -> None:
        task = asyncio.get_running_loop().create_task(self._quit(session.client, holds_slot))
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def _quit(self, client: aiosmtplib.SMTP, holds_slot: bool) -> None:
        try:
            if client.is_connected:
                await client.quit(timeout=self._command_timeout)
        except (aiosmtplib.SMTPException, OSError):
            pass  # it is going away either way
        finally:
            client.close()
            if holds_slot:
                self._slots.release()


class _StaleSession(Exception):
    """A reused session turned out dead before anything was committed: try a fresh one."""


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
        self._pool = _SessionPool(
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
        content = delivery.content
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
            try:
                receipt = await self._transact(
                    session, body, mail_from, recipients, content.message_id
                )
            except _StaleSession:
                continue
            except DeliveryError:
                raise
            except BaseException:
                session.client.close()  # cancelled or a bug: the session state is unknown
                raise
            finally:
                self._pool.release(session)
            log.debug(
                "smtp.sent",
                provider=self.name,
                notification_id=delivery.notification_id,
                reply=receipt.detail,
            )
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
            try:
                await session.client.noop()
                return
            except (aiosmtplib.SMTPException, OSError) as exc:
                session.client.close()
                if not reused:
                    raise TransientError(f"{self._where}: NOOP failed: {exc}") from exc
            finally:
                self._pool.release(session)
        raise TransientError(f"{self._where}: SMTP connections keep closing")

    async def aclose(self) -> None:
        """QUIT and close every pooled session."""
        await self._pool.aclose()

    async def _connect(self) -> aiosmtplib.SMTP:
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
        except (aiosmtplib.SMTPException, OSError) as exc:
            protocol = client.protocol
            client.close()
            await _wait_closed([protocol], settings.timeout)
            error = self._connect_error(exc)
            log.warning(
                "smtp.connect_failed", provider=self.name, url=self._where, error=str(error)
            )
            raise error from exc
        return client

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
        session: _Session,
        body: bytes,
        mail_from: str,
        recipients: list[str],
        message_id: str,
    ) -> Receipt:
        client = session.client
        reused = session.reused
        session.transactions += 1
        mail_args, encoding = self._mail_args(client, mail_from, recipients, body)
        refused: list[tuple[str, DeliveryError]] = []
        loop = asyncio.get_running_loop()
        timeout = self.settings.timeout
        stage = "MAIL FROM"
        body_sent = False
        # Commands go straight to aiosmtplib's protocol with timeout=None: the pool's
        # watchdog enforces session.deadline, and every path that ends the session closes
        # the client itself (what SMTP.execute_command would add).
        try:
            protocol = client.protocol
            if protocol is None:
                raise aiosmtplib.SMTPServerDisconnected("Connection lost")
            session.deadline = loop.time() + timeout
            reply = await protocol.execute_command(b"MAIL", *mail_args, timeout=None)
            if reply.code != _REPLY_OK:
                if reused and reply.code == _REPLY_421:
                    client.close()
                    raise _StaleSession
                session.deadline = 0.0
                await self._reset_or_drop(client, reply.code)
                raise _sender_refused(reply.code, reply.message)

            stage = "RCPT TO"
            for recipient in recipients:
                try:
                    path = _path(b"TO:", recipient, encoding)
                except ValueError as exc:
                    refused.append((recipient, PermanentError(str(exc))))
                    continue
                session.deadline = loop.time() + timeout
                reply = await protocol.execute_command(b"RCPT", path, timeout=None)
                if reply.code in _RCPT_ACCEPTED:
                    continue
                error = classify_smtp_reply(reply.code, reply.message)
                if reply.code == _REPLY_421 or not 400 <= reply.code < 600:
                    client.close()
                    raise TransientError(f"RCPT TO refused: {error.message}", code=error.code)
                refused.append((recipient, error))
            accepted = len(recipients) - len(refused)
            if accepted == 0:
                session.deadline = 0.0
                await self._reset_or_drop(client)
                raise _all_refused(refused)

            stage = "DATA"
            session.deadline = loop.time() + timeout
            reply = await protocol.execute_command(b"DATA", timeout=None)
            if reply.code != _REPLY_START_INPUT:
                session.deadline = 0.0
                await self._reset_or_drop(client, reply.code)
                raise _refusal("DATA refused", reply.code, reply.message, single=accepted == 1)

            # aiosmtplib's data() awaits the 354 and the final reply in one call, so a
            # timeout there cannot tell whether the server has the message. Writing the
            # body ourselves keeps the two apart: only a reply lost after the body went out
            # is an UnknownOutcome.
            stage = "end of DATA"
            session.deadline = loop.time() + timeout
            protocol.write(body)
            body_sent = True
            reply = await protocol.read_response(timeout=None)
            session.deadline = 0.0
        except (OSError, aiosmtplib.SMTPResponseException) as exc:
            # SMTPServerDisconnected (also what the watchdog's abort causes) is an OSError;
            # an SMTPResponseException here is a reply aiosmtplib could not parse.
            client.close()
            what = "timed out" if session.timed_out else _failure(exc)
            if body_sent:
                log.warning("smtp.outcome_unknown", provider=self.name, url=self._where)
                raise UnknownOutcome(
                    f"{self._where}: {what} waiting for the reply to the end of DATA; "
                    "the server may have accepted the message"
                ) from exc
            if reused and stage == "MAIL FROM" and not session.timed_out:
                raise _StaleSession from exc
            log.warning("smtp.connection_lost", provider=self.name, url=self._where, stage=stage)
            raise TransientError(f"{self._where}: {what} during {stage}") from exc

        if not 200 <= reply.code < 300:
            if reply.code == _REPLY_421 or not 400 <= reply.code < 600:
                client.close()
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
            ),
        )

    def _mail_args(
        self, client: aiosmtplib.SMTP, mail_from: str, recipients: list[str], body: bytes
    ) -> tuple[list[bytes], str]:
        """MAIL FROM's arguments (ESMTP parameters as the server allows) and the encoding."""
        encoding = "ascii"
        params: list[bytes] = []
        if not (mail_from.isascii() and all(r.isascii() for r in recipients)):
            if not client.supports_extension("smtputf8"):
                raise PermanentError(
                    f"{self._where}: the server does not support SMTPUTF8, needed for a "
                    "non-ASCII address",
                    recipient_fault=False,
                )
            params.append(b"SMTPUTF8")
            encoding = "utf-8"
        if client.supports_extension("size"):
            params.append(b"SIZE=%d" % (len(body) - 3))  # RFC 1870: without the final ".\r\n"
        if not body.isascii() and client.supports_extension("8bitmime"):
            params.append(b"BODY=8BITMIME")
        try:
            path = _path(b"FROM:", mail_from, encoding)
        except ValueError as exc:
            raise PermanentError(f"invalid sender: {exc}") from exc
        return [path, *params], encoding

    async def _reset_or_drop(self, client: aiosmtplib.SMTP, code: int | None = None) -> None:
        """End a refused transaction with RSET, or drop the session if it is not usable."""
        broken = code is not None and (code == _REPLY_421 or not 400 <= code < 600)
        if broken or not client.is_connected:
            client.close()
            return
        try:
            await client.rset()
        except (aiosmtplib.SMTPException, OSError):
            client.close()


def _path(prefix: bytes, address: str, encoding: str) -> bytes:
    """``FROM:<addr>`` / ``TO:<addr>``, refusing anything that could smuggle in a parameter."""
    if _UNSAFE_ADDRESS.search(address) or "@" not in address:
        raise ValueError(f"invalid address {address!r}")
    return prefix + b"<" + address.encode(encoding) + b">"


def _failure(exc: BaseException) -> str:
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return f"unreadable reply ({exc.message})"
    return f"connection lost ({exc})"


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
    """The message as DATA sends it: CRLF lines, leading dots doubled, ``.`` line at the end."""
    crlf = message.count(b"\r\n")
    if message.count(b"\n") != crlf or message.count(b"\r") != crlf:
        message = _LINE_ENDINGS.sub(b"\r\n", message)
    if not message.endswith(b"\r\n"):
        message += b"\r\n"
    if message.startswith(b".") or b"\n." in message:
        message = _LEADING_DOT.sub(b"..", message)
    return message + b".\r\n"


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
                if isinstance(protocol.transport, asyncio.Transport):
                    protocol.transport.abort()
            await asyncio.sleep(0)
            return
        await asyncio.sleep(0.005)


def _tls_context(settings: SmtpSettings) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if settings.ca_file:
        try:
            context.load_verify_locations(cafile=settings.ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigurationError(f"smtp ca_file={settings.ca_file!r}: {exc}") from None
    if not settings.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context
