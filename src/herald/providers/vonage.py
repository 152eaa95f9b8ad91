"""Vonage (Nexmo) SMS API: ``vonage://API_KEY:API_SECRET@SENDER``.

One ``POST /sms/json`` per message, form-encoded. Vonage answers HTTP 200 even when it
refuses a message; each part's ``status`` in the body decides (see
:mod:`herald.domain.vonage_errors`).
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any
from urllib.parse import quote, quote_plus, unquote, urlencode, urlsplit

from herald.domain.channels import Channel
from herald.domain.errors import ConfigurationError, DeliveryError, TransientError, UnknownOutcome
from herald.domain.message import Delivery, Receipt, Sms
from herald.domain.vonage_errors import classify_vonage_status
from herald.providers.base import ProviderURL, content_of
from herald.providers.http import (
    FORM_HEADERS,
    HttpClient,
    HttpResponse,
    classify_status,
    client_from_url,
)

DEFAULT_BASE_URL = "https://rest.nexmo.com"
#: Where Vonage posts delivery receipts, under HERALD_PUBLIC_URL.
STATUS_CALLBACK_PATH = "/inbound/vonage/status"
_OPTIONS = frozenset({"base_url", "timeout", "max_connections", "status_callback"})


class VonageProvider:
    """Sends SMS through Vonage's SMS API (or any endpoint speaking it, via ``base_url``)."""

    channel = Channel.SMS

    def __init__(
        self,
        *,
        api_key: str,
        api_secret: str,
        sender: str,
        name: str = "vonage",
        base_url: str = DEFAULT_BASE_URL,
        public_url: str | None = None,
        http: HttpClient | None = None,
    ) -> None:
        self.name = name
        self.api_key = api_key
        self._secret = api_secret
        #: Vonage does not sign SMS API receipts unless the account enables it, so the
        #: callback URL carries a token derived from the secret: only Vonage learns it.
        self.callback_token = hmac.new(
            api_secret.encode(), f"herald-vonage-receipts:{api_key}".encode(), hashlib.sha256
        ).hexdigest()[:32]
        self.status_callback = (
            f"{public_url.rstrip('/')}{STATUS_CALLBACK_PATH}?token={self.callback_token}"
            if public_url
            else None
        )
        # The fields every message shares, encoded once (urlencode is a visible cost per send).
        fixed = {"api_key": api_key, "api_secret": api_secret, "from": sender}
        if self.status_callback is not None:
            fixed["callback"] = self.status_callback
        self._fixed_form = urlencode(fixed)
        base = base_url.rstrip("/")
        self._sms_url = f"{base}/sms/json"
        self._balance_url = f"{base}/account/get-balance"
        self._http = http or HttpClient()

    @classmethod
    def from_url(
        cls, url: ProviderURL, *, name: str, public_url: str | None = None
    ) -> VonageProvider:
        """Build from ``vonage://KEY:SECRET@SENDER?…``; raises ConfigurationError naming what
        is wrong. The sender (a number or an alphanumeric id) is taken as given."""
        where = url.redacted
        if not url.username or not url.password:
            raise ConfigurationError(f"{where}: give the API key and API secret")
        # ProviderURL lowercases the host; an alphanumeric sender id keeps its case.
        sender = unquote(urlsplit(url.raw).netloc.rpartition("@")[2])
        if not sender:
            raise ConfigurationError(f"{where}: give a sender: vonage://KEY:SECRET@SENDER")
        url.warn_unknown(_OPTIONS)
        return cls(
            api_key=url.username,
            api_secret=url.password,
            sender=sender.removeprefix("+"),
            name=name,
            base_url=url.option("base_url") or DEFAULT_BASE_URL,
            public_url=public_url if url.flag("status_callback", True) else None,
            http=client_from_url(url),
        )

    def __repr__(self) -> str:
        return f"<VonageProvider {self.name} {self.api_key}>"

    async def send(self, delivery: Delivery) -> Receipt:
        """One message (Vonage splits long ones into parts itself)."""
        sms = content_of(delivery, Sms, self.name)
        form = (
            f"to={quote_plus(sms.to.removeprefix('+'))}&text={quote_plus(sms.body)}"
            f"&client-ref={quote_plus(delivery.notification_id)}&{self._fixed_form}"
        )
        if sms.encoding == "UCS-2":
            form += "&type=unicode"
        # ``client-ref`` is only echoed back, not deduplicated on: a request lost after it was
        # sent may have gone out (UnknownOutcome, a possible duplicate if retried).
        response = await self._http.request(
            "POST", self._sms_url, data=form, headers=FORM_HEADERS, idempotent=False
        )
        failure = classify_status(response, what=self.name)
        if failure is not None:
            raise failure
        parts = _parts(response)
        if not parts:
            # A 200 says nothing by itself here: the message may or may not have been taken.
            raise UnknownOutcome(f"{self.name}: unreadable response: {response.text()[:200]}")
        sent = [p for p in parts if str(p.get("status")) == "0"]
        refused = next((p for p in parts if str(p.get("status")) != "0"), None)
        if refused is not None:
            raise _refusal(refused, some_sent=bool(sent))
        ids = [str(p.get("message-id", "")) for p in sent]
        detail = f"vonage accepted {len(ids)} part{'s' if len(ids) > 1 else ''}: {', '.join(ids)}"
        # Vonage sends a delivery receipt per part, each naming its part's id.
        return Receipt(
            provider_message_id=ids[0] or None,
            detail=detail,
            parts=tuple(ids) if len(ids) > 1 else (),
        )

    def callback_token_valid(self, token: str) -> bool:
        return hmac.compare_digest(self.callback_token, token)

    async def check(self) -> None:
        """Ask for the balance: proves the endpoint answers and the credentials work."""
        query = urlencode({"api_key": self.api_key, "api_secret": self._secret}, quote_via=quote)
        response = await self._http.request("GET", f"{self._balance_url}?{query}")
        failure = classify_status(response, what=self.name)
        if failure is not None:
            raise failure

    async def aclose(self) -> None:
        await self._http.aclose()


def _parts(response: HttpResponse) -> list[dict[str, Any]]:
    body = response.json()
    messages = body.get("messages") if isinstance(body, dict) else None
    if not isinstance(messages, list):
        return []
    return [m for m in messages if isinstance(m, dict)]


def _refusal(part: dict[str, Any], *, some_sent: bool) -> DeliveryError:
    try:
        status = int(part.get("status", -1))
    except (TypeError, ValueError):
        status = -1
    error = classify_vonage_status(status, str(part.get("error-text") or ""))
    if some_sent and isinstance(error, TransientError):
        # Other parts went out: a retry re-sends them too.
        return UnknownOutcome(f"{error.message} (after other parts were sent)", code=error.code)
    return error
