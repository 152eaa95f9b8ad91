"""Handlebars errors name their line: the engine's own messages, located in the source."""

from __future__ import annotations

import pytest

from herald.templates.budget import Meter, RenderLimits
from herald.templates.handlebars import HandlebarsPart, new_engine
from herald.templates.handlebars_lines import error_line, variable_line
from herald.templates.model import TemplateError

ENGINE = new_engine({}, html=False)


def compile_error(source: str) -> TemplateError:
    with pytest.raises(TemplateError) as caught:
        HandlebarsPart(ENGINE, source)
    return caught.value


@pytest.mark.parametrize(
    ("source", "line", "message"),
    [
        # unclosed block: where the innermost block still open starts
        ("{{#if x}}", 1, "unclosed block"),
        ("a\n{{#if x}}\n{{#each xs}}\n{{/each}}\n", 2, "unclosed block"),
        ("{{#if a}}\n{{#each xs}}\n{{#with b}}\n{{/with}}", 2, "unclosed block"),
        ("{{#if a}}{{else}}\n{{#unless b}}\nx\n{{/if}}", 4, "unexpected closing tag if"),
        ("\n{{^missing}}\nnone", 2, "unclosed block"),
        ("\n\n{{#> layout}}\nbody", 3, "unclosed block"),
        ('{{#*inline "box"}}\n{{/inline}}\n{{#*inline "row"}}', 3, "unclosed block"),
        ("{{~#if a~}}\n  x\n{{~#if b~}}", 3, "unclosed block"),
        # unclosed tag: the {{ that has no }}
        ("l1\nl2 {{foo bar}\n", 2, "unclosed tag"),
        ("{{a}}\n\n{{{b}}", 3, "unclosed tag"),
        ("ok\n{{!-- no end }}\n", 2, "unclosed tag"),
        ("ok\n{{! no end", 2, "unclosed tag"),
        ("ok\n{{{{raw}}\n", 2, "unclosed tag"),
        # closing tags: the close that does not match
        ("x\n{{/if}}", 2, "unexpected closing tag if"),
        ("{{#if a}}\n{{/each}}", 2, "unexpected closing tag each"),
        ("{{#if a}}\n{{/if}}\n\n{{/if}}", 4, "unexpected closing tag if"),
        ("{{#each xs as |x|}}\n{{x}}\n{{/each}}\n{{/each}}", 4, "unexpected closing tag each"),
        ("{{#if a}}\nx\n{{~/iff~}}", 3, "unexpected closing tag iff"),
        ("{{#> layout}}\n{{/layout}}\n{{/layout}}", 3, "unexpected closing tag layout"),
        ('{{#"quoted"}}\n{{/quoted}}\n{{/if}}', 3, "unexpected closing tag if"),
        # what is not a tag is skipped: escapes, comments, raw blocks
        ("\\{{#if a}}\n{{/if}}", 2, "unexpected closing tag if"),
        ("{{!-- {{#if a}} }} --}}\n{{#if b}}{{/if}}\n{{/if}}", 3, "unexpected closing tag if"),
        ("{{! {{#each}}\n{{/if}}", 2, "unexpected closing tag if"),
        ("{{{{raw}}}}\n{{#if a}}\n{{{{/raw}}}}\n{{/if}}", 4, "unexpected closing tag if"),
        ("{{{{raw}}}}\n{{/raw}}", 1, "unclosed raw block raw"),
        ("ok\n{{{{/raw}}}}", 2, "unexpected closing tag"),
        ("ok\n{{{{ }}}}", 2, "empty tag"),
        ("{{{html}}}\n{{~{html}~}}\n{{/if}}", 3, "unexpected closing tag if"),
        # else
        ("a\n{{else}}", 2, "{{else}} outside a block"),
        ("{{#if a}}{{else}}\n{{/if}}\n{{else if b}}", 3, "{{else}} outside a block"),
        # one tag's content: located by compiling the tag alone
        ("a\n\n{{}}", 3, "empty tag"),
        ("{{#if a}}\n{{^}}\n{{/if}}", 2, "empty tag"),
        ("{{a}}\n{{#}}{{/}}", 2, "empty tag"),
        ("{{x}}\n{{y=1}}", 2, "empty tag"),
        ("{{a.b}}\n{{a.0}}", 2, "a.0 is not valid"),
        ("{{#each xs}}\n{{#with this.0}}{{/with}}{{/each}}", 2, "this.0 is not valid"),
        ("\n{{.5}}", 2, ".5 is not a valid number"),
        ("{{a}}\n{{foo.[bar}}", 2, "unclosed path"),
        ("{{a}}\n{{*decorator}}", 2, "decorators are not supported"),
        ("{{a}}\n{{a b c=d=e}}", 2, "d=e is not valid"),
        ("{{a}}\n{{{ %x }}}", 2, "%x is not valid"),
        ("{{#if a}}\n{{else if b.0}}\n{{/if}}", 2, "b.0 is not valid"),
        # the engine raises IndexError on these; Herald names the problem
        ("a\n{{/}}", 2, "a tag lacks its name"),
        ("a\n{{#*inline}}\n{{/inline}}", 2, "a tag lacks its name"),
    ],
)
def test_a_syntax_error_names_its_line(source: str, line: int, message: str):
    error = compile_error(source)
    assert (error.message, error.line) == (message, line)


def test_nesting_too_deep_names_the_block_past_the_limit():
    source = "".join(f"{{{{#if a{n}}}}}\n" for n in range(150))
    error = compile_error(source)
    assert (error.message, error.line) == ("maximum template depth exceeded (100)", 101)
    # each {{else}} nests the rest one level deeper
    with_else = "{{#if a}}{{else}}\n" * 50 + "{{#if b}}\n"
    assert compile_error(with_else).line == 51


@pytest.mark.parametrize(
    ("source", "error"),
    [
        ("{{#if a}}{{/if}}", ValueError("unclosed block")),  # nothing is open
        ("{{#if a}}\n{{/if}}", ValueError("unexpected closing tag if")),
        ("{{a}}\n{{b}}", ValueError("unclosed tag")),
        ("{{a}}\n{{b}}", ValueError("something else entirely")),
        ("x\n{{/if}}", ValueError("unexpected closing tag each")),  # the scan finds /if
    ],
)
def test_no_line_when_the_source_does_not_fail_that_way(source: str, error: ValueError):
    assert error_line(source, error, ENGINE) is None


def render_error(source: str, data: dict[str, object]) -> TemplateError:
    with pytest.raises(TemplateError) as caught:
        HandlebarsPart(ENGINE, source).render(data, Meter(RenderLimits()))
    return caught.value


@pytest.mark.parametrize(
    ("source", "line"),
    [
        ("Hi {{first_name}}\n{{name}}", 2),  # not a part of first_name
        ("{{#unless name}}\n{{name}}{{/unless}}", 2),  # printed, not tested by #unless
        ("{{! name }}\n{{{name}}}", 2),  # not in a comment, found in triple braces
        ("{{{{raw}}}}{{name}}{{{{/raw}}}}\n\n{{~name~}}", 3),
        ('"{{name}}" in text\n{{upper "name"}}\n{{name}}', 1),
    ],
)
def test_a_missing_variable_is_found_as_a_whole_path(source: str, line: int):
    error = render_error(source, {"first_name": "Jo"})
    assert (error.message, error.line, error.kind) == ("'name' is undefined", line, "data")


def test_a_missing_variable_line_falls_back_to_any_mention():
    assert variable_line("{{#each xs as |x|}}\n{{lookup x name}}{{/each}}", "name") == 2
    assert variable_line("{{user.name}}", "name") is None
    assert variable_line("{{../name}}\n{{name}}", "../name") == 1
