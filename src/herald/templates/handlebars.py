"""Handlebars, through ``dotpromptz-handlebars`` (pure Python, follows Handlebars.js 4.7).

Chosen over pybars3 (last released 2019): it is maintained, checks its output against
Handlebars.js, reads data only as JSON objects and arrays (pybars3 falls back to
``getattr``, so ``{{name.__class__}}`` prints), has a strict mode (a missing variable is an
error, as with Jinja2's StrictUndefined), and escaping can be switched off for text parts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from dotpromptz_handlebars import Handlebars, HelperOptions, StrictModeError

from herald.templates.budget import Meter, current_meter
from herald.templates.handlebars_lines import error_line, variable_line
from herald.templates.model import TemplateError


def _eq(args: list[Any], options: HelperOptions) -> Any:
    equal = len(args) >= 2 and args[0] == args[1]
    if options.is_block:
        return options.fn(options.context) if equal else options.inverse(options.context)
    return equal


def _text(transform: Callable[[str], str]) -> Callable[[list[Any], HelperOptions], str]:
    def helper(args: list[Any], options: HelperOptions) -> str:
        return transform(str(args[0])) if args and args[0] is not None else ""

    return helper


def _default(args: list[Any], options: HelperOptions) -> Any:
    """``{{default nickname "friend"}}``: the first value that is not empty."""
    return next((a for a in args if a not in (None, "")), "")


#: Helpers beyond the built-in if/unless/each/with/lookup.
HELPERS: dict[str, Callable[[list[Any], HelperOptions], Any]] = {
    "eq": _eq,
    "upper": _text(str.upper),
    "lower": _text(str.lower),
    "default": _default,
}


def new_engine(partials: Mapping[str, str], *, html: bool) -> Handlebars:
    """An engine with Herald's helpers and the template's partials; ``html`` escapes."""
    engine = Handlebars(strict=True, escape_html=html)
    for name, helper in HELPERS.items():
        engine.register_helper(name, helper)
    for name, source in partials.items():
        engine.register_partial(name, source)
    return engine


class HandlebarsPart:
    """One compiled part."""

    __slots__ = ("_render", "_source")

    def __init__(self, engine: Handlebars, source: str) -> None:
        self._source = source
        try:
            self._render = engine.compile(source)
        except (ValueError, IndexError) as exc:  # IndexError: ``{{/}}``, ``{{#*inline}}``
            message = str(exc) if isinstance(exc, ValueError) else "a tag lacks its name"
            raise TemplateError(message, line=error_line(source, exc, engine)) from None

    def render(self, data: Mapping[str, Any], meter: Meter) -> str:
        token = current_meter.set(meter)
        try:
            output = self._render(data)
        except StrictModeError as exc:
            line = variable_line(self._source, exc.path)
            raise TemplateError(f"{exc.path!r} is undefined", line=line, kind="data") from None
        except TemplateError:
            raise
        except RecursionError:
            raise TemplateError("recursion too deep") from None
        except Exception as exc:  # a missing partial, a helper given the wrong values…
            raise TemplateError(str(exc) or type(exc).__name__) from None
        finally:
            current_meter.reset(token)
        limit = meter.limits.max_output
        if len(output) > limit:
            raise TemplateError(f"the output is longer than {limit:,} characters")
        meter.check_clock()
        return output
