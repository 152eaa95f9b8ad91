"""Turning pydantic validation errors into Herald's field-level error shape."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from herald.domain.errors import InvalidRequest

_MESSAGES = {
    "missing": "required",
    "extra_forbidden": "unknown field",
}


def field_path(loc: Iterable[int | str]) -> str:
    """``("notifications", 3, "to", 0)`` -> ``notifications[3].to[0]``."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path or "body"


def reason(error: Mapping[str, Any]) -> str:
    kind = str(error.get("type", ""))
    if kind in _MESSAGES:
        return _MESSAGES[kind]
    message = str(error.get("msg", "invalid"))
    return message.removeprefix("Value error, ")


def invalid_request(
    errors: Iterable[Mapping[str, Any]], *, strip: tuple[str, ...] = ()
) -> InvalidRequest:
    """An InvalidRequest naming each field; ``strip`` drops leading loc parts like "body"."""
    fields: dict[str, str] = {}
    for error in errors:
        loc = list(error.get("loc", ()))
        while loc and loc[0] in strip:
            loc.pop(0)
        fields.setdefault(field_path(loc), reason(error))
    return InvalidRequest("the request is not valid", fields)
