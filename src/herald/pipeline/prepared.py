"""What a channel's accept-time preparation produces."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from herald.domain.network import IPNetwork


@dataclass(frozen=True, slots=True)
class Prepared:
    """The stored payload (see ``herald.domain.message.content_payload``), and the
    primary recipient, normalised, for filtering."""

    payload: dict[str, Any]
    recipient: str


@dataclass(frozen=True, slots=True)
class ChannelLimits:
    """Accept-time rules for the non-email channels."""

    sms_default_region: str | None = None
    sms_max_segments: int = 10
    webhook_allowed_networks: tuple[IPNetwork, ...] = ()
