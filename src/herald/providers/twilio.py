"""Twilio Programmable Messaging: ``twilio://ACCOUNT_SID:AUTH_TOKEN@+15550001111``.

One ``POST /2010-04-01/Accounts/{sid}/Messages.json`` per message (form-encoded, HTTP basic
auth); the message SID Twilio returns is the provider message id that status callbacks
(``POST /inbound/twilio/status``) refer to.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable
from urllib.parse import quote_plus, unquote, urlencode, urlsplit

from herald.domain.channels import Channel
from herald.domain.errors import ConfigurationError, DeliveryError
from herald.domain.message import Delivery, Receipt, Sms
from herald.domain.twilio_errors import classify_twilio_error
from herald.providers.base import ProviderURL, content_of
from herald.providers.http import (
    FORM_HEADERS,
    HttpClient,
    HttpResponse,
    client_from_url,
    retry_after,
)

DEFAULT_BASE_URL = "https://api.twilio.com"
#: Where Twilio posts status callbacks, under HERALD_PUBLIC_URL.
STATUS_CALLBACK_PATH = "/inbound/twilio/status"
_OPTIONS = frozenset(
    {"base_url", "messaging_service_sid", "timeout", "max_connections"}
    | {"unreachable_retries", "status_callback"}
)


class TwilioProvider:
    """Sends SMS through Twilio's REST API (or any endpoint speaking it, via ``base_url``)."""

    channel = Channel.SMS

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        sender: str | None = None,
        messaging_service_sid: str | None = None,
        name: str = "twilio",
        base_url: str = DEFAULT_BASE_URL,
        status_callback: str | None = None,
        unreachable_retries: int = 3,
        http: HttpClient | None = None,
    ) -> None:
        if (sender is None) == (messaging_service_sid is None):
            raise ConfigurationError(
                f"twilio:// {name}: give exactly one of a sender number (twilio://SID:TOKEN@"
                "+15550001111) or messaging_service_sid=MG…"
            )
        self.name = name
        self.account_sid = account_sid
        self._token = auth_token
        self.status_callback = status_callback
        self._unreachable_retries = unreachable_retries
        # The fields every message shares, encoded once (urlencode is a visible cost per send).
        fixed: dict[str, str] = {}
        if messaging_service_sid is not None:
            fixed["MessagingServiceSid"] = messaging_service_sid
        elif sender is not None:
            fixed["From"] = sender
        if status_callback is not None:
            fixed["StatusCallback"] = status_callback
        self._fixed_form = urlencode(fixed)
        account = f"{base_url.rstrip('/')}/2010-04-01/Accounts/{account_sid}"
        self._messages_url = f"{account}/Messages.json"
        self._account_url = f"{account}.json"
        credentials = base64.b64encode(f"{account_sid}:{auth_token}".encode()).decode()
        self._headers = {**FORM_HEADERS, "Authorization": f"Basic {credentials}"}
        self._http = http or HttpClient()

    @classmethod
    def from_url(
        cls, url: ProviderURL, *, name: str, public_url: str | None = None
    ) -> TwilioProvider:
        """Build from ``twilio://SID:TOKEN@SENDER?…``; raises ConfigurationError naming what is
        wrong. The sender is taken as given (an E.164 number or an alphanumeric sender id)."""
        where = url.redacted
        if not url.username or not url.password:
            raise ConfigurationError(f"{where}: give the account SID and auth token")
        # ProviderURL lowercases the host; an alphanumeric sender id keeps its case.
        sender = unquote(urlsplit(url.raw).netloc.rpartition("@")[2])
        url.warn_unknown(_OPTIONS)
        retries = url.integer("unreachable_retries", 3)
        if retries < 0:
            raise ConfigurationError(f"{where}: unreachable_retries must not be negative")
        callback = None
        if public_url and url.flag("status_callback", True):
            callback = public_url.rstrip("/") + STATUS_CALLBACK_PATH
        return cls(
            account_sid=url.username,
            auth_token=url.password,
            sender=sender or None,
            messaging_service_sid=url.option("messaging_service_sid") or None,
            name=name,
            base_url=url.option("base_url") or DEFAULT_BASE_URL,
            status_callback=callback,
            unreachable_retries=retries,
            http=client_from_url(url),
        )

    def __repr__(self) -> str:
        return f"<TwilioProvider {self.name} {self.account_sid}>"

    async def send(self, delivery: Delivery) -> Receipt:
        """One message; docs/providers.md tables how each Twilio error is classified."""
        sms = content_of(delivery, Sms, self.name)
        form = f"To={quote_plus(sms.to)}&Body={quote_plus(sms.body)}&{self._fixed_form}"
        # Twilio's Messages API takes no idempotency key: a request lost after it was sent
        # may have created the message (UnknownOutcome, a possible duplicate if retried).
        response = await self._http.request(
            "POST", self._messages_url, data=form, headers=self._headers, idempotent=False
        )
        if not 200 <= response.status < 300:
            raise self._error(response, delivery.attempt)
        body = response.json()
        sid = body.get("sid") if isinstance(body, dict) else None
        if not isinstance(sid, str):
            # Created (2xx) but unreadable: sending again would duplicate it.
            return Receipt(detail=f"twilio HTTP {response.status} without a message sid")
        status = body.get("status", "queued")
        return Receipt(provider_message_id=sid, detail=f"twilio {status}: {sid}")

    def _error(self, response: HttpResponse, attempt: int) -> DeliveryError:
        body = response.json()
        code: int | None = None
        message = response.text()[:300].strip() or f"HTTP {response.status}"
        if isinstance(body, dict):
            raw_code = body.get("code")
            code = raw_code if isinstance(raw_code, int) else None
            message = str(body.get("message") or message)
        return classify_twilio_error(
            code,
            message,
            http_status=response.status,
            attempt=attempt,
            unreachable_retries=self._unreachable_retries,
            retry_after=retry_after(response.headers),
        )

    def signature_valid(self, url: str, params: Iterable[tuple[str, str]], signature: str) -> bool:
        """Whether ``X-Twilio-Signature`` is Twilio's for this request: base64 of the
        HMAC-SHA1, keyed with the auth token, of the full URL followed by every POST
        parameter's name and value, sorted by name."""
        data = url + "".join(key + value for key, value in sorted(params))
        digest = hmac.new(self._token.encode(), data.encode(), hashlib.sha1).digest()
        return hmac.compare_digest(base64.b64encode(digest).decode(), signature)

    async def check(self) -> None:
        """Fetch the account: proves the endpoint answers and the credentials work."""
        response = await self._http.request("GET", self._account_url, headers=self._headers)
        if not 200 <= response.status < 300:
            raise self._error(response, attempt=1)

    async def aclose(self) -> None:
        await self._http.aclose()
