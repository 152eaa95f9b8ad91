"""Request-scoped access to the running Herald."""

from __future__ import annotations

import re
from email.message import Message
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Path, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import AfterValidator, BeforeValidator, WithJsonSchema

from herald.domain.errors import NotFound
from herald.pipeline.requests import no_control_characters
from herald.runtime import Herald

_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


async def _herald(request: Request) -> Herald:
    # async on purpose: FastAPI runs a plain ``def`` dependency in a worker thread, a
    # thread hop per request that cost ~10% of the single-accept path.
    herald: Herald = request.app.state.herald
    return herald


# Declared for OpenAPI (the "Authorize" button); the key itself is checked by KeyCheck,
# which also decides whether a key is needed at all.
_bearer = HTTPBearer(
    auto_error=False,
    description="An API key from HERALD_API_KEYS or `herald keys create`; required once any "
    "key exists.",
)


async def authenticated(
    request: Request, _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> None:
    await request.app.state.key_check(request)


async def json_content(request: Request) -> None:
    """415 unless the body is declared JSON: otherwise FastAPI hands the model raw bytes and
    the caller gets a puzzling "body: should be a valid dictionary" for a valid JSON body."""
    message = Message()
    message["content-type"] = request.headers.get("content-type", "")
    subtype = message.get_content_subtype()
    if message.get_content_maintype() != "application" or not (
        subtype == "json" or subtype.endswith("+json")
    ):
        raise HTTPException(415, "send the body as JSON, with Content-Type: application/json")


def is_notification_id(value: str) -> bool:
    """Whether ``value`` has the shape of a notification id (a lowercase UUID)."""
    return _ID.fullmatch(value) is not None


async def _notification_id(
    notification_id: Annotated[str, Path(description="The id returned on accept.")],
) -> str:
    # Nothing else can exist, and the database must not see it: PostgreSQL refuses NUL.
    if not is_notification_id(notification_id):
        raise NotFound(f"no notification {notification_id!r}")
    return notification_id


HeraldDep = Annotated[Herald, Depends(_herald)]
NotificationId = Annotated[str, Depends(_notification_id)]
#: A free-text query filter; control characters are refused (PostgreSQL cannot take NUL).
TextFilter = Annotated[
    str,
    AfterValidator(no_control_characters),
    WithJsonSchema({"type": "string", "pattern": "^[^\\x00-\\x1f\\x7f]*$"}),
]


def _empty_as_absent(value: Any) -> Any:
    return None if value == "" else value


def _cursor_shaped(pattern: str) -> Any:
    """Validation and schema for a page cursor's value: ``next_cursor`` of the previous
    page, which looks as ``pattern`` says (or empty: the first page)."""
    shape = re.compile(pattern)

    def check(value: str) -> str:
        if not shape.fullmatch(value):
            raise ValueError("use next_cursor from the previous page")
        return value

    documented = {"type": "string", "pattern": f"^(?:{pattern})?$"}
    return (AfterValidator(check), WithJsonSchema(documented))


_CURSOR_HELP = "`next_cursor` of the previous page; absent or empty: the first page."
#: A notification id: anything else would compare as text and silently return a wrong page.
NotificationCursor = Annotated[
    Annotated[str, *_cursor_shaped(_ID.pattern)] | None,
    BeforeValidator(_empty_as_absent),
    Query(description=_CURSOR_HELP),
]
#: A captured message's number.
CapturedCursor = Annotated[
    Annotated[str, *_cursor_shaped(r"[0-9]{1,18}")] | None,
    BeforeValidator(_empty_as_absent),
    Query(description=_CURSOR_HELP),
]
