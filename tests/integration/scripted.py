"""Providers for worker tests: each send follows a script of results or errors."""

from __future__ import annotations

import asyncio
from collections import deque

from herald.domain.channels import Channel
from herald.domain.errors import DeliveryError
from herald.domain.message import Delivery, Receipt


class ScriptedProvider:
    """Succeeds unless the script says otherwise; can be held mid-send by ``gate``."""

    def __init__(self, name: str, *script: DeliveryError | Exception) -> None:
        self.name = name
        self.channel = Channel.EMAIL
        self.script: deque[DeliveryError | Exception] = deque(script)
        self.delivered: list[Delivery] = []
        self.attempts: list[Delivery] = []
        self.gate: asyncio.Event | None = None
        self.entered = asyncio.Event()

    async def send(self, delivery: Delivery) -> Receipt:
        self.attempts.append(delivery)
        self.entered.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.script:
            raise self.script.popleft()
        self.delivered.append(delivery)
        return Receipt(provider_message_id=f"{self.name}-{len(self.delivered)}", detail="250 ok")

    async def check(self) -> None:
        return None

    async def aclose(self) -> None:
        return None
