"""Templates and expressions that move data between steps, rendered in Jinja2's sandbox.

Definitions are written by users and rendered by workers, so every render runs in the immutable
sandbox with StrictUndefined (a typo is an error, not an empty string), a CPU-time budget and an
output-size cap. Nothing here ever calls `eval`.

Every value a template builds (with an operator, a literal, a filter, a method or a block) may be
at most the output limit long as text, counting a part that appears twice twice, and one render
may build at most MAX_BUILT_CHARS in all; sizes that can be known in advance (`'a' * n`,
`|center(n)`, `'%9999999d'`, `|join` of long items) are refused before the work is done. Values
read from the context are not limited. A native result must be JSON data: a function, a class or
a loop object is an error, not a crash when the run is stored.
"""

from __future__ import annotations

import contextvars
import functools
import json
import math
import re
import string
import time
from collections.abc import (
    Callable,
    ItemsView,
    Iterable,
    Iterator,
    KeysView,
    Mapping,
    MappingView,
    ValuesView,
)
from functools import lru_cache
from typing import Any, TypeVar

from jinja2 import StrictUndefined, Template, TemplateSyntaxError, Undefined, nodes
from jinja2.environment import TemplateExpression
from jinja2.runtime import markup_join, str_join
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import generate_lorem_ipsum
from jinja2.visitor import NodeTransformer

MAX_OUTPUT_CHARS = 65_536
MAX_BUILT_CHARS = 256 * MAX_OUTPUT_CHARS
TIME_BUDGET_S = 0.1
_MAX_POWER_BITS = 4096

_SINGLE_EXPRESSION = re.compile(r"^\s*\{\{(?P<expr>.*)\}\}\s*$", re.DOTALL)
_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("deadline", default=None)
_limit: contextvars.ContextVar[int] = contextvars.ContextVar("limit", default=MAX_OUTPUT_CHARS)
# Characters built so far in this render (a one-item list, so nested calls add to the same count).
_built: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar("built", default=None)
_compiling: contextvars.ContextVar[bool] = contextvars.ContextVar("compiling", default=False)


_V = TypeVar("_V")


class TemplateError(Exception):
    """Every render problem, with a message meant for the person who wrote the template."""


def _check_deadline() -> None:
    deadline = _deadline.get()
    if deadline is not None and time.thread_time() > deadline:
        raise TemplateError(f"template took longer than {TIME_BUDGET_S * 1000:.0f} ms")


_BUILT = (str, bytes, list, tuple, dict)
_DATA_LEAVES = (str, bytes, int, float, type(None))
_JSON_LEAVES = (str, int, float, type(None))


_TICK_EVERY = 64
_ticks = [0]


def _tick() -> None:
    """A cheap deadline check for what runs once per item inside a filter (an attribute or an
    item looked up by `groupby`, `sort(attribute=...)`, `selectattr`): every 64th call."""
    _ticks[0] += 1
    if _ticks[0] % _TICK_EVERY == 0:
        _check_deadline()


def _not_a_value(item: Any) -> TemplateError:
    kind = type(item).__name__
    if isinstance(item, Iterator):
        return TemplateError(f"a lazy sequence ({kind}) cannot be printed or stored; add |list")
    if callable(item):
        return TemplateError(f"a function or class ({kind}) is not a value; call it")
    return TemplateError(f"a {kind} object is not a value that can be printed or stored")


def _text_size(value: Any, cap: int, *, printing: bool = False, indent: int = 0) -> int:
    """About how many characters `value` becomes as text, counting a part that appears twice
    twice (`[x, x]`), and counting no further than `cap`, so it costs O(cap) at most. With
    `printing`, an object that is not data (a function, a loop, a generator) is an error."""
    total = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack and total <= cap:
        item, depth = stack.pop()
        if isinstance(item, str | bytes):
            total += len(item)
        elif isinstance(item, bool) or item is None or isinstance(item, float):
            total += 5
        elif isinstance(item, int):
            total += item.bit_length() * 3 // 10 + 1
        elif isinstance(item, range):
            total += 2 + len(item) * (len(str(max(abs(item.start), abs(item.stop)))) + 2)
        elif isinstance(item, list | tuple | dict | KeysView | ValuesView | ItemsView):
            pad = indent * (depth + 1) + 1 if indent else 0
            total += 2 + len(item) * (2 + pad)
            if total <= cap:
                children: Iterable[Any] = item.items() if isinstance(item, dict) else item
                stack.extend((child, depth + 1) for child in children)
        elif isinstance(item, Undefined):
            pass  # printing it raises the undefined error, naming the variable
        elif printing:
            raise _not_a_value(item)
        else:
            total += 16
    return total


def _reserve(size: int, what: str) -> None:
    limit = _limit.get()
    if size > limit:
        raise TemplateError(f"{what} would be longer than {limit} characters")


def _charge(value: _V, what: str) -> _V:
    """Count a value the template has just built against the limits, and hand it back."""
    if not isinstance(value, _BUILT):
        return value
    limit = _limit.get()
    size = len(value) if isinstance(value, str | bytes) else _text_size(value, limit)
    _reserve(size, what)
    built = _built.get()
    if built is not None:
        built[0] += size
        if built[0] > MAX_BUILT_CHARS:
            raise TemplateError(
                f"the template builds more than {MAX_BUILT_CHARS} characters in all; print the "
                "output directly instead of growing a value in a loop"
            )
    return value


def _lazy(value: Any) -> bool:
    return isinstance(value, Iterator | range | MappingView)


_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?(.)", re.DOTALL)


def _ints(values: Any) -> list[int]:
    if isinstance(values, Mapping):
        values = list(values.values())
    if not isinstance(values, list | tuple):
        values = [values]
    return [abs(v) for v in values if isinstance(v, int)]


def _check_percent(fmt: str | bytes, values: Any) -> None:
    """`fmt % values`: refused when the widths, or the values it repeats, make it too long."""
    text = fmt.decode("latin-1") if isinstance(fmt, bytes) else fmt
    limit, widths, specs = _limit.get(), 0, 0
    for match in _PERCENT_SPEC.finditer(text):
        if match.group(3) == "%":
            continue
        specs += 1
        for group in match.group(1, 2):
            if group == "*":
                widths += sum(_ints(values))
            elif group:
                widths += int(group[:12])
    repeats = specs if isinstance(values, Mapping) else 1
    size = _text_size(values, limit, printing=True)
    _reserve(len(text) + widths + repeats * size, "the formatted text")


def _check_format(fmt: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """`fmt.format(...)`: the same for format specs (`{:>99999999}`) and repeated fields."""
    limit, widths, fields = _limit.get(), 0, 0
    for _, field, spec, _ in string.Formatter().parse(fmt):
        if field is None:
            continue
        fields += 1
        widths += sum(int(digits[:12]) for digits in re.findall(r"\d+", spec or ""))
        if "{" in (spec or ""):
            widths += sum(_ints(list(args) + list(kwargs.values())))
    values_size = _text_size([list(args), kwargs], limit, printing=True)
    _reserve(len(fmt) + widths + fields * values_size, "the formatted text")


def _grown_size(text: str | bytes, old: Any, new: Any, count: Any = -1) -> int:
    """The length of `text.replace(old, new, count)`, worked out without doing it."""
    if not isinstance(old, str | bytes) or not isinstance(new, str | bytes):
        return len(text)
    # Two branches, not one `or`: mypy pairs text and old only within a branch.
    if isinstance(text, str) and isinstance(old, str):  # noqa: SIM114
        found = text.count(old) if old else len(text) + 1
    elif isinstance(text, bytes) and isinstance(old, bytes):
        found = text.count(old) if old else len(text) + 1
    else:
        return len(text)  # str with bytes: the call itself fails, on its own words
    if isinstance(count, int) and count >= 0:
        found = min(found, count)
    return len(text) + found * max(len(new) - len(old), 0)


def _joined_size(items: list[Any] | tuple[Any, ...], separator: int) -> int:
    """The length of the items joined, counted only until it is over the limit."""
    limit, total = _limit.get(), -separator
    for item in items:
        total += separator + _text_size(item, limit, printing=True)
        if total > limit:
            break
    return total


def _arg(
    args: tuple[Any, ...], kwargs: dict[str, Any], index: int, name: str, default: Any = None
) -> Any:
    return args[index] if len(args) > index else kwargs.get(name, default)


def _check_string_method(
    text: str | bytes, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[Any, ...]:
    """Methods of str and bytes whose result can be much longer than the string."""
    what = f"{name}()"
    if name in ("center", "ljust", "rjust", "zfill"):
        width = _arg(args, kwargs, 0, "width", 0)
        if isinstance(width, int):
            _reserve(max(width, len(text)), what)
    elif name == "expandtabs":
        size = _arg(args, kwargs, 0, "tabsize", 8)
        tabs = text.count(b"\t") if isinstance(text, bytes) else text.count("\t")
        if isinstance(size, int):
            _reserve(len(text) + tabs * max(size, 0), what)
    elif name == "replace":
        _reserve(_grown_size(text, *args[:3]), what)
    elif name == "join" and args:
        items = args[0] if isinstance(args[0], list | tuple) else list(args[0])
        _reserve(_joined_size(items, len(text)), what)
        args = (items, *args[1:])
    elif name in ("format", "format_map") and isinstance(text, str):
        if name == "format_map" and args:
            _check_format(text, (), dict(args[0]) if isinstance(args[0], Mapping) else {})
        else:
            _check_format(text, args, kwargs)
    elif name == "translate" and args and isinstance(args[0], Mapping):
        longest = max((len(v) for v in args[0].values() if isinstance(v, str)), default=1)
        _reserve(len(text) * max(longest, 1), what)
    return args


class _Guards(NodeTransformer):
    """Route what builds values without a call the sandbox sees (`~`, list, tuple and dict
    literals) through functions that count what they build."""

    def visit_Concat(self, node: nodes.Concat) -> nodes.Call:
        self.generic_visit(node)
        return nodes.Call(
            nodes.Name(_CONCAT_GUARD, "load"),
            [nodes.ContextReference(), nodes.List(node.nodes)],
            [],
            None,
            None,
            lineno=node.lineno,
        )

    def _literal(self, node: nodes.Expr) -> nodes.Expr:
        self.generic_visit(node)
        if getattr(node, "ctx", "load") != "load":
            return node
        return nodes.Call(
            nodes.Name(_LITERAL_GUARD, "load"), [node], [], None, None, lineno=node.lineno
        )

    visit_List = visit_Tuple = visit_Dict = _literal


class LimitedSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, plus guards against templates that eat memory or CPU."""

    intercepted_binops = frozenset({"+", "*", "%", "**"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        _check_deadline()
        limit = _limit.get()
        if operator == "*":
            for sequence, count in ((left, right), (right, left)):
                if isinstance(sequence, _BUILT) and isinstance(count, int) and count > 1:
                    _reserve(_text_size(sequence, limit) * count, "the repetition")
            bits = (
                left.bit_length() + right.bit_length()
                if isinstance(left, int) and isinstance(right, int)
                else 0
            )
            if bits > _MAX_POWER_BITS:
                raise TemplateError("the product is too large a number")
        if operator == "+" and isinstance(left, _BUILT) and isinstance(right, _BUILT):
            _reserve(_text_size(left, limit) + _text_size(right, limit), "the sum")
        if operator == "%" and isinstance(left, str | bytes):
            _check_percent(left, right)
        if operator == "**" and isinstance(left, int | float) and isinstance(right, int | float):
            base = abs(left)
            if base > 1 and right > 0 and math.log2(base) * right > _MAX_POWER_BITS:
                raise TemplateError("power is too large")
        result = super().call_binop(context, operator, left, right)
        return _charge(result, f"the result of {operator}") if operator != "**" else result

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        _check_deadline()
        name = getattr(__obj, "__name__", "")
        receiver = getattr(getattr(__obj, "__wrapped__", __obj), "__self__", None)
        on_text = isinstance(receiver, str | bytes)
        if isinstance(receiver, str | bytes):
            args = _check_string_method(receiver, name, args, kwargs)
        result = super().call(__context, __obj, *args, **kwargs)
        if (on_text or name in ("fromkeys", "copy") or __obj is dict) and result is not receiver:
            _charge(result, f"{name}()")
        return result

    def concat(self, parts: Iterable[str]) -> str:
        """Joins the output of a macro, a `{% set %}` block or a `{% filter %}` block."""
        _check_deadline()
        parts = list(parts)
        _reserve(sum(len(part) for part in parts), "the block")
        return _charge("".join(parts), "the block")

    def _generate(self, source: nodes.Template, *args: Any, **kwargs: Any) -> str:
        # Here, not in `_parse`: expressions (`compile_expression`) come this way too. While the
        # code is generated no filter runs (see `_guard_filter`): Jinja would otherwise fold
        # `'a'|center(n)` into a constant at compile time, outside every check that counts.
        token = _compiling.set(True)
        try:
            return super()._generate(_Guards().visit(source), *args, **kwargs)
        finally:
            _compiling.reset(token)

    def getattr(self, obj: Any, attribute: str) -> Any:
        """`steps.get.output` means the step called `get`, not the dict method: for mappings,
        a key wins over a method of the same name (`input.items`, `steps.keys`)."""
        _tick()
        if isinstance(obj, dict) and isinstance(attribute, str) and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        _tick()
        return super().getitem(obj, argument)

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
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


def _loop_guard(iterable: Iterable[Any]) -> Iterator[Any]:
    for index, item in enumerate(iterable):
        if index % _GUARD_EVERY == 0:
            _check_deadline()
        yield item


_CONCAT_GUARD = "__concat_guard"
_LITERAL_GUARD = "__literal_guard"


def _concat_guard(context: Any, parts: list[Any]) -> str:
    limit, size = _limit.get(), 0
    for part in parts:
        size += _text_size(part, limit, printing=True)
        _reserve(size, "the text joined with ~")
    return _charge((markup_join if context.eval_ctx.autoescape else str_join)(parts), "the text")


def _literal_guard(value: Any) -> Any:
    return _charge(value, "the literal")


def _finalize(value: Any) -> Any:
    """What `{{ ... }}` prints: data only, and never more than the limit."""
    _check_deadline()
    if _lazy(value):
        value = _charge(list(value), "the printed sequence")
    _reserve(_text_size(value, _limit.get(), printing=True), "the printed value")
    return value


def _plain(value: Any, expr: str) -> Any:
    """A native result is stored as JSON: a lazy sequence becomes a list, and what is not JSON
    data (a function, a loop object, infinity) is refused here rather than when it is stored."""
    if _lazy(value):
        value = _charge(list(value), "the sequence")
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            raise TemplateError(f"'{expr.strip()}' is not a finite number")
        if isinstance(item, list | tuple):
            stack.extend(item)
        elif isinstance(item, dict):
            if not all(isinstance(key, _JSON_LEAVES) for key in item):
                raise TemplateError(f"'{expr.strip()}' has a key that is not a string")
            stack.extend(item.values())
        elif not isinstance(item, _JSON_LEAVES):
            raise _not_a_value(item)
    return value


def _to_json(value: Any, indent: int | None = None) -> str:
    return json.dumps(value, ensure_ascii=False, indent=indent, default=str)


def _from_json(value: str) -> Any:
    try:
        return json.loads(value)
    except (TypeError, ValueError) as exc:
        raise TemplateError(f"fromjson: not JSON ({exc})") from None


# Filters that print their input: a list or dict given to them is sized first.
_PRINTING_FILTERS = frozenset(
    {
        "capitalize", "center", "e", "escape", "forceescape", "format", "indent", "json",
        "lower", "pprint", "replace", "safe", "string", "striptags", "title", "tojson", "trim",
        "truncate", "upper", "urlencode", "urlize", "wordcount", "wordwrap", "xmlattr",
    }
)  # fmt: skip
# Filters with a size parameter, or a cost worth a check before they run.
_SIZED_FILTERS = frozenset(
    {"batch", "center", "format", "indent", "join", "json", "replace", "slice", "sum", "tojson"}
    | {"urlize", "wordwrap"}
)
# Filters that print a value that is not a string before they work on the text.
_TEXT_FILTERS = frozenset({"center", "format", "indent", "replace", "urlize", "wordwrap"})
# Filters that hand back (part of) their input rather than build something new.
_PICKING_FILTERS = frozenset({"attr", "d", "default", "first", "last", "max", "min", "random"})


def _paced(items: Iterable[Any]) -> Iterator[Any]:
    for item in items:
        _check_deadline()
        yield item


def _check_filter(
    name: str, value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[Any, tuple[Any, ...]]:
    """Filters with a size parameter: refuse before the work when the result would be too long."""
    limit, what = _limit.get(), f"the {name} filter"
    if name in _PRINTING_FILTERS and not isinstance(value, _DATA_LEAVES):
        _reserve(_text_size(value, limit, printing=True), what)
    # str or bytes: a bytes value meets the str arguments below and fails as the filter would.
    text: Any = value if isinstance(value, str | bytes) else None
    if text is None and name in _TEXT_FILTERS:
        text = str(value)  # what the filter prints first; the check above keeps it short
    if name == "join":
        value = value if isinstance(value, list | tuple) else list(value)
        separator = _arg(args, kwargs, 0, "d", "")
        _reserve(_joined_size(value, _text_size(separator, limit, printing=True)), what)
    elif name == "center" and text is not None:
        width = _arg(args, kwargs, 0, "width", 80)
        _reserve(max(width, len(text)) if isinstance(width, int) else 0, what)
    elif name == "indent" and text is not None:
        width = _arg(args, kwargs, 0, "width", 4)
        per_line = width if isinstance(width, int) else _text_size(width, limit)
        _reserve(len(text) + (text.count("\n") + 1) * max(per_line, 0), what)
    elif name == "replace" and text is not None:
        _reserve(_grown_size(text, *args[:3]), what)
    elif name == "wordwrap" and text is not None:
        width = _arg(args, kwargs, 0, "width", 79)
        wrap = _arg(args, kwargs, 2, "wrapstring", None) or "\n"
        if isinstance(width, int) and width > 0:
            breaks = len(text) // width + text.count("\n") + 1
            _reserve(len(text) + breaks * _text_size(wrap, limit), what)
    elif name == "urlize" and text is not None:
        extra = sum(_text_size(v, limit) for v in (*args, *kwargs.values()) if v is not None)
        _reserve(len(text) + (text.count(".") + text.count("@") + 1) * (extra + 64), what)
    elif name == "format" and text is not None:
        _check_percent(text, kwargs or args)
    elif name in ("batch", "slice"):
        count = _arg(args, kwargs, 0, "linecount" if name == "batch" else "slices", 0)
        _reserve(count * 2 if isinstance(count, int) else 0, what)
    elif name in ("tojson", "json"):
        indent = _arg(args, kwargs, 0, "indent", None)
        if indent is not None:
            # json makes the indent string once, whatever it indents: ' ' * indent.
            width = indent if isinstance(indent, int) else _text_size(indent, limit)
            _reserve(width, what)
            _reserve(_text_size(value, limit, printing=True, indent=max(width, 1)), what)
    elif name == "sum":
        value = _paced(value)
    return value, args


def _guard_filter(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    # Filters marked pass_context / pass_eval_context / pass_environment get that first.
    offset = 1 if getattr(fn, "jinja_pass_arg", None) is not None else 0
    sized, prints, picks = (
        name in _SIZED_FILTERS,
        name in _PRINTING_FILTERS,
        name in _PICKING_FILTERS,
    )

    @functools.wraps(fn)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        if _compiling.get():
            raise nodes.Impossible()  # not folded into a constant: it runs when rendered
        _check_deadline()
        if len(args) <= offset:
            return fn(*args, **kwargs)
        value = args[offset]
        if sized or (prints and not isinstance(value, _DATA_LEAVES)):
            checked, rest = _check_filter(name, value, args[offset + 1 :], kwargs)
            args = (*args[:offset], checked, *rest)
        result = fn(*args, **kwargs)
        if not picks and result is not value:
            _charge(result, f"the {name} filter")
        return result

    return guarded


def _lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:
    _reserve(int(n) * int(max) * 12, "lipsum")
    return generate_lorem_ipsum(n, html, min, max)


ENV = LimitedSandbox(
    undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True, finalize=_finalize
)
ENV.filters["json"] = _to_json
ENV.filters["fromjson"] = _from_json
ENV.filters = {name: _guard_filter(name, fn) for name, fn in ENV.filters.items()}
ENV.globals[_LOOP_GUARD] = _loop_guard
ENV.globals[_CONCAT_GUARD] = _concat_guard
ENV.globals[_LITERAL_GUARD] = _literal_guard
ENV.globals["lipsum"] = _lipsum


@lru_cache(maxsize=4096)
def _template(source: str) -> Template:
    return ENV.from_string(source)


@lru_cache(maxsize=4096)
def _expression(source: str) -> TemplateExpression:
    return ENV.compile_expression(source, undefined_to_none=False)


def _single_expression(source: str) -> str | None:
    match = _SINGLE_EXPRESSION.match(source)
    if match is None:
        return None
    inner = match.group("expr")
    if "{{" in inner or "}}" in inner or "{%" in inner or "{#" in inner:
        return None
    return inner


def _run(fn: Callable[..., Any], *args: Any, limit: int = MAX_OUTPUT_CHARS) -> Any:
    # CPU time of this thread, not wall time: a busy machine (a worker starting beside others,
    # a process preempting this one) must not fail `{{ run.id }}` as a runaway template.
    token = _deadline.set(time.thread_time() + TIME_BUDGET_S)
    limit_token, built_token = _limit.set(limit), _built.set([0])
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
        _limit.reset(limit_token)
        _built.reset(built_token)


def _value(expr: str, context: Mapping[str, Any]) -> Any:
    compiled = _expression(expr)
    _restart_deadline()
    value = compiled(**context)
    if isinstance(value, Undefined):
        raise TemplateError(f"'{expr.strip()}' is undefined")
    return value


def _native(expr: str, context: Mapping[str, Any]) -> Any:
    return _plain(_value(expr, context), expr)


def _restart_deadline() -> None:
    """Each string gets the whole budget for rendering; compiling it (cached, and slow the first
    time in a fresh worker) does not count against the budget."""
    if _deadline.get() is not None:
        _deadline.set(time.thread_time() + TIME_BUDGET_S)


def _render_string(source: str, context: Mapping[str, Any], limit: int) -> Any:
    if "{" not in source:
        return source
    expr = _single_expression(source)
    if expr is not None:
        return _native(expr, context)
    template = _template(source)
    _restart_deadline()
    chunks: list[str] = []
    size = 0
    for chunk in template.generate(**context):
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
    return _run(_render_value, value, context, limit, limit=limit)


def evaluate(expression: str, context: Mapping[str, Any]) -> Any:
    """Evaluate an expression written without braces, such as an edge condition."""
    return _run(_value, expression, context)


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
        if not isinstance(node, nodes.Getattr | nodes.Getitem):
            continue
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
