"""The template registry, and the accept-time stage that renders a request's template.

Templates are looked up in the database first, then in the templates folder
(``HERALD_TEMPLATES_DIR``), then among the built-in ones; a name stored later overrides
the same name lower down. Compiled templates are cached by name. A PUT or DELETE in this
process replaces or drops its entry at once; other processes see a change within
``templates_cache_seconds``: after that, a lookup asks the database for the current
version number (one indexed read) and recompiles only if it moved.

With a template, the rendered parts fill the request's ``subject``/``html``/``text``/
``body``/``title`` (and ``data`` for a webhook payload) as if the caller had sent them, so
every channel check runs on the rendered output. A field the caller sets explicitly wins
over the template's part for it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nh3
import orjson

from herald.domain.channels import Channel
from herald.domain.errors import InvalidRequest, NotFound
from herald.pipeline.email import text_from_html
from herald.pipeline.requests import NotificationRequest
from herald.store.templates import TemplateRow, TemplateStore
from herald.templates.budget import RenderLimits
from herald.templates.directory import TemplateDirectory
from herald.templates.model import (
    StoredTemplate,
    TemplateBody,
    TemplateError,
    is_template_name,
)
from herald.templates.render import CompiledTemplate, Rendered

BUILTIN_DIR = Path(__file__).parent.parent / "templates" / "builtin"

#: Which request field each rendered part fills.
_FIELDS: dict[tuple[Channel, str], str] = {
    (Channel.EMAIL, "subject"): "subject",
    (Channel.EMAIL, "html"): "html",
    (Channel.EMAIL, "text"): "text",
    (Channel.SMS, "body"): "body",
    (Channel.PUSH, "title"): "title",
    (Channel.PUSH, "body"): "body",
    (Channel.CHAT, "title"): "title",
    (Channel.CHAT, "body"): "body",
    (Channel.WEBHOOK, "payload"): "data",
}


@dataclass(frozen=True, slots=True)
class Resolved:
    template: StoredTemplate
    compiled: CompiledTemplate


@dataclass(frozen=True, slots=True)
class RenderedFrom:
    """What a notification's content came from: recorded on its row."""

    template: str
    version: int
    #: The request as the caller sent it (idempotency compares this, not the output).
    original: NotificationRequest


@dataclass(slots=True)
class _Entry:
    resolved: Resolved
    checked_at: float
    generation: int  # of the folder it came from; -1 for the database


class TemplateRegistry:
    """Stored, folder and built-in templates, compiled and cached; see the module docstring."""

    def __init__(
        self,
        store: TemplateStore,
        directories: Sequence[TemplateDirectory],
        *,
        cache_seconds: float = 5.0,
        sanitize_html: bool = False,
        limits: RenderLimits | None = None,
    ) -> None:
        self._store = store
        self._directories = list(directories)
        self._cache_seconds = cache_seconds
        self._sanitize_html = sanitize_html
        self._limits = limits or RenderLimits()
        self._cache: dict[str, _Entry] = {}

    # -- the registry ------------------------------------------------------------------------

    async def resolve(self, name: str) -> Resolved:
        """The current version of ``name``, compiled; raises NotFound."""
        entry = self._cache.get(name)
        now = time.monotonic()
        if (
            entry is not None
            and now - entry.checked_at < self._cache_seconds
            and (entry.generation < 0 or entry.generation == self._generation(name))
        ):
            return entry.resolved
        version = await self._store.current_version(name) if is_template_name(name) else None
        if version is not None:
            cached = entry.resolved.template if entry is not None else None
            if (
                entry is not None
                and cached is not None
                and (cached.source, cached.version)
                == (
                    "database",
                    version,
                )
            ):
                entry.checked_at = now
                return entry.resolved
            row = await self._store.get(name, version)
            if row is not None:
                return self._remember(_stored(row), generation=-1)
        for directory in self._directories:
            found = directory.get(name)
            if found is not None:
                if (
                    entry is not None
                    and entry.generation == directory.generation
                    and (entry.resolved.template.source == found.source)
                ):
                    entry.checked_at = now
                    return entry.resolved
                return self._remember(found, generation=directory.generation)
        self._cache.pop(name, None)
        raise NotFound(f"no template {name!r}")

    async def get(self, name: str, version: int | None = None) -> StoredTemplate:
        """A template as stored: the current one, or a given version from the database."""
        if version is None:
            return (await self.resolve(name)).template
        row = await self._store.get(name, version) if is_template_name(name) else None
        if row is None:
            raise NotFound(f"no version {version} of template {name!r}")
        return _stored(row)

    async def put(self, name: str, body: TemplateBody) -> StoredTemplate:
        """Compile (so a broken template is refused), then store a new version."""
        if not is_template_name(name):
            raise InvalidRequest(
                "not a template name", {"name": "lowercase letters, digits, _ . - (at most 100)"}
            )
        try:
            compiled = self._compile(name, body)
        except TemplateError as exc:
            raise InvalidRequest("the template does not compile", {"template": str(exc)}) from None
        row = await self._store.put(
            name,
            engine=body.engine,
            body=orjson.dumps(
                body.model_dump(mode="json", exclude={"engine", "description"})
            ).decode(),
            description=body.description,
            now=time.time(),
        )
        stored = _stored(row)
        self._cache[name] = _Entry(Resolved(stored, compiled), time.monotonic(), -1)
        return stored

    async def delete(self, name: str) -> None:
        """Delete the stored template (a folder or built-in one of that name shows again)."""
        self._cache.pop(name, None)
        if not is_template_name(name) or not await self._store.delete(name):
            raise NotFound(f"no stored template {name!r}")

    async def list(self) -> list[StoredTemplate]:
        """The current template of every name, whichever source it comes from."""
        found: dict[str, StoredTemplate] = {}
        for directory in reversed(self._directories):
            for name in directory.names():
                template = directory.get(name)
                if template is not None:
                    found[name] = template
        for row in await self._store.list():
            found[row.name] = _stored(row)
        return [found[name] for name in sorted(found)]

    async def preview(
        self, name: str, data: Mapping[str, Any], locale: str | None
    ) -> dict[str, dict[str, Any]]:
        """Every variant rendered, as it would be sent (email text derived if absent)."""
        resolved = await self.resolve(name)
        try:
            rendered = resolved.compiled.render(data, locale=locale)
        except TemplateError as exc:
            raise _invalid(exc) from None
        email = rendered.get(Channel.EMAIL)
        if email is not None and "text" not in email and "html" in email:
            email["text"] = text_from_html(email["html"])
        return {channel.value: parts for channel, parts in rendered.items()}

    def _compile(self, name: str, body: TemplateBody) -> CompiledTemplate:
        partials: dict[str, str] = {}
        for directory in reversed(self._directories):
            partials.update(directory.shared_partials(body.engine))
        return CompiledTemplate(name, body, shared_partials=partials, limits=self._limits)

    def _remember(self, template: StoredTemplate, *, generation: int) -> Resolved:
        try:
            resolved = Resolved(template, self._compile(template.name, template.body))
        except TemplateError as exc:  # a folder template edited into a broken one
            raise _invalid(exc) from None
        self._cache[template.name] = _Entry(resolved, time.monotonic(), generation)
        return resolved

    def _generation(self, name: str) -> int:
        for directory in self._directories:
            if directory.get(name) is not None:
                return directory.generation
        return -2

    # -- the accept-time stage ---------------------------------------------------------------

    async def apply(
        self, request: NotificationRequest
    ) -> tuple[NotificationRequest, RenderedFrom | None]:
        """The request with its template rendered into it (or its HTML sanitized, if so set).

        Raises InvalidRequest: an unknown template, a missing variable, a template error.
        """
        if request.template is None:
            if request.locale is not None:
                raise InvalidRequest(
                    "the notification is not valid", {"locale": "only used with a template"}
                )
            if self._sanitize_html and request.html is not None:
                return request.model_copy(update={"html": nh3.clean(request.html)}), None
            return request, None
        try:
            resolved = await self.resolve(request.template)
        except NotFound as exc:
            raise InvalidRequest("unknown template", {"template": str(exc)}) from None
        compiled = resolved.compiled
        if request.channel not in compiled.channels:
            raise InvalidRequest(
                "the template does not fit the channel",
                {
                    "template": f"template {request.template!r} has no {request.channel.value} "
                    f"variant (it has: {', '.join(c.value for c in compiled.channels)})"
                },
            )
        channels = [request.channel, *(request.fallback or ())]
        try:
            rendered = compiled.render(request.data or {}, locale=request.locale, channels=channels)
        except TemplateError as exc:
            raise _invalid(exc) from None
        update = _fields(request, rendered)
        origin = RenderedFrom(request.template, resolved.template.version, request)
        return request.model_copy(update=update), origin


def _fields(request: NotificationRequest, rendered: Rendered) -> dict[str, Any]:
    """Request fields from the rendered parts: the notification's own channel first, then
    its fallbacks; a field the caller set wins. ``data`` was the template's variables: only
    a webhook's rendered payload goes on as ``data``."""
    update: dict[str, Any] = {"data": None}
    for channel, parts in rendered.items():
        for part, value in parts.items():
            field = _FIELDS[(channel, part)]
            if field == "data":
                if channel is request.channel:
                    update["data"] = value
                continue
            if field in update or getattr(request, field) is not None:
                continue
            update[field] = value
    return update


def _invalid(exc: TemplateError) -> InvalidRequest:
    return InvalidRequest(
        "the template did not render", {"data" if exc.kind == "data" else "template": str(exc)}
    )


def _stored(row: TemplateRow) -> StoredTemplate:
    body = TemplateBody.model_validate(
        {**orjson.loads(row.body), "engine": row.engine, "description": row.description}
    )
    return StoredTemplate(
        name=row.name, version=row.version, body=body, source="database", created_at=row.created_at
    )
