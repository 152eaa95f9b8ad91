"""Request-scoped access to the running Herald."""

from __future__ import annotations

from email.message import Message
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from herald.runtime import Herald


def _herald(request: Request) -> Herald:
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


HeraldDep = Annotated[Herald, Depends(_herald)]
