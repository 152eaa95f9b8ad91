"""SMTP reply parsing and the lean session protocol (herald.providers.smtp_wire), no sockets."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from herald.providers.smtp_wire import (
    MAX_LINE,
    MAX_REPLY,
    ReplyError,
    ReplyParser,
    SessionBroken,
    SmtpReply,
    SmtpWire,
)

EHLO = (
    b"250-mx.example.org Hello client.herald.test\r\n"
    b"250-SIZE 35882577\r\n"
    b"250-PIPELINING\r\n"
    b"250 8BITMIME\r\n"
)
GROUP = b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n554 5.7.1 <b@x.org>: Relay access denied\r\n354 Go\r\n"


def parse(*chunks: bytes) -> list[SmtpReply]:
    parser = ReplyParser()
    return [reply for chunk in chunks for reply in parser.feed(chunk)]


# --- the parser --------------------------------------------------------------------------


def test_multi_line_reply_is_one_reply_with_its_lines_joined():
    assert parse(EHLO) == [
        SmtpReply(
            250, "mx.example.org Hello client.herald.test\nSIZE 35882577\nPIPELINING\n8BITMIME"
        )
    ]


def test_several_replies_in_one_read_come_out_in_order():
    assert parse(GROUP) == [
        SmtpReply(250, "2.1.0 Ok"),
        SmtpReply(250, "2.1.5 Ok"),
        SmtpReply(554, "5.7.1 <b@x.org>: Relay access denied"),
        SmtpReply(354, "Go"),
    ]


def test_replies_split_anywhere_parse_the_same():
    stream = EHLO + GROUP
    whole = parse(stream)
    for cut in range(1, len(stream)):
        assert parse(stream[:cut], stream[cut:]) == whole
    assert parse(*(stream[i : i + 1] for i in range(len(stream)))) == whole


def test_incomplete_reply_waits_for_the_rest():
    parser = ReplyParser()
    assert parser.feed(b"250-first\r\n250 sec") == []
    assert parser.feed(b"ond\r\n") == [SmtpReply(250, "first\nsecond")]


def test_bare_code_lf_endings_and_non_ascii_text():
    assert parse(b"250\r\n221 Bye\n550 5.1.1 \xc3\xa9chec  \r\n") == [
        SmtpReply(250, ""),
        SmtpReply(221, "Bye"),
        SmtpReply(550, "5.1.1 échec"),
    ]


def test_str_is_the_reply_as_the_server_wrote_it():
    assert str(SmtpReply(250, "2.0.0 Ok: queued as ABC")) == "250 2.0.0 Ok: queued as ABC"


@pytest.mark.parametrize(
    "data",
    [b"hello\r\n", b"25\r\n", b"2x0 Ok\r\n", b"<html>\r\n", b"250" + b"x" * MAX_LINE + b"\r\n"],
)
def test_garbage_is_a_reply_error(data: bytes):
    with pytest.raises(ReplyError):
        ReplyParser().feed(data)


@pytest.mark.parametrize("chunk", [b"x" * 1000, b"250-continued for ever\r\n"])
def test_endless_lines_are_refused_before_they_fill_memory(chunk: bytes):
    parser = ReplyParser()
    fed = 0
    with pytest.raises(ReplyError, match="too long"):  # noqa: PT012 (the loop must raise)
        while fed <= 10 * MAX_REPLY:
            fed += len(chunk)
            parser.feed(chunk)
    assert fed <= 2 * MAX_REPLY


_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"))
_replies = st.lists(
    st.tuples(st.integers(100, 599), st.lists(_text, min_size=1, max_size=4)), max_size=6
)


@given(replies=_replies, cuts=st.lists(st.integers(0, 10_000), max_size=12))
def test_any_chunking_of_a_reply_stream_gives_the_same_replies(
    replies: list[tuple[int, list[str]]], cuts: list[int]
):
    stream = b"".join(
        b"".join(
            f"{code}{'-' if i < len(lines) - 1 else ' '}{line}\r\n".encode()
            for i, line in enumerate(lines)
        )
        for code, lines in replies
    )
    points = sorted({0, len(stream), *(c % (len(stream) + 1) for c in cuts)})
    chunks = [stream[a:b] for a, b in itertools.pairwise(points)]

    assert parse(*chunks) == [
        SmtpReply(code, "\n".join(line.strip(" \t") for line in lines)) for code, lines in replies
    ]


# --- the protocol, on an in-memory transport ---------------------------------------------


class _Transport(asyncio.Transport):
    """Records writes; close() and abort() report the loss to the protocol, as asyncio does."""

    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []
        self.closing = False
        self.protocol: Any = None

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.protocol = protocol

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        if not self.closing:
            self.closing = True
            asyncio.get_running_loop().call_soon(self.protocol.connection_lost, None)

    def abort(self) -> None:
        self.close()


def _wire() -> tuple[SmtpWire, _Transport]:
    transport = _Transport()
    return SmtpWire.take_over(transport, timeout=30.0), transport


async def test_one_wait_for_a_group_of_replies_however_they_arrive():
    wire, transport = _wire()
    wire.write(b"MAIL FROM:<a@x.org>\r\nRCPT TO:<b@x.org>\r\nDATA\r\n", 3)
    reading = asyncio.ensure_future(wire.read(3))
    await asyncio.sleep(0)
    assert wire.deadline > 0
    wire.data_received(b"250 Ok\r\n250 O")
    await asyncio.sleep(0)
    assert not reading.done()
    wire.data_received(b"k\r\n354 Go\r\n")

    assert await reading == [SmtpReply(250, "Ok"), SmtpReply(250, "Ok"), SmtpReply(354, "Go")]
    assert wire.deadline == 0.0
    assert transport.written == [b"MAIL FROM:<a@x.org>\r\nRCPT TO:<b@x.org>\r\nDATA\r\n"]


async def test_replies_already_in_are_read_without_waiting():
    wire, _ = _wire()
    wire.write(b"RSET\r\nNOOP\r\n", 2)
    wire.data_received(b"250 Ok\r\n250 Ok\r\n")
    assert await wire.read(1) == [SmtpReply(250, "Ok")]
    assert await wire.read(1) == [SmtpReply(250, "Ok")]


async def test_connection_lost_mid_group_hands_over_the_replies_that_came():
    wire, _ = _wire()
    wire.write(b"MAIL FROM:<a@x.org>\r\nRCPT TO:<b@x.org>\r\nDATA\r\n", 3)
    reading = asyncio.ensure_future(wire.read(3))
    await asyncio.sleep(0)
    wire.data_received(b"421 4.3.2 Shutting down\r\n")
    wire.eof_received()

    with pytest.raises(SessionBroken) as raised:
        await reading
    assert raised.value.replies == [SmtpReply(421, "4.3.2 Shutting down")]
    assert "closed by the server" in raised.value.reason
    assert not wire.is_open
    with pytest.raises(SessionBroken):
        wire.write(b"RSET\r\n", 1)


async def test_a_reply_nobody_asked_for_ends_the_session():
    wire, transport = _wire()
    wire.data_received(b"421 4.4.2 Idle timeout\r\n")
    assert not wire.is_open
    assert transport.closing
    with pytest.raises(SessionBroken, match="unexpected reply 421"):
        wire.write(b"MAIL FROM:<a@x.org>\r\n", 1)


async def test_unreadable_reply_fails_the_wait():
    wire, transport = _wire()
    wire.write(b"NOOP\r\n", 1)
    reading = asyncio.ensure_future(wire.read(1))
    await asyncio.sleep(0)
    wire.data_received(b"HTTP/1.1 400 Bad Request\r\n")
    with pytest.raises(SessionBroken, match="unreadable reply"):
        await reading
    assert transport.closing


async def test_time_out_fails_the_wait_and_drops_the_connection():
    wire, transport = _wire()
    wire.write(b"DATA\r\n", 1)
    reading = asyncio.ensure_future(wire.read(1))
    await asyncio.sleep(0)
    wire.time_out()
    with pytest.raises(SessionBroken, match="timed out"):
        await reading
    assert wire.timed_out
    assert transport.closing
    await wire.wait_released(1.0)
    assert wire.released


# --- pipelining across transactions: queued reads, held writes ---------------------------


async def test_queued_reads_are_served_in_order_and_the_deadline_follows_the_first():
    wire, _ = _wire()
    wire.write(b".\r\nMAIL FROM:<a@x.org>\r\nRCPT TO:<b@x.org>\r\nDATA\r\n", 4)
    final = asyncio.ensure_future(wire.read(1))
    group = asyncio.ensure_future(wire.read(3))
    await asyncio.sleep(0)
    assert wire.deadline > 0
    wire.data_received(b"250 2.0.0 queued as A1\r\n250 Ok\r\n")
    await asyncio.sleep(0)
    assert await final == [SmtpReply(250, "2.0.0 queued as A1")]
    assert not group.done()
    assert wire.deadline > 0  # now the group's
    wire.data_received(b"250 Ok\r\n354 Go\r\n")
    assert await group == [SmtpReply(250, "Ok"), SmtpReply(250, "Ok"), SmtpReply(354, "Go")]
    assert wire.deadline == 0.0


async def test_a_cancelled_read_still_takes_its_replies():
    wire, _ = _wire()
    wire.write(b".\r\nNOOP\r\n", 2)
    final = asyncio.ensure_future(wire.read(1))
    noop = asyncio.ensure_future(wire.read(1))
    await asyncio.sleep(0)
    final.cancel()
    wire.data_received(b"250 queued\r\n250 NOOP ok\r\n")
    assert await noop == [SmtpReply(250, "NOOP ok")]


async def test_connection_lost_fails_queued_reads_as_queued():
    wire, _ = _wire()
    wire.write(b".\r\nMAIL FROM:<a@x.org>\r\nRCPT TO:<b@x.org>\r\nDATA\r\n", 4)
    final = asyncio.ensure_future(wire.read(1))
    group = asyncio.ensure_future(wire.read(3))
    await asyncio.sleep(0)
    wire.data_received(b"421 4.3.2 Shutting down\r\n")
    await asyncio.sleep(0)
    assert await final == [SmtpReply(421, "4.3.2 Shutting down")]
    wire.eof_received()
    with pytest.raises(SessionBroken) as raised:
        await group
    assert raised.value.replies == []
    assert not raised.value.queued  # its turn had come: the 421 was the final reply's

    wire, _ = _wire()
    wire.write(b".\r\nMAIL FROM:<a@x.org>\r\n", 2)
    final = asyncio.ensure_future(wire.read(1))
    group = asyncio.ensure_future(wire.read(1))
    await asyncio.sleep(0)
    wire.time_out()
    with pytest.raises(SessionBroken) as first:
        await final
    with pytest.raises(SessionBroken) as second:
        await group
    assert (first.value.queued, second.value.queued) == (False, True)


async def test_held_writes_and_those_after_go_out_in_one_write_on_flush():
    wire, transport = _wire()
    wire.write(b"body\r\n.\r\n", 1, hold=True)
    wire.write(b"MAIL FROM:<a@x.org>\r\n", 1)
    wire.flush_soon()
    wire.flush_soon()  # one flush
    wire.write(b"DATA\r\n", 1)  # in the same tick: joins them
    assert transport.written == []
    await asyncio.sleep(0)
    assert transport.written == [b"body\r\n.\r\nMAIL FROM:<a@x.org>\r\nDATA\r\n"]
    wire.write(b"NOOP\r\n", 1)  # nothing held: straight out
    assert transport.written[-1] == b"NOOP\r\n"


async def test_close_sends_what_is_held_first():
    wire, transport = _wire()
    wire.write(b"body\r\n.\r\n", 1, hold=True)
    wire.close()
    assert transport.written == [b"body\r\n.\r\n"]
    assert transport.closing
