"""Typed readers for environment variables that fail loudly.

A typo in a deployment's environment should stop the process at start-up with a message naming
the variable, not quietly fall back to a default that behaves differently in production.
"""

from __future__ import annotations

import json
import os
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, *, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {raw!r}")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, not {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, not {value}")
    return value


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, not {raw!r}") from None


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return list(default)
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_mapping(name: str, default: dict[str, str]) -> dict[str, str]:
    """A comma list of `key=value` pairs merged over `default` (a key given again replaces it)."""
    raw = os.environ.get(name)
    result = dict(default)
    if raw is None:
        return result
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        key, sep, value = (piece.strip() for piece in item.partition("="))
        if not sep or not key or not value:
            raise ImproperlyConfigured(f"{name} must be a comma list of name=value, not {item!r}")
        result[key] = value
    return result


def env_url(name: str, *, schemes: tuple[str, ...]) -> str:
    """A URL with one of `schemes` and a host, or "" when unset."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return ""
    try:
        url = urlsplit(raw)
        valid = url.scheme in schemes and bool(url.hostname)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        valid = False
    if not valid:
        allowed = " or ".join(f"{scheme}://" for scheme in schemes)
        raise ImproperlyConfigured(f"{name} must be an {allowed} URL, not {raw!r}")
    return raw


def env_stdio_servers(name: str) -> dict[str, dict]:
    """A JSON object naming local MCP servers: `{"name": {"command": "...", "args": [...],
    "env": {...}}}`, or {} when unset. Only the operator sets it: no API call starts a process."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be a JSON object: {exc}") from None
    if not isinstance(data, dict):
        raise ImproperlyConfigured(f"{name} must be a JSON object of name -> server")
    servers = {}
    for key, spec in data.items():
        command = spec.get("command") if isinstance(spec, dict) else None
        args, env = (spec.get("args", []), spec.get("env")) if isinstance(spec, dict) else ([], 0)
        valid = (
            isinstance(command, str)
            and command
            and isinstance(args, list)
            and all(isinstance(arg, str) for arg in args)
            and (
                env is None
                or (isinstance(env, dict) and all(isinstance(v, str) for v in env.values()))
            )
        )
        if not key or not valid:
            raise ImproperlyConfigured(
                f'{name}[{key!r}] must be {{"command": "...", "args": [strings], '
                '"env": {name: string}}'
            )
        servers[key] = {"command": command, "args": list(args), "env": env}
    return servers
