"""Templates as values: what a template holds, how it is checked, and how it fails.

A template has one engine and, per channel, named parts (each a template source)::

    {"engine": "handlebars",
     "variants": {"email": {"subject": "…", "html": "…", "text": "…"}, "sms": {"body": "…"}},
     "locales": {"fr": {"email": {…}}},
     "partials": {"footer": "…"},
     "description": "…"}
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from herald.domain.channels import Channel

EngineName = Literal["jinja", "handlebars"]
TemplateSource = Literal["database", "directory", "builtin"]

#: The parts each channel's variant may have; every part is a template source.
PARTS: dict[Channel, tuple[str, ...]] = {
    Channel.EMAIL: ("subject", "html", "text"),
    Channel.SMS: ("body",),
    Channel.PUSH: ("title", "body"),
    Channel.CHAT: ("title", "body"),
    Channel.WEBHOOK: ("payload",),
}
#: Parts whose output is HTML: data is escaped in them.
HTML_PARTS = frozenset({"email.html"})
#: Parts whose output must be a JSON object.
JSON_PARTS = frozenset({"webhook.payload"})

NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,99}$"
_NAME = re.compile(NAME_PATTERN)
_LOCALE = re.compile(r"^[A-Za-z]{2,8}([-_][A-Za-z0-9]{1,8})*$")
#: The largest template source accepted, per part or partial.
MAX_SOURCE_CHARACTERS = 256 * 1024

Variants = dict[Channel, dict[str, str]]


class TemplateError(Exception):
    """A template that does not compile or does not render with the data given.

    ``part`` is ``<channel>.<part>`` (``email.subject``), or None when the template as a
    whole is at fault. ``kind`` is ``data`` when the data lacks a variable the template uses.
    """

    def __init__(
        self,
        message: str,
        *,
        template: str | None = None,
        part: str | None = None,
        line: int | None = None,
        locale: str | None = None,
        kind: Literal["template", "data"] = "template",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.template = template
        self.part = part
        self.line = line
        self.locale = locale

    def located(self, *, template: str, part: str | None, locale: str | None) -> TemplateError:
        """The same error, naming where it happened (kept if already known)."""
        return TemplateError(
            self.message,
            template=self.template or template,
            part=self.part or part,
            line=self.line,
            locale=self.locale or locale,
            kind=self.kind,
        )

    def __str__(self) -> str:
        where = [f"template {self.template!r}"] if self.template else []
        if self.locale:
            where.append(f"locale {self.locale}")
        if self.part:
            where.append(self.part)
        if self.line:
            where.append(f"line {self.line}")
        return f"{', '.join(where)}: {self.message}" if where else self.message


def _check_parts(variants: Variants, where: str) -> Variants:
    for channel, parts in variants.items():
        allowed = PARTS[channel]
        for part, source in parts.items():
            if part not in allowed:
                raise ValueError(
                    f"{where}{channel.value}: unknown part {part!r} (allowed: {', '.join(allowed)})"
                )
            if len(source) > MAX_SOURCE_CHARACTERS:
                raise ValueError(f"{where}{channel.value}.{part}: at most 256 KiB of source")
        if not parts:
            raise ValueError(f"{where}{channel.value}: needs at least one part")
    return variants


class TemplateBody(BaseModel):
    """What ``PUT /v1/templates/{name}`` takes (and directory templates are read into)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    engine: EngineName = "jinja"
    variants: Variants = Field(description="Per channel, its parts: each a template source.")
    locales: dict[str, Variants] = Field(
        default_factory=dict,
        description="Per locale (`fr`, `fr-CA`), parts replacing the default's; a part a "
        "locale lacks comes from the less specific one (`fr-CA` → `fr` → the default).",
    )
    partials: dict[str, str] = Field(
        default_factory=dict,
        description="Named snippets the parts include (`{% include 'footer' %}`, `{{> footer}}`).",
    )
    description: str | None = Field(default=None, max_length=2000)

    @field_validator("variants")
    @classmethod
    def _variants(cls, value: Variants) -> Variants:
        if not value:
            raise ValueError("needs at least one channel")
        return _check_parts(value, "")

    @field_validator("locales")
    @classmethod
    def _locales(cls, value: dict[str, Variants]) -> dict[str, Variants]:
        normalized: dict[str, Variants] = {}
        for locale, variants in value.items():
            if not _LOCALE.fullmatch(locale):
                raise ValueError(f"{locale!r} is not a locale tag like `fr` or `fr-CA`")
            normalized[normalize_locale(locale)] = _check_parts(variants, f"{locale}.")
        return normalized

    @field_validator("partials")
    @classmethod
    def _partials(cls, value: dict[str, str]) -> dict[str, str]:
        for name, source in value.items():
            if not _NAME.fullmatch(name):
                raise ValueError(f"{name!r}: a partial name is lowercase letters, digits, _ . -")
            if len(source) > MAX_SOURCE_CHARACTERS:
                raise ValueError(f"{name}: at most 256 KiB of source")
        return value

    @model_validator(mode="after")
    def _locale_channels(self) -> TemplateBody:
        for locale, variants in self.locales.items():
            for channel in variants:
                if channel not in self.variants:
                    raise ValueError(
                        f"locale {locale} has a {channel.value} variant but the default has none"
                    )
        return self


@dataclass(frozen=True, slots=True)
class StoredTemplate:
    """A template as the registry holds it: its body, and where and which version it is."""

    name: str
    version: int
    body: TemplateBody
    source: TemplateSource
    created_at: float | None = None


def is_template_name(name: str) -> bool:
    return _NAME.fullmatch(name) is not None


def normalize_locale(locale: str) -> str:
    """``fr_CA`` and ``FR-ca`` are ``fr-ca``: tags compare without case (BCP 47)."""
    return locale.replace("_", "-").lower()


def locale_chain(locale: str | None) -> list[str]:
    """Where to look, most specific first: ``fr-CA`` → ``fr-ca``, ``fr``."""
    if not locale:
        return []
    parts = normalize_locale(locale).split("-")
    return ["-".join(parts[:n]) for n in range(len(parts), 0, -1)]
