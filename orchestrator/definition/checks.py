"""Small typed checks that record a readable message at a JSON path instead of raising."""

from __future__ import annotations

import json
import math
import re
from typing import Any

from orchestrator.definition.errors import Problems

IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
MISSING = object()
# How deeply JSON may nest (the outermost object or list is level 1). Validation, templating,
# diffs and the JSON encoder walk values recursively and hit Python's recursion limit a few
# hundred levels down; no definition or input needs more than a handful.
MAX_DEPTH = 64

_TYPE_NAMES = {
    dict: "an object",
    list: "a list",
    str: "a string",
    bool: "true or false",
}


def type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def bound_text(bound: float) -> str:
    """A limit as people write it: a year of seconds is 31536000, not `:g`'s 3.1536e+07."""
    return str(int(bound)) if float(bound).is_integer() else f"{bound:g}"


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def too_deep(value: Any, limit: int = MAX_DEPTH) -> list[str | int] | None:
    """The path to the first object or list nested deeper than `limit` levels, or None.

    Iterative on purpose: a recursive walk is what this guards the rest of the code against.
    """
    stack: list[tuple[Any, int, tuple[str | int, ...]]] = [(value, 1, ())]
    while stack:
        item, depth, path = stack.pop()
        if isinstance(item, dict):
            children: Any = item.items()
        elif isinstance(item, list):
            children = enumerate(item)
        else:
            continue
        if depth > limit:
            return list(path)
        stack.extend((child, depth + 1, (*path, key)) for key, child in children)
    return None


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:40]} is out of range")
    return value


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def loads_strict(text: str) -> Any:
    """json.loads without what Python's parser accepts beyond JSON: NaN, Infinity, and numbers
    that overflow to infinity. Kept, they failed later: DRF's encoder refuses them (a 500 on
    the answer) and so does PostgreSQL's jsonb (a 500 on INSERT)."""
    return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)


# What PostgreSQL's text and jsonb cannot store and UTF-8 cannot encode: U+0000, and a surrogate
# that is not half of a pair (JSON may escape one alone, "\\ud800", and Python reads it as such).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
NUL_MESSAGE = "must not contain the NUL character (\\u0000)"
SURROGATE_MESSAGE = "must not contain an unpaired surrogate (\\ud800-\\udfff)"
REPLACEMENT = "\ufffd"


def storable(text: str) -> str:
    """`text` with each character no column can store replaced by U+FFFD, as a UTF-8 decoder
    replaces bytes it cannot read: for text from outside (a server's answer) that is kept."""
    return _UNSTORABLE.sub(REPLACEMENT, text)


def unstorable_path(value: Any, root: str = "") -> tuple[str, str] | None:
    """The JSON path of the first string (or key) no column can store, with the reason; None
    when every string can be stored. For what a client sends, which is refused, not repaired.

    Stored, such a string failed on PostgreSQL's INSERT (a DataError, a 500) and on SQLite
    later, when the answer holding it was encoded; refused alike on both."""
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(value, ())]
    while stack:
        item, path = stack.pop()
        texts: list[tuple[str, tuple[str | int, ...]]] = []
        if isinstance(item, str):
            texts.append((item, path))
        elif isinstance(item, dict):
            for key, child in item.items():
                texts.append((str(key), path))
                stack.append((child, (*path, key)))
        elif isinstance(item, list):
            stack.extend((child, (*path, index)) for index, child in enumerate(item))
        for text, where in texts:
            found = _UNSTORABLE.search(text)
            if found is not None:
                reason = NUL_MESSAGE if found.group() == "\x00" else SURROGATE_MESSAGE
                return json_path(list(where), root), reason
    return None


def json_path(parts: list[str | int], root: str = "") -> str:
    """`["nodes", 0, "config"]` as `nodes[0].config`, the notation of every error path."""
    path = root
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path = f"{path}.{part}" if path else str(part)
    return path or "$"


class Checker:
    """Wraps Problems with the usual shapes: each method returns the value, or `default` when it
    is missing or wrong (so validation can go on and report everything)."""

    def __init__(self, problems: Problems) -> None:
        self.problems = problems

    def fail(self, path: str, message: str) -> None:
        self.problems.add(path, message)

    def string(
        self,
        value: Any,
        path: str,
        *,
        default: Any = MISSING,
        allow_empty: bool = True,
        max_length: int = 100_000,
    ) -> Any:
        if value is MISSING or value is None:
            if default is MISSING:
                self.fail(path, "is required")
                return ""
            return default
        if not isinstance(value, str):
            self.fail(path, f"must be a string, not {type_name(value)}")
            return "" if default is MISSING else default
        if not allow_empty and not value.strip():
            self.fail(path, "must not be empty")
        if len(value) > max_length:
            self.fail(path, f"must be at most {max_length} characters")
        return value

    def number(
        self,
        value: Any,
        path: str,
        *,
        default: Any = MISSING,
        minimum: float | None = None,
        maximum: float | None = None,
        exclusive_minimum: bool = False,
        integer: bool = False,
        nullable: bool = False,
    ) -> Any:
        if value is MISSING or (value is None and not nullable):
            if default is MISSING:
                self.fail(path, "is required")
                return 0
            return default
        if value is None:
            return None
        kind = "an integer" if integer else "a number"
        if not (is_integer(value) if integer else is_number(value)):
            self.fail(path, f"must be {kind}, not {type_name(value)}")
            return default if default is not MISSING else 0
        if minimum is not None:
            if exclusive_minimum and value <= minimum:
                self.fail(path, f"must be greater than {bound_text(minimum)}")
            elif not exclusive_minimum and value < minimum:
                self.fail(path, f"must be at least {bound_text(minimum)}")
        if maximum is not None and value > maximum:
            self.fail(path, f"must be at most {bound_text(maximum)}")
        return value

    def boolean(self, value: Any, path: str, *, default: bool) -> bool:
        if value is MISSING or value is None:
            return default
        if not isinstance(value, bool):
            self.fail(path, f"must be true or false, not {type_name(value)}")
            return default
        return value

    def choice(self, value: Any, path: str, choices: tuple[str, ...], *, default: Any) -> Any:
        if value is MISSING or value is None:
            if default is MISSING:
                self.fail(path, f"is required: one of {', '.join(choices)}")
            return default
        if value not in choices:
            self.fail(path, f"must be one of {', '.join(choices)}, not {value!r}"[:300])
            return default
        return value

    def string_list(self, value: Any, path: str, *, default: list[str] | None = None) -> list[str]:
        if value is MISSING or value is None:
            return list(default or [])
        if not isinstance(value, list):
            self.fail(path, f"must be a list of strings, not {type_name(value)}")
            return []
        for index, item in enumerate(value):
            if not isinstance(item, str):
                self.fail(f"{path}[{index}]", f"must be a string, not {type_name(item)}")
        return [item for item in value if isinstance(item, str)]

    def obj(self, value: Any, path: str, *, default: Any = MISSING) -> dict[str, Any]:
        if value is MISSING or value is None:
            if default is MISSING:
                self.fail(path, "is required")
                return {}
            given: dict[str, Any] = default
            return given
        if not isinstance(value, dict):
            self.fail(path, f"must be an object, not {type_name(value)}")
            return {}
        return value

    def identifier(self, value: Any, path: str) -> str:
        text: str = self.string(value, path)
        if text and not IDENTIFIER.match(text):
            self.fail(
                path,
                f"'{text[:80]}' must start with a lowercase letter and use only a-z, 0-9 and _ "
                "(at most 63 characters)",
            )
        return text

    def unknown_keys(self, data: dict[str, Any], allowed: tuple[str, ...], path: str) -> None:
        for key in data:
            if key not in allowed:
                where = f"{path}.{key}" if path else str(key)
                self.fail(where, f"unknown key; allowed: {', '.join(allowed)}")
