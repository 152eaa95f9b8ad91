"""The SSRF guard at connect time: a resolver that drops every address a webhook may not
reach, so the address checked is the address connected to (no DNS-rebinding window).

IP literals never reach a resolver (aiohttp connects to them directly); the webhook
provider checks those with :func:`~herald.domain.network.url_problem` before sending.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Sequence

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from herald.domain.errors import PermanentError
from herald.domain.network import IPNetwork, refusal


class AddressRefused(PermanentError, OSError):
    """A host resolved only to addresses the guard refuses. An OSError too, because that is
    what aiohttp lets out of a resolver (wrapped in ``ClientConnectorError.os_error``)."""


class GuardedResolver(AbstractResolver):
    """The default resolver, keeping only addresses outside the refused ranges (or inside
    ``allowed``)."""

    def __init__(self, allowed: Sequence[IPNetwork] = ()) -> None:
        self._allowed = tuple(allowed)
        # The default resolver belongs to the loop it was made in: made on first use, so
        # the guard itself can be built anywhere (a provider is built before its loop runs).
        self._resolver: AbstractResolver | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        loop = asyncio.get_running_loop()
        if self._resolver is None or self._loop is not loop:
            self._resolver, self._loop = DefaultResolver(), loop
        results = await self._resolver.resolve(host, port, family)
        kept: list[ResolveResult] = []
        refused: list[str] = []
        for result in results:
            address = ipaddress.ip_address(result["host"].split("%", 1)[0])
            reason = refusal(address, self._allowed)
            if reason is None:
                kept.append(result)
            else:
                refused.append(f"{address} ({reason})")
        if not kept:
            raise AddressRefused(
                f"{host} resolves to {', '.join(refused)}, which Herald may not reach "
                "(HERALD_WEBHOOK_ALLOWED_NETWORKS exempts networks)",
                code="ssrf",
            )
        return kept

    async def close(self) -> None:
        if self._resolver is not None:
            await self._resolver.close()
