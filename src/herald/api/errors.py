"""Every error leaves the API as ``{"error": {"code", "message", "fields"}}``."""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from herald.domain.errors import (
    ConfigurationError,
    Conflict,
    DatabaseUnavailable,
    InvalidRequest,
    NotFound,
)
from herald.pipeline.errors import invalid_request

log = structlog.get_logger(__name__)


class ErrorDetail(BaseModel):
    code: str = Field(examples=["invalid_request"])
    message: str
    fields: dict[str, str] = Field(
        default_factory=dict,
        description="Field path (e.g. `notifications[3].to`) -> what is wrong with it.",
    )


class ErrorBody(BaseModel):
    error: ErrorDetail


def error_response(
    status: int, code: str, message: str, fields: dict[str, str] | None = None
) -> JSONResponse:
    body = ErrorBody(error=ErrorDetail(code=code, message=message, fields=fields or {}))
    return JSONResponse(body.model_dump(), status_code=status)


#: For ``responses=`` in route declarations, so OpenAPI shows the error shape.
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "Missing or unknown API key"},
    404: {"model": ErrorBody, "description": "Not found"},
    409: {"model": ErrorBody, "description": "Conflicts with the current state"},
    413: {"model": ErrorBody, "description": "Request body too large"},
    415: {"model": ErrorBody, "description": "The request body is not JSON"},
    422: {"model": ErrorBody, "description": "Invalid input; `fields` says which and why"},
    503: {
        "model": ErrorBody,
        "description": "The database is unavailable (`database_unavailable`): retry after "
        "`Retry-After` seconds",
    },
}
#: For routes that take a JSON body.
JSON_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "The body is not valid JSON (`malformed_json`)"},
    **ERRORS,
}
#: Seconds a client is asked to wait before retrying when the database is unavailable.
RETRY_AFTER_UNAVAILABLE = 1

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def install(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        malformed = next((e for e in errors if e.get("type") == "json_invalid"), None)
        if malformed is not None:
            position = malformed.get("loc", ("body", "?"))[-1]
            reason = malformed.get("ctx", {}).get("error", "invalid JSON")
            return error_response(
                400, "malformed_json", f"the body is not valid JSON: {reason} at byte {position}"
            )
        invalid = invalid_request(errors, strip=("body", "query", "path", "header"))
        return error_response(422, "invalid_request", invalid.message, invalid.fields)

    @app.exception_handler(InvalidRequest)
    async def _invalid(_request: Request, exc: InvalidRequest) -> JSONResponse:
        return error_response(422, "invalid_request", exc.message, exc.fields)

    @app.exception_handler(Conflict)
    async def _conflict(_request: Request, exc: Conflict) -> JSONResponse:
        return error_response(409, exc.code, exc.message)

    @app.exception_handler(NotFound)
    async def _not_found(_request: Request, exc: NotFound) -> JSONResponse:
        return error_response(404, "not_found", str(exc))

    @app.exception_handler(ConfigurationError)
    async def _configuration(_request: Request, exc: ConfigurationError) -> JSONResponse:
        return error_response(503, "misconfigured", str(exc))

    @app.exception_handler(DatabaseUnavailable)
    async def _unavailable(request: Request, exc: DatabaseUnavailable) -> JSONResponse:
        log.warning("database_unavailable", path=request.url.path, error=str(exc))
        response = error_response(
            503,
            "database_unavailable",
            f"{exc}. Retry after Retry-After seconds; a notification sent with an "
            "idempotency key cannot be accepted twice.",
        )
        response.headers["Retry-After"] = str(RETRY_AFTER_UNAVAILABLE)
        return response

    @app.exception_handler(HTTPException)
    async def _http(_request: Request, exc: HTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "error")
        response = error_response(exc.status_code, code, str(exc.detail))
        if exc.headers:
            response.headers.update(exc.headers)
        return response

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled_error", path=request.url.path)
        return error_response(500, "internal_error", "an unexpected error occurred; see logs")
