"""Request bodies as JSON: oversized bodies refused even when no Content-Length was sent, JSON
nested deeper than the rest of the code can walk, and strings no column can store (NUL, and
unpaired surrogates).

The API's parser and the webhook service read bodies alike, so the rules raise domain errors
(`Malformed JSON: ...` is a `validation_error`, like DRF's ParseError in the API's handler).
"""

from __future__ import annotations

import json
import re
from typing import Any

from core.domain_errors import InvalidRequest, PayloadTooLarge, summarize
from orchestrator.definition.checks import MAX_DEPTH, loads_strict, too_deep, unstorable_path

# How a character no column can store reaches a JSON text: escaped (a raw control character is
# a syntax error, and UTF-8 cannot carry a surrogate).
_UNSTORABLE_ESCAPE = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")


def _malformed(problem: str) -> InvalidRequest:
    return InvalidRequest(f"Malformed JSON: {problem}")


def read_limited(stream, limit: int) -> bytes:
    data = stream.read(limit + 1) if stream is not None else b""
    if len(data) > limit:
        raise PayloadTooLarge(f"The request body is larger than {limit} bytes.")
    return data


def parse_json_body(raw: bytes) -> Any:
    """A request body as JSON, held to what the rest of the code and the database can take:
    strict JSON, at most MAX_DEPTH levels deep, only text a column can store. An empty body is
    `{}`."""
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
    # The walk runs only for the rare body whose text has such an escape.
    if _UNSTORABLE_ESCAPE.search(text):
        found = unstorable_path(data)
        if found is not None:
            fields = {found[0]: [found[1]]}
            raise InvalidRequest(summarize(fields), fields=fields)
    return data
