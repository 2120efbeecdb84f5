"""Templates and expressions that move data between steps, rendered in Jinja2's sandbox.

Definitions are written by users and rendered by workers, so every render runs in the immutable
sandbox with StrictUndefined (a typo is an error, not an empty string), a CPU-time budget and an
output-size cap. Nothing here ever calls `eval`.
"""

from __future__ import annotations

import contextvars
import json
import math
import re
import time
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, Undefined, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

MAX_OUTPUT_CHARS = 65_536
TIME_BUDGET_S = 0.1
_MAX_POWER_BITS = 4096

_SINGLE_EXPRESSION = re.compile(r"^\s*\{\{(?P<expr>.*)\}\}\s*$", re.DOTALL)
_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("deadline", default=None)


class TemplateError(Exception):
    """Every render problem, with a message meant for the person who wrote the template."""


def _check_deadline() -> None:
    deadline = _deadline.get()
    if deadline is not None and time.monotonic() > deadline:
        raise TemplateError(f"template took longer than {TIME_BUDGET_S * 1000:.0f} ms")


def _sized(value: Any) -> int | None:
    return len(value) if isinstance(value, str | list | tuple | bytes) else None


class LimitedSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, plus guards against templates that eat memory or CPU."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context, operator, left, right):
        _check_deadline()
        if operator == "*":
            for sequence, count in ((left, right), (right, left)):
                size = _sized(sequence)
                if size is not None and isinstance(count, int) and size * count > MAX_OUTPUT_CHARS:
                    raise TemplateError("repetition would exceed the output limit")
        if operator == "**" and isinstance(left, int | float) and isinstance(right, int | float):
            base = abs(left)
            if base > 1 and right > 0 and math.log2(base) * right > _MAX_POWER_BITS:
                raise TemplateError("power is too large")
        return super().call_binop(context, operator, left, right)

    def call(__self, __context, __obj, *args, **kwargs):
        _check_deadline()
        return super().call(__context, __obj, *args, **kwargs)

    def getattr(self, obj, attribute):
        """`steps.get.output` means the step called `get`, not the dict method: for mappings,
        a key wins over a method of the same name (`input.items`, `steps.keys`)."""
        if isinstance(obj, dict) and isinstance(attribute, str) and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)

    def _parse(self, source, name, filename):
        """Wrap every `{% for %}` iterable in a guard: loops call nothing the sandbox sees,
        so without it nested loops over a long list would run unchecked."""
        tree = super()._parse(source, name, filename)
        for loop in tree.find_all(nodes.For):
            loop.iter = nodes.Call(
                nodes.Name(_LOOP_GUARD, "load"), [loop.iter], [], None, None, lineno=loop.lineno
            )
        return tree


_LOOP_GUARD = "__loop_guard"
_GUARD_EVERY = 256


def _loop_guard(iterable):
    for index, item in enumerate(iterable):
        if index % _GUARD_EVERY == 0:
            _check_deadline()
        yield item


def _to_json(value: Any, indent: int | None = None) -> str:
    return json.dumps(value, ensure_ascii=False, indent=indent, default=str)


def _from_json(value: str) -> Any:
    try:
        return json.loads(value)
    except (TypeError, ValueError) as exc:
        raise TemplateError(f"fromjson: not JSON ({exc})") from None


ENV = LimitedSandbox(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
ENV.filters["json"] = _to_json
ENV.filters["fromjson"] = _from_json
ENV.globals[_LOOP_GUARD] = _loop_guard


@lru_cache(maxsize=4096)
def _template(source: str):
    return ENV.from_string(source)


@lru_cache(maxsize=4096)
def _expression(source: str):
    return ENV.compile_expression(source, undefined_to_none=False)


def _single_expression(source: str) -> str | None:
    match = _SINGLE_EXPRESSION.match(source)
    if match is None:
        return None
    inner = match.group("expr")
    if "{{" in inner or "}}" in inner or "{%" in inner or "{#" in inner:
        return None
    return inner


def _run(fn, *args):
    token = _deadline.set(time.monotonic() + TIME_BUDGET_S)
    try:
        return fn(*args)
    except TemplateError:
        raise
    except TemplateSyntaxError as exc:
        raise TemplateError(f"syntax error: {exc.message}") from None
    except RecursionError:
        raise TemplateError("template nests too deeply") from None
    except Exception as exc:  # sandbox, undefined, type and arithmetic errors alike
        message = getattr(exc, "message", None) or str(exc) or exc.__class__.__name__
        raise TemplateError(message) from None
    finally:
        _deadline.reset(token)


def _native(expr: str, context: Mapping[str, Any]) -> Any:
    value = _expression(expr)(**context)
    if isinstance(value, Undefined):
        raise TemplateError(f"'{expr.strip()}' is undefined")
    return value


def _render_string(source: str, context: Mapping[str, Any], limit: int) -> Any:
    if "{" not in source:
        return source
    expr = _single_expression(source)
    if expr is not None:
        return _native(expr, context)
    chunks: list[str] = []
    size = 0
    for chunk in _template(source).generate(**context):
        size += len(chunk)
        if size > limit:
            raise TemplateError(f"output is longer than {limit} characters")
        _check_deadline()
        chunks.append(chunk)
    return "".join(chunks)


def _render_value(value: Any, context: Mapping[str, Any], limit: int) -> Any:
    if isinstance(value, str):
        return _render_string(value, context, limit)
    if isinstance(value, dict):
        return {key: _render_value(item, context, limit) for key, item in value.items()}
    if isinstance(value, list):
        return [_render_value(item, context, limit) for item in value]
    return value


def render(value: Any, context: Mapping[str, Any], *, limit: int = MAX_OUTPUT_CHARS) -> Any:
    """Render every string inside `value`; a string that is one `{{ expr }}` keeps its type."""
    return _run(_render_value, value, context, limit)


def evaluate(expression: str, context: Mapping[str, Any]) -> Any:
    """Evaluate an expression written without braces, such as an edge condition."""
    return _run(_native, expression, context)


def template_syntax_error(source: str) -> str | None:
    try:
        ENV.parse(source)
    except TemplateSyntaxError as exc:
        return f"template syntax error on line {exc.lineno}: {exc.message}"
    return None


def expression_syntax_error(expression: str) -> str | None:
    if not expression.strip():
        return "expression is empty"
    try:
        _expression(expression)
    except TemplateSyntaxError as exc:
        return f"expression syntax error: {exc.message}"
    return None


_ROOTS = ("steps", "input", "state")


def referenced_roots(source: str) -> dict[str, set[str]]:
    """Which `steps.<id>`, `input.<name>` and `state.<key>` a template names (for notes)."""
    found: dict[str, set[str]] = {root: set() for root in _ROOTS}
    try:
        tree = ENV.parse(source)
    except TemplateSyntaxError:
        return found
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        target = node.node
        if not isinstance(target, nodes.Name) or target.name not in found:
            continue
        if isinstance(node, nodes.Getattr):
            found[target.name].add(node.attr)
        elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            found[target.name].add(node.arg.value)
    return found


def strings_in(value: Any) -> list[str]:
    """Every string at any depth of a config value: what gets rendered as a template."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for item in value.values() for s in strings_in(item)]
    if isinstance(value, list):
        return [s for item in value for s in strings_in(item)]
    return []
