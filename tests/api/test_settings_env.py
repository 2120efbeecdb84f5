"""A malformed setting stops the process at start-up with a message naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from config.env import env_mapping, env_stdio_servers

ROOT = Path(__file__).resolve().parents[2]


def manage_check(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    environ = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE")
    }
    environ.update(VAR_DIR=str(tmp_path), **env)
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DATABASE_URL", "nonsense://x"),  # Django's error named neither the variable nor the fix
        ("DATABASE_URL", "mysql://u:p@localhost/db"),  # no driver: failed on the first import
        ("REDIS_URL", "http://127.0.0.1:6379/0"),  # accepted, then failed at the first task
    ],
)
def test_a_database_or_redis_url_of_another_kind_stops_the_start_naming_it(
    tmp_path, variable, value
):
    result = manage_check(tmp_path, **{variable: value})
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert "ImproperlyConfigured" in last and f"{variable} must be" in last, result.stderr


def test_the_embedded_defaults_pass_the_check(tmp_path):
    result = manage_check(tmp_path)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("LOGIN_FAILURE_LIMIT", "five"),
        ("LOGIN_FAILURE_LIMIT", "0"),
        ("LOGIN_LOCKOUT_MINUTES", "1.5"),
    ],
)
def test_a_malformed_sign_in_limit_stops_the_start_naming_it(tmp_path, variable, value):
    result = manage_check(tmp_path, **{variable: value})
    assert result.returncode != 0
    assert f"{variable} must be" in result.stderr.strip().splitlines()[-1]


def test_model_aliases_from_the_environment_are_merged_over_the_built_in_ones(monkeypatch):
    monkeypatch.setenv("MODEL_ALIASES", "local=openai/llama3, sonnet=openai/other,")
    aliases = env_mapping("MODEL_ALIASES", {"sonnet": "anthropic/x", "opus": "anthropic/y"})
    assert aliases == {"sonnet": "openai/other", "opus": "anthropic/y", "local": "openai/llama3"}


@pytest.mark.parametrize("value", ["local", "local=", "=openai/x"])
def test_a_malformed_model_alias_stops_the_start_naming_the_variable(tmp_path, value):
    result = manage_check(tmp_path, MODEL_ALIASES=value)
    assert result.returncode != 0
    assert "MODEL_ALIASES must be a comma list of name=value" in result.stderr


def test_stdio_mcp_servers_are_read_from_a_json_object(monkeypatch):
    monkeypatch.setenv("MCP_STDIO_SERVERS", '{"files": {"command": "mcp-files", "args": ["/srv"]}}')
    assert env_stdio_servers("MCP_STDIO_SERVERS") == {
        "files": {"command": "mcp-files", "args": ["/srv"], "env": None}
    }
    monkeypatch.delenv("MCP_STDIO_SERVERS")
    assert env_stdio_servers("MCP_STDIO_SERVERS") == {}


@pytest.mark.parametrize(
    "value",
    [
        "mcp-files",
        '["mcp-files"]',
        '{"files": "mcp-files"}',
        '{"files": {"args": ["x"]}}',
        '{"files": {"command": "x", "args": "y"}}',
        '{"files": {"command": "x", "env": {"A": 1}}}',
    ],
)
def test_a_malformed_stdio_server_list_stops_the_start_naming_the_variable(value, monkeypatch):
    monkeypatch.setenv("MCP_STDIO_SERVERS", value)
    with pytest.raises(ImproperlyConfigured, match="MCP_STDIO_SERVERS"):
        env_stdio_servers("MCP_STDIO_SERVERS")
