"""``/v1/dead-letters``: notifications that failed permanently or ran out of attempts."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from herald.api.deps import HeraldDep, NotificationCursor, NotificationId
from herald.api.errors import ERRORS
from herald.api.notifications import NotificationPage, page
from herald.domain.channels import Channel
from herald.domain.status import Status
from herald.pipeline.views import NotificationView

router = APIRouter(prefix="/v1/dead-letters", tags=["dead letters"])


@router.get("", response_model=NotificationPage, responses=ERRORS, summary="List dead letters")
async def list_dead_letters(
    herald: HeraldDep,
    channel: Channel | None = None,
    cursor: NotificationCursor = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> NotificationPage:
    """Newest first; `last_error` says why each one died."""
    return await page(
        herald,
        statuses=[Status.DEAD.value],
        channel=channel.value if channel else None,
        cursor=cursor,
        limit=limit,
    )


@router.post(
    "/{notification_id}/retry",
    response_model=NotificationView,
    responses=ERRORS,
    summary="Queue a dead letter again with a fresh set of attempts",
)
async def retry_dead_letter(notification_id: NotificationId, herald: HeraldDep) -> NotificationView:
    """409 `not_dead` if the notification is not in the dead letters."""
    return await herald.retry_dead(notification_id, actor="api")
