"""SMTP on the wire once a session is established: commands out, replies back, in order.

aiosmtplib connects, upgrades to TLS, says EHLO and authenticates; then the session's
transport is handed to :class:`SmtpWire`, which writes commands (several at once when the
server offers PIPELINING, RFC 2920) and hands their replies back in order. One wait covers
any number of replies: one future and one wakeup, where aiosmtplib takes one per reply and
drops replies that arrive together.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Final, NamedTuple

#: Limits against a server that streams without line ends or endless continuation lines;
#: RFC 5321 §4.5.3.1.5 allows 512 octets a reply line, real EHLO replies are a few KB.
MAX_LINE: Final = 8192
MAX_REPLY: Final = 4 * MAX_LINE
#: b"250" → 250: one dict lookup checks and converts a reply code (int() takes b" 25").
_CODES: Final = {b"%d" % code: code for code in range(100, 1000)}


class SmtpReply(NamedTuple):
    """One reply: its code and its text (the lines of a multi-line reply joined by ``\\n``)."""

    code: int
    message: str

    def __str__(self) -> str:
        return f"{self.code} {self.message}"


_new_tuple = tuple.__new__  # SmtpReply(...) runs a Python-level __new__; this does not


class ReplyError(ValueError):
    """Bytes that cannot be an SMTP reply (RFC 5321 §4.2)."""


class ReplyParser:
    """Splits a byte stream into replies, however the reads cut it.

    ``250-first`` lines continue a reply, ``250 last`` (or a bare ``250``) ends it (RFC 5321
    §4.2.1). Each line's text is stripped of surrounding blanks; LF alone ends a line too.
    """

    __slots__ = ("_lines", "_partial", "_size")

    def __init__(self) -> None:
        self._partial = b""  # a line whose LF has not arrived yet
        self._lines: list[bytes] = []  # texts of the continuation lines of an open reply
        self._size = 0

    def feed(self, data: bytes) -> list[SmtpReply]:
        """The replies that ``data`` completes (possibly none); ReplyError on garbage."""
        if self._partial:
            data = self._partial + data
            self._partial = b""
        lines = data.split(b"\n")
        rest = lines.pop()  # after the last LF: the start of a line, or b""
        if rest:
            if len(rest) > MAX_LINE:
                raise ReplyError("reply line too long")
            self._partial = rest
        replies: list[SmtpReply] = []
        for line in lines:
            code = _CODES.get(line[:3])
            if code is None or len(line) > MAX_LINE:
                raise ReplyError(f"not an SMTP reply line: {line[:60]!r}")
            text = line[4:].strip(b" \t\r")
            if line[3:4] == b"-":
                self._size += len(line)
                if self._size > MAX_REPLY:
                    raise ReplyError("reply too long")
                self._lines.append(text)
                continue
            if self._lines:
                self._lines.append(text)
                text = b"\n".join(self._lines)
                self._lines = []
                self._size = 0
            message = text.decode("utf-8", "surrogateescape")
            replies.append(_new_tuple(SmtpReply, (code, message)))
        return replies


class SessionBroken(Exception):
    """The session cannot go on: connection lost, a reply timed out or was unreadable.

    ``replies`` are those of the failed wait that did arrive, in order: a ``421`` among
    them explains the loss. ``queued``: the wait was still behind another one (an earlier
    transaction's final reply), so none of its own replies was due yet.
    """

    def __init__(self, reason: str, replies: list[SmtpReply], *, queued: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.replies = replies
        self.queued = queued


class SmtpWire(asyncio.Protocol):
    """An established session's transport: write commands, await their replies.

    Every reply must have been asked for (:meth:`write` says how many the bytes will get).
    One that was not — a server's ``421`` before it closes an idle connection, or garbage —
    ends the session: pairing it with the next command would misread every reply after.
    :attr:`deadline` is the loop time by which the awaited reply must arrive; the session
    pool's watchdog calls :meth:`time_out` after it. It restarts with each reply that
    arrives, so a group of pipelined commands gets the timeout per reply, as one at a time.

    Reads queue up and are served in order (a transaction's final reply, then the next
    transaction's on the same session: RFC 2920 §3.1 pipelining across transactions). A
    write with ``hold=True`` is kept back, and writes after it join it, until
    :meth:`flush_soon`'s flush: the end of one message and the next one's commands go out
    in one send().
    """

    def __init__(self, transport: asyncio.Transport, *, timeout: float) -> None:
        self._transport = transport
        self._loop = asyncio.get_running_loop()
        self._timeout = timeout
        self._parser = ReplyParser()
        self._replies: list[SmtpReply] = []  # arrived, not yet read
        self._owed = 0  # replies the server still owes for what was written
        # Pending reads, in order: how many replies each wants, and its future.
        self._reads: deque[tuple[int, asyncio.Future[list[SmtpReply]]]] = deque()
        self._held: list[bytes] | None = None  # written, not sent yet (see flush_soon)
        self._flush_due = False
        self._failure: str | None = None
        self._released: asyncio.Future[None] = self._loop.create_future()
        self.deadline = 0.0
        self.timed_out = False

    @classmethod
    def take_over(cls, transport: asyncio.Transport, *, timeout: float) -> SmtpWire:
        """Become the protocol of ``transport`` (an open one, with no reply pending)."""
        wire = cls(transport, timeout=timeout)
        transport.set_protocol(wire)
        return wire

    @property
    def is_open(self) -> bool:
        """Neither closed nor broken: commands can be written."""
        return self._failure is None

    @property
    def released(self) -> bool:
        """The socket is gone (after a TLS close, only once close_notify was exchanged)."""
        return self._released.done()

    def write(self, data: bytes, replies: int, *, hold: bool = False) -> None:
        """Send ``data``: commands, or a message, that ``replies`` replies will answer.

        ``hold``: keep it back until :meth:`flush_soon`'s flush; so are writes made while
        something is held.
        """
        if self._failure is not None:
            raise SessionBroken(self._failure, [])
        self._owed += replies
        if self._held is not None:
            self._held.append(data)
        elif hold:
            self._held = [data]
        else:
            self._transport.write(data)

    def flush_soon(self) -> None:
        """Send what is held once the callbacks scheduled so far have run: a caller that
        was just handed this session writes its commands first, into the same send()."""
        if self._held is not None and not self._flush_due:
            self._flush_due = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_due = False
        held, self._held = self._held, None
        if held and self._failure is None:
            self._transport.write(held[0] if len(held) == 1 else b"".join(held))

    def read(self, count: int) -> asyncio.Future[list[SmtpReply]]:
        """The next ``count`` replies, in order, to await (one wait: a future, no coroutine).

        It fails with SessionBroken if they cannot all come. Reads queue up: each gets the
        replies after those of the reads before it.
        """
        waiter: asyncio.Future[list[SmtpReply]] = self._loop.create_future()
        if not self._reads and len(self._replies) >= count:
            waiter.set_result(self._take(count))
        elif self._failure is not None:
            waiter.set_exception(SessionBroken(self._failure, self._take(len(self._replies))))
        else:
            if not self._reads:
                self.deadline = self._loop.time() + self._timeout
            self._reads.append((count, waiter))
        return waiter

    def close(self) -> None:
        """Close gracefully (TLS: close_notify first); pending and later reads fail.

        What is held is sent first: it may be a message whose outcome is awaited.
        """
        held, self._held = self._held, None
        if held and self._failure is None and not self._transport.is_closing():
            self._transport.write(b"".join(held))
        self._fail("connection closed")
        if not self._transport.is_closing():
            self._transport.close()

    def abort(self) -> None:
        """Drop the connection now, without TLS close_notify."""
        self._fail("connection aborted")
        self._transport.abort()

    def time_out(self) -> None:
        """The awaited reply is overdue: fail the wait and drop the connection."""
        self.timed_out = True
        self._fail("timed out")
        self._transport.abort()

    async def wait_released(self, grace: float) -> None:
        """Wait until the socket is released (see :attr:`released`); abort after ``grace``."""
        if self._released.done():
            return
        await asyncio.wait([self._released], timeout=grace)
        if not self._released.done():
            self._transport.abort()
            await asyncio.sleep(0)  # connection_lost is called soon, not now

    def _take(self, count: int) -> list[SmtpReply]:
        replies = self._replies
        if len(replies) == count:
            self._replies = []
            return replies
        self._replies = replies[count:]
        return replies[:count]

    # -- asyncio.Protocol -----------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        try:
            replies = self._parser.feed(data)
        except ReplyError as exc:
            self._fail(f"unreadable reply ({exc})")
            self._transport.abort()
            return
        if not replies:
            return
        unasked = None
        if len(replies) > self._owed:
            unasked = replies[self._owed]
            replies = replies[: self._owed]
        self._owed -= len(replies)
        if self._replies:
            self._replies.extend(replies)
        else:
            self._replies = replies
        reads = self._reads
        if reads:
            while reads and len(self._replies) >= reads[0][0]:
                count, waiter = reads.popleft()
                taken = self._take(count)
                if not waiter.done():  # else the reader was cancelled: its replies go
                    waiter.set_result(taken)
            if not reads:
                self.deadline = 0.0
            elif replies:
                self.deadline = self._loop.time() + self._timeout
        if unasked is not None:
            self._fail(f"unexpected reply {unasked}")
            self._transport.close()

    def eof_received(self) -> bool | None:
        self._fail("connection closed by the server")
        return None  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(f"connection lost ({exc})" if exc else "connection lost")
        if not self._released.done():
            self._released.set_result(None)

    def _fail(self, reason: str) -> None:
        if self._failure is None:
            self._failure = reason
        reads = self._reads
        if reads:
            self._reads = deque()
            self.deadline = 0.0
            # Those that came go with the first: a 421 among them says why the rest did not.
            _, waiter = reads.popleft()
            replies = self._take(len(self._replies))
            if not waiter.done():
                waiter.set_exception(SessionBroken(self._failure, replies))
            for _, waiter in reads:
                if not waiter.done():
                    waiter.set_exception(SessionBroken(self._failure, [], queued=True))
