"""Firebase Cloud Messaging — ``fcm://``: the HTTP v1 API with service-account OAuth 2.0.

``POST /v1/projects/{project}/messages:send`` with a Bearer access token
(:mod:`herald.providers.google_oauth`); errors are classified by the ``errorCode`` FCM puts
in ``error.details`` (https://firebase.google.com/docs/reference/fcm/rest/v1/ErrorCode).
"""

from __future__ import annotations

import os
from typing import Any

import orjson

from herald.domain.channels import Channel
from herald.domain.errors import ConfigurationError, DeliveryError, PermanentError, TransientError
from herald.domain.message import Content, Delivery, Push, Receipt
from herald.providers.apns import expiry_and_collapse
from herald.providers.base import ProviderURL
from herald.providers.google_oauth import AccessTokens, ServiceAccount
from herald.providers.http import (
    HttpClient,
    HttpResponse,
    classify_status,
    client_from_url,
    retry_after,
)
from herald.providers.push_routing import push_for, serves_platform

FCM_URL = "https://fcm.googleapis.com"
FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
_FCM_ERROR = "type.googleapis.com/google.firebase.fcm.v1.FcmError"


class FcmProvider:
    """Sends to FCM registration tokens (Android, iOS through FCM, web through FCM)."""

    channel = Channel.PUSH
    platform = "fcm"

    def __init__(
        self,
        tokens: AccessTokens,
        project_id: str,
        *,
        name: str = "fcm",
        base_url: str = FCM_URL,
        http: HttpClient | None = None,
    ) -> None:
        self.name = name
        self._tokens = tokens
        self._send_url = f"{base_url.rstrip('/')}/v1/projects/{project_id}/messages:send"
        self._http = http or HttpClient()

    @classmethod
    def from_url(cls, url: ProviderURL, *, name: str) -> FcmProvider:
        path = url.option("credentials") or os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
        if not path:
            raise ConfigurationError(
                "fcm:// needs ?credentials=/path/to/service-account.json "
                "(or GOOGLE_APPLICATION_CREDENTIALS)"
            )
        account = ServiceAccount.from_file(path)
        project_id = url.option("project_id") or account.project_id
        if not project_id:
            raise ConfigurationError("fcm:// needs ?project_id= (the key file names none)")
        http = client_from_url(url)
        token_url = url.option("token_url") or account.token_uri
        tokens = AccessTokens(account, scope=FCM_SCOPE, token_url=token_url, http=http)
        base_url = url.option("base_url") or FCM_URL
        return cls(tokens, project_id, name=name, base_url=base_url, http=http)

    def serves(self, content: Content) -> bool:
        return serves_platform(content, self.platform)

    async def send(self, delivery: Delivery) -> Receipt:
        push = push_for(delivery, self.platform, self.name)
        body = orjson.dumps({"message": fcm_message(push)})
        token = await self._tokens.get()
        response = await self._post(body, token)
        if response.status == 401 and _reason(response)[0] == "UNAUTHENTICATED":
            # Our access token expired or was revoked early: fetch a new one, once.
            self._tokens.invalidate(token)
            response = await self._post(body, await self._tokens.get())
        error = fcm_error(response)
        if error is not None:
            raise error
        try:
            message_name = str(orjson.loads(response.body)["name"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            message_name = None
        return Receipt(provider_message_id=message_name, detail=f"HTTP {response.status} from FCM")

    async def check(self) -> None:
        await self._tokens.get()  # the credentials work and the token endpoint answers

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _post(self, body: bytes, token: str) -> HttpResponse:
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        return await self._http.request("POST", self._send_url, data=body, headers=headers)


def fcm_message(push: Push) -> dict[str, Any]:
    """The v1 ``Message``: common fields plus what each platform needs for badge, TTL,
    collapse key and link. ``link`` also travels in ``data`` for the app to open."""
    message: dict[str, Any] = {"token": push.to}
    notification = {k: v for k, v in (("title", push.title), ("body", push.body)) if v}
    if notification:
        message["notification"] = notification
    data = dict(push.data)
    if push.link:
        data.setdefault("link", push.link)
    if data:
        message["data"] = data
    android: dict[str, Any] = {}
    apns_headers = expiry_and_collapse(push)
    webpush: dict[str, Any] = {}
    if push.ttl is not None:
        android["ttl"] = f"{push.ttl}s"
        webpush["headers"] = {"TTL": str(push.ttl)}
    if push.collapse_key:
        android["collapse_key"] = push.collapse_key
    if android:
        message["android"] = android
    apns: dict[str, Any] = {}
    if apns_headers:
        apns["headers"] = apns_headers
    if push.badge is not None:
        apns["payload"] = {"aps": {"badge": push.badge}}
    if apns:
        message["apns"] = apns
    if push.link and push.link.startswith("https://"):  # FCM takes only HTTPS links here
        webpush["fcm_options"] = {"link": push.link}
    if webpush:
        message["webpush"] = webpush
    return message


def fcm_error(response: HttpResponse) -> DeliveryError | None:
    """None for 2xx; otherwise the error FCM's ``errorCode`` (or ``status``) calls for."""
    if 200 <= response.status < 300:
        return None
    reason, detail = _reason(response)
    message = f"FCM: HTTP {response.status} {reason}" + (f": {detail}" if detail else "")
    if reason == "UNREGISTERED":
        return PermanentError(message, code=reason, suppress=True)
    if reason == "INVALID_ARGUMENT":
        return PermanentError(message, code=reason)
    if reason in {"SENDER_ID_MISMATCH", "THIRD_PARTY_AUTH_ERROR", "PERMISSION_DENIED"}:
        # Our project, key or APNs/web credentials, not the device: another provider
        # (another Firebase project) may be able to send.
        return PermanentError(message, code=reason, recipient_fault=False)
    if reason in {"QUOTA_EXCEEDED", "UNAVAILABLE", "INTERNAL"}:
        return TransientError(message, code=reason, retry_after=retry_after(response.headers))
    return classify_status(response, what="FCM", code=reason)


def _reason(response: HttpResponse) -> tuple[str, str]:
    """``(errorCode or status, message)`` from a Google API error body."""
    try:
        error = orjson.loads(response.body)["error"]
        details = error.get("details") or []
        code = next(
            (d["errorCode"] for d in details if d.get("@type") == _FCM_ERROR), error["status"]
        )
        return str(code), str(error.get("message", ""))
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
        return str(response.status), response.text()[:300].strip()
