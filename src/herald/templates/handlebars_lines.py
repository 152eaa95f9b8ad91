"""Where in a Handlebars source an error is: the engine's errors carry no position.

The source's tags are scanned the way ``dotpromptz-handlebars`` tokenizes them (``\\{{``
escapes, ``{{{{raw}}}}`` blocks, ``{{!-- --}}`` comments, ``{{{ }}}`` and ``~``), then walked
with a stack of open blocks, as its parser nests them. The engine's message says which
rule failed; the walk finds the tag where it fails. A message about a single tag's content
(``empty tag``, ``a.0 is not valid``…) is located by compiling each tag on its own until
one fails the same way. When the scan and the message disagree, there is no line rather
than a wrong one.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from typing import Literal

from dotpromptz_handlebars import Handlebars

_DEPTH = re.compile(r"maximum template depth exceeded \(\d+\)")
_WORD_BREAK = re.compile(r"[\s()=|]+")
_SIGILS = "#^/>&*"


@dataclass(frozen=True, slots=True)
class Tag:
    """One ``{{…}}``: its body without braces, ``~`` and surrounding spaces."""

    body: str
    line: int
    kind: Literal["plain", "triple", "comment", "raw"]  # raw: ``{{{{header}}}}``


@dataclass(frozen=True, slots=True)
class _Stop:
    """Where the engine's tokenizer gives up, and what it says."""

    message: str
    line: int


class _Lines:
    def __init__(self, source: str) -> None:
        self._breaks = [match.start() for match in re.finditer("\n", source)]

    def at(self, position: int) -> int:
        return bisect.bisect_left(self._breaks, position) + 1


def _scan(source: str) -> tuple[list[Tag], _Stop | None]:
    """The tags in order, and the tokenizer's failure if it fails."""
    lines = _Lines(source)
    tags: list[Tag] = []
    i = 0
    while (start := source.find("{{", i)) >= 0:
        slashes = 0
        while start - slashes - 1 >= i and source[start - slashes - 1] == "\\":
            slashes += 1
        if slashes == 1:  # \{{ is text
            i = start + 2
            continue
        line = lines.at(start)
        if source.startswith("{{{{", start):
            if source.startswith("{{{{/", start):
                return tags, _Stop("unexpected closing tag", line)
            end = source.find("}}}}", start + 4)
            if end < 0:
                return tags, _Stop("unclosed tag", line)
            header = source[start + 4 : end].strip()
            if not header:
                return tags, _Stop("empty tag", line)
            closer = "{{{{/" + header.split()[0] + "}}}}"
            close = source.find(closer, end + 4)
            if close < 0:
                return tags, _Stop(f"unclosed raw block {header.split()[0]}", line)
            tags.append(Tag(header, line, "raw"))
            i = close + len(closer)
            continue
        opener = start + 3 if source.startswith("~", start + 2) else start + 2
        if source.startswith("!--", opener):
            comment_end = _comment_end(source, opener + 3)
            if comment_end is None:
                return tags, _Stop("unclosed tag", line)
            tags.append(Tag(source[opener:comment_end], line, "comment"))
            i = comment_end + 2
            continue
        if source.startswith("{", opener):
            ends = (source.find("}}}", opener), source.find("}~}}", opener))
            closes = [end for end in ends if end >= 0]
            if not closes:
                return tags, _Stop("unclosed tag", line)
            end = min(closes)
            tags.append(Tag(source[opener + 1 : end].strip(), line, "triple"))
            i = end + (4 if source.startswith("}~}}", end) else 3)
            continue
        end = source.find("}}", start + 2)
        if end < 0:
            return tags, _Stop("unclosed tag", line)
        body = source[start + 2 : end].removeprefix("~").removesuffix("~").strip()
        tags.append(Tag(body, line, "comment" if body.startswith("!") else "plain"))
        i = end + 2
    return tags, None


def _comment_end(source: str, search: int) -> int | None:
    """The ``}}`` closing a ``{{!--`` comment: the first ``--}}`` or ``--~}}``."""
    while (mark := source.find("--", search)) >= 0:
        end = mark + 3 if source.startswith("~", mark + 2) else mark + 2
        if source.startswith("}}", end):
            return end
        search = mark + 1
    return None


def _block_name(body: str) -> str:
    """The name a block's closing tag must repeat (``{{#each xs}}`` → ``each``)."""
    if body.startswith("#*inline"):
        return "inline"
    header = body[2:] if body.startswith("#>") else body[1:]
    words = header.split()
    name = words[0] if words else ""
    quoted = len(name) >= 2 and name[0] == name[-1] and name[0] in "\"'"
    return name[1:-1] if quoted else name


def _alone(tag: Tag) -> str | None:
    """The tag as a template of its own that fails as the tag does, if it can fail."""
    body = tag.body
    if tag.kind == "raw":
        return "{{{{" + body + "}}}}{{{{/" + body.split()[0] + "}}}}"
    if tag.kind == "triple":
        return "{{{" + body + "}}}"
    if body.startswith("#*inline"):
        return "{{" + body + "}}{{/inline}}"
    if body.startswith("#>"):
        return "{{> " + body[2:] + " }}"
    if body.startswith(("#", "^")):
        return "{{ " + body[1:] + " }}"
    if body.startswith("/"):
        return "{{/}}" if not body[1:].split() else None
    if body == "else" or body.startswith("else "):
        rest = body[len("else") :].strip()
        return "{{ " + rest + " }}" if rest else None
    return "{{ " + body + " }}"


@dataclass(slots=True)
class _Open:
    """A block the parser is inside: its name, where it opens, how deep its body is."""

    name: str
    line: int
    depth: int


def error_line(source: str, error: Exception, engine: Handlebars) -> int | None:
    """The line where ``engine.compile(source)`` failed with ``error``, or None."""
    tags, stop = _scan(source)
    message = str(error)
    if stop is not None:
        return stop.line if stop.message == message else None
    structural = (
        message in ("unclosed block", "{{else}} outside a block")
        or message.startswith("unexpected closing tag ")
        or _DEPTH.fullmatch(message) is not None
    )
    too_deep = f"maximum template depth exceeded ({engine.max_depth})"
    stack: list[_Open] = []
    for tag in tags:
        if tag.kind == "comment":
            continue
        if not structural and _fails_alike(tag, error, engine):
            return tag.line
        body = tag.body
        depth = stack[-1].depth if stack else 0
        failure: str | None = None
        if tag.kind == "raw":
            failure = too_deep if depth + 1 > engine.max_depth else None
        elif body.startswith("/") and body[1:].split():
            name = body[1:].split()[0]
            if stack and stack[-1].name == name:
                stack.pop()
            else:
                failure = f"unexpected closing tag {name}"
        elif body == "else" or body.startswith("else "):
            if stack:
                stack[-1].depth += 1  # the part after {{else}} nests one level deeper
                failure = too_deep if stack[-1].depth > engine.max_depth else None
            else:
                failure = "{{else}} outside a block"
        elif body.startswith(("#", "^")):
            stack.append(_Open(_block_name(body), tag.line, depth + 1))
            failure = too_deep if depth + 1 > engine.max_depth else None
        if failure is not None:
            return tag.line if failure == message else None
    return stack[-1].line if stack and message == "unclosed block" else None


def _fails_alike(tag: Tag, error: Exception, engine: Handlebars) -> bool:
    alone = _alone(tag)
    if alone is None:
        return False
    try:
        engine.compile(alone)
    except Exception as other:  # whatever it is, it is compared with the original
        return type(other) is type(error) and str(other) == str(error)
    return False


def variable_line(source: str, path: str) -> int | None:
    """The line of the tag that most likely read the missing ``path``: the first that
    prints it (``{{path}}``, ``{{#path}}``), else the first naming it as a whole word
    (so ``name`` is not found in ``{{first_name}}``), else None."""
    tags = [t for t in _scan(source)[0] if t.kind in ("plain", "triple")]
    words = [(tag.line, _words(tag.body)) for tag in tags]
    printed = (line for line, said in words if said[:1] == [path])
    named = (line for line, said in words if path in said)
    return next(printed, None) or next(named, None)


def _words(body: str) -> list[str]:
    return [word for word in _WORD_BREAK.split(body.lstrip(_SIGILS)) if word]
