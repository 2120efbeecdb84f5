"""Sandboxed templates: native values, strict names, and no way out of the sandbox."""

from __future__ import annotations

import contextlib
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.definition import TemplateError, evaluate, render
from orchestrator.definition.expressions import referenced_roots

CONTEXT = {
    "input": {"topic": "bees", "n": 3, "rows": [1, 2]},
    "steps": {"a": {"output": {"k": [1, 2]}, "status": "succeeded", "error": None}},
    "state": {},
    "run": {"id": "r1"},
}


def test_a_single_expression_keeps_its_native_type():
    assert render("{{ steps.a.output }}", CONTEXT) == {"k": [1, 2]}
    assert render(" {{ input.n * 2 }} ", CONTEXT) == 6
    assert render("{{ none }}", {"none": None}) is None


def test_anything_else_renders_to_text_at_any_depth():
    assert render({"a": ["About {{ input.topic }}", {"b": "{{ input.n }}"}], "c": 5}, CONTEXT) == {
        "a": ["About bees", {"b": 3}],
        "c": 5,
    }


def test_conditions_are_expressions_without_braces():
    assert evaluate("input.n > 2 and steps.a.status == 'succeeded'", CONTEXT) is True


def test_an_unknown_name_is_an_error_naming_it():
    with pytest.raises(TemplateError, match="reserch"):
        render("{{ steps.reserch.output }}", CONTEXT)
    with pytest.raises(TemplateError, match="nope"):
        render("{{ nope }}", CONTEXT)


def test_json_filters():
    assert render("{{ input.rows | json }}", CONTEXT) == "[1, 2]"
    assert render("{{ '{\"a\": 1}' | fromjson }}", CONTEXT) == {"a": 1}


def test_referenced_roots_finds_steps_inputs_and_state():
    found = referenced_roots(
        "{{ steps.a.output }} {{ input['topic'] }} {% if state.k %}{% endif %}"
    )
    assert found == {"steps": {"a"}, "input": {"topic"}, "state": {"k"}}


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ joiner.__init__.__globals__ }}",
        "{{ namespace.__init__.__globals__ }}",
        "{{ lipsum.__globals__ }}",
        "{{ ''.format.__globals__ }}",
        "{{ 'a'.format.__self__ }}",
        "{{ self._TemplateReference__context }}",
        "{{ ().__class__.__base__.__subclasses__() }}",
        "{{ request }}",
        "{{ config }}",
        "{{ 'a' * 10**9 }}",
        "{{ [1] * 10**8 }}",
        "{{ 9 ** 99999 }}",
        "{% set x = range(100000)|list %}{% for a in x %}{% for b in x %}{% endfor %}{% endfor %}",
        "{% for i in range(100000) %}{{ 'xxxxxxxxxx' }}{% endfor %}",
        "{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}",
    ],
)
def test_sandbox_escapes_and_resource_bombs_fail_cleanly(source):
    started = time.monotonic()
    with pytest.raises(TemplateError):
        render(source, CONTEXT)
    assert time.monotonic() - started < 1.0


ATOMS = st.sampled_from(
    [
        "input.topic",
        "input.n",
        "steps.a.output",
        "steps.a.output.k",
        "input.rows",
        "1",
        "'x'",
        "none",
        "__class__",
        "input.__class__",
        "steps.__init__",
        "range(3)",
        "lipsum",
    ]
)
FILTERS = st.sampled_from(["", "|upper", "|length", "|json", "|list", "|first", "|int", "|sum"])
OPERATORS = st.sampled_from(["+", "*", "~", "==", "and", "**", "/", "%"])


@st.composite
def templates(draw) -> str:
    left = draw(ATOMS) + draw(FILTERS)
    right = draw(ATOMS) + draw(FILTERS)
    expression = f"{left} {draw(OPERATORS)} {right}" if draw(st.booleans()) else left
    if draw(st.booleans()):
        return f"{{% for v in {draw(ATOMS)} %}}{{{{ {expression} }}}}{{% endfor %}}"
    return (
        f"before {{{{ {expression} }}}} after" if draw(st.booleans()) else f"{{{{ {expression} }}}}"
    )


@settings(max_examples=300, deadline=None)
@given(templates())
def test_random_templates_never_raise_anything_but_template_errors(source):
    started = time.monotonic()
    with contextlib.suppress(TemplateError):
        render(source, {**CONTEXT, "none": None})
    assert time.monotonic() - started < 1.0


def test_a_key_wins_over_a_dict_method_of_the_same_name():
    context = {"steps": {"get": {"output": 1}, "items": {"output": 2}}, "input": {"keys": 3}}
    assert render("{{ steps.get.output + steps.items.output + input.keys }}", context) == 6


def test_compiling_a_template_does_not_count_against_its_render_budget(monkeypatch):
    """A fresh worker compiles each template once; a slow compile must not fail the step."""
    from orchestrator.definition import expressions

    real = expressions._template.__wrapped__

    def slow_compile(source):
        spent = time.thread_time() + expressions.TIME_BUDGET_S * 1.5
        while time.thread_time() < spent:
            pass
        return real(source)

    monkeypatch.setattr(expressions, "_template", slow_compile)
    assert render("a{{ 1 + 1 }}b", {}) == "a2b"
