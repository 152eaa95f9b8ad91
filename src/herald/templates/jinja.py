"""Jinja2 in a sandbox: no attribute tricks, a missing variable is an error, HTML escaped.

Parts compile in one environment per template whose loader holds the partials, so
``{% include 'footer' %}`` and ``{% extends 'layout.html' %}`` reach them. Parts and
partials whose name ends in ``.html`` escape the data they print; text parts (subjects,
SMS bodies) do not.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import Any

import jinja2
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from herald.templates.budget import Meter, MeteredDict, current_meter, metered_range
from herald.templates.model import TemplateError

#: The widest ``center``/``indent`` and the longest string or list ``*`` may build.
_MAX_BUILD = 100_000


class _Sandbox(ImmutableSandboxedEnvironment):
    """The stock sandbox (where data cannot be modified either), plus limits on the
    operators and filters that build large values."""

    intercepted_binops = frozenset({"*", "**"})

    def getattr(self, obj: Any, attribute: str) -> Any:
        """``order.items`` is the data's ``items`` key, not the dict method: keys first
        (also the fast path: Jinja tries attributes first, and on a dict that fails)."""
        if type(obj) is MeteredDict:
            try:
                return obj[attribute]
            except KeyError:
                pass
        return super().getattr(obj, attribute)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**":
            if isinstance(right, int | float) and abs(right) > 64:
                raise SecurityError("exponents above 64 are not allowed in templates")
            return left**right
        for sized, count in ((left, right), (right, left)):
            if (
                isinstance(sized, str | list | tuple)
                and isinstance(count, int)
                and len(sized) * count > _MAX_BUILD
            ):
                raise SecurityError(f"`*` would build more than {_MAX_BUILD:,} items")
        return left * right


def _capped_width(name: str, filter_: Callable[..., Any], position: int) -> Callable[..., Any]:
    def capped(*args: Any, **kwargs: Any) -> Any:
        width = args[position] if len(args) > position else kwargs.get("width", 0)
        if isinstance(width, int) and width > _MAX_BUILD:
            raise SecurityError(f"{name}: a width above {_MAX_BUILD:,} is not allowed")
        return filter_(*args, **kwargs)

    return capped


def _autoescape(name: str | None) -> bool:
    return name is not None and name.endswith(".html")


def new_environment(partials: Mapping[str, str], parts: Mapping[str, str]) -> _Sandbox:
    """A sandbox whose loader holds the partials, and the parts as ``@<channel>.<part>``."""
    sources = {**partials, **{f"@{name}": source for name, source in parts.items()}}
    env = _Sandbox(
        loader=jinja2.DictLoader(sources),
        undefined=jinja2.StrictUndefined,
        autoescape=_autoescape,
        auto_reload=False,
        keep_trailing_newline=True,
        # Block tags alone on a line leave no blank line behind, as in Handlebars.
        trim_blocks=True,
        lstrip_blocks=True,
        cache_size=-1,
    )
    env.globals["range"] = metered_range
    env.filters["center"] = _capped_width("center", env.filters["center"], 1)
    env.filters["indent"] = _capped_width("indent", env.filters["indent"], 1)
    del env.filters["format"]  # "%0999999999d"|format(1) builds a gigabyte
    return env


class JinjaPart:
    """One compiled part (``email.html`` escapes what it prints: its name ends in .html)."""

    __slots__ = ("_template",)

    def __init__(self, env: _Sandbox, name: str) -> None:
        try:
            self._template = env.get_template(f"@{name}")
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(exc.message or "syntax error", line=exc.lineno) from None

    def render(self, data: Mapping[str, Any], meter: Meter) -> str:
        limit = meter.limits.max_output
        chunks: list[str] = []
        size = 0
        token = current_meter.set(meter)
        template = self._template
        try:
            # What Template.generate does, without its per-chunk wrapper, checking the
            # size as chunks come (loops read the clock as they tick).
            for chunk in template.root_render_func(template.new_context(dict(data))):
                size += len(chunk)
                if size > limit:
                    raise TemplateError(f"the output is longer than {limit:,} characters")
                chunks.append(chunk)
        except TemplateError:
            raise
        except Exception:
            try:  # Jinja's own rewrite: template frames get the template's line numbers
                template.environment.handle_exception()
            except Exception as exc:
                raise _template_error(exc) from None
        finally:
            current_meter.reset(token)
        meter.check_clock()
        return "".join(chunks)


def _template_error(exc: Exception) -> TemplateError:
    if isinstance(exc, TemplateError):
        return exc
    if isinstance(exc, jinja2.TemplateSyntaxError):  # in an included partial
        return TemplateError(exc.message or "syntax error", line=exc.lineno)
    if isinstance(exc, SecurityError):
        return TemplateError(f"not allowed: {exc}", line=_template_line())
    if isinstance(exc, jinja2.UndefinedError):
        return TemplateError(exc.message or "undefined", line=_template_line(), kind="data")
    if isinstance(exc, RecursionError):
        return TemplateError("recursion too deep")
    # A filter given the wrong type, a division by zero…
    return TemplateError(f"{type(exc).__name__}: {exc}", line=_template_line())


def _template_line() -> int | None:
    """The template line of the error being handled: Jinja rewrites tracebacks so that
    frames of template code carry the template's file name and line."""
    traceback = sys.exc_info()[2]
    line = None
    while traceback is not None:
        if traceback.tb_frame.f_code.co_filename == "<template>":
            line = traceback.tb_lineno
        traceback = traceback.tb_next
    return line
