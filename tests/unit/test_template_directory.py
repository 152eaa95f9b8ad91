"""Templates from a folder: the file layout, reloading on change, and the built-in ones."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from herald.domain.channels import Channel
from herald.pipeline.templating import BUILTIN_DIR
from herald.templates import directory as directory_module
from herald.templates.directory import TemplateDirectory
from herald.templates.model import TemplateError
from herald.templates.render import CompiledTemplate


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def compiled(folder: TemplateDirectory, name: str) -> CompiledTemplate:
    template = folder.get(name)
    assert template is not None
    partials = folder.shared_partials(template.body.engine)
    return CompiledTemplate(name, template.body, shared_partials=partials)


def test_the_folder_layout(tmp_path: Path):
    write(
        tmp_path,
        {
            "welcome/email.subject.jinja": "Welcome {{ name }}\n",
            "welcome/email.html.jinja": '{% extends "base.html" %}{% block c %}Hi {{ name }}'
            '{% include "sig" %}{% endblock %}\n',
            "welcome/sms.txt.jinja": "Welcome {{ name }}\n",
            "welcome/description.txt": "Says hello.\n",
            "welcome/fr/email.subject.jinja": "Bienvenue {{ name }}\n",
            "welcome/partials/sig.jinja": " -- the team",
            "_partials/base.html.jinja": "<main>{% block c %}{% endblock %}</main>",
            "order/email.subject.hbs": "Order {{id}}",
            "order/email.html.hbs": "<p>{{id}}</p>",
            "not a template name/sms.txt.jinja": "ignored",
        },
    )
    folder = TemplateDirectory(tmp_path)
    assert folder.names() == ["order", "welcome"]
    welcome = folder.get("welcome")
    assert welcome is not None
    assert (welcome.version, welcome.source, welcome.body.engine) == (0, "directory", "jinja")
    assert welcome.body.description == "Says hello."
    assert welcome.body.variants[Channel.SMS] == {"body": "Welcome {{ name }}"}  # .txt
    rendered = compiled(folder, "welcome").render({"name": "Ann"}, locale="fr-FR")
    assert rendered[Channel.EMAIL] == {
        "subject": "Bienvenue Ann",
        "html": "<main>Hi Ann -- the team</main>",  # fr has no html: the default's
    }
    assert compiled(folder, "order").render({"id": 7})[Channel.EMAIL]["html"] == "<p>7</p>"


@pytest.mark.parametrize(
    ("files", "problem"),
    [
        ({"t/email.subject.mustache": "x"}, "the extension names the engine"),
        ({"t/email.body.jinja": "x"}, "email has no part 'body'"),
        ({"t/fax.body.jinja": "x"}, "expected <channel>.<part>.<engine>"),
        ({"t/sms.txt.jinja": "x", "t/push.txt.hbs": "y"}, "mixes engines"),
    ],
)
def test_a_bad_file_is_named(tmp_path: Path, files: dict[str, str], problem: str):
    write(tmp_path, files)
    with pytest.raises(TemplateError, match=problem):
        TemplateDirectory(tmp_path)


def test_changes_are_picked_up_when_reloading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(directory_module, "_RESCAN_SECONDS", 0.0)
    write(tmp_path, {"note/sms.txt.jinja": "one"})
    folder = TemplateDirectory(tmp_path, reload=True)
    fixed = TemplateDirectory(tmp_path, reload=False)
    path = tmp_path / "note/sms.txt.jinja"
    path.write_text("two, longer")
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    write(tmp_path, {"added/sms.txt.jinja": "new"})
    template = folder.get("note")
    assert template is not None
    assert template.body.variants[Channel.SMS]["body"] == "two, longer"
    assert folder.generation == 1
    assert folder.names() == ["added", "note"]
    unchanged = fixed.get("note")
    assert unchanged is not None
    assert unchanged.body.variants[Channel.SMS]["body"] == "one"


SAMPLE: dict[str, dict[str, Any]] = {
    "welcome": {"name": "Ann Lee", "action_url": "https://app.example.org/start"},
    "verification-code": {"code": "482913"},
    "password-reset": {"reset_url": "https://app.example.org/reset/abc"},
    "order-confirmation": {
        "user": {"name": "John Doe", "email": "john@example.com", "preferences": {}},
        "order": {"id": "ORD-1", "items": [{"name": "Widget", "quantity": 2}], "total": 9.5},
        "company": "Acme Corp",
    },
    "appointment-reminder": {"when": "Tuesday 4 March, 10:30", "location": "Room <2>"},
    "digest": {"items": [{"title": "A & B", "url": "https://x.example/a"}, {"title": "C"}]},
}


def test_the_built_in_templates_render_every_variant():
    builtin = TemplateDirectory(BUILTIN_DIR, source="builtin")
    assert builtin.names() == sorted(SAMPLE)
    for name, data in SAMPLE.items():
        rendered = compiled(builtin, name).render(data)
        email = rendered[Channel.EMAIL]
        assert email["subject"]
        assert "\n" not in email["subject"]
        assert "<style" not in email["html"]  # inlined
        assert ' style="' in email["html"]
        assert rendered[Channel.SMS]["body"]
    reminder = compiled(builtin, "appointment-reminder").render(SAMPLE["appointment-reminder"])
    assert "Room &lt;2&gt;" in reminder[Channel.EMAIL]["html"]
    assert reminder[Channel.SMS]["body"] == (
        "Reminder: your appointment on Tuesday 4 March, 10:30 at Room <2>."
    )
    code = compiled(builtin, "verification-code").render({"code": "482913"})
    assert code[Channel.SMS]["body"] == (
        "Your verification code is 482913. It expires in 10 minutes."
    )
    welcome = compiled(builtin, "welcome").render({"name": "Zoé"}, locale="fr-CA")
    assert welcome[Channel.EMAIL]["subject"] == "Bienvenue, Zoé !"
