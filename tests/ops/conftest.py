"""Helpers for the operations tests: production-like environments for subprocesses and a log
handler that renders through the configured formatter."""

from __future__ import annotations

import io
import json
import logging
import os
import secrets
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]


def base_env(var_dir: Path, **extra: str) -> dict[str, str]:
    """A clean environment: only what a process needs to start, none of the caller's settings."""
    env = {
        key: os.environ[key]
        for key in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "NODE_MODULES_DIR")
        if key in os.environ
    }
    env.update(
        {
            "VAR_DIR": str(var_dir),
            "PYTHONUNBUFFERED": "1",
            "DJANGO_SETTINGS_MODULE": "config.settings",
        }
    )
    env.update(extra)
    return env


def production_env(var_dir: Path, **extra: str) -> dict[str, str]:
    """DEBUG off and every variable the README's production section lists; `extra` wins."""
    settings = dict(
        DEBUG="false",
        SECRET_KEY=secrets.token_urlsafe(64),
        ALLOWED_HOSTS="orchestrator.example.com",
        CSRF_TRUSTED_ORIGINS="https://orchestrator.example.com",
        # Never connected to by the checks: a name that cannot resolve proves it.
        DATABASE_URL="postgres://orchestrator:secret@db.invalid:5432/orchestrator",
        REDIS_URL="redis://redis.invalid:6379/0",
        FIELD_ENCRYPTION_KEYS=f"{Fernet.generate_key().decode()},{Fernet.generate_key().decode()}",
        BEHIND_PROXY="true",
        SECURE_SSL_REDIRECT="true",
        SECURE_HSTS_SECONDS="31536000",
        SECURE_HSTS_INCLUDE_SUBDOMAINS="true",
        SECURE_HSTS_PRELOAD="true",
    )
    return base_env(var_dir, **{**settings, **extra})


def python() -> str:
    return sys.executable


def configured_formatter(name: str) -> logging.Formatter:
    """The formatter LOGGING names `name`, built the way dictConfig builds it."""
    spec = dict(settings.LOGGING["formatters"][name])
    factory = spec.pop("()")
    return factory(**spec)


class JsonLines(logging.Handler):
    """Renders every record with the configured json formatter, as the console handler would."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.stream = io.StringIO()
        self.setFormatter(configured_formatter("json"))

    def emit(self, record: logging.LogRecord) -> None:
        self.stream.write(self.format(record) + "\n")

    def lines(self) -> list[dict]:
        return [json.loads(line) for line in self.stream.getvalue().splitlines() if line]


@pytest.fixture
def json_lines():
    handler = JsonLines()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
