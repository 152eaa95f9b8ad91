"""Bounding a render: loop iterations, wall-clock time and output size.

Neither engine can be interrupted from outside mid-render, so the render interrupts itself:
the data a template sees is a copy whose lists and objects count every item a loop takes
(:func:`metered`), ``range`` counts the same way, and the wall clock is read every
:data:`_CLOCK_EVERY` items and after each part. Output is counted as it is produced
(Jinja2) or once a part is rendered (Handlebars). Past a limit, the render raises
:class:`~herald.templates.model.TemplateError`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from herald.templates.model import TemplateError

_CLOCK_EVERY = 1024


@dataclass(frozen=True, slots=True)
class RenderLimits:
    #: Loop items (over data or ``range``) across one render of all parts.
    max_iterations: int = 100_000
    #: Wall-clock seconds for one render of all parts.
    max_seconds: float = 1.0
    #: Characters of one rendered part.
    max_output: int = 2 * 1024 * 1024


class Meter:
    """Counts one render's loop items and watches its clock."""

    __slots__ = ("_deadline", "_left", "_limits", "_until_clock")

    def __init__(self, limits: RenderLimits) -> None:
        self._limits = limits
        self._left = limits.max_iterations
        self._until_clock = _CLOCK_EVERY
        self._deadline = time.monotonic() + limits.max_seconds

    @property
    def limits(self) -> RenderLimits:
        return self._limits

    def tick(self) -> None:
        self._left -= 1
        if self._left < 0:
            raise TemplateError(
                f"loops ran past {self._limits.max_iterations:,} iterations; "
                "the template or its data is too large"
            )
        self._until_clock -= 1
        if self._until_clock <= 0:
            self._until_clock = _CLOCK_EVERY
            self.check_clock()

    def check_clock(self) -> None:
        if time.monotonic() > self._deadline:
            raise TemplateError(f"rendering took longer than {self._limits.max_seconds:g} s")


#: The meter of the render in progress (renders are synchronous, so one per context).
current_meter: ContextVar[Meter | None] = ContextVar("herald_template_meter", default=None)


def _tick() -> None:
    meter = current_meter.get()
    if meter is not None:
        meter.tick()


class MeteredList(list[Any]):
    """A JSON array whose iteration counts against the render's budget."""

    def __iter__(self) -> Iterator[Any]:
        for item in super().__iter__():
            _tick()
            yield item


class MeteredDict(dict[str, Any]):
    """A JSON object whose iteration (keys, values, items) counts against the budget."""

    def __iter__(self) -> Iterator[str]:
        for key in super().__iter__():
            _tick()
            yield key

    def items(self) -> Iterator[tuple[str, Any]]:  # type: ignore[override]
        for pair in super().items():
            _tick()
            yield pair

    def values(self) -> Iterator[Any]:  # type: ignore[override]
        for value in super().values():
            _tick()
            yield value


def metered(value: Any) -> Any:
    """A copy of JSON-like data whose containers count loop iterations."""
    kind = type(value)
    if kind is str or kind is int or kind is float or kind is bool or value is None:
        return value  # the common leaves first: exact type checks are cheapest
    if kind is dict:
        return MeteredDict({k: metered(v) for k, v in value.items()})
    if kind is list:
        return MeteredList([metered(v) for v in value])
    if isinstance(value, Mapping):
        return MeteredDict({str(k): metered(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return MeteredList(metered(v) for v in value)
    return value


def metered_range(*args: int) -> Iterator[int]:
    """``range`` for templates: every number counts against the budget."""
    for number in range(*args):
        _tick()
        yield number
