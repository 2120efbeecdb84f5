"""Secrets out of whatever a public orchestration shows or lets others copy.

One rule for every string of a public definition, wherever it sits (an http step's `url`,
`headers` or `body`, an agent's `base_url` — declared, inline or copied from the library —, a
prompt, a transform's output, an input's default, a script's tool arguments): every URL in it
loses its `user:password@`, and the values of its query and fragment parameters named like a
secret (`token`, `api_key`, `sig`, `X-Amz-Signature`, ...) are emptied, the names kept so that
whoever forks it sees what to fill in. A URL nested percent-encoded in another's parameter
(`?next=https%3A%2F%2Fu%3Ap%40host`) is scrubbed too. Any `headers` object loses its entries
named like a secret. Strings are edited as text, never parsed and rebuilt, so `{{ templates }}`
inside a URL survive intact.

Pure Python: the gallery calls it on the definition, and on the description it shows.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote, unquote

from runs.engine.redaction import is_secret_name

# A template expression or statement counts as one character of a URL, whatever it holds (up to
# a length, so that a string of unclosed braces cannot make the scan quadratic).
_TEMPLATE = r"\{\{[^{}]{0,1000}\}\}|\{%[^{}]{0,1000}%\}"
# A run of text without whitespace outside templates: where a URL can be.
_WORD = re.compile(rf"(?:{_TEMPLATE}|[^\s{{]|\{{(?![{{%]))+")
# scheme://userinfo@ — greedy to the last `@` of the authority: a password may hold an `@`.
_USERINFO = re.compile(
    rf"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?:{_TEMPLATE}|[^/?#\s\"<>{{]|\{{(?![{{%]))*@"
)
# name=value after `?`, `&`, `;` or `#`; a value runs to the next separator, quote or bracket.
_PARAM = re.compile(
    rf"(?P<lead>[?&;#])(?P<name>[^=&;#?\s\"<>]+)=(?P<value>(?:{_TEMPLATE}|[^&;#\s\"<>{{]|\{{(?![{{%]))*)"
)
_CLOSING = re.compile(r"[)\].,;:!']*$")


def _param(match: re.Match) -> str:
    lead, name, value = match["lead"], match["name"], match["value"]
    if is_secret_name(name):
        # Punctuation closing the sentence or markdown link around the URL stays.
        return f"{lead}{name}={_CLOSING.search(value)[0]}"
    decoded = unquote(value)
    if "://" in decoded and decoded != value:
        scrubbed = scrub_text(decoded)
        if scrubbed != decoded:
            value = quote(scrubbed, safe="")
    return f"{lead}{name}={value}"


def _word(match: re.Match) -> str:
    word = match[0]
    if "://" in word:
        word = _USERINFO.sub(r"\g<scheme>", word)
    starts = [index for index in (word.find("?"), word.find("#")) if index >= 0]
    if starts and "=" in word:
        query = min(starts)
        word = word[:query] + _PARAM.sub(_param, word[query:])
    return word


def scrub_text(text: str) -> str:
    """`text` with every URL in it scrubbed (see the module docstring)."""
    if "://" not in text and "=" not in text:
        return text
    return _WORD.sub(_word, text)


def scrub_secrets(value: Any) -> Any:
    """A copy of a JSON-like value with every string scrubbed, dict keys included, and every
    `headers` object without its entries named like a secret."""
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, list | tuple):
        return [scrub_secrets(item) for item in value]
    if isinstance(value, dict):
        scrubbed = {}
        for key, item in value.items():
            if key == "headers" and isinstance(item, dict):
                item = {name: v for name, v in item.items() if not is_secret_name(str(name))}
            scrubbed[scrub_secrets(key)] = scrub_secrets(item)
        return scrubbed
    return value
