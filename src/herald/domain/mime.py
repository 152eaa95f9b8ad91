"""Turning an :class:`~herald.domain.message.Email` into RFC 5322 bytes."""

from __future__ import annotations

import base64
from email.headerregistry import Address as HeaderAddress
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate

from herald.domain.message import Address, Email


def build_email_bytes(email: Email, sender: Address) -> bytes:
    """The message as sent: CRLF line endings, no Bcc header, ready for SMTP DATA."""
    msg = EmailMessage(policy=SMTP)
    msg["From"] = _header_address(sender)
    if email.to:
        msg["To"] = [_header_address(a) for a in email.to]
    if email.cc:
        msg["Cc"] = [_header_address(a) for a in email.cc]
    if email.reply_to:
        msg["Reply-To"] = [_header_address(a) for a in email.reply_to]
    msg["Subject"] = email.subject
    msg["Date"] = formatdate(email.date, localtime=False, usegmt=True)
    msg["Message-ID"] = f"<{email.message_id}>"
    for name, value in email.headers:
        msg[name] = value
    text = email.text
    if text is not None:
        msg.set_content(text)
    if email.html is not None:
        if text is None:
            msg.set_content(email.html, subtype="html")
        else:
            msg.add_alternative(email.html, subtype="html")
    for attachment in email.attachments:
        maintype, _sep, subtype = attachment.content_type.partition("/")
        msg.add_attachment(
            base64.b64decode(attachment.content_base64),
            maintype=maintype,
            subtype=subtype or "octet-stream",
            filename=attachment.filename,
            cid=f"<{attachment.content_id}>" if attachment.content_id else None,
        )
    return msg.as_bytes()


def _header_address(address: Address) -> HeaderAddress:
    return HeaderAddress(display_name=address.name, addr_spec=address.addr)
