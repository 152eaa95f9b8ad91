"""``/v1/captured``: what the capture provider kept instead of sending."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query
from pydantic import BaseModel

from herald.api.deps import CapturedCursor, HeraldDep, TextFilter
from herald.api.errors import ERRORS
from herald.domain.channels import Channel
from herald.pipeline.views import as_datetime

router = APIRouter(prefix="/v1/captured", tags=["captured"])


class CapturedMessage(BaseModel):
    id: int
    notification_id: str
    channel: str
    provider: str
    recipient: str
    created_at: datetime
    content: dict[str, Any]


class CapturedPage(BaseModel):
    items: list[CapturedMessage]
    next_cursor: str | None = None


class Cleared(BaseModel):
    deleted: int


@router.get("", response_model=CapturedPage, responses=ERRORS, summary="Captured messages")
async def list_captured(
    herald: HeraldDep,
    channel: Channel | None = None,
    notification_id: TextFilter | None = None,
    cursor: CapturedCursor = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> CapturedPage:
    """Newest first. For email, `content.raw` is the message exactly as it would be sent."""
    rows = await herald.captured.list(
        channel=channel.value if channel else None,
        notification_id=notification_id,
        before_id=int(cursor) if cursor else None,
        limit=limit + 1,
    )
    items = [
        CapturedMessage(
            id=row["id"],
            notification_id=row["notification_id"],
            channel=row["channel"],
            provider=row["provider"],
            recipient=row["recipient"],
            created_at=as_datetime(row["created_at"]),
            content=orjson.loads(row["content"]),
        )
        for row in rows[:limit]
    ]
    more = len(rows) > limit
    return CapturedPage(items=items, next_cursor=str(items[-1].id) if more and items else None)


@router.delete("", response_model=Cleared, responses=ERRORS, summary="Clear captured messages")
async def clear_captured(herald: HeraldDep, channel: Channel | None = None) -> Cleared:
    return Cleared(deleted=await herald.captured.clear(channel=channel.value if channel else None))
