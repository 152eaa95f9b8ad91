"""Request-scoped access to the running Herald."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from herald.runtime import Herald


def _herald(request: Request) -> Herald:
    herald: Herald = request.app.state.herald
    return herald


async def authenticated(request: Request) -> None:
    await request.app.state.key_check(request)


HeraldDep = Annotated[Herald, Depends(_herald)]
