"""Both engines on the seeds' own examples, escaping, the sandbox, limits, locales."""

from __future__ import annotations

from typing import Any

import pytest

from herald.domain.channels import Channel
from herald.templates.budget import RenderLimits
from herald.templates.model import TemplateBody, TemplateError
from herald.templates.render import CompiledTemplate

# Seed 001's order-confirmation.hbs, verbatim.
ORDER_HBS = """<h1>Order Confirmation</h1>
<p>Hi {{user.name}},</p>
<p>Your order from {{company}} has been confirmed!</p>

<h2>Order Details</h2>
<ul>
  {{#each order.items}}
    <li>{{this.name}} x {{this.quantity}}</li>
  {{/each}}
</ul>
<p><strong>Total:</strong> ${{order.total}}</p>

{{#if user.preferences.notifications_enabled}}
  <p>You'll receive updates about your order at {{user.email}}</p>
{{/if}}
"""
# The same template in Jinja2.
ORDER_JINJA = """<h1>Order Confirmation</h1>
<p>Hi {{ user.name }},</p>
<p>Your order from {{ company }} has been confirmed!</p>

<h2>Order Details</h2>
<ul>
  {% for item in order.items %}
    <li>{{ item.name }} x {{ item.quantity }}</li>
  {% endfor %}
</ul>
<p><strong>Total:</strong> ${{ order.total }}</p>

{% if user.preferences.notifications_enabled %}
  <p>You'll receive updates about your order at {{ user.email }}</p>
{% endif %}
"""
# Seed 001's context, verbatim.
ORDER_CONTEXT: dict[str, Any] = {
    "user": {
        "name": "John Doe",
        "email": "john@example.com",
        "preferences": {"notifications_enabled": True},
    },
    "order": {
        "id": "ORD-12345",
        "items": [{"name": "Widget", "quantity": 2}, {"name": "Gadget", "quantity": 1}],
        "total": 99.99,
    },
    "company": "Acme Corp",
}
ORDER_HTML = """<h1>Order Confirmation</h1>
<p>Hi John Doe,</p>
<p>Your order from Acme Corp has been confirmed!</p>

<h2>Order Details</h2>
<ul>
    <li>Widget x 2</li>
    <li>Gadget x 1</li>
</ul>
<p><strong>Total:</strong> $99.99</p>

  <p>You'll receive updates about your order at john@example.com</p>
"""


def compiled(engine: str, variants: dict[str, Any], **body: Any) -> CompiledTemplate:
    return CompiledTemplate(
        "t", TemplateBody.model_validate({"engine": engine, "variants": variants, **body})
    )


def render_one(engine: str, channel: str, part: str, source: str, data: dict[str, Any]) -> Any:
    rendered = compiled(engine, {channel: {part: source}}).render(data)
    return rendered[Channel(channel)][part]


@pytest.mark.parametrize(("engine", "source"), [("handlebars", ORDER_HBS), ("jinja", ORDER_JINJA)])
def test_seed_001_order_confirmation_renders_exactly(engine: str, source: str):
    assert render_one(engine, "email", "html", source, ORDER_CONTEXT) == ORDER_HTML


@pytest.mark.parametrize(("engine", "source"), [("handlebars", ORDER_HBS), ("jinja", ORDER_JINJA)])
def test_a_false_nested_flag_leaves_the_block_out(engine: str, source: str):
    context = {**ORDER_CONTEXT, "user": {**ORDER_CONTEXT["user"], "preferences": {}}}
    if engine == "jinja":  # StrictUndefined: a missing flag is an error, so say it is off
        context["user"]["preferences"] = {"notifications_enabled": False}
    html = render_one(engine, "email", "html", source, context)
    assert "receive updates" not in html
    assert html.endswith("<p><strong>Total:</strong> $99.99</p>\n\n")


def test_seed_001_if_else_and_each_with_this():
    source = """{{#if premium}}
  <p>Premium feature: {{feature}}</p>
{{else}}
  <p>Upgrade to premium to access this feature</p>
{{/if}}
{{#each items}}<li>{{this.name}} - ${{this.price}}</li>{{/each}}"""
    items = [{"name": "A", "price": 1}, {"name": "B", "price": 2.5}]
    premium = render_one(
        "handlebars", "email", "html", source, {"premium": True, "feature": "X", "items": items}
    )
    assert "<p>Premium feature: X</p>" in premium
    assert "Upgrade" not in premium
    assert premium.endswith("<li>A - $1</li><li>B - $2.5</li>")
    basic = render_one("handlebars", "email", "html", source, {"premium": False, "items": []})
    assert "<p>Upgrade to premium to access this feature</p>" in basic
    assert "Premium feature" not in basic


@pytest.mark.parametrize(
    ("engine", "source"),
    [("jinja", "<p>{{ name }}</p>"), ("handlebars", "<p>{{name}}</p>")],
)
def test_data_is_escaped_in_html_and_not_in_text(engine: str, source: str):
    template = compiled(
        engine,
        {
            "email": {"subject": source.replace("<p>", "").replace("</p>", ""), "html": source},
            "sms": {"body": source.replace("<p>", "").replace("</p>", "")},
        },
    )
    rendered = template.render({"name": "<script>alert('x')</script> & O'Brien"})
    html = rendered[Channel.EMAIL]["html"]
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    assert "&amp; O" in html
    assert rendered[Channel.EMAIL]["subject"] == "<script>alert('x')</script> & O'Brien"
    assert rendered[Channel.SMS]["body"] == "<script>alert('x')</script> & O'Brien"


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ ().__class__.__base__.__subclasses__() }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ lipsum.__globals__['os'] }}",
        "{{ self.__init__.__globals__ }}",
        "{{ name.__class__ }}",
        "{{ items.append(1) }}",
        "{{ '{0.__class__}'.format(name) }}",
    ],
)
def test_jinja_sandbox_escapes_are_refused(source: str):
    with pytest.raises(TemplateError) as caught:
        render_one("jinja", "sms", "body", source, {"name": "x", "items": []})
    assert caught.value.part == "sms.body"


@pytest.mark.parametrize("source", ["{{name.__class__}}", "{{name.upper}}", "{{items.append}}"])
def test_handlebars_reads_only_json_values(source: str):
    with pytest.raises(TemplateError, match="undefined"):
        render_one("handlebars", "sms", "body", source, {"name": "x", "items": []})


@pytest.mark.parametrize(
    ("engine", "source"),
    [
        ("jinja", "{% for i in range(1000) %}{% for j in range(1000) %}{% endfor %}{% endfor %}"),
        ("jinja", "{% for a in xs %}{% for b in xs %}{% for c in xs %}{% endfor %}{% endfor %}"
                  "{% endfor %}"),
        ("handlebars", "{{#each xs}}{{#each @root.xs}}{{#each @root.xs}}"
                       "{{/each}}{{/each}}{{/each}}"),
    ],
)  # fmt: skip
def test_loops_are_bounded(engine: str, source: str):
    # Past 100,000 iterations, or 1 s on a very busy machine: whichever comes first.
    with pytest.raises(TemplateError, match=r"iterations|took longer than"):
        render_one(engine, "sms", "body", source, {"xs": list(range(100))})


@pytest.mark.parametrize(
    "source",
    [
        "{{ 'x' * 10000000 }}",
        "{{ 10 ** 100000 }}",
        "{{ 'x' | center(100000000) }}",
        "{{ '%099999999d' | format(1) }}",
    ],
)
def test_jinja_refuses_to_build_huge_values(source: str):
    with pytest.raises(TemplateError):
        render_one("jinja", "sms", "body", source, {})


@pytest.mark.parametrize(
    ("engine", "source"),
    [
        ("jinja", "{% for x in xs %}{{ big }}{% endfor %}"),
        ("handlebars", "{{#each xs}}{{@root.big}}{{/each}}"),
    ],
)
def test_output_is_capped(engine: str, source: str):
    template = CompiledTemplate(
        "t",
        TemplateBody.model_validate({"engine": engine, "variants": {"sms": {"body": source}}}),
        limits=RenderLimits(max_output=10_000),
    )
    with pytest.raises(TemplateError, match="longer than 10,000 characters"):
        template.render({"xs": list(range(100)), "big": "y" * 1000})


@pytest.mark.parametrize(
    ("engine", "source", "line"),
    [("jinja", "Hello\n\n{{ user.name }}", 3), ("handlebars", "Hello\n{{user.name}}", 2)],
)
def test_a_missing_variable_names_part_and_line(engine: str, source: str, line: int):
    with pytest.raises(TemplateError) as caught:
        compiled(engine, {"email": {"subject": "Hi", "html": source}}).render({"user": {}})
    error = caught.value
    assert (error.template, error.part, error.line, error.kind) == ("t", "email.html", line, "data")
    assert "name" in error.message
    assert str(error).startswith(f"template 't', email.html, line {line}: ")


def test_a_syntax_error_is_found_when_compiling():
    with pytest.raises(TemplateError) as caught:
        compiled("jinja", {"sms": {"body": "one\ntwo {% if %}"}})
    assert (caught.value.part, caught.value.line, caught.value.kind) == ("sms.body", 2, "template")
    with pytest.raises(TemplateError) as unclosed:
        compiled("handlebars", {"sms": {"body": "one\n{{#if x}}never closed"}})
    assert (unclosed.value.part, unclosed.value.line) == ("sms.body", 2)


@pytest.mark.parametrize("engine", ["jinja", "handlebars"])
def test_locale_falls_back_from_region_to_language_to_default(engine: str):
    hello = "Hello {name}"
    template = compiled(
        engine,
        {"sms": {"body": hello}, "push": {"title": "Hi", "body": hello}},
        locales={
            "fr": {"sms": {"body": "Bonjour {name}"}},
            "fr-CA": {"push": {"title": "Allo", "body": "Allo {name}"}},
        },
    )
    data = {"name": "Zoé"}
    canadian = template.render(data, locale="fr_CA")
    assert canadian[Channel.SMS]["body"] == "Bonjour Zoé"  # fr-CA has no SMS: fr
    assert canadian[Channel.PUSH]["body"] == "Allo Zoé"
    french = template.render(data, locale="FR")
    assert french[Channel.PUSH]["body"] == "Hello Zoé"  # fr has no push: the default
    assert template.render(data, locale="de-DE")[Channel.SMS]["body"] == "Hello Zoé"
    assert template.render(data)[Channel.SMS]["body"] == "Hello Zoé"


@pytest.mark.parametrize("engine", ["jinja", "handlebars"])
def test_seed_004_personalization_tokens(engine: str):
    body = "Hi {first_name}! {name}, your code is ready."
    assert render_one(engine, "sms", "body", body, {"name": "Jane Q Public"}) == (
        "Hi Jane! Jane Q Public, your code is ready."
    )


@pytest.mark.parametrize(
    ("engine", "partials", "html"),
    [
        (
            "jinja",
            {"layout.html": "<div>{% block content %}{% endblock %}</div>", "sig": "-- {{ team }}"},
            '{% extends "layout.html" %}{% block content %}<b>{{ who }}</b>'
            '{% include "sig" %}{% endblock %}',
        ),
        (
            "handlebars",
            {"layout": "<div>{{> @partial-block }}</div>", "sig": "-- {{team}}"},
            "{{#> layout}}<b>{{who}}</b>{{> sig}}{{/layout}}",
        ),
    ],
)
def test_layouts_and_partials(engine: str, partials: dict[str, str], html: str):
    template = compiled(engine, {"email": {"subject": "s", "html": html}}, partials=partials)
    rendered = template.render({"who": "<Ann>", "team": "Ops"})
    assert rendered[Channel.EMAIL]["html"] == "<div><b>&lt;Ann&gt;</b>-- Ops</div>"


def test_css_is_inlined_into_html():
    html = "<html><head><style>p { color: red }</style></head><body><p>Hi</p></body></html>"
    out = render_one("jinja", "email", "html", html, {})
    assert '<p style="color: red;">Hi</p>' in out
    assert "<style>" not in out


@pytest.mark.parametrize(
    ("engine", "payload"),
    [
        ("jinja", '{"order": {{ order_id | tojson }}, "who": {{ name | tojson }}}'),
        ("handlebars", '{"order": "{{order_id}}", "who": "{{name}}"}'),
    ],
)
def test_a_webhook_payload_renders_to_a_json_object(engine: str, payload: str):
    assert render_one("jinja" if engine == "jinja" else engine, "webhook", "payload", payload, {
        "order_id": "A-1", "name": "Ann"
    }) == {"order": "A-1", "who": "Ann"}  # fmt: skip
    with pytest.raises(TemplateError, match="JSON object"):
        render_one(engine, "webhook", "payload", "[1, 2]", {})


def test_bodies_are_checked():
    for bad in (
        {"variants": {}},
        {"variants": {"email": {"body": "x"}}},
        {"variants": {"sms": {"body": "x"}}, "locales": {"fr": {"email": {"subject": "x"}}}},
        {"variants": {"sms": {"body": "x"}}, "locales": {"not a tag": {"sms": {"body": "x"}}}},
        {"variants": {"sms": {"body": "x"}}, "engine": "mustache"},
    ):
        with pytest.raises(ValueError, match="validation error"):
            TemplateBody.model_validate(bad)


def test_a_locale_gives_some_parts_and_inherits_the_others():
    template = compiled(
        "jinja",
        {"email": {"subject": "Hello", "html": "<p>Hello</p>", "text": "Hello"}},
        locales={
            "fr": {"email": {"subject": "Bonjour"}},
            "de": {"email": {"html": "<p>Hallo</p>"}},
        },
    )
    french = template.render({}, locale="fr")[Channel.EMAIL]
    assert french == {"subject": "Bonjour", "html": "<p>Hello</p>", "text": "Hello"}
    german = template.render({}, locale="de")[Channel.EMAIL]
    # German HTML: its text is derived from it later, not taken from the English text.
    assert german == {"subject": "Hello", "html": "<p>Hallo</p>"}
