"""Herald: durable, multi-channel notifications for Python applications."""

from __future__ import annotations

__all__: list[str] = []
