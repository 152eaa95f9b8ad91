"""The FastAPI application."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi.responses import RedirectResponse

from herald import __version__
from herald.api import captured, dead_letters, errors, health, inbound, notifications
from herald.api.auth import KeyCheck
from herald.api.deps import authenticated
from herald.api.limits import BodyLimit
from herald.runtime import Herald


def create_app(
    herald: Herald, *, run_worker: bool = False, worker_concurrency: int | None = None
) -> FastAPI:
    """The API for ``herald``; with ``run_worker`` the same process also delivers."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await herald.start()
        app.state.key_check = KeyCheck(herald.settings.api_key_list, herald.api_keys)
        stop = asyncio.Event()
        worker = (
            asyncio.create_task(herald.run_worker(stop, concurrency=worker_concurrency))
            if run_worker
            else None
        )
        try:
            yield
        finally:
            stop.set()
            if worker is not None:
                await worker
            await herald.aclose()

    app = FastAPI(
        title="Herald",
        version=__version__,
        summary="Durable, multi-channel notifications",
        lifespan=lifespan,
    )
    app.state.herald = herald
    errors.install(app)
    app.add_middleware(BodyLimit, max_bytes=herald.settings.max_request_bytes)
    secured = [Depends(authenticated)]
    app.include_router(notifications.router, dependencies=secured)
    app.include_router(dead_letters.router, dependencies=secured)
    app.include_router(captured.router, dependencies=secured)
    app.include_router(health.router)
    app.include_router(inbound.router)  # providers sign their callbacks instead of a key

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/docs")

    return app
