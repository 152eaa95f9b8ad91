"""Which request fields each channel uses, and deriving fallback notifications.

``"fallback": ["sms"]`` with ``"fallback_to": {"sms": "+1555…"}`` sends on the next channel
when the first fails permanently or dies. The fallback's content is derived at accept time
(and so checked then): the request's ``body``/``title`` when given, otherwise the email's
text and subject, cut to what the channel takes.
"""

from __future__ import annotations

from herald.domain.channels import Channel
from herald.domain.sms import truncate_to_segments
from herald.pipeline.email import text_from_html
from herald.pipeline.requests import NotificationRequest

_EMAIL = frozenset(
    {"sender", "subject", "html", "text", "cc", "bcc", "reply_to", "headers", "attachments"}
)
#: The content fields each channel reads (``to`` and the common fields are read by all).
CONTENT_FIELDS: dict[Channel, frozenset[str]] = {
    Channel.EMAIL: _EMAIL,
    Channel.SMS: frozenset({"body"}),
    Channel.PUSH: frozenset({"title", "body", "badge", "link", "ttl", "collapse_key", "data"}),
    Channel.WEBHOOK: frozenset({"data"}),
    Channel.CHAT: frozenset({"title", "body"}),
}
_ALL_CONTENT = frozenset().union(*CONTENT_FIELDS.values())
_PUSH_TEXT = 1000  # characters of derived push text; the whole payload must stay under 4 KB


def unused_fields(request: NotificationRequest) -> dict[str, str]:
    """Content fields set on the request that neither its channel nor a fallback reads."""
    extra = (request.model_fields_set & _ALL_CONTENT) - CONTENT_FIELDS[request.channel]
    if not extra:
        return {}
    for channel in request.fallback or ():
        extra -= CONTENT_FIELDS[channel]
    return {
        _alias(field): f"not used by the {request.channel.value} channel"
        for field in sorted(extra)
        if getattr(request, field) is not None
    }


def fallback_requests(
    request: NotificationRequest, sms_max_segments: int
) -> tuple[list[NotificationRequest], dict[str, str]]:
    """One request per fallback channel, in order, or the errors in ``fallback``/``fallback_to``."""
    if not request.fallback and not request.fallback_to:
        return [], {}
    errors: dict[str, str] = {}
    chain = request.fallback or []
    targets = request.fallback_to or {}
    if len(set(chain)) != len(chain):
        errors["fallback"] = "each channel at most once"
    if request.channel in chain:
        errors["fallback"] = f"cannot fall back to its own channel ({request.channel.value})"
    for channel in targets:
        if channel not in chain:
            errors[f"fallback_to.{channel.value}"] = "not in `fallback`"
    for channel in chain:
        if channel is not Channel.CHAT and channel not in targets:
            errors[f"fallback_to.{channel.value}"] = "who receives the fallback on this channel"
    if errors:
        return [], errors
    return [
        _derive(request, channel, targets.get(channel), sms_max_segments) for channel in chain
    ], {}


def _derive(
    request: NotificationRequest, channel: Channel, to: str | None, sms_max_segments: int
) -> NotificationRequest:
    text = request.body or request.text or (text_from_html(request.html) if request.html else "")
    title = request.title or request.subject
    fields: dict[str, object] = {
        "channel": channel,
        "to": [to] if to else None,
        "fallback": None,
        "fallback_to": None,
        **{name: None for name in _ALL_CONTENT},
    }
    if channel is Channel.SMS:
        fields["body"] = truncate_to_segments(text.strip(), sms_max_segments) if text else None
    elif channel is Channel.PUSH:
        fields.update(
            title=title, body=_cut(text, _PUSH_TEXT), data=request.data, link=request.link
        )
    elif channel is Channel.CHAT:
        fields.update(title=title, body=text or title)
    elif channel is Channel.WEBHOOK:
        fields["data"] = request.data or {"subject": title, "text": text}
    else:  # email
        fields.update(subject=title or "Notification", text=text or title)
    return request.model_copy(update=fields)


def _cut(text: str, limit: int) -> str | None:
    if not text:
        return None
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _alias(field: str) -> str:
    return "from" if field == "sender" else field
