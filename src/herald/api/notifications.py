"""``/v1/notifications``: accept, batch, read, list, cancel."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Response
from pydantic import BaseModel, BeforeValidator

from herald.api.deps import (
    HeraldDep,
    NotificationCursor,
    NotificationId,
    TextFilter,
    json_content,
)
from herald.api.errors import ERRORS, JSON_ERRORS
from herald.domain.channels import Channel
from herald.domain.errors import InvalidRequest
from herald.domain.status import Status
from herald.pipeline.requests import BatchRequest, NotificationRequest
from herald.pipeline.views import AcceptedItem, NotificationView, notification_view

router = APIRouter(prefix="/v1", tags=["notifications"])

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=255,
        description="Same key and body: the same notification back; another body: 409.",
    ),
]


def _split_commas(values: Any) -> Any:
    """``?status=queued,sent`` as well as ``?status=queued&status=sent``."""
    if not isinstance(values, list):
        return values
    return [part.strip() for value in values for part in str(value).split(",") if part.strip()]


StatusFilter = Annotated[
    list[Status] | None,
    BeforeValidator(_split_commas),
    Query(description="Repeat, or separate with commas."),
]


class BatchResponse(BaseModel):
    items: list[AcceptedItem]


class NotificationPage(BaseModel):
    items: list[NotificationView]
    next_cursor: str | None = None


@router.post(
    "/notifications",
    status_code=202,
    response_model=NotificationView,
    responses=JSON_ERRORS,
    dependencies=[Depends(json_content)],
    summary="Accept a notification",
)
async def create_notification(
    body: NotificationRequest,
    herald: HeraldDep,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> NotificationView:
    """202 once the notification is committed: it will be delivered (or reported dead)."""
    if idempotency_key and body.idempotency_key and idempotency_key != body.idempotency_key:
        raise InvalidRequest(
            "conflicting idempotency keys",
            {"idempotency_key": "differs from the Idempotency-Key header"},
        )
    view = await herald.send(body, idempotency_key=idempotency_key, actor="api")
    response.headers["Location"] = f"/v1/notifications/{view.id}"
    if view.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return view


@router.post(
    "/notifications/batch",
    status_code=202,
    response_model=BatchResponse,
    responses=JSON_ERRORS,
    dependencies=[Depends(json_content)],
    summary="Accept up to 1,000 notifications in one transaction",
)
async def create_batch(
    body: BatchRequest, herald: HeraldDep, idempotency_key: IdempotencyKey = None
) -> BatchResponse:
    """All or nothing: if any item is invalid, nothing is queued and every problem is
    reported under `notifications[i].<field>`. An `Idempotency-Key` header gives item *i*
    the key `<key>:<i>` unless the item has its own."""
    return BatchResponse(
        items=await herald.send_batch(
            body.notifications, idempotency_key=idempotency_key, actor="api"
        )
    )


@router.get(
    "/notifications/{notification_id}",
    response_model=NotificationView,
    responses=ERRORS,
    summary="A notification with its content and timeline",
)
async def get_notification(notification_id: NotificationId, herald: HeraldDep) -> NotificationView:
    return await herald.get(notification_id)


@router.get(
    "/notifications",
    response_model=NotificationPage,
    responses=ERRORS,
    summary="List notifications, newest first",
)
async def list_notifications(
    herald: HeraldDep,
    status: StatusFilter = None,
    channel: Channel | None = None,
    to: Annotated[TextFilter | None, Query(description="The primary recipient address.")] = None,
    recipient_id: TextFilter | None = None,
    category: TextFilter | None = None,
    cursor: NotificationCursor = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> NotificationPage:
    return await page(
        herald,
        statuses=[s.value for s in status or []],
        channel=channel.value if channel else None,
        recipient=to.strip().lower() if to else None,
        recipient_id=recipient_id,
        category=category,
        cursor=cursor,
        limit=limit,
    )


@router.post(
    "/notifications/{notification_id}/cancel",
    response_model=NotificationView,
    responses=ERRORS,
    summary="Cancel a notification that has not been sent yet",
)
async def cancel_notification(
    notification_id: NotificationId, herald: HeraldDep
) -> NotificationView:
    """409 `not_cancellable` once it is being sent or has reached an end state."""
    return await herald.cancel(notification_id, actor="api")


async def page(
    herald: HeraldDep,
    *,
    statuses: list[str],
    channel: str | None = None,
    recipient: str | None = None,
    recipient_id: str | None = None,
    category: str | None = None,
    cursor: str | None,
    limit: int,
) -> NotificationPage:
    rows = await herald.notifications.list(
        status=statuses,
        channel=channel,
        recipient=recipient,
        recipient_id=recipient_id,
        category=category,
        before_id=cursor,
        limit=limit + 1,
    )
    items = [notification_view(row) for row in rows[:limit]]
    more = len(rows) > limit
    return NotificationPage(items=items, next_cursor=items[-1].id if more and items else None)
