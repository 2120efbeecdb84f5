"""JSON Schemas that users write (trigger input schemas, edge payload schemas), checked with
their regular expressions run by RE2.

jsonschema runs `pattern`, `patternProperties` (and the keywords that consult them,
`additionalProperties` and `unevaluatedProperties`) on Python's backtracking `re`: a pattern like
`^(a+)+$` takes time exponential in the length of a short string, and these checks run while a
webhook or API request waits, so one body could stall the server for every tenant. RE2 matches
in time linear in the input. What RE2 cannot compile (backreferences, lookaround) is refused
when the schema is saved and never handed to `re`; a schema stored before that rule still never
reaches `re`: its pattern fails validation with the reason.

Every place that checks or applies a user's schema goes through this module.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from typing import Any

import re2
from jsonschema import Draft202012Validator, FormatChecker, validators
from jsonschema.exceptions import SchemaError, ValidationError, best_match
from referencing.exceptions import Unresolvable

from orchestrator.definition.checks import json_path

# RE2 reports a bad pattern in the exception; its own logging to stderr would only be noise.
_OPTIONS = re2.Options()
_OPTIONS.log_errors = False
# How much of a value an error message quotes: a 1 MiB string must not come back whole.
_PREVIEW = 80


class PatternError(ValueError):
    """A pattern RE2 cannot compile, with RE2's reason."""


@functools.lru_cache(maxsize=1024)
def compile_pattern(pattern: str) -> Any:
    """The RE2 program for `pattern`, cached: schemas are applied far more often than written."""
    try:
        return re2.compile(pattern, options=_OPTIONS)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else "invalid pattern"
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise PatternError(
            f"{_preview(pattern)} cannot be used: {reason} (patterns use RE2 syntax, which has "
            "no backreferences or lookaround)"
        ) from None


def _preview(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _PREVIEW else text[: _PREVIEW - 3] + "..."


def _matches(pattern: str, text: str) -> bool:
    """Whether `pattern` occurs in `text`; a pattern RE2 refuses matches nothing (the `pattern`
    or `patternProperties` keyword that holds it reports why)."""
    try:
        return compile_pattern(pattern).search(text) is not None
    except PatternError:
        return False


def _pattern(
    validator: Any, pattern: str, instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "string"):
        return
    try:
        found = compile_pattern(pattern).search(instance)
    except PatternError as exc:
        yield ValidationError(str(exc))
        return
    if found is None:
        yield ValidationError(f"{_preview(instance)} does not match {_preview(pattern)}")


def _pattern_properties(
    validator: Any, patterns: Mapping[str, Any], instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        try:
            program = compile_pattern(pattern)
        except PatternError as exc:
            yield ValidationError(str(exc))
            continue
        for key, value in instance.items():
            if program.search(key) is not None:
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _extras_message(extras: list[str]) -> str:
    shown = ", ".join(_preview(extra) for extra in extras[:10])
    more = f" and {len(extras) - 10} more" if len(extras) > 10 else ""
    verb = "was" if len(extras) == 1 else "were"
    return f"{shown}{more} {verb} unexpected"


def _additional_properties(
    validator: Any, additional: Any, instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    properties = schema.get("properties", {})
    patterns = list(schema.get("patternProperties", {}))
    extras = [
        key
        for key in instance
        if key not in properties and not any(_matches(pattern, key) for pattern in patterns)
    ]
    if validator.is_type(additional, "object"):
        for extra in extras:
            yield from validator.descend(instance[extra], additional, path=extra)
    elif not additional and extras:
        yield ValidationError(
            f"Additional properties are not allowed ({_extras_message(sorted(extras))})"
        )


def _evaluated_keys(validator: Any, instance: Mapping[str, Any], schema: Any) -> set[str]:
    """The keys of `instance` that `schema` evaluates, for `unevaluatedProperties`.

    jsonschema's own walk (`_utils.find_evaluated_property_keys_by_schema`, the same keywords in
    the same order) matches patternProperties with `re`; this one matches them with RE2.
    """
    if validator.is_type(schema, "boolean"):
        return set()
    keys: set[str] = set()
    for keyword in ("$ref", "$dynamicRef"):
        reference = schema.get(keyword)
        if reference is not None:
            resolved = validator._resolver.lookup(reference)
            inner = validator.evolve(schema=resolved.contents, _resolver=resolved.resolver)
            keys |= _evaluated_keys(inner, instance, resolved.contents)
    properties = schema.get("properties")
    if validator.is_type(properties, "object"):
        keys |= properties.keys() & instance.keys()
    for keyword in ("additionalProperties", "unevaluatedProperties"):
        subschema = schema.get(keyword)
        if subschema is not None:
            keys |= {
                key
                for key, value in instance.items()
                if not any(validator.descend(value, subschema))
            }
    for pattern in schema.get("patternProperties", {}):
        keys |= {key for key in instance if _matches(pattern, key)}
    for name, subschema in schema.get("dependentSchemas", {}).items():
        if name in instance:
            keys |= _evaluated_keys(validator, instance, subschema)
    for keyword in ("allOf", "oneOf", "anyOf"):
        for subschema in schema.get(keyword, []):
            if not any(validator.descend(instance, subschema)):
                keys |= _evaluated_keys(validator, instance, subschema)
    if "if" in schema:
        if validator.evolve(schema=schema["if"]).is_valid(instance):
            keys |= _evaluated_keys(validator, instance, schema["if"])
            if "then" in schema:
                keys |= _evaluated_keys(validator, instance, schema["then"])
        elif "else" in schema:
            keys |= _evaluated_keys(validator, instance, schema["else"])
    return keys


def _unevaluated_properties(
    validator: Any, unevaluated: Any, instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    evaluated = _evaluated_keys(validator, instance, schema)
    refused = [
        key
        for key in instance
        if key not in evaluated
        and any(validator.descend(instance[key], unevaluated, path=key, schema_path=key))
    ]
    if refused:
        if unevaluated is False:
            message = "Unevaluated properties are not allowed"
        else:
            message = "Unevaluated properties are not valid under the given schema"
        yield ValidationError(f"{message} ({_extras_message(sorted(refused))})")


# types-jsonschema leaves `extend` and `best_match` unannotated.
UserSchemaValidator = validators.extend(  # type: ignore[no-untyped-call]
    Draft202012Validator,
    {
        "pattern": _pattern,
        "patternProperties": _pattern_properties,
        "additionalProperties": _additional_properties,
        "unevaluatedProperties": _unevaluated_properties,
    },
)

# Checks a schema's own patterns (the meta-schema marks `pattern` and the keys of
# `patternProperties` as `format: regex`) with RE2 rather than `re`.
_SCHEMA_FORMATS = FormatChecker(formats=())


@_SCHEMA_FORMATS.checks("regex", raises=PatternError)
def _is_pattern(value: Any) -> bool:
    if isinstance(value, str):
        compile_pattern(value)
    return True


def schema_problem(schema: Any, root: str = "") -> tuple[str, str] | None:
    """Why `schema` cannot be saved, as (JSON path of the culprit, under `root` where the schema
    sits, and a message), or None when it can.

    Saved schemas are later applied to untrusted bodies, so their patterns must compile in RE2
    now, where the author can be told, rather than fail on every delivery.
    """
    try:
        UserSchemaValidator.check_schema(schema, format_checker=_SCHEMA_FORMATS)
    except SchemaError as exc:
        path = json_path(list(exc.absolute_path), root)
        if exc.validator == "format" and exc.validator_value == "regex":
            try:
                compile_pattern(exc.instance)
            except PatternError as problem:
                return path, str(problem)
        return path, exc.message
    return None


def error_lines(schema: Any, instance: Any, root: str, limit: int = 5) -> list[str]:
    """The ways `instance` fails `schema`, in document order and at most `limit`, each as
    `path: message` (`root` names the instance itself): what a model is told to fix."""
    try:
        errors = sorted(
            UserSchemaValidator(schema).iter_errors(instance), key=lambda e: list(e.absolute_path)
        )
    except Unresolvable as exc:
        return [f"{root}: the schema's reference {_preview(exc.ref)} cannot be resolved"]
    return [
        f"{'/'.join(map(str, error.absolute_path)) or root}: {error.message}"
        for error in errors[:limit]
    ]


def first_error(schema: Any, instance: Any) -> ValidationError | None:
    """The most relevant way `instance` fails `schema`, or None when it fits.

    A `$ref` that cannot be resolved (nothing is fetched from the network) is reported as a
    failure of the instance rather than raised.
    """
    try:
        error: ValidationError | None = best_match(
            UserSchemaValidator(schema).iter_errors(instance)
        )
        return error
    except Unresolvable as exc:
        return ValidationError(f"the schema's reference {_preview(exc.ref)} cannot be resolved")
