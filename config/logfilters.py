"""Log filters referenced from LOGGING in config.settings."""

from __future__ import annotations

import logging

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
