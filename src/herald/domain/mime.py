"""Turning an :class:`~herald.domain.message.Email` into RFC 5322 bytes, fast.

The bytes are assembled directly for the shapes Herald sends, at a small fraction of the cost of
``email.message.EmailMessage`` (``python -m bench.mime_build``); ``tests/unit/test_mime.py``
parses every shape back with the stdlib parser. Choices:

* Bodies are ``7bit`` when pure ASCII, NUL-free and no line exceeds 998 octets; otherwise
  quoted-printable, or base64 when that is shorter (text in non-Latin scripts).
* Multipart boundaries are ``=_`` + a kind letter + 96 random bits. ``=_`` never occurs in
  quoted-printable or base64 output, and bodies written as given (7bit text, attachments) are
  checked for the token, so no boundary can occur in the content (RFC 2046 §5.1.1).
* Addresses are written as given: an ASCII addr-spec (IDNA punycode domains included) as is, a
  non-ASCII one as raw UTF-8 (RFC 6532), which the SMTP client must send with SMTPUTF8
  (RFC 6531). Nothing else is ever 8-bit, so ``not data.isascii()`` tells it when.
* Header values are encoded-words (RFC 2047, UTF-8, Q or B, whichever is shorter) when not
  plain printable ASCII; attachment filenames use RFC 2231 in Content-Disposition, plus an
  RFC 2047 ``name`` on Content-Type for clients that ignore RFC 2231.
* A CR or LF in any header name or value raises ``ValueError`` (no header injection).
"""

from __future__ import annotations

import functools
import itertools
import math
import os
import re
import struct
import time
from binascii import b2a_base64, b2a_qp
from collections.abc import Iterable, Sequence
from urllib.parse import quote

from herald.domain.message import Address, Attachment, Email

_Part = tuple[str, bytes]  # (header lines, each ending in CRLF; body)

_WIDTH = 78  # RFC 5322 §2.1.1: lines SHOULD be at most 78 characters...
_MAX_LINE = 998  # ...and MUST be at most 998
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_ATOMS = re.compile(rf"{_ATEXT}(?: {_ATEXT})*")  # a phrase that needs no quoting
_QUOTABLE = re.compile(r"[ -~]*")  # printable ASCII: fits in a quoted-string
_RAW_TEXT = re.compile(r"[!-~]+(?: +[!-~]+)*")  # unstructured text that can go unencoded
_FIELD_NAME = re.compile(r"[!-9;-~]{1,76}")  # RFC 5322 §3.6.8 ftext
_MSG_ID = re.compile(r"[!-;=?-~]{1,900}")  # printable ASCII but "<" and ">"
_MIME_TYPE = re.compile(r"[\w!#$&^.+-]+/[\w!#$&^.+-]+(?: *;[ -~]*)?", re.ASCII)
_LOCAL_OR_DOMAIN = r'[^\s\x00-\x1f\x7f"(),:;<>@\[\\\]]+'
_ADDR_SPEC = re.compile(
    rf'(?:{_LOCAL_OR_DOMAIN}|"(?:[^"\\\x00-\x1f]|\\[^\x00-\x1f])*")'
    rf"@(?:{_LOCAL_OR_DOMAIN}|\[[^\x00-\x20\[\\\]]*\])"
)
#: Written by Herald itself: a custom header of that name would contradict it.
_RESERVED = frozenset(
    ["from", "to", "cc", "bcc", "reply-to", "subject", "date", "message-id", "mime-version"]
)
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

# RFC 2047 §5(3): the characters a Q-encoded word may carry literally anywhere, phrases included.
_Q_LITERAL = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!*+-/"
_Q_MAP = {i: f"={i:02X}" for i in range(256)} | {c: chr(c) for c in _Q_LITERAL} | {32: "_"}
_Q_CHEAP = _Q_LITERAL + b" "  # one output character each; every other byte takes three
_EW_OVERHEAD = len("=?utf-8?q??=")
# RFC 2231 attribute-char, less what urllib.parse.quote keeps anyway.
_ATTR_SAFE = "!#$&+^`|"

_B64_BLOCK = struct.Struct("76s" * 64)  # 64 base64 lines cut in one C call


def build_email_bytes(email: Email, sender: Address) -> bytes:
    """The message as sent: CRLF line endings, no Bcc header, ready for SMTP DATA."""
    head = [_address_header("From", (sender,))]
    if email.to:
        head.append(_address_header("To", email.to))
    if email.cc:
        head.append(_address_header("Cc", email.cc))
    if email.reply_to:
        head.append(_address_header("Reply-To", email.reply_to))
    head.append(_text_header("Subject", email.subject))
    head.append(f"Date: {_rfc5322_date(email.date)}\r\n")
    head.append(f"Message-ID: <{_msg_id(email.message_id)}>\r\nMIME-Version: 1.0\r\n")
    for name, value in email.headers:
        lowered = name.lower()
        if not _FIELD_NAME.fullmatch(name) or lowered in _RESERVED or lowered[:8] == "content-":
            raise ValueError(f"invalid or reserved header name {name!r}")
        head.append(_text_header(name, value))
    part_headers, body = _body(email)
    head.append(part_headers)
    if body and body[-2:] != b"\r\n":
        body += b"\r\n"
    head.append("\r\n")
    return "".join(head).encode() + body


# Header fields


def _rfc5322_date(timestamp: float) -> str:
    """RFC 5322 §3.3 date-time in GMT, as ``formatdate(usegmt=True)`` gives it."""
    return _date_of_second(math.floor(timestamp))


@functools.lru_cache(maxsize=64)  # a burst of messages shares a handful of seconds
def _date_of_second(second: int) -> str:
    t = time.gmtime(second)
    return (
        f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year:04d} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT"
    )


def _msg_id(value: str) -> str:
    if not _MSG_ID.fullmatch(value):
        raise ValueError(f"invalid message or content id {value!r}")
    return value


def _text_header(name: str, value: str) -> str:
    """An unstructured field (RFC 5322 §3.2.5), encoded-words where plain text won't do."""
    if _RAW_TEXT.fullmatch(value) and "=?" not in value:
        if len(name) + len(value) <= _WIDTH - 2:
            return f"{name}: {value}\r\n"
        words = value.split(" ")
        if max(map(len, words)) <= 900:
            return _fold(name, words)
    elif not value:
        return f"{name}:\r\n"
    _check_no_newline(value)
    return _fold(name, _encoded_words(value, _WIDTH - 2 - len(name)))


def _address_header(name: str, addresses: Sequence[Address]) -> str:
    """An address-list field (RFC 5322 §3.4), folded between and within addresses."""
    tokens: list[str] = []
    for display, addr in addresses:
        size = len(addr) if addr.isascii() else len(addr.encode())
        if size > 254 or not _ADDR_SPEC.fullmatch(addr):  # RFC 5321 §4.5.3.1.3: 254 octets
            raise ValueError(f"invalid address {addr!r}")
        if display:
            tokens += _phrase(display, _WIDTH - 2 - len(name) if not tokens else 75)
            tokens.append(f"<{addr}>,")
        else:
            tokens.append(f"{addr},")
    tokens[-1] = tokens[-1][:-1]
    line = " ".join(tokens)
    if len(name) + len(line) <= _WIDTH - 2:
        return f"{name}: {line}\r\n"
    return _fold(name, tokens)


def _phrase(display: str, room: int) -> list[str]:
    """A display name as folding tokens: atoms, a quoted-string or encoded-words."""
    if len(display) <= 900 and "=?" not in display:
        if _ATOMS.fullmatch(display):
            return display.split(" ")
        if _QUOTABLE.fullmatch(display):
            quoted = '"' + display.replace("\\", "\\\\").replace('"', '\\"') + '"'
            if len(quoted) <= 900:
                return quoted.split(" ")  # RFC 5322 §3.2.4: FWS may fold a quoted-string
    _check_no_newline(display)
    return _encoded_words(display, room)


def _encoded_words(text: str, room: int, width: int = 75) -> list[str]:
    """RFC 2047 encoded-words for ``text``: the first at most ``room`` characters long, the
    others at most ``width``, never splitting a character (§5, §6.3)."""
    data = text.encode()
    q_size = 3 * len(data) - 2 * (len(data) - len(data.translate(None, _Q_CHEAP)))
    use_q = q_size <= (len(data) + 2) // 3 * 4
    room = max(room, 24)  # a long field name pushes a line past 78: still within 998
    if (q_size if use_q else (len(data) + 2) // 3 * 4) <= room - _EW_OVERHEAD:
        return [_encoded_word(data, use_q)]
    words: list[str] = []
    chunk: list[bytes] = []
    size = 0
    for char in text:
        encoded = char.encode()
        cost = (1 if encoded in _Q_CHEAP else 3 * len(encoded)) if use_q else len(encoded)
        capacity = room - _EW_OVERHEAD if use_q else (room - _EW_OVERHEAD) // 4 * 3
        if chunk and size + cost > capacity:
            words.append(_encoded_word(b"".join(chunk), use_q))
            chunk, size, room = [], 0, width
        chunk.append(encoded)
        size += cost
    words.append(_encoded_word(b"".join(chunk), use_q))
    return words


def _encoded_word(data: bytes, use_q: bool) -> str:
    if use_q:
        return f"=?utf-8?q?{data.decode('latin-1').translate(_Q_MAP)}?="
    return f"=?utf-8?b?{b2a_base64(data, newline=False).decode('ascii')}?="


def _fold(name: str, tokens: Iterable[str]) -> str:
    """``name: token token…``, folded before a space (RFC 5322 §2.2.3) to fit 78 columns.

    An empty token (from a run of spaces) is never a fold point: no line is only whitespace.
    """
    lines: list[str] = []
    line = f"{name}:"
    for token in tokens:
        if token and len(line) + 1 + len(token) > _WIDTH and len(line) > len(name) + 1:
            lines.append(line)
            line = " " + token
        else:
            line += " " + token
    lines.append(line)
    if max(map(len, lines)) > _MAX_LINE:
        raise ValueError(f"{name} header has a token too long for one line")
    lines.append("")
    return "\r\n".join(lines)


def _check_no_newline(value: str) -> None:
    if "\r" in value or "\n" in value:
        raise ValueError(f"CR or LF in header value {value!r}")


def _param_header(name: str, value: str, params: Sequence[Sequence[str]]) -> str:
    """``name: value; param; param``; a parameter may span several folding tokens."""
    tokens = [value]
    for param in params:
        tokens[-1] += ";"
        tokens += param
    return _fold(name, tokens)


def _filename_params(attribute: str, filename: str) -> list[list[str]]:
    """RFC 2231 ``filename*=utf-8''…``, in sections of at most 54 characters (§3, §4)."""
    _check_no_newline(filename)
    if len(filename) <= 60 and _QUOTABLE.fullmatch(filename) and "=?" not in filename:
        escaped = filename.replace("\\", "\\\\").replace('"', '\\"')
        return [[f'{attribute}="{escaped}"']]
    value = quote(filename, safe=_ATTR_SAFE)
    if len(value) <= 54:
        return [[f"{attribute}*=utf-8''{value}"]]
    sections: list[list[str]] = []
    start = 0
    while start < len(value):
        end = min(start + 54, len(value))
        end -= 2 if value[end - 2] == "%" else 1 if value[end - 1] == "%" else 0
        charset = "utf-8''" if not sections else ""
        sections.append([f"{attribute}*{len(sections)}*={charset}{value[start:end]}"])
        start = end
    return sections


def _legacy_name(filename: str) -> list[str]:
    """Content-Type ``name`` with RFC 2047 words in a quoted-string: not standard, but what
    clients without RFC 2231 support read (and what Thunderbird writes)."""
    if len(filename) <= 60 and _QUOTABLE.fullmatch(filename) and "=?" not in filename:
        escaped = filename.replace("\\", "\\\\").replace('"', '\\"')
        return [f'name="{escaped}"']
    words = _encoded_words(filename, 69, 69)
    words[0] = 'name="' + words[0]
    words[-1] += '"'
    return words


# Bodies


def _body(email: Email) -> _Part:
    """The root part: a single part or a multipart tree, as mail clients expect it."""
    # Bodies written as given (7bit text, attachments) that contain "--=_", the start of our
    # delimiters: the boundary token is checked against them. Encoded bodies never contain "=_".
    verbatim: list[bytes] = []
    text = _text_part("plain", email.text, verbatim) if email.text is not None else None
    html = _text_part("html", email.html, verbatim) if email.html is not None else None
    inline: list[_Part] = []
    attached: list[_Part] = []
    for attachment in email.attachments:
        part = _attachment_part(attachment, verbatim)
        (inline if attachment.content_id and html else attached).append(part)
    if not (inline or attached or (text and html)):
        return text or html or _text_part("plain", "", verbatim)
    token = os.urandom(12).hex()
    while any(token.encode() in body for body in verbatim):
        token = os.urandom(12).hex()  # 96 random bits: never happens unless on purpose
    if html and inline:
        html = _multipart("related", token, [html, *inline])
    parts = [part for part in (text, html) if part]
    if len(parts) == 2:
        parts = [_multipart("alternative", token, parts)]
    if attached:
        return _multipart("mixed", token, parts + attached)
    return parts[0]  # inline parts imply html: something is there


def _multipart(subtype: str, token: str, parts: Sequence[_Part]) -> _Part:
    # Boundaries differ in their third character, so none is a prefix of another (RFC 2046 §5.1.1).
    boundary = f"=_{subtype[0]}{token}"
    chunks = [f"--{boundary}\r\n".encode()]
    delimiter = f"\r\n--{boundary}\r\n".encode()
    for headers, body in parts:
        chunks += (headers.encode(), b"\r\n", body, delimiter)
    chunks[-1] = f"\r\n--{boundary}--\r\n".encode()
    return f'Content-Type: multipart/{subtype}; boundary="{boundary}"\r\n', b"".join(chunks)


def _text_part(subtype: str, text: str, verbatim: list[bytes]) -> _Part:
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    data = text.replace("\n", "\r\n").encode()
    if (
        data.isascii()
        and b"\0" not in data
        and (len(data) <= _MAX_LINE or max(map(len, data.split(b"\r\n"))) <= _MAX_LINE)
    ):
        if b"--=_" in data:
            verbatim.append(data)
        encoding = "7bit"
    else:
        qp = b2a_qp(data, istext=True)
        if b"\n" not in data:  # b2a_qp soft-breaks with a bare LF when the text has no line break
            qp = qp.replace(b"=\n", b"=\r\n")
        b64 = (len(data) + 2) // 3 * 4
        if len(qp) <= b64 + b64 // 76 * 2:
            data, encoding = qp, "quoted-printable"
        else:
            data, encoding = _wrap76(b2a_base64(data, newline=False)), "base64"
    return (
        f"Content-Type: text/{subtype}; charset=utf-8\r\nContent-Transfer-Encoding: {encoding}\r\n",
        data,
    )


def _attachment_part(attachment: Attachment, verbatim: list[bytes]) -> _Part:
    content_type = attachment.content_type
    major = content_type.partition("/")[0].lower()
    # RFC 2046 §5.1.1, §5.2.1: multipart and message bodies may not be base64-encoded.
    if not _MIME_TYPE.fullmatch(content_type) or major in ("multipart", "message"):
        raise ValueError(f"invalid attachment content type {content_type!r}")
    content = attachment.content_base64.encode("ascii")
    if b"\r" in content or b"\n" in content:
        raise ValueError("attachment content has line breaks")
    if b"-" in content and b"--=_" in content:  # memchr first: base64 has no "-"
        verbatim.append(content)
    filename = attachment.filename
    disposition = "inline" if attachment.content_id else "attachment"
    headers = (
        _param_header("Content-Type", content_type, [_legacy_name(filename)] if filename else [])
        + "Content-Transfer-Encoding: base64\r\n"
        + _param_header(
            "Content-Disposition",
            disposition,
            _filename_params("filename", filename) if filename else [],
        )
    )
    if attachment.content_id:
        headers += f"Content-ID: <{_msg_id(attachment.content_id)}>\r\n"
    return headers, _wrap76(content)


def _wrap76(data: bytes) -> bytes:
    """Base64 text cut into 76-character lines (RFC 2045 §6.8), without decoding it."""
    whole = len(data) - len(data) % _B64_BLOCK.size
    lines: list[bytes] = list(
        itertools.chain.from_iterable(_B64_BLOCK.iter_unpack(memoryview(data)[:whole]))
    )
    lines += [data[i : i + 76] for i in range(whole, len(data), 76)]
    return b"\r\n".join(lines)
