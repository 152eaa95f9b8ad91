"""Templates as files: one folder per template, one file per part.

::

    templates/
      welcome/
        email.subject.jinja      # <channel>.<part>.<engine>; the engine is jinja or hbs
        email.html.jinja
        sms.txt.jinja            # .txt: the channel's text (email text, SMS/push/chat body)
        description.txt          # optional
        fr/email.subject.jinja   # a locale: a subfolder named by its tag
        partials/footer.jinja    # this template's partials
      _partials/layout.html.jinja  # partials every template of that engine can use

A file's last line break is not part of the template. With ``reload``, the folder is
rescanned (by modification times) at most once a second when a template is looked up.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from herald.domain.channels import Channel
from herald.templates.model import (
    PARTS,
    EngineName,
    StoredTemplate,
    TemplateBody,
    TemplateError,
    TemplateSource,
    is_template_name,
)

_ENGINES: dict[str, EngineName] = {".jinja": "jinja", ".j2": "jinja", ".hbs": "handlebars"}
#: ``<channel>.txt`` is the channel's text part; ``webhook.json`` its payload.
_ALIASES = {
    ("email", "txt"): "text",
    ("sms", "txt"): "body",
    ("push", "txt"): "body",
    ("chat", "txt"): "body",
    ("webhook", "json"): "payload",
}
_SHARED = "_partials"
_RESCAN_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class _Loaded:
    templates: dict[str, StoredTemplate]
    #: Shared partials, per engine.
    partials: dict[EngineName, dict[str, str]]
    signature: tuple[tuple[str, int, int], ...]


class TemplateDirectory:
    """The templates in one folder (``source`` says which kind for the API: directory or
    builtin). Raises TemplateError naming the file when one cannot be read as a part."""

    def __init__(
        self, root: Path, *, source: TemplateSource = "directory", reload: bool = False
    ) -> None:
        self.root = root
        self.source = source
        self.reload = reload
        #: Bumped whenever the folder is read again, so compiled copies can be dropped.
        self.generation = 0
        self._loaded = self._load()
        self._checked = time.monotonic()

    def get(self, name: str) -> StoredTemplate | None:
        self._maybe_reload()
        return self._loaded.templates.get(name)

    def names(self) -> list[str]:
        self._maybe_reload()
        return sorted(self._loaded.templates)

    def shared_partials(self, engine: EngineName) -> dict[str, str]:
        return self._loaded.partials.get(engine, {})

    def _maybe_reload(self) -> None:
        if not self.reload or time.monotonic() - self._checked < _RESCAN_SECONDS:
            return
        self._checked = time.monotonic()
        if _signature(self.root) != self._loaded.signature:
            self._loaded = self._load()
            self.generation += 1

    def _load(self) -> _Loaded:
        templates: dict[str, StoredTemplate] = {}
        partials: dict[EngineName, dict[str, str]] = {}
        if not self.root.is_dir():
            return _Loaded(templates, partials, ())
        signature = _signature(self.root)
        for folder in sorted(p for p in self.root.iterdir() if p.is_dir()):
            if folder.name == _SHARED:
                for path in _files(folder):
                    engine, stem = _engine_and_stem(path)
                    partials.setdefault(engine, {})[stem] = _read(path)
            elif is_template_name(folder.name):
                templates[folder.name] = self._template(folder)
        return _Loaded(templates, partials, signature)

    def _template(self, folder: Path) -> StoredTemplate:
        engines: set[EngineName] = set()
        variants: dict[str, dict[Channel, dict[str, str]]] = {}
        partials: dict[str, str] = {}
        description = None
        for path in _files(folder):
            relative = path.relative_to(folder)
            if relative.parts == ("description.txt",):
                description = _read(path).strip()
                continue
            engine, stem = _engine_and_stem(path)
            engines.add(engine)
            if relative.parts[0] == "partials":
                partials[stem] = _read(path)
                continue
            locale = relative.parts[0] if len(relative.parts) == 2 else ""
            channel, _, part = stem.partition(".")
            if channel not in set(Channel) or len(relative.parts) > 2:
                raise TemplateError(f"{path}: expected <channel>.<part>.<engine> file names")
            part = _ALIASES.get((channel, part), part)
            if part not in PARTS[Channel(channel)]:
                raise TemplateError(f"{path}: {channel} has no part {part!r}")
            variants.setdefault(locale, {}).setdefault(Channel(channel), {})[part] = _read(path)
        if len(engines) > 1:
            raise TemplateError(f"{folder}: mixes engines ({', '.join(sorted(engines))})")
        try:
            body = TemplateBody(
                engine=engines.pop() if engines else "jinja",
                variants=variants.pop("", {}),
                locales=variants,
                partials=partials,
                description=description,
            )
        except ValidationError as exc:
            problem = exc.errors()[0]
            raise TemplateError(f"{folder}: {problem['msg']}") from None
        return StoredTemplate(name=folder.name, version=0, body=body, source=self.source)


def _files(folder: Path) -> Iterator[Path]:
    return (p for p in sorted(folder.rglob("*")) if p.is_file() and not p.name.startswith("."))


def _engine_and_stem(path: Path) -> tuple[EngineName, str]:
    engine = _ENGINES.get(path.suffix)
    if engine is None:
        raise TemplateError(f"{path}: the extension names the engine: .jinja or .hbs")
    return engine, path.name[: -len(path.suffix)]


def _read(path: Path) -> str:
    text = path.read_text(encoding="utf-8")
    return text[:-1] if text.endswith("\n") else text


def _signature(root: Path) -> tuple[tuple[str, int, int], ...]:
    if not root.is_dir():
        return ()
    found = []
    for path in sorted(root.rglob("*")):
        if path.is_file():
            stat = path.stat()
            found.append((str(path), stat.st_mtime_ns, stat.st_size))
    return tuple(found)
