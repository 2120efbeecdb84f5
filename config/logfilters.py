"""Log filters and processors referenced from LOGGING in config.settings, and the redaction of
secrets in logged URLs that they and the access log of config.serve share."""

from __future__ import annotations

import logging
import re

from runs.engine.redaction import MASK, is_secret_name

# The reaper runs every few seconds: at INFO, beat sending it and the worker receiving and
# finishing it were three lines every five seconds, burying what the runs log.
REAPER_MARKS = ("runs.tasks.reap", "reap-runs")


class QuietReaper(logging.Filter):
    """Drops the INFO lines Celery writes about each reaper pass; warnings and errors stay."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.INFO or not record.name.startswith("celery"):
            return True
        message = record.getMessage()
        return not any(mark in message for mark in REAPER_MARKS)


# A query parameter wherever a URL is logged: its value is replaced when its name is a
# credential's (runs.engine.redaction.is_secret_name: `token`, `api_key`, `sig`...). A websocket
# or a script may carry an API token in `?token=`, and an http step's URL may carry a key.
QUERY_PARAMETER = re.compile(r"(?P<name>[?&;](?P<key>[^=&;\s#'\"]*)=)(?P<value>[^&;\s#'\"]*)")

# Left as they are: the traceback structures that format_exc_info renders afterwards.
_UNTOUCHED = frozenset({"exc_info", "stack_info"})
_PLAIN = (int, float, bool, type(None))


def redact_url_secrets(text: str) -> str:
    """`text` with the value of every secret-named query parameter replaced by [redacted]."""
    return QUERY_PARAMETER.sub(
        lambda match: match["name"] + MASK if is_secret_name(match["key"]) else match[0], text
    )


def redact_secrets(_logger, _method: str, event_dict: dict) -> dict:
    """structlog processor run on every line (structlog's and the standard library's): the
    message and every field, including objects such as the request Django attaches to its
    4xx/5xx lines, whose text shows the full path with its query."""
    for key, value in event_dict.items():
        if key in _UNTOUCHED or isinstance(value, _PLAIN):
            continue
        text = value if isinstance(value, str) else str(value)
        redacted = redact_url_secrets(text)
        if redacted != text:
            event_dict[key] = redacted
    return event_dict
