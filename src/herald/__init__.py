"""Herald: durable, multi-channel notifications for Python applications."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("herald")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0"

from herald.domain.channels import Channel
from herald.domain.errors import (
    Conflict,
    DatabaseUnavailable,
    DeliveryError,
    HeraldError,
    InvalidRequest,
    NotFound,
    PermanentError,
    TransientError,
    UnknownOutcome,
)
from herald.domain.message import Delivery, Email, Receipt
from herald.domain.status import Status
from herald.pipeline.requests import NotificationRequest
from herald.pipeline.views import NotificationView
from herald.providers.base import Provider
from herald.runtime import Herald
from herald.sync import SyncHerald

__all__ = [
    "Channel",
    "Conflict",
    "DatabaseUnavailable",
    "Delivery",
    "DeliveryError",
    "Email",
    "Herald",
    "HeraldError",
    "InvalidRequest",
    "NotFound",
    "NotificationRequest",
    "NotificationView",
    "PermanentError",
    "Provider",
    "Receipt",
    "Status",
    "SyncHerald",
    "TransientError",
    "UnknownOutcome",
    "__version__",
]
