"""The message as SMTP DATA carries it (herald.providers.smtp._wire_body)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from herald.providers.smtp import _wire_body

# What build_email_bytes gives: lines ending in CRLF, no other CR or LF.
_lines = st.lists(st.text(st.sampled_from(".a b\t\u00e9")), min_size=1, max_size=8)


@given(_lines)
def test_dot_stuffed_body_reads_back_as_the_message(lines: list[str]):
    message = "".join(f"{line}\r\n" for line in lines).encode()

    wire = _wire_body(message)

    assert wire.endswith(b"\r\n.\r\n")
    body = wire[:-3].split(b"\r\n")[:-1]
    assert b"." not in body  # no line ends the data early
    # RFC 5321 §4.5.2: the receiver drops the first of a line's leading dots.
    assert b"".join((line[1:] if line[:1] == b"." else line) + b"\r\n" for line in body) == message


def test_first_line_dot_is_stuffed_too():
    assert _wire_body(b".x\r\n..y\r\n") == b"..x\r\n...y\r\n.\r\n"
