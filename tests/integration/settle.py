"""Draining until a retried notification has settled."""

from __future__ import annotations

from herald import Herald
from herald.pipeline.views import NotificationView


async def drain_until_settled(
    herald: Herald, notification_id: str, rounds: int = 5
) -> NotificationView:
    """Drain until the notification is no longer waiting for a retry (with
    ``retry_initial_delay=0`` the retry is due at once, but one drain may end before the
    worker claims it again)."""
    for _ in range(rounds):
        await herald.drain()
        view = await herald.get(notification_id)
        if view.status not in {"queued", "retrying", "sending"}:
            return view
    return view
