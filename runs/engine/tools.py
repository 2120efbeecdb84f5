"""Tools agents may call. Each returns text for the model; failures are text too, so the agent
can read them and try something else."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from runs.engine.netguard import fetch
from runs.engine.nodes.base import NetPolicy, StepFailed

BODY_LIMIT = 20_000

SCHEMAS = {
    "http_get": {
        "type": "function",
        "function": {
            "name": "http_get",
            "description": "Fetch a URL with HTTP GET and return its status and body.",
            "parameters": {
                "type": "object",
                "properties": {
                    "url": {"type": "string", "description": "An http or https URL."},
                    "headers": {"type": "object", "additionalProperties": {"type": "string"}},
                },
                "required": ["url"],
            },
        },
    },
}


def http_get(args: dict, policy: NetPolicy, transport=None) -> tuple[bool, str]:
    url = args.get("url")
    if not isinstance(url, str):
        return False, "error: http_get needs a url"
    headers = args.get("headers") if isinstance(args.get("headers"), dict) else {}
    try:
        response = fetch(
            "GET", url, policy=policy, headers=headers, timeout=20, transport=transport
        )
    except StepFailed as exc:
        return False, f"error: {exc.message}"
    return True, json.dumps({"status": response.status_code, "body": response.text[:BODY_LIMIT]})


# What each tool named in orchestrator.definition.nodes.KNOWN_TOOLS does.
TOOLS: dict[str, Callable[[dict, NetPolicy, Any], tuple[bool, str]]] = {"http_get": http_get}


def run_tool(
    name: str, args: dict, allowed: tuple[str, ...], policy: NetPolicy, transport=None
) -> tuple[bool, str]:
    if name not in allowed:
        return False, f"error: this agent has no tool '{name}'"
    tool = TOOLS.get(name)
    if tool is None:
        return False, f"error: unknown tool '{name}'"
    return tool(args, policy, transport)
