"""Request bodies as JSON: oversized bodies refused even when no Content-Length was sent, JSON
nested deeper than the rest of the code can walk, and strings PostgreSQL cannot store.

The API's parser and the webhook service read bodies alike, so the rules raise domain errors
(`Malformed JSON: ...` is a `validation_error`, like DRF's ParseError in the API's handler).
"""

from __future__ import annotations

import json
from typing import Any

from core.domain_errors import InvalidRequest, PayloadTooLarge, summarize
from orchestrator.definition.checks import MAX_DEPTH, json_path, loads_strict, too_deep

NUL_MESSAGE = "must not contain the NUL character (\\u0000)"


def _malformed(problem: str) -> InvalidRequest:
    return InvalidRequest(f"Malformed JSON: {problem}")


def read_limited(stream, limit: int) -> bytes:
    data = stream.read(limit + 1) if stream is not None else b""
    if len(data) > limit:
        raise PayloadTooLarge(f"The request body is larger than {limit} bytes.")
    return data


def nul_path(value: Any) -> str | None:
    """The JSON path of the first string (or key) holding U+0000, or None.

    PostgreSQL's text and jsonb cannot store it: a definition, a run input or any JSON column
    holding one failed on INSERT with a DataError, a 500. Refused here, the same on SQLite.
    """
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(value, ())]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return json_path(list(path))
        elif isinstance(item, dict):
            for key, child in item.items():
                if "\x00" in key:
                    return json_path(list(path))
                stack.append((child, (*path, key)))
        elif isinstance(item, list):
            stack.extend((child, (*path, index)) for index, child in enumerate(item))
    return None


def parse_json_body(raw: bytes) -> Any:
    """A request body as JSON, held to what the rest of the code and the database can take:
    strict JSON, at most MAX_DEPTH levels deep, no NUL character. An empty body is `{}`."""
    if not raw.strip():
        return {}
    try:
        text = raw.decode("utf-8")
        data = loads_strict(text)
    except UnicodeDecodeError:
        raise _malformed("the body is not UTF-8.") from None
    except json.JSONDecodeError as exc:
        raise _malformed(f"{exc.msg} at line {exc.lineno} column {exc.colno}.") from None
    except ValueError as exc:  # NaN, Infinity, 1e400: Python reads them, JSON has none
        raise _malformed(f"{exc}.") from None
    except RecursionError:
        raise _malformed(f"the JSON nests more than {MAX_DEPTH} levels deep.") from None
    # json.loads copes with ~1,000 levels, but validation and templating recurse a few
    # frames per level and would end in a RecursionError (a 500) far sooner.
    if too_deep(data) is not None:
        raise _malformed(f"the JSON nests more than {MAX_DEPTH} levels deep.")
    # JSON can only carry U+0000 escaped (a raw control character is a syntax error), so
    # the walk runs only for the rare body that has the escape in its text.
    if "\\u0000" in text:
        path = nul_path(data)
        if path is not None:
            fields = {path: [NUL_MESSAGE]}
            raise InvalidRequest(summarize(fields), fields=fields)
    return data
