"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import asyncio
import contextlib
import time

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from herald import metrics
from herald.api.deps import HeraldDep
from herald.domain.breaker import CircuitState
from herald.domain.status import Status
from herald.providers.base import Provider
from herald.runtime import Herald

router = APIRouter(tags=["operations"])

_CHECK_TIMEOUT = 5.0
_CACHE_SECONDS = 5.0
_DEPTH = [
    s.value for s in (Status.SCHEDULED, Status.QUEUED, Status.RETRYING, Status.SENDING, Status.DEAD)
]


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str  # ready | degraded | unavailable
    database: str
    providers: dict[str, str]


@router.get("/healthz", response_model=Health, summary="Liveness")
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "The database is unreachable"}},
    summary="Readiness: the database and every provider",
)
async def readyz(herald: HeraldDep, request: Request, response: Response) -> Readiness:
    """503 only when the database is down. A failing provider, or one whose circuit
    breaker is open or half-open (`"circuit open"`), makes the status `degraded` but stays
    200, even when every provider of a channel is down: accepting still works (messages
    queue durably and are deferred until a circuit half-opens), and taking API nodes out of
    rotation because an SMTP relay is down would turn a delay into an outage. Breaker states
    are those of this process's worker (`herald serve`, embedded use).
    Results are cached for a few seconds so probes never hammer the providers."""
    cached: tuple[float, Readiness] | None = getattr(request.app.state, "readiness", None)
    if cached is not None and time.monotonic() - cached[0] < _CACHE_SECONDS:
        result = cached[1]
    else:
        result = await _check(herald)
        request.app.state.readiness = (time.monotonic(), result)
    if result.status == "unavailable":
        response.status_code = 503
    return result


async def _check(herald: Herald) -> Readiness:
    async def database() -> str:
        try:
            await asyncio.wait_for(herald.db.ping(), _CHECK_TIMEOUT)
        except Exception as exc:
            return f"error: {exc or type(exc).__name__}"
        return "ok"

    async def provider(p: Provider) -> str:
        guard = herald.guards.get(p.name)
        circuit = guard.state(time.time()) if guard is not None else CircuitState.CLOSED
        if circuit is not CircuitState.CLOSED:
            return f"circuit {circuit.label}"  # the worker is already keeping away from it
        try:
            await asyncio.wait_for(p.check(), _CHECK_TIMEOUT)
        except Exception as exc:
            return f"error: {exc or type(exc).__name__}"
        return "ok"

    providers = [p for group in herald.providers.values() for p in group]
    unique = list({p.name: p for p in providers}.values())
    db_state, *provider_states = await asyncio.gather(database(), *(provider(p) for p in unique))
    states = {p.name: state for p, state in zip(unique, provider_states, strict=True)}
    if db_state != "ok":
        status = "unavailable"
    elif all(state == "ok" for state in states.values()):
        status = "ready"
    else:
        status = "degraded"
    return Readiness(status=status, database=db_state, providers=states)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
)
async def prometheus(herald: HeraldDep) -> Response:
    # Still serve the process metrics when the database is down.
    with contextlib.suppress(Exception):
        depth = await herald.notifications.count_by_status(_DEPTH)
        for status, count in depth.items():
            metrics.QUEUE_DEPTH.labels(status).set(count)
    with contextlib.suppress(Exception):
        metrics.PARKED_REPORTS.set(await herald.delivery_reports.parked())
    now = time.time()
    for guard in herald.guards.values():
        guard.state(now)  # an open circuit whose cool-down ended shows as half-open
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
