"""Accept-time checks of a webhook: an http(s) URL the SSRF guard does not refuse outright
(host names are resolved and checked again when connecting), and a JSON object to send."""

from __future__ import annotations

from herald.domain.network import url_problem
from herald.pipeline.prepared import ChannelLimits, Prepared
from herald.pipeline.requests import NotificationRequest

MAX_WEBHOOK_BYTES = 1024 * 1024


def prepare_webhook(
    request: NotificationRequest, *, now: float, limits: ChannelLimits, payload_bytes: int
) -> Prepared | dict[str, str]:
    errors: dict[str, str] = {}
    url = ""
    if not request.to or len(request.to) != 1:
        errors["to"] = "one URL per webhook notification"
    else:
        url = request.to[0]
        if problem := url_problem(url, limits.webhook_allowed_networks):
            errors["to"] = problem
    if payload_bytes > MAX_WEBHOOK_BYTES:
        errors["data"] = f"at most {MAX_WEBHOOK_BYTES:,} bytes of JSON"
    if errors:
        return errors
    payload = {
        "url": url,
        "event_type": request.category or "notification",
        "data": request.data or {},
        "created_at": now,
    }
    return Prepared(payload=payload, recipient=url[:320])
