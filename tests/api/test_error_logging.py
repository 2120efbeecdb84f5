"""What an unhandled error writes to the log: the traceback, never the frames' variables."""

from __future__ import annotations

import logging
import sys

from django.conf import settings


def console_formatter() -> logging.Formatter:
    config = dict(settings.LOGGING["formatters"]["console"])
    factory = config.pop("()")
    return factory(**config)


def failing_record() -> logging.LogRecord:
    def call_upstream() -> None:
        api_key = "sk-canary-7f3a9"  # a local, as a credential's value is while a step runs
        raise RuntimeError(f"upstream refused ({len(api_key)} chars)")

    try:
        call_upstream()
    except RuntimeError:
        exc_info = sys.exc_info()
    return logging.LogRecord(
        "django.request", logging.ERROR, __file__, 1, "Internal Server Error", None, exc_info
    )


def test_the_console_log_of_an_error_has_the_traceback_but_not_local_variables():
    # structlog's default console traceback (rich, when installed) printed every frame's locals:
    # credential values in the log, and ~90 MB for one error holding a large request.
    output = console_formatter().format(failing_record())
    assert "RuntimeError: upstream refused" in output
    assert "call_upstream" in output
    assert "sk-canary-7f3a9" not in output
