"""The MIME builder, checked the way a mail client would: parse the bytes back with the stdlib."""

from __future__ import annotations

import base64
import email
import email.policy
import math
import re
from email.header import decode_header, make_header
from email.message import EmailMessage, Message
from email.utils import formatdate, getaddresses

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from herald.domain import mime
from herald.domain.message import Address, Attachment, Email
from herald.domain.mime import build_email_bytes

SENDER = Address("Herald", "noreply@herald.example")
PDF = bytes(range(256)) * 40  # 10 KB, every byte value
PNG = b"\x89PNG\r\n\x1a\n" + bytes(200)


def make_email(**fields: object) -> Email:
    defaults: dict[str, object] = {
        "message_id": "01JD3Y8Z6V@herald.example",
        "date": 1_763_812_345.75,
        "subject": "Your order has shipped",
        "to": (Address("Alice Example", "alice@example.com"),),
        "text": "Hello Alice,\nyour order has shipped.\n",
    }
    return Email(**(defaults | fields))  # type: ignore[arg-type]


def attachment(
    filename: str, content: bytes, content_type: str, cid: str | None = None
) -> Attachment:
    return Attachment(filename, content_type, base64.b64encode(content).decode(), cid)


def parse(data: bytes) -> EmailMessage:
    msg = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def build(**fields: object) -> tuple[bytes, EmailMessage]:
    data = build_email_bytes(make_email(**fields), SENDER)
    assert_wire_format(data)
    return data, parse(data)


def assert_wire_format(data: bytes) -> None:
    """CRLF everywhere, nothing but CRLF, and no line over 998 octets (RFC 5322 §2.1.1)."""
    assert data.endswith(b"\r\n")
    assert data.count(b"\n") == data.count(b"\r\n") == data.count(b"\r")
    assert max(map(len, data.split(b"\r\n"))) <= 998


def header_lines(data: bytes) -> list[bytes]:
    """Every header line of every entity (the top-level one and each part's)."""
    msg = parse(data)
    blocks = [data.split(b"\r\n\r\n", 1)[0]]
    for part in msg.walk():
        if part.is_multipart():
            boundary = part.get_boundary()
            assert boundary
            for chunk in data.split(f"--{boundary}\r\n".encode())[1:]:
                blocks.append(chunk.split(b"\r\n\r\n", 1)[0])
    return [line for block in blocks for line in block.split(b"\r\n")]


def tree(part: Message) -> object:
    """The parts tree as content types: ``(multipart type, [children…])`` or a leaf type."""
    if part.is_multipart():
        children = part.get_payload()
        assert isinstance(children, list)
        return (part.get_content_type(), [tree(child) for child in children])
    return part.get_content_type()


def leaves(msg: EmailMessage) -> list[EmailMessage]:
    return [part for part in msg.walk() if not part.is_multipart()]  # type: ignore[misc]


def text_of(part: EmailMessage) -> str:
    content = part.get_content()
    assert isinstance(content, str)
    return content.replace("\r\n", "\n")


def normalised(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def rfc2047_display_names(data: bytes, field: str) -> list[str]:
    """Display names decoded per RFC 2047 §6.2, for names of several encoded-words.

    Python < 3.14's address parser keeps the whitespace between adjacent encoded-words of a
    phrase (CPython gh-128110); the legacy decoder drops it, as the RFC says.
    """
    raw = email.message_from_bytes(data, policy=email.policy.compat32)[field]
    unfolded = re.sub(r"\r?\n(?=[ \t])", "", raw)
    return [str(make_header(decode_header(name))) for name, _ in getaddresses([unfolded])]


# Headers


def test_standard_headers_are_written_and_bcc_is_not():
    data, msg = build(
        cc=(Address("", "carol@example.com"),),
        bcc=(Address("Secret", "hidden@example.com"),),
        reply_to=(Address("Support", "support@example.com"),),
    )
    assert str(msg["From"]) == "Herald <noreply@herald.example>"
    assert [a.addr_spec for a in msg["To"].addresses] == ["alice@example.com"]
    assert msg["To"].addresses[0].display_name == "Alice Example"
    assert [a.addr_spec for a in msg["Cc"].addresses] == ["carol@example.com"]
    assert [a.addr_spec for a in msg["Reply-To"].addresses] == ["support@example.com"]
    assert str(msg["Subject"]) == "Your order has shipped"
    assert msg["Message-ID"] == "<01JD3Y8Z6V@herald.example>"
    assert msg["MIME-Version"] == "1.0"
    assert msg["Bcc"] is None
    assert b"hidden@example.com" not in data
    assert b"Secret" not in data


def test_empty_cc_and_reply_to_are_left_out():
    data, msg = build()
    assert msg["Cc"] is None
    assert msg["Reply-To"] is None
    assert b"\r\nCc:" not in data


def test_date_is_the_acceptance_time_in_gmt():
    timestamp = 1_763_812_345.75
    data, msg = build(date=timestamp)
    assert f"\r\nDate: {formatdate(timestamp, usegmt=True)}\r\n".encode() in data
    assert msg["Date"].datetime.timestamp() == math.floor(timestamp)
    assert msg["Date"].datetime.utcoffset().total_seconds() == 0


def test_header_order():
    data, _ = build(
        cc=(Address("", "c@example.com"),),
        reply_to=(Address("", "r@example.com"),),
        headers=(("X-Campaign", "spring"), ("List-Unsubscribe", "<https://x.example/u/1>")),
    )
    head = data.split(b"\r\n\r\n", 1)[0].decode()
    names = [line.split(":", 1)[0] for line in head.split("\r\n") if not line.startswith(" ")]
    assert names == [
        "From",
        "To",
        "Cc",
        "Reply-To",
        "Subject",
        "Date",
        "Message-ID",
        "MIME-Version",
        "X-Campaign",
        "List-Unsubscribe",
        "Content-Type",
        "Content-Transfer-Encoding",
    ]


def test_non_ascii_subject_and_names_decode_back():
    data, msg = build(
        subject="Ваш заказ отправлен ✈ — ça arrive",
        to=(Address("Zoë Ångström", "zoe@example.com"), Address("山田太郎", "taro@example.jp")),
        cc=(Address("Émile", "emile@example.fr"),),
    )
    assert data.isascii()
    assert str(msg["Subject"]) == "Ваш заказ отправлен ✈ — ça arrive"
    assert [a.display_name for a in msg["To"].addresses] == ["Zoë Ångström", "山田太郎"]
    assert [a.addr_spec for a in msg["To"].addresses] == ["zoe@example.com", "taro@example.jp"]
    assert msg["Cc"].addresses[0].display_name == "Émile"


@pytest.mark.parametrize(
    "name",
    [
        "Smith, Alice",
        'Alice "Ace" Smith',
        "back\\slash",
        "Alice (work)",
        "alice@work",
        "Dr. Alice",
        "a;b:c<d>e[f]",
        "  spaced  out ",
        "=?utf-8?q?not_an_encoded_word?=",
    ],
)
def test_display_names_needing_quotes_or_encoding_round_trip(name: str):
    _, msg = build(to=(Address(name, "alice@example.com"), Address("Bob", "bob@example.com")))
    assert [a.display_name for a in msg["To"].addresses] == [name, "Bob"]
    assert [a.addr_spec for a in msg["To"].addresses] == ["alice@example.com", "bob@example.com"]


def test_long_subject_is_folded_and_unfolds_to_the_original():
    subject = "Your weekly digest: " + " ".join(f"item-{i}" for i in range(40))
    data, msg = build(subject=subject)
    assert str(msg["Subject"]) == subject
    assert all(len(line) <= 78 for line in header_lines(data))


def test_long_non_ascii_subject_uses_several_encoded_words():
    subject = "Привет, мир! 👋 " * 12
    data, msg = build(subject=subject)
    assert str(msg["Subject"]) == subject
    lines = header_lines(data)
    assert all(len(line) <= 78 for line in lines)
    words = re.findall(rb"=\?utf-8\?[bq]\?[^?]*\?=", data.split(b"\r\n\r\n", 1)[0])
    assert len(words) > 3
    assert all(len(word) <= 75 for word in words)  # RFC 2047 §2


def test_long_address_lists_fold_between_addresses():
    recipients = tuple(Address(f"Person {i}", f"person{i}@example.com") for i in range(30))
    data, msg = build(to=recipients)
    assert [a.addr_spec for a in msg["To"].addresses] == [r.addr for r in recipients]
    assert all(len(line) <= 78 for line in header_lines(data))


def test_long_non_ascii_display_name_follows_rfc_2047():
    name = "Société Générale de Développement Économique du Québec — Département Ω"
    data, _ = build(to=(Address(name, "contact@example.ca"),))
    assert rfc2047_display_names(data, "To") == [name]
    assert all(len(line) <= 78 for line in header_lines(data))


def test_non_ascii_local_part_is_raw_utf8_for_smtputf8():
    data = build_email_bytes(
        make_email(to=(Address("Jörg", "jörg@bücher.example"),)),
        Address("", "noreply@herald.example"),
    )
    assert_wire_format(data)
    assert "?= <jörg@bücher.example>\r\n".encode() in data
    assert not data.isascii()  # the SMTP client's cue for SMTPUTF8
    msg = email.message_from_string(data.decode(), policy=email.policy.default)
    assert msg["To"].addresses[0].addr_spec == "jörg@bücher.example"
    assert msg["To"].addresses[0].display_name == "Jörg"
    assert str(msg["From"]) == "noreply@herald.example"


def test_custom_headers_in_order_and_encoded_when_needed():
    headers = (
        ("X-Campaign", "spring"),
        ("X-Note", "réduction à 50 %"),
        ("X-Empty", ""),
        ("List-Unsubscribe", "<https://example.com/u/abc>, <mailto:u@example.com?subject=u>"),
        ("X-Campaign", "again"),
    )
    _, msg = build(headers=headers)
    assert msg.get_all("X-Campaign") == ["spring", "again"]
    assert str(msg["X-Note"]) == "réduction à 50 %"
    assert str(msg["X-Empty"]) == ""
    assert str(msg["List-Unsubscribe"]) == headers[3][1]


@pytest.mark.parametrize(
    "fields",
    [
        {"subject": "Hello\r\nBcc: victim@example.com"},
        {"subject": "line\nbreak"},
        {"subject": "carriage\rreturn"},
        {"headers": (("X-Evil", "a\r\nBcc: victim@example.com"),)},
        {"headers": (("X-Evil\r\nBcc", "victim@example.com"),)},
        {"headers": (("X Space", "v"),)},
        {"headers": (("X-Colon:", "v"),)},
        {"headers": (("Bcc", "victim@example.com"),)},
        {"headers": (("Content-Type", "text/html"),)},
        {"headers": (("subject", "second subject"),)},
        {"to": (Address("Alice\r\nBcc: x@example.com", "alice@example.com"),)},
        {"to": (Address("Ålice\nX", "alice@example.com"),)},
        {"to": (Address("", "alice@example.com\r\nBcc: x@example.com"),)},
        {"to": (Address("", "alice@example.com>, <x@example.com"),)},
        {"to": (Address("", "not an address"),)},
        {"to": (Address("", "a" * 250 + "@example.com"),)},
        {"cc": (Address("", "carol@example.com\n"),)},
        {"message_id": "id\r\nBcc: x@example.com"},
        {"message_id": "<bracketed@example.com>"},
        {"attachments": (attachment("a.pdf\r\nX: y", PDF, "application/pdf"),)},
        {"attachments": (attachment("a.pdf", PDF, "application/pdf\r\nX: y"),)},
        {"attachments": (attachment("a.pdf", PDF, "application/pdf;\r\n x=y"),)},
        {"attachments": (attachment("a.png", PNG, "image/png", "cid\r\nX: y"),)},
        {"attachments": (attachment("a.eml", b"Subject: x\r\n\r\n", "message/rfc822"),)},
        {"attachments": (attachment("a", b"x", "multipart/mixed"),)},
        {"attachments": (Attachment("a.txt", "text/plain", "aGVs\r\nbG8="),)},
        {"attachments": (Attachment("a.txt", "text/plain", "aGVsbG8=\u00e9"),)},
    ],
)
def test_header_injection_and_malformed_values_are_refused(fields: dict[str, object]):
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        build_email_bytes(make_email(**fields), SENDER)


def test_sender_is_validated_like_any_address():
    with pytest.raises(ValueError, match="CR or LF"):
        build_email_bytes(make_email(), Address("Herald\r\nBcc: x@example.com", "n@example.com"))


# Body shapes


def test_text_only():
    data, msg = build(text="Hello\nworld\n")
    assert tree(msg) == "text/plain"
    assert msg.get_content_charset() == "utf-8"
    assert msg["Content-Transfer-Encoding"] == "7bit"
    assert text_of(msg) == "Hello\nworld\n"
    assert data.endswith(b"\r\n\r\nHello\r\nworld\r\n")


def test_html_only():
    _, msg = build(text=None, html="<p>Hello</p>")
    assert tree(msg) == "text/html"
    assert msg.get_content_charset() == "utf-8"
    assert text_of(msg).rstrip("\n") == "<p>Hello</p>"


def test_text_and_html_are_alternatives_text_first():
    _, msg = build(text="Hello", html="<p>Hello</p>")
    assert tree(msg) == ("multipart/alternative", ["text/plain", "text/html"])
    text, html = leaves(msg)
    assert text_of(text) == "Hello"
    assert text_of(html) == "<p>Hello</p>"


def test_attachments_follow_the_body_in_mixed():
    _, msg = build(
        text="See attached.",
        html="<p>See attached.</p>",
        attachments=(
            attachment("invoice.pdf", PDF, "application/pdf"),
            attachment("notes.txt", b"plain\nnotes\n", "text/plain"),
        ),
    )
    assert tree(msg) == (
        "multipart/mixed",
        [("multipart/alternative", ["text/plain", "text/html"]), "application/pdf", "text/plain"],
    )
    pdf, notes = leaves(msg)[2:]
    assert pdf.get_filename() == "invoice.pdf"
    assert pdf.get_content_disposition() == "attachment"
    assert pdf["Content-Transfer-Encoding"] == "base64"
    assert pdf.get_payload(decode=True) == PDF
    assert notes.get_payload(decode=True) == b"plain\nnotes\n"


def test_attachment_base64_is_rewrapped_at_76_columns():
    data, _ = build(attachments=(attachment("invoice.pdf", PDF, "application/pdf"),))
    encoded = base64.b64encode(PDF)
    body = data.split(b'Content-Disposition: attachment; filename="invoice.pdf"\r\n\r\n')[1]
    lines = body.split(b"\r\n")[: math.ceil(len(encoded) / 76)]
    assert b"".join(lines) == encoded
    assert {len(line) for line in lines[:-1]} == {76}


def test_inline_parts_sit_with_the_html_in_related():
    _, msg = build(
        text="Logo below",
        html='<p><img src="cid:logo@herald"></p>',
        attachments=(
            attachment("logo.png", PNG, "image/png", cid="logo@herald"),
            attachment("invoice.pdf", PDF, "application/pdf"),
        ),
    )
    assert tree(msg) == (
        "multipart/mixed",
        [
            (
                "multipart/alternative",
                ["text/plain", ("multipart/related", ["text/html", "image/png"])],
            ),
            "application/pdf",
        ],
    )
    logo = leaves(msg)[2]
    assert logo["Content-ID"] == "<logo@herald>"
    assert logo.get_content_disposition() == "inline"
    assert logo.get_filename() == "logo.png"
    assert logo.get_payload(decode=True) == PNG


def test_html_only_with_inline_part_is_related():
    _, msg = build(
        text=None,
        html='<img src="cid:logo">',
        attachments=(attachment("logo.png", PNG, "image/png", cid="logo"),),
    )
    assert tree(msg) == ("multipart/related", ["text/html", "image/png"])


def test_inline_part_without_html_is_kept_as_an_inline_attachment():
    _, msg = build(attachments=(attachment("logo.png", PNG, "image/png", cid="logo"),))
    assert tree(msg) == ("multipart/mixed", ["text/plain", "image/png"])
    assert leaves(msg)[1]["Content-ID"] == "<logo>"


def test_attachments_without_body():
    _, msg = build(text=None, attachments=(attachment("a.pdf", PDF, "application/pdf"),))
    assert tree(msg) == ("multipart/mixed", ["application/pdf"])


def test_no_content_at_all_is_an_empty_text_part():
    _, msg = build(text=None)
    assert tree(msg) == "text/plain"
    assert text_of(msg) == ""


def test_non_ascii_filenames_use_rfc_2231_with_an_rfc_2047_fallback():
    name = "Facture été 2025 — 請求書.pdf"
    data, msg = build(attachments=(attachment(name, PDF, "application/pdf"),))
    part = leaves(msg)[1]
    assert part.get_filename() == name
    assert part["Content-Disposition"].params["filename"] == name
    assert part["Content-Type"].params["name"] == name
    assert b"filename*0*=utf-8''Facture%20%C3%A9t%C3%A9" in data
    assert b'name="=?utf-8?' in data
    assert all(len(line) <= 78 for line in header_lines(data))


def test_long_filenames_are_split_into_rfc_2231_sections():
    name = "Relevé de compte " * 8 + ".pdf"
    data, msg = build(attachments=(attachment(name, PDF, "application/pdf"),))
    assert leaves(msg)[1].get_filename() == name
    assert b"filename*0*=utf-8''" in data
    assert b"filename*1*=" in data
    assert all(len(line) <= 78 for line in header_lines(data))


# Transfer encodings


def test_ascii_is_7bit_and_line_endings_are_normalised():
    _, msg = build(text="one\rtwo\nthree\r\nfour\r\n", html="<p>x</p>")
    text = leaves(msg)[0]
    assert text["Content-Transfer-Encoding"] == "7bit"
    assert text_of(text) == "one\ntwo\nthree\nfour\n"


def test_mostly_latin_text_is_quoted_printable():
    body = "Bonjour Zoë,\nvotre commande a été expédiée ce matin. Merci de votre confiance !\n"
    data, msg = build(text=body)
    assert msg["Content-Transfer-Encoding"] == "quoted-printable"
    assert text_of(msg) == body
    assert b"exp=C3=A9di=C3=A9e" in data


def test_non_latin_text_is_base64_when_smaller():
    body = "ご注文の商品を発送しました。\nお届けまでしばらくお待ちください。\n" * 20
    _, msg = build(text="x", html=body)
    html = leaves(msg)[1]
    assert html["Content-Transfer-Encoding"] == "base64"
    assert text_of(html) == body


@pytest.mark.parametrize(
    "body", ["x" * 5000, "<p>" + "y" * 998 + "</p>\n", "line\n" + "z" * 999 + "\n", "nul\x00byte"]
)
def test_long_lines_and_nul_need_quoted_printable(body: str):
    data, msg = build(text=None, html=body)
    assert msg["Content-Transfer-Encoding"] == "quoted-printable"
    assert text_of(msg).rstrip("\n") == body.rstrip("\n")
    assert all(len(line) <= 76 for line in data.split(b"\r\n\r\n", 1)[1].split(b"\r\n"))


def test_boundary_never_occurs_in_the_content(monkeypatch: pytest.MonkeyPatch):
    tokens = iter([bytes(12), bytes(12), b"\x01" * 12])
    monkeypatch.setattr(mime.os, "urandom", lambda n: next(tokens))
    zero = "00" * 12
    text = f"Looks like a boundary:\n--=_a{zero}\n--=_m{zero}--\n"
    data, msg = build(text=text, html="<p>x</p>")
    assert zero.encode() not in data.replace(text.replace("\n", "\r\n").encode(), b"")
    assert tree(msg) == ("multipart/alternative", ["text/plain", "text/html"])
    assert text_of(leaves(msg)[0]) == text


def test_boundaries_are_distinct_and_none_prefixes_another():
    data, msg = build(
        html='<img src="cid:i">',
        attachments=(attachment("i.png", PNG, "image/png", "i"), attachment("a", b"a", "a/b")),
    )
    boundaries = [p.get_boundary() for p in msg.walk() if p.is_multipart()]
    assert len(boundaries) == 3
    assert all(
        not b.startswith(other) for b in boundaries for other in boundaries if other is not b
    )
    assert all(data.count(f"--{b}--\r\n".encode()) == 1 for b in boundaries if b)


# Properties: no deadline, tests never assert on timings (the parser is slow on a busy machine).

no_deadline = settings(deadline=None)
safe_text = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\r\n"))
any_text = st.text(st.characters(exclude_categories=["Cs"]))
ascii_heavy = st.text(
    st.characters(min_codepoint=0, max_codepoint=0x17F, exclude_characters="\r\n")
)


@no_deadline
@given(st.one_of(safe_text, ascii_heavy))
@example("  leading and trailing  ")
@example("x" * 2000)
@example("=?utf-8?q?x?=")
def test_any_subject_round_trips(subject: str):
    data, msg = build(subject=subject)
    assert str(msg["Subject"]) == subject
    assert data.isascii()


@no_deadline
@given(st.one_of(safe_text, ascii_heavy), st.one_of(safe_text, ascii_heavy))
@example(" ", "\"'")
@example("a" * 1500, "Ω" * 200)
@example('"' * 600, "\\" * 700)
def test_any_display_name_round_trips(first: str, second: str):
    to = (Address(first, "first@example.com"), Address(second, "second@example.com"))
    data, msg = build(to=to)
    assert [a.addr_spec for a in msg["To"].addresses] == ["first@example.com", "second@example.com"]
    assert rfc2047_display_names(data, "To") == [first, second]
    # The stdlib parser agrees, but for gh-128110 and for normalising the whitespace decoded
    # from an encoded-word in a phrase.
    for address, parsed in zip(to, msg["To"].addresses, strict=True):
        words = len(re.findall(r"=\?utf-8\?", mime._address_header("To", (address,))))
        if words == 1:
            assert parsed.display_name.split() == address.name.split()
        elif words == 0:
            assert parsed.display_name == address.name


@no_deadline
@given(any_text, any_text)
@example("a\rb\nc\r\n", "\r\n\r\n")
@example("--=_boundary\n", "x" * 3000)
def test_any_bodies_round_trip(text: str, html: str):
    data, msg = build(text=text, html=html)
    assert data.isascii()  # 7bit, quoted-printable or base64: no 8BITMIME needed
    plain, rich = leaves(msg)
    assert text_of(plain) == normalised(text)
    assert text_of(rich) == normalised(html)


@no_deadline
@given(st.one_of(safe_text, ascii_heavy))
@example("  spaced  ")
@example('quote" and \\ backslash')
def test_any_filename_round_trips(filename: str):
    data, msg = build(attachments=(attachment(filename, b"data", "application/octet-stream"),))
    assert data.isascii()
    part = leaves(msg)[1]
    if filename:
        assert part["Content-Disposition"].params["filename"] == filename
    assert part.get_payload(decode=True) == b"data"


@no_deadline
@given(
    st.lists(
        st.tuples(st.from_regex(r"X-[A-Za-z0-9-]{1,20}", fullmatch=True), any_text), max_size=4
    )
)
@example([("X-A", "v\r\nBcc: victim@example.com")])
@example([("X-A", "v\nX-Injected: 1")])
def test_header_values_never_inject_a_header(headers: list[tuple[str, str]]):
    fields = {"headers": tuple(headers)}
    if any("\r" in value or "\n" in value for _, value in headers):
        with pytest.raises(ValueError, match="CR or LF"):
            build_email_bytes(make_email(**fields), SENDER)
        return
    _, msg = build(**fields)
    custom = [(name, str(value)) for name, value in msg.items() if name.startswith("X-")]
    assert custom == headers


@no_deadline
@given(any_text, any_text, any_text)
@example("Hi\r\nBcc: victim@example.com", "", "x")
@example("Hi", "Eve\nBcc: victim@example.com", "x")
def test_subjects_names_and_filenames_never_inject_a_header(subject: str, name: str, file: str):
    fields = {
        "subject": subject,
        "to": (Address(name, "alice@example.com"),),
        "attachments": (attachment(file, b"x", "text/plain"),),
    }
    if any("\r" in value or "\n" in value for value in (subject, name, file)):
        with pytest.raises(ValueError, match="CR or LF"):
            build_email_bytes(make_email(**fields), SENDER)
        return
    _, msg = build(**fields)
    assert msg.keys() == [
        "From",
        "To",
        "Subject",
        "Date",
        "Message-ID",
        "MIME-Version",
        "Content-Type",
    ]
    assert [part.keys() for part in leaves(msg)][1] == [
        "Content-Type",
        "Content-Transfer-Encoding",
        "Content-Disposition",
    ]


attachments = st.lists(
    st.tuples(
        st.one_of(safe_text, ascii_heavy),
        st.binary(max_size=300),
        st.none() | st.from_regex(r"[a-z0-9.]{1,12}@herald", fullmatch=True),
    ),
    max_size=4,
)


@no_deadline
@given(st.none() | any_text, st.none() | any_text, attachments)
def test_any_shape_has_the_tree_a_mail_client_expects(
    text: str | None, html: str | None, files: list[tuple[str, bytes, str | None]]
):
    _, msg = build(
        text=text,
        html=html,
        attachments=tuple(
            attachment(name, data, "application/x-test", cid) for name, data, cid in files
        ),
    )
    inline = [file for file in files if file[2] and html is not None]
    attached = [file for file in files if not (file[2] and html is not None)]
    body: object = "text/html" if html is not None else None
    if inline:
        body = ("multipart/related", ["text/html"] + ["application/x-test"] * len(inline))
    if text is not None:
        body = ("multipart/alternative", ["text/plain", body]) if body else "text/plain"
    if attached:
        body = (
            "multipart/mixed",
            ([body] if body else []) + ["application/x-test"] * len(attached),
        )
    assert tree(msg) == (body or "text/plain")
    parts = leaves(msg)
    if text is None and html is None and not files:
        assert text_of(parts.pop(0)) == ""
    if text is not None:
        assert text_of(parts.pop(0)).rstrip("\n") == normalised(text).rstrip("\n")
    if html is not None:
        assert text_of(parts.pop(0)).rstrip("\n") == normalised(html).rstrip("\n")
    for part, (_, data, cid) in zip(parts, inline + attached, strict=True):
        assert part.get_payload(decode=True) == data
        assert part["Content-ID"] == (f"<{cid}>" if cid else None)
        assert part.get_content_disposition() == ("inline" if cid else "attachment")
