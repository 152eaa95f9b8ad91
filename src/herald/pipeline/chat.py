"""Accept-time checks of a chat message (the destinations are the configured providers)."""

from __future__ import annotations

from herald.pipeline.prepared import Prepared
from herald.pipeline.requests import NotificationRequest

MAX_CHAT_CHARACTERS = 40_000


def prepare_chat(request: NotificationRequest) -> Prepared | dict[str, str]:
    errors: dict[str, str] = {}
    if request.to and len(request.to) != 1:
        errors["to"] = "at most one destination label per chat message"
    if not request.body:
        errors["body"] = "a chat message needs a body"
    elif len(request.body) > MAX_CHAT_CHARACTERS:
        errors["body"] = f"at most {MAX_CHAT_CHARACTERS:,} characters"
    if errors or request.body is None:
        return errors
    to = request.to[0] if request.to else None
    payload = {"body": request.body, "title": request.title, "to": to}
    return Prepared(payload=payload, recipient=(to or "chat")[:320])
