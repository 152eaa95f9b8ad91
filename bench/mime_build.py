"""MIME assembly throughput: Herald's builder against the stdlib ways of building the same email.

Run from the repository root: ``python -m bench.mime_build [--repeat 5]``. Prints JSON with
messages per second (best of ``--repeat`` runs, one core) for two messages: a ~1 KB text+html
email, and the same with a 100 KB attachment.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import timeit
from collections.abc import Callable
from email.header import Header
from email.headerregistry import Address as HeaderAddress
from email.message import EmailMessage
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.policy import SMTP, compat32
from email.utils import formataddr, formatdate

from herald.domain.message import Address, Attachment, Email
from herald.domain.mime import build_email_bytes

SENDER = Address("Example Shop", "noreply@shop.example")
_COMPAT32_CRLF = compat32.clone(linesep="\r\n")


def sample_email(attachment_size: int = 0) -> Email:
    """A typical transactional email: ~1 KB of text and html, one recipient."""
    line = "Hello Alice, your order #12345 has shipped and is on its way to you.\n"
    text = line * 7
    html = "<html><body>" + "".join(f"<p>{line.strip()}</p>" for _ in range(6)) + "</body></html>"
    attachments: tuple[Attachment, ...] = ()
    if attachment_size:
        content = base64.b64encode(os.urandom(attachment_size)).decode("ascii")
        attachments = (Attachment("invoice-12345.pdf", "application/pdf", content),)
    return Email(
        message_id="01JD3Y8Z6V1Q2W3E4R5T6Y7U8I@herald.example",
        date=1_763_812_345.0,
        subject="Your order #12345 has shipped",
        to=(Address("Alice Example", "alice@example.com"),),
        text=text,
        html=html,
        headers=(("List-Unsubscribe", "<https://shop.example/unsubscribe/abc123>"),),
        attachments=attachments,
    )


def build_with_email_message(email: Email, sender: Address) -> bytes:
    """Herald's first builder: ``EmailMessage`` with the default policy (CRLF variant)."""
    msg = EmailMessage(policy=SMTP)
    msg["From"] = HeaderAddress(display_name=sender.name, addr_spec=sender.addr)
    msg["To"] = [HeaderAddress(display_name=a.name, addr_spec=a.addr) for a in email.to]
    msg["Subject"] = email.subject
    msg["Date"] = formatdate(email.date, usegmt=True)
    msg["Message-ID"] = f"<{email.message_id}>"
    for name, value in email.headers:
        msg[name] = value
    msg.set_content(email.text or "")
    msg.add_alternative(email.html or "", subtype="html")
    for attachment in email.attachments:
        maintype, _, subtype = attachment.content_type.partition("/")
        msg.add_attachment(
            base64.b64decode(attachment.content_base64),
            maintype=maintype,
            subtype=subtype,
            filename=attachment.filename,
        )
    return msg.as_bytes()


def build_with_compat32(email: Email, sender: Address) -> bytes:
    """The legacy ``email.mime`` classes (compat32 policy)."""
    body = MIMEMultipart("alternative")
    body.attach(MIMEText(email.text or "", "plain", "utf-8"))
    body.attach(MIMEText(email.html or "", "html", "utf-8"))
    msg = body
    if email.attachments:
        msg = MIMEMultipart("mixed")
        msg.attach(body)
        for attachment in email.attachments:
            part = MIMEApplication(
                base64.b64decode(attachment.content_base64),
                attachment.content_type.partition("/")[2],
            )
            part.add_header("Content-Disposition", "attachment", filename=attachment.filename)
            msg.attach(part)
    msg["From"] = formataddr((sender.name, sender.addr))
    msg["To"] = ", ".join(formataddr((a.name, a.addr)) for a in email.to)
    msg["Subject"] = Header(email.subject, "utf-8").encode()
    msg["Date"] = formatdate(email.date, usegmt=True)
    msg["Message-ID"] = f"<{email.message_id}>"
    for name, value in email.headers:
        msg[name] = value
    return msg.as_bytes(policy=_COMPAT32_CRLF)


BUILDERS: dict[str, Callable[[Email, Address], bytes]] = {
    "herald": build_email_bytes,
    "stdlib_email_message": build_with_email_message,
    "compat32_email_mime": build_with_compat32,
}


def measure(
    build: Callable[[Email, Address], bytes], email: Email, repeat: int
) -> dict[str, float]:
    timer = timeit.Timer(lambda: build(email, SENDER))
    number, _ = timer.autorange()  # enough calls for >= 0.2 s per run
    best = min(timer.repeat(repeat=repeat, number=number)) / number
    return {
        "messages_per_s": round(1 / best),
        "us_per_message": round(best * 1e6, 2),
        "bytes": len(build(email, SENDER)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per figure; the best counts")
    args = parser.parse_args()
    cases = {"text_html_1kb": sample_email(), "text_html_100kb_attachment": sample_email(100_000)}
    results: dict[str, dict[str, dict[str, float]]] = {}
    for case, email in cases.items():
        results[case] = {
            name: measure(build, email, args.repeat) for name, build in BUILDERS.items()
        }
        herald = results[case]["herald"]["messages_per_s"]
        for figures in results[case].values():
            figures["herald_speedup"] = round(herald / figures["messages_per_s"], 1)
    report = {
        "benchmark": "mime_build",
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "results": results,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
