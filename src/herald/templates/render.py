"""A template compiled once, rendered many times into per-channel content.

Every part of every locale compiles up front, so a template that does not compile is
refused when it is stored, not when a notification uses it. Rendering picks the locale
(``fr-CA`` → ``fr`` → the default, channel by channel), bounds the work
(:mod:`herald.templates.budget`) and inlines the CSS of HTML that has a ``<style>``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

import css_inline
import orjson

from herald.domain.channels import Channel
from herald.templates.budget import Meter, RenderLimits, metered
from herald.templates.handlebars import HandlebarsPart, new_engine
from herald.templates.jinja import JinjaPart, new_environment
from herald.templates.model import HTML_PARTS, JSON_PARTS, TemplateBody, TemplateError, locale_chain

#: Seed-style personalization tokens (``Hi {first_name}``), outside engine braces.
_TOKEN = re.compile(r"(?<!\{)\{(name|first_name)\}(?!\})")
_STYLE = re.compile(r"<style|<link", re.IGNORECASE)
_DEFAULT = ""

Rendered = dict[Channel, dict[str, Any]]


class _Part(Protocol):
    def render(self, data: Mapping[str, Any], meter: Meter) -> str: ...


def personalized(source: str, engine: str) -> str:
    """``{name}``/``{first_name}`` (single braces, as bulk SMS tools write them) become the
    engine's own variables, so they are escaped and checked like any other."""
    expression = r"{{ \1 }}" if engine == "jinja" else r"{{\1}}"
    return _TOKEN.sub(expression, source)


def with_first_name(data: Mapping[str, Any]) -> dict[str, Any]:
    """The data, plus ``first_name`` (the first word of ``name``) when only ``name`` is set."""
    values = dict(data)
    name = values.get("name")
    if "first_name" not in values and isinstance(name, str) and name.strip():
        values["first_name"] = name.split()[0]
    return values


class CompiledTemplate:
    """Every part of one template version, compiled; :meth:`render` fills them in."""

    def __init__(
        self,
        name: str,
        body: TemplateBody,
        *,
        shared_partials: Mapping[str, str] | None = None,
        limits: RenderLimits | None = None,
    ) -> None:
        self.name = name
        self.body = body
        self.limits = limits or RenderLimits()
        partials = {**(shared_partials or {}), **body.partials}
        sources: dict[str, dict[Channel, dict[str, str]]] = {_DEFAULT: body.variants}
        sources.update(body.locales)
        keyed = {
            f"{locale}:{channel.value}.{part}": personalized(source, body.engine)
            for locale, variants in sources.items()
            for channel, parts in variants.items()
            for part, source in parts.items()
        }
        self._parts: dict[str, dict[Channel, dict[str, _Part]]] = {}
        compile_part: Callable[[str, bool], _Part]
        if body.engine == "jinja":
            env = new_environment(partials, keyed)

            def compile_part(key: str, html: bool) -> _Part:
                return JinjaPart(env, key)
        else:
            engines = {html: new_engine(partials, html=html) for html in (True, False)}

            def compile_part(key: str, html: bool) -> _Part:
                return HandlebarsPart(engines[html], keyed[key])

        for locale, variants in sources.items():
            compiled: dict[Channel, dict[str, _Part]] = {}
            for channel, parts in variants.items():
                compiled[channel] = {}
                for part in parts:
                    where = f"{channel.value}.{part}"
                    try:
                        compiled[channel][part] = compile_part(
                            f"{locale}:{where}", where in HTML_PARTS
                        )
                    except TemplateError as exc:
                        raise exc.located(
                            template=name, part=where, locale=locale or None
                        ) from None
            self._parts[locale] = compiled
        self._merged: dict[tuple[Channel, tuple[str, ...]], dict[str, tuple[_Part, str]]] = {}

    @property
    def channels(self) -> list[Channel]:
        return list(self.body.variants)

    def parts_for(self, channel: Channel, locale: str | None) -> dict[str, tuple[_Part, str]]:
        """The parts that serve ``channel`` in ``locale``, each with the locale it is from.

        A locale variant may give only some parts; the others come from the less specific
        locale, then the default. An email whose locale has its own ``html`` but no ``text``
        gets its text derived from that HTML, not another language's text.
        """
        chain = tuple(
            c for c in reversed(locale_chain(locale)) if channel in self._parts.get(c, {})
        )
        key = (channel, chain)
        merged = self._merged.get(key)
        if merged is None:
            merged = {}
            for candidate in (_DEFAULT, *chain):
                variant = self._parts[candidate].get(channel)
                if variant is None:
                    continue
                if candidate and "html" in variant and "text" not in variant:
                    merged.pop("text", None)
                merged.update({part: (compiled, candidate) for part, compiled in variant.items()})
            self._merged[key] = merged
        return merged

    def render(
        self,
        data: Mapping[str, Any],
        *,
        locale: str | None = None,
        channels: Iterable[Channel] | None = None,
    ) -> Rendered:
        """Each channel's parts, rendered; raises TemplateError naming the part and line.

        A channel the template has no variant for is left out.
        """
        meter = Meter(self.limits)
        values = metered(with_first_name(data))
        rendered: Rendered = {}
        for channel in self.channels if channels is None else channels:
            if channel not in self.body.variants:
                continue
            output: dict[str, Any] = {}
            for part, (compiled, chosen) in self.parts_for(channel, locale).items():
                where = f"{channel.value}.{part}"
                try:
                    text = compiled.render(values, meter)
                    output[part] = _finish(where, text)
                except TemplateError as exc:
                    raise exc.located(
                        template=self.name, part=where, locale=chosen or None
                    ) from None
            rendered[channel] = output
        return rendered


def _finish(where: str, text: str) -> Any:
    if where.endswith((".subject", ".title")):
        return text.strip()  # one line: a template's line breaks are not part of it
    if where in HTML_PARTS:
        return css_inline.inline(text) if _STYLE.search(text) else text
    if where in JSON_PARTS:
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise TemplateError(f"the payload is not JSON: {exc}") from None
        if not isinstance(value, dict):
            raise TemplateError("the payload must be a JSON object")
        return value
    return text
