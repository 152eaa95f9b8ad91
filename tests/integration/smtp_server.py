"""A real SMTP server for integration tests: aiosmtpd in a background thread.

It records what arrives (messages, and each read off each connection, to see which
commands came in one write), can be told how to answer (per recipient, per command, stall,
drop the connection, a reply then close), speaks STARTTLS / implicit TLS / AUTH, offers
PIPELINING (RFC 2920) unless told not to, and counts TCP connections::

    server = SmtpTestServer(tls="starttls", certificate=cert, username="u", password="p")
    with server:
        server.reject_recipient("bad@example.org", 550, "5.1.1 No such user")
        server.queue_replies("data", (451, "4.3.0 Try again"), None)  # then the default
        server.stall("end_of_data", seconds=5)  # stores the message, then says nothing
        ... send ...
        [message] = server.wait_for_messages(1)
        message.parsed["Subject"], message.rcpt_tos, server.connections_accepted
        server.reads(connection=1)  # [b"EHLO client\r\n", b"MAIL FROM:<…>\r\nRCPT …", …]

Stages: ``mail``, ``rcpt``, ``data`` (the DATA command, before 354) and ``end_of_data``
(after the final dot, the message already stored).
"""

from __future__ import annotations

import asyncio
import collections
import re
import ssl
import threading
import time
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from functools import cached_property
from types import TracebackType
from typing import Any, Literal, cast

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

Stage = Literal["mail", "rcpt", "data", "end_of_data"]
Reply = tuple[int, str]
TlsMode = Literal["none", "starttls", "tls"]

_STAGES: frozenset[str] = frozenset({"mail", "rcpt", "data", "end_of_data"})
_MESSAGE_ID = re.compile(rb"^Message-ID:[ \t]*(?:\r?\n[ \t]+)?<([^>\r\n]+)>", re.I | re.M)
_PARSER = BytesParser(policy=policy.default)


@dataclass(frozen=True)
class ReceivedMessage:
    """One message as the server stored it."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    message_id: str | None
    #: 1-based number of the TCP connection it arrived on.
    connection: int
    #: Whether that connection had authenticated, and was encrypted.
    authenticated: bool
    tls: bool
    #: When the server stored it (``time.time()``).
    received_at: float = 0.0

    @cached_property
    def parsed(self) -> EmailMessage:
        """The message parsed with ``policy.default`` (on first access), CRLF read as LF."""
        return cast(EmailMessage, _PARSER.parsebytes(self.data.replace(b"\r\n", b"\n")))


@dataclass
class _Rule:
    action: Literal["stall", "drop", "shut_down"]
    seconds: float
    times: int | None  # None: every time
    reply: Reply | None = None  # "shut_down": said before closing


@dataclass
class _Behaviour:
    recipients: dict[str, Reply] = field(default_factory=dict)
    replies: dict[str, collections.deque[Reply | None]] = field(
        default_factory=lambda: collections.defaultdict(collections.deque)
    )
    rules: dict[str, _Rule] = field(default_factory=dict)
    #: Answer DATA with 354 even when no recipient was accepted (RFC 2920 §3.1 allows it),
    #: and the end of that data with this.
    data_without_recipients: Reply | None = None


class SmtpTestServer:
    """aiosmtpd on 127.0.0.1, an ephemeral port, in its own thread; thread-safe accessors."""

    def __init__(
        self,
        *,
        tls: TlsMode = "none",
        certificate: trustme.LeafCert | None = None,
        username: str | None = None,
        password: str | None = None,
        host: str = "127.0.0.1",
        pipelining: bool = True,
    ) -> None:
        if tls != "none" and certificate is None:
            raise ValueError(f"tls={tls!r} needs a certificate")
        self.host = host
        self.port = 0
        self.tls: TlsMode = tls
        self.pipelining = pipelining
        self._username = username
        self._password = password
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._messages: list[ReceivedMessage] = []
        self._by_message_id: collections.Counter[str] = collections.Counter()
        self._connections = 0
        self._open: set[_RecordingSMTP] = set()
        self._peak_open = 0
        self._reads: list[tuple[int, bytes]] = []
        self._empty_data: list[bytes] = []
        self._behaviour = _Behaviour()
        server_context: ssl.SSLContext | None = None
        if certificate is not None:
            server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            certificate.configure_cert(server_context)
        self._controller = _Controller(
            self,
            host=host,
            ssl_context=server_context if tls == "tls" else None,
            tls_context=server_context if tls == "starttls" else None,
            require_starttls=tls == "starttls",
            auth=username is not None,
        )

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> SmtpTestServer:
        self._controller.start()
        self.port = self._controller.port
        deadline = time.monotonic() + 5.0
        with self._arrived:
            # The controller's start-up probe: not a client's connection. It may not have
            # been seen closing yet, and would count as open.
            while self._open and time.monotonic() < deadline:
                self._arrived.wait(0.01)
            self._connections = 0
            self._peak_open = 0
        return self

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> SmtpTestServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- what arrived ---------------------------------------------------------------------

    @property
    def messages(self) -> list[ReceivedMessage]:
        with self._lock:
            return list(self._messages)

    @property
    def message_count(self) -> int:
        with self._lock:
            return len(self._messages)

    def message_id_counts(self) -> collections.Counter[str]:
        """How many times each Message-ID arrived (a copy)."""
        with self._lock:
            return collections.Counter(self._by_message_id)

    def duplicates(self) -> dict[str, int]:
        """Message-IDs that arrived more than once, with their counts."""
        with self._lock:
            return {mid: n for mid, n in self._by_message_id.items() if n > 1}

    def wait_for_messages(self, count: int, timeout: float = 5.0) -> list[ReceivedMessage]:
        """Block until at least ``count`` messages arrived; AssertionError after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while len(self._messages) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"expected {count} messages, got {len(self._messages)} in {timeout}s"
                    )
                self._arrived.wait(remaining)
            return list(self._messages)

    @property
    def connections_accepted(self) -> int:
        """TCP connections accepted since start (or :meth:`clear`)."""
        with self._lock:
            return self._connections

    @property
    def open_connections(self) -> int:
        with self._lock:
            return len(self._open)

    @property
    def peak_open_connections(self) -> int:
        """The most connections open at the same time since start (or :meth:`clear`)."""
        with self._lock:
            return self._peak_open

    def reads(self, connection: int | None = None) -> list[bytes]:
        """What each read off a connection (all of them, by default) got, in order.

        Commands the client wrote at once arrive in one read on loopback; commands it sent
        one at a time, each after the reply to the previous one, cannot share a read.
        """
        with self._lock:
            return [data for n, data in self._reads if connection in (None, n)]

    @property
    def empty_data(self) -> list[bytes]:
        """What arrived after a 354 given without any accepted recipient (see
        :meth:`answer_data_without_recipients`): ``b""`` for the lone dot RFC 2920 asks for."""
        with self._lock:
            return list(self._empty_data)

    def clear(self) -> None:
        """Forget messages, reads and the connection count (not the behaviour)."""
        with self._lock:
            self._messages.clear()
            self._by_message_id.clear()
            self._reads.clear()
            self._empty_data.clear()
            self._connections = 0
            self._peak_open = len(self._open)

    # -- how to answer --------------------------------------------------------------------

    def reject_recipient(self, address: str, code: int, text: str) -> None:
        """Answer RCPT TO for ``address`` with ``code text`` until :meth:`reset`."""
        with self._lock:
            self._behaviour.recipients[address.lower()] = (code, text)

    def queue_replies(self, stage: Literal["mail", "rcpt", "data"], *replies: Reply | None) -> None:
        """Answer the next commands at ``stage`` with these replies in turn (None: default).

        ``data`` is the reply to the final dot: a non-2xx one means the message is not stored.
        """
        with self._lock:
            self._behaviour.replies[stage].extend(replies)

    def stall(self, stage: Stage, *, seconds: float = 10.0, times: int | None = 1) -> None:
        """Say nothing for ``seconds`` at ``stage`` (``times`` times; None: always)."""
        self._set_rule(stage, _Rule("stall", seconds, times))

    def drop(self, stage: Stage, *, times: int | None = 1) -> None:
        """Close the connection at ``stage`` without a reply."""
        self._set_rule(stage, _Rule("drop", 0.0, times))

    def shut_down(
        self,
        stage: Stage,
        reply: Reply = (421, "4.3.2 Service shutting down"),
        *,
        times: int | None = 1,
    ) -> None:
        """Answer the command at ``stage`` with ``reply``, then close the connection."""
        self._set_rule(stage, _Rule("shut_down", 0.0, times, reply))

    def answer_data_without_recipients(
        self, end: Reply = (554, "5.5.1 Error: no valid recipients")
    ) -> None:
        """Answer DATA with 354 even when every RCPT was refused, until :meth:`reset`.

        aiosmtpd says 503 then, as most servers do; RFC 2920 §3.1 warns clients that a
        server may not. What the client sends until its final dot goes to :attr:`empty_data`,
        and the end is answered with ``end``.
        """
        with self._lock:
            self._behaviour.data_without_recipients = end

    def drop_connections(self, *, saying: str | None = None) -> None:
        """Close every open client connection now (as a server restart or idle timeout would).

        ``saying`` is a line written first, unasked (e.g. ``421 4.4.2 Idle timeout``).
        """
        self._tell_connections(saying, close=True)

    def say_unasked(self, line: str) -> None:
        """Write ``line`` to every open connection, though no command asked for a reply."""
        self._tell_connections(line, close=False)

    def _tell_connections(self, line: str | None, *, close: bool) -> None:
        done = threading.Event()

        def close_all() -> None:
            for session in list(self._open):
                if session.transport is None:
                    continue
                if line is not None:
                    session.transport.write(line.encode() + b"\r\n")
                if close:
                    session.transport.close()
            done.set()

        self._controller.loop.call_soon_threadsafe(close_all)
        done.wait(5)

    def reset(self) -> None:
        """Back to accepting everything."""
        with self._lock:
            self._behaviour = _Behaviour()

    def _set_rule(self, stage: Stage, rule: _Rule) -> None:
        if stage not in _STAGES:
            raise ValueError(f"unknown stage {stage!r}")
        with self._lock:
            self._behaviour.rules[stage] = rule

    # -- called on the server thread ------------------------------------------------------

    def _connected(self, session: _RecordingSMTP) -> int:
        with self._lock:
            self._connections += 1
            self._open.add(session)
            self._peak_open = max(self._peak_open, len(self._open))
            return self._connections

    def _disconnected(self, session: _RecordingSMTP) -> None:
        with self._lock:
            self._open.discard(session)

    def _record_read(self, session: _RecordingSMTP, data: bytes) -> None:
        with self._lock:
            self._reads.append((session.connection_number, data))

    def _record_empty_data(self, data: bytes) -> None:
        with self._lock:
            self._empty_data.append(data)

    def _answers_data_without_recipients(self) -> Reply | None:
        with self._lock:
            return self._behaviour.data_without_recipients

    def _take_rule(self, stage: str) -> _Rule | None:
        with self._lock:
            rule = self._behaviour.rules.get(stage)
            if rule is None:
                return None
            if rule.times is not None:
                rule.times -= 1
                if rule.times <= 0:
                    del self._behaviour.rules[stage]
            return rule

    def _take_reply(self, stage: str) -> Reply | None:
        with self._lock:
            queue = self._behaviour.replies.get(stage)
            return queue.popleft() if queue else None

    def _recipient_reply(self, address: str) -> Reply | None:
        with self._lock:
            return self._behaviour.recipients.get(address.lower())

    def _store(self, session: _RecordingSMTP, envelope: Envelope) -> None:
        data = envelope.original_content or b""
        match = _MESSAGE_ID.search(data, 0, _header_end(data))
        message_id = match.group(1).decode("utf-8", "replace") if match else None
        message = ReceivedMessage(
            mail_from=envelope.mail_from or "",
            rcpt_tos=tuple(envelope.rcpt_tos),
            data=data,
            message_id=message_id,
            connection=session.connection_number,
            authenticated=bool(session.session and session.session.authenticated),
            tls=session.transport is not None
            and session.transport.get_extra_info("ssl_object") is not None,
            received_at=time.time(),
        )
        with self._arrived:
            self._messages.append(message)
            if message_id is not None:
                self._by_message_id[message_id] += 1
            self._arrived.notify_all()

    def _authenticate(self, mechanism: str, auth_data: Any) -> AuthResult:
        if (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == self._username
            and auth_data.password.decode() == self._password
        ):
            return AuthResult(success=True, auth_data=auth_data)
        return AuthResult(success=False, handled=False)


def _header_end(data: bytes) -> int:
    end = data.find(b"\r\n\r\n")
    return end if end >= 0 else len(data)


def _status(reply: Reply) -> str:
    return f"{reply[0]} {reply[1]}"


class _Handler:
    """aiosmtpd hooks: consult the owner's behaviour, record what arrives."""

    def __init__(self, owner: SmtpTestServer, auth: bool, *, pipelining: bool) -> None:
        self._owner = owner
        self._auth = auth
        self._pipelining = pipelining

    async def handle_EHLO(
        self,
        server: _RecordingSMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        session.host_name = hostname
        if self._pipelining:
            # aiosmtpd reads commands line by line off a stream, so it copes with pipelined
            # ones; it just does not say so.
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_MAIL(
        self,
        server: _RecordingSMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        if self._auth and not session.authenticated:
            return "530 5.7.0 Authentication required"
        await server.apply_rule("mail")
        reply = self._owner._take_reply("mail")
        if reply is not None:
            return _status(reply)
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(
        self,
        server: _RecordingSMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        await server.apply_rule("rcpt")
        reply = self._owner._recipient_reply(address) or self._owner._take_reply("rcpt")
        if reply is not None:
            return _status(reply)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(
        self, server: _RecordingSMTP, session: Session, envelope: Envelope
    ) -> str:
        reply = self._owner._take_reply("data")
        if reply is not None and not 200 <= reply[0] < 300:
            return _status(reply)
        self._owner._store(server, envelope)
        await server.apply_rule("end_of_data")
        return _status(reply) if reply is not None else "250 2.0.0 OK"


class _RecordingSMTP(SMTP):
    """aiosmtpd's SMTP session, numbered, with stalls and drops before the 354 too."""

    def __init__(self, owner: SmtpTestServer, handler: _Handler, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._owner = owner
        self.connection_number = owner._connected(self)

    def connection_lost(self, error: Exception | None) -> None:
        self._owner._disconnected(self)
        super().connection_lost(error)

    def data_received(self, data: bytes) -> None:
        self._owner._record_read(self, data)
        super().data_received(data)

    async def smtp_DATA(self, arg: str) -> None:
        envelope = self.envelope
        if envelope is not None and envelope.rcpt_tos:
            await self.apply_rule("data")
        elif (
            envelope is not None
            and envelope.mail_from is not None
            and (end := self._owner._answers_data_without_recipients()) is not None
        ):
            await self.push("354 End data with <CR><LF>.<CR><LF>")
            lines: list[bytes] = []
            while (line := await self._reader.readuntil(b"\r\n")) != b".\r\n":
                lines.append(line)
            self._owner._record_empty_data(b"".join(lines))
            self._set_post_data_state()
            await self.push(_status(end))
            return
        await super().smtp_DATA(arg)

    async def apply_rule(self, stage: str) -> None:
        rule = self._owner._take_rule(stage)
        if rule is None:
            return
        if rule.action == "stall":
            await asyncio.sleep(rule.seconds)
            return
        if rule.action == "shut_down" and rule.reply is not None:
            await self.push(_status(rule.reply))
        if self.transport is not None:
            self.transport.close()
        # connection_lost() cancels this session's task; wait for that.
        await asyncio.Event().wait()


class _Controller(Controller):
    """A Controller that binds an ephemeral port and builds recording sessions."""

    def __init__(
        self,
        owner: SmtpTestServer,
        *,
        host: str,
        ssl_context: ssl.SSLContext | None,
        tls_context: ssl.SSLContext | None,
        require_starttls: bool,
        auth: bool,
    ) -> None:
        self._owner = owner
        smtp_kwargs: dict[str, Any] = {
            "server_hostname": "localhost",  # else aiosmtpd calls getfqdn() per connection
            "require_starttls": require_starttls,
            # aiosmtpd counts only STARTTLS as encrypted; AUTH over plain TCP is allowed on
            # purpose here (tests only), and needed over implicit TLS.
            "auth_require_tls": not auth,
            "authenticator": lambda _server, _session, _envelope, mechanism, data: (
                owner._authenticate(mechanism, data)
            ),
        }
        if tls_context is not None:
            smtp_kwargs["tls_context"] = tls_context
        if not auth:
            smtp_kwargs["auth_exclude_mechanism"] = ["LOGIN", "PLAIN"]
        super().__init__(
            _Handler(owner, auth, pipelining=owner.pipelining),
            hostname=host,
            port=0,
            ssl_context=ssl_context,
            **smtp_kwargs,
        )

    def factory(self) -> _RecordingSMTP:
        return _RecordingSMTP(self._owner, self.handler, **self.SMTP_kwargs)

    def _trigger_server(self) -> None:
        assert self.server is not None
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()
