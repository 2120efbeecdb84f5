"""Offline, deterministic models for demos and tests.

`builtin/echo` answers with the prompt it was given. `builtin/script` plays a script, one item
per model call: a string (or {"reply": ...}) is a final answer; {"tool": name, "args": {...}}
or {"tool_calls": [{"name", "arguments"}]} asks for tools.
"""

from __future__ import annotations

import json
from typing import Any

from runs.engine.nodes.base import AgentSpec, NetPolicy, StepFailed
from runs.engine.providers.types import Completion, ToolCall, words


def _last(messages: list[dict], role: str) -> str:
    for message in reversed(messages):
        if message["role"] == role:
            return str(message.get("content") or "")
    return ""


def _usage(messages: list[dict], answer: Any) -> tuple[int, int]:
    return sum(words(m.get("content")) for m in messages), max(words(answer), 1)


def complete(
    spec: AgentSpec,
    messages: list[dict],
    tools: list[dict],
    *,
    net: NetPolicy,
    response_format: str = "text",
    timeout: float = 60.0,
    transport=None,
) -> Completion:
    if spec.model == "builtin/echo":
        answer = _last(messages, "user")
        tokens_in, tokens_out = _usage(messages, answer)
        return Completion(content=answer, tokens_input=tokens_in, tokens_output=tokens_out)
    if spec.model != "builtin/script":
        raise StepFailed(f"unknown builtin model '{spec.model}'", retryable=False)
    turn = sum(1 for m in messages if m["role"] == "assistant")
    if turn >= len(spec.script):
        answer = _last(messages, "tool") or _last(messages, "user")
        tokens_in, tokens_out = _usage(messages, answer)
        return Completion(content=answer, tokens_input=tokens_in, tokens_output=tokens_out)
    item = spec.script[turn]
    calls: list[ToolCall] = []
    content: str | None = None
    if isinstance(item, str):
        content = item
    elif isinstance(item, dict) and "reply" in item:
        content = item["reply"] if isinstance(item["reply"], str) else json.dumps(item["reply"])
    elif isinstance(item, dict) and "tool" in item:
        calls = [ToolCall(f"call_{turn}_0", str(item["tool"]), dict(item.get("args") or {}))]
    elif isinstance(item, dict) and isinstance(item.get("tool_calls"), list):
        calls = [
            ToolCall(
                f"call_{turn}_{index}", str(call.get("name")), dict(call.get("arguments") or {})
            )
            for index, call in enumerate(item["tool_calls"])
        ]
    else:
        content = json.dumps(item)
    tokens_in, tokens_out = _usage(messages, content or json.dumps([c.arguments for c in calls]))
    return Completion(
        content=content, tool_calls=calls, tokens_input=tokens_in, tokens_output=tokens_out
    )
