"""A pool of persistent SMTP sessions for the SMTP provider, and the watchdog that times them."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Mapping

from herald.providers.smtp_wire import SessionBroken, SmtpWire


class SmtpSession:
    """One established SMTP connection: its wire, what the server offers, its bookkeeping."""

    __slots__ = (
        "eight_bit",
        "extensions",
        "idle_since",
        "pipelining",
        "size",
        "smtputf8",
        "transactions",
        "wire",
    )

    def __init__(self, wire: SmtpWire, extensions: Mapping[str, str], *, pipelining: bool) -> None:
        self.wire = wire
        #: EHLO keywords (lower case) and their parameters.
        self.extensions = extensions
        #: RFC 2920, when offered and not turned off (``pipelining=False``).
        self.pipelining = pipelining and "pipelining" in extensions
        self.size = "size" in extensions  # RFC 1870
        self.eight_bit = "8bitmime" in extensions  # RFC 6152
        self.smtputf8 = "smtputf8" in extensions  # RFC 6531
        self.transactions = 0
        self.idle_since = 0.0

    @property
    def reused(self) -> bool:
        """It has sat idle in the pool, so the server may have closed it meanwhile."""
        return self.idle_since > 0.0


class SessionPool:
    """Up to ``size`` sessions, lent out one caller at a time.

    Sessions are opened lazily and kept idle in LIFO order (the busiest stay warm, the
    rest age out); a session given back while callers wait goes straight to the first of
    them. A session is retired (QUIT) after ``max_messages`` transactions or
    ``idle_timeout`` seconds idle, and dropped at once if it broke. Retiring one holds a
    slot until its socket is closed, so no more than ``size`` connections are ever open.

    A watchdog ticking while any session is open enforces each wire's ``deadline`` and the
    idle timeout. Arming a deadline is a float store per wait, where asyncio.timeout() or
    wait_for() cost a timer handle each (about a quarter of the CPU an SMTP transaction
    took); the price is precision: a timeout fires up to one tick late.
    """

    def __init__(
        self,
        connect: Callable[[], Awaitable[SmtpSession]],
        *,
        size: int,
        max_messages: int,
        idle_timeout: float,
        command_timeout: float,
    ) -> None:
        self._connect = connect
        self._free = size  # slots not held by a session in use, opening or retiring
        # Callers waiting for a slot (result None) or a session handed over with its slot.
        self._waiters: deque[asyncio.Future[SmtpSession | None]] = deque()
        self._max_messages = max_messages
        self._idle_timeout = idle_timeout
        self._command_timeout = command_timeout
        self._tick_every = min(1.0, command_timeout / 4, idle_timeout / 4)
        self._idle: list[SmtpSession] = []  # [0] has been idle longest
        self._sessions: set[SmtpSession] = set()  # every one whose socket may still be open
        self._retiring: set[asyncio.Task[None]] = set()
        self._ticker: asyncio.TimerHandle | None = None
        self.closed = False

    async def acquire(self) -> SmtpSession:
        """A live session: an idle one if any, else a new connection (waits for a slot)."""
        if self._free:  # then nobody waits: slots go to waiters first
            self._free -= 1
        else:
            waiter: asyncio.Future[SmtpSession | None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                handed = await waiter
            except BaseException:
                if not waiter.cancelled():  # handed something just before the cancellation
                    self._pass_on(waiter.result())
                raise
            if handed is not None:
                return handed
        try:
            if self._idle:
                deadline = asyncio.get_running_loop().time() - self._idle_timeout
                while self._idle:
                    session = self._idle.pop()
                    if session.wire.is_open and session.idle_since > deadline:
                        return session
                    session.wire.close()
            session = await self._connect()
            self._sessions.add(session)
            if self._ticker is None:
                self._ticker = asyncio.get_running_loop().call_later(self._tick_every, self._tick)
            return session
        except BaseException:
            self._pass_on(None)
            raise

    def release(self, session: SmtpSession) -> None:
        """Give a session back: kept if still usable, else retired or dropped."""
        if not session.wire.is_open:
            session.wire.close()
            self._pass_on(None)
        elif self.closed or session.transactions >= self._max_messages:
            self._retire(session)
        else:
            session.idle_since = asyncio.get_running_loop().time()
            self._pass_on(session)

    def _pass_on(self, session: SmtpSession | None) -> None:
        """A slot (with this session, if any) to the first caller waiting, else back."""
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():  # cancelled ones are
                waiter.set_result(session)
                return
        if session is not None:
            self._idle.append(session)
        self._free += 1

    async def aclose(self) -> None:
        """QUIT every idle session and wait until their sockets are released.

        Sessions in use are retired when given back; the watchdog keeps timing them.
        """
        self.closed = True
        idle, self._idle = self._idle, []
        for session in idle:
            self._retire_idle(session)
        if self._retiring:
            await asyncio.gather(*self._retiring, return_exceptions=True)
        closing = [s.wire for s in self._sessions if not s.wire.is_open and not s.wire.released]
        if closing:
            await asyncio.gather(*(w.wait_released(self._command_timeout) for w in closing))
        self._sessions = {s for s in self._sessions if not s.wire.released}
        if not self._sessions and self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None

    def _tick(self) -> None:
        self._ticker = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        for session in self._sessions:
            wire = session.wire
            if wire.deadline and now > wire.deadline:
                wire.time_out()  # the pending read fails with SessionBroken
        idle_limit = now - self._idle_timeout
        while self._idle and self._idle[0].idle_since <= idle_limit:
            self._retire_idle(self._idle.pop(0))
        self._sessions = {s for s in self._sessions if not s.wire.released}
        if self._sessions:
            self._ticker = loop.call_later(self._tick_every, self._tick)

    def _retire_idle(self, session: SmtpSession) -> None:
        # An idle session stands for a free slot (there are never more idle sessions than
        # free slots): it takes that slot while it closes.
        self._free -= 1
        self._retire(session)

    def _retire(self, session: SmtpSession) -> None:
        """QUIT in the background; the slot the session holds is freed once it is closed."""
        task = asyncio.get_running_loop().create_task(self._quit(session.wire))
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def _quit(self, wire: SmtpWire) -> None:
        try:
            if wire.is_open:
                wire.write(b"QUIT\r\n", 1)
                await wire.read(1)  # 221 or not, it is going away; timed by the watchdog
        except SessionBroken:
            pass
        finally:
            wire.close()
            # Only once the socket is gone: at no time more than `size` connections.
            await wire.wait_released(self._command_timeout)
            self._pass_on(None)
