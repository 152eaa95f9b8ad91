"""Accept-time checks of a push notification: a token the push services can take, a
payload under their 4 KB limit."""

from __future__ import annotations

import re
from typing import Any

import orjson

from herald.domain.message import push_platform
from herald.pipeline.prepared import Prepared
from herald.pipeline.requests import CONTROL_CHARACTERS, NotificationRequest

#: FCM, APNs and most Web Push services refuse payloads over 4,096 bytes.
MAX_PUSH_BYTES = 4096
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+=*")
_TOKEN = re.compile(r"[A-Za-z0-9_:.\-]{16,4096}")


def _token_problem(to: str) -> str | None:
    platform = push_platform(to)
    if platform == "webpush":
        try:
            subscription = orjson.loads(to)
        except orjson.JSONDecodeError:
            return "a Web Push subscription must be the JSON object the browser gave you"
        endpoint = subscription.get("endpoint") if isinstance(subscription, dict) else None
        keys = subscription.get("keys") if isinstance(subscription, dict) else None
        if not isinstance(endpoint, str) or not endpoint.startswith("https://"):
            return "a Web Push subscription needs an https endpoint"
        if not isinstance(keys, dict) or not all(
            isinstance(keys.get(k), str) and _BASE64URL.fullmatch(keys[k])
            for k in ("p256dh", "auth")
        ):
            return "a Web Push subscription needs keys.p256dh and keys.auth (base64url)"
        return None
    if not _TOKEN.fullmatch(to):
        return "not a device token (an FCM registration token or an APNs device token)"
    return None


def prepare_push(request: NotificationRequest) -> Prepared | dict[str, str]:
    errors: dict[str, str] = {}
    if not request.to or len(request.to) != 1:
        errors["to"] = "one device token (or Web Push subscription) per push notification"
    elif problem := _token_problem(request.to[0]):
        errors["to"] = problem
    if not request.title and not request.body:
        errors["body"] = "a push notification needs a title or a body"
    for name in ("title", "body"):
        value = getattr(request, name)
        if value is not None and CONTROL_CHARACTERS.search(value.replace("\n", "")):
            errors[name] = "must not contain control characters other than line breaks"
    data: dict[str, str] = {}
    for key, value in (request.data or {}).items():
        # FCM and APNs custom data are string maps; structured values travel as JSON text.
        data[key] = value if isinstance(value, str) else orjson.dumps(value).decode()
    if errors or not request.to:
        return errors
    payload: dict[str, Any] = {
        "to": request.to[0],
        "title": request.title,
        "body": request.body,
        "badge": request.badge,
        "link": request.link,
        "data": data,
        "ttl": request.ttl,
        "collapse_key": request.collapse_key,
    }
    visible = {k: v for k, v in payload.items() if k != "to"}
    size = len(orjson.dumps(visible))
    if size > MAX_PUSH_BYTES:
        return {
            "data": f"the push payload is {size:,} bytes; push services take {MAX_PUSH_BYTES:,}"
        }
    return Prepared(payload=payload, recipient=request.to[0][:320])
