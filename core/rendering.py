"""Markdown from runs and people, turned into HTML that is safe to put on a page.

Raw HTML is off in the parser and nh3 removes whatever is left (javascript: links included),
so the result may be marked safe.
"""

from __future__ import annotations

import json
from typing import Any

import nh3
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt

_MD = MarkdownIt("commonmark", {"html": False}).enable("table")


def markdown_html(text: str) -> SafeString:
    return mark_safe(nh3.clean(_MD.render(text)))


def value_html(value: Any) -> SafeString:
    """A step or run output: strings as markdown, anything else as escaped, indented JSON.

    A string that is a whole JSON object or list shows as JSON too: it is a structured output
    written as text (a markdown run whose last step answered with JSON), and as markdown its
    lines ran into one paragraph of braces."""
    if value is None:
        return mark_safe('<span class="muted">—</span>')
    if isinstance(value, str):
        structured = _structured(value)
        if structured is None:
            return markdown_html(value)
        value = structured
    return mark_safe(f"<pre>{escape(json_text(value))}</pre>")


def json_text(value: Any, *, sort_keys: bool = False) -> str:
    """A value as indented JSON for people to read: text as it is, not `\\u00e9` escapes."""
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=sort_keys, default=str)


def _structured(text: str) -> dict[str, Any] | list[Any] | None:
    stripped = text.strip()
    if not stripped.startswith(("{", "[")):
        return None
    try:
        parsed = json.loads(stripped)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict | list) else None
