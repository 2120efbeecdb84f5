"""The node types and the validation of each one's `config`.

Each validator returns the normalized config (defaults filled in) and records problems at
`nodes[i].config.<key>`; unknown keys are errors so that a misspelt option is never ignored.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from orchestrator.definition.checks import IDENTIFIER, MISSING, Checker, type_name
from orchestrator.definition.expressions import strings_in, template_syntax_error

KNOWN_TOOLS = ("http_get",)
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD")
FIELD_TYPES = ("text", "textarea", "select", "number", "boolean")
MODEL = re.compile(r"^(default|(openai|builtin)/[A-Za-z0-9._:\-/]+)$")
BUILTIN_MODELS = ("builtin/echo", "builtin/script")
WEEK_S = 7 * 86400
MONTH_S = 30 * 86400

Validator = Callable[[dict, str, Checker], dict]


@dataclass(frozen=True)
class NodeSpec:
    name: str
    validate: Validator
    waits_for_human: bool = False
    description: str = ""


def _get(config: dict, key: str) -> Any:
    return config.get(key, MISSING)


def _model(value: Any, path: str, check: Checker) -> str:
    model = check.string(value, path)
    if model and not MODEL.match(model):
        check.fail(
            path, "must be provider/name (openai/<model>, builtin/echo, builtin/script) or default"
        )
    elif model.startswith("builtin/") and model not in BUILTIN_MODELS:
        check.fail(path, f"unknown builtin model; known: {', '.join(BUILTIN_MODELS)}")
    return model


AGENT_KEYS = (
    "name",
    "model",
    "system_prompt",
    "tools",
    "temperature",
    "max_turns",
    "base_url",
    "credential",
    "price",
    "script",
    "description",
)


def validate_agent_object(agent: dict, path: str, check: Checker) -> dict:
    """An agent declared inline in a node, or in the definition's `agents` list."""
    check.unknown_keys(agent, AGENT_KEYS, path)
    tools = check.string_list(_get(agent, "tools"), f"{path}.tools")
    for index, tool in enumerate(tools):
        if tool not in KNOWN_TOOLS:
            check.fail(f"{path}.tools[{index}]", f"unknown tool; known: {', '.join(KNOWN_TOOLS)}")
    price = check.obj(_get(agent, "price"), f"{path}.price", default={})
    check.unknown_keys(price, ("input_per_1k", "output_per_1k"), f"{path}.price")
    normalized = {
        "model": _model(_get(agent, "model"), f"{path}.model", check),
        "system_prompt": check.string(
            _get(agent, "system_prompt"), f"{path}.system_prompt", default=""
        ),
        "tools": tools,
        "temperature": check.number(
            _get(agent, "temperature"),
            f"{path}.temperature",
            default=None,
            minimum=0,
            maximum=2,
            nullable=True,
        ),
        "max_turns": check.number(
            _get(agent, "max_turns"),
            f"{path}.max_turns",
            default=None,
            minimum=1,
            maximum=50,
            integer=True,
            nullable=True,
        ),
        "base_url": check.string(_get(agent, "base_url"), f"{path}.base_url", default=""),
        "credential": check.string(_get(agent, "credential"), f"{path}.credential", default=None),
        "price": {
            key: check.number(_get(price, key), f"{path}.price.{key}", default=0, minimum=0)
            for key in ("input_per_1k", "output_per_1k")
        },
        "script": _script(_get(agent, "script"), f"{path}.script", check),
    }
    if "name" in agent:
        normalized = {"name": check.string(agent["name"], f"{path}.name"), **normalized}
    return normalized


def _script(value: Any, path: str, check: Checker) -> list:
    if value is MISSING or value is None:
        return []
    if not isinstance(value, list):
        check.fail(path, f"must be a list of replies, not {type_name(value)}")
        return []
    return value


def _agent(config: dict, path: str, check: Checker) -> dict:
    check.unknown_keys(config, ("agent", "prompt", "response_format", "max_turns", "script"), path)
    agent = _get(config, "agent")
    if agent is MISSING or agent is None:
        check.fail(f"{path}.agent", "is required: an agent id or name, or an inline agent object")
        agent = "default"
    elif isinstance(agent, dict):
        agent = validate_agent_object(agent, f"{path}.agent", check)
    elif not isinstance(agent, str) or not agent.strip():
        check.fail(f"{path}.agent", "must be an agent id or name, or an inline agent object")
    return {
        "agent": agent,
        "prompt": check.string(_get(config, "prompt"), f"{path}.prompt", allow_empty=False),
        "response_format": check.choice(
            _get(config, "response_format"),
            f"{path}.response_format",
            ("text", "json"),
            default="text",
        ),
        "max_turns": check.number(
            _get(config, "max_turns"),
            f"{path}.max_turns",
            default=None,
            minimum=1,
            maximum=50,
            integer=True,
            nullable=True,
        ),
        "script": _script(_get(config, "script"), f"{path}.script", check),
    }


def _transform(config: dict, path: str, check: Checker) -> dict:
    check.unknown_keys(config, ("output",), path)
    if "output" not in config:
        check.fail(f"{path}.output", "is required: the value this step produces")
    return {"output": config.get("output")}


def _http(config: dict, path: str, check: Checker) -> dict:
    check.unknown_keys(
        config, ("method", "url", "headers", "body", "credential", "timeout_s"), path
    )
    method = _get(config, "method")
    if isinstance(method, str):
        method = method.upper()
    headers = check.obj(_get(config, "headers"), f"{path}.headers", default={})
    for key, value in headers.items():
        if not isinstance(value, str):
            check.fail(f"{path}.headers.{key}", f"must be a string, not {type_name(value)}")
    return {
        "method": check.choice(method, f"{path}.method", HTTP_METHODS, default="GET"),
        "url": check.string(_get(config, "url"), f"{path}.url", allow_empty=False, max_length=8192),
        "headers": headers,
        "body": config.get("body"),
        "credential": check.string(_get(config, "credential"), f"{path}.credential", default=None),
        "timeout_s": check.number(
            _get(config, "timeout_s"),
            f"{path}.timeout_s",
            default=30,
            minimum=0,
            exclusive_minimum=True,
            maximum=300,
        ),
    }


def _approval(config: dict, path: str, check: Checker) -> dict:
    check.unknown_keys(
        config,
        (
            "prompt",
            "approvers",
            "escalate_after_s",
            "escalate_to",
            "timeout_s",
            "on_timeout",
            "on_deny",
        ),
        path,
    )
    normalized = {
        "prompt": check.string(_get(config, "prompt"), f"{path}.prompt", default=""),
        "approvers": check.string_list(_get(config, "approvers"), f"{path}.approvers"),
        "escalate_after_s": check.number(
            _get(config, "escalate_after_s"),
            f"{path}.escalate_after_s",
            default=None,
            minimum=0,
            exclusive_minimum=True,
            nullable=True,
        ),
        "escalate_to": check.string_list(_get(config, "escalate_to"), f"{path}.escalate_to"),
        "timeout_s": check.number(
            _get(config, "timeout_s"),
            f"{path}.timeout_s",
            default=WEEK_S,
            minimum=0,
            exclusive_minimum=True,
            maximum=365 * 86400,
        ),
        "on_timeout": check.choice(
            _get(config, "on_timeout"), f"{path}.on_timeout", ("deny", "approve"), default="deny"
        ),
        "on_deny": check.choice(
            _get(config, "on_deny"), f"{path}.on_deny", ("fail", "continue"), default="fail"
        ),
    }
    if normalized["escalate_to"] and normalized["escalate_after_s"] is None:
        check.fail(f"{path}.escalate_to", "needs escalate_after_s: when to widen the approvers")
    return normalized


def _fields(value: Any, path: str, check: Checker) -> list[dict]:
    if value is MISSING or value is None:
        return []
    if not isinstance(value, list):
        check.fail(path, f"must be a list of fields, not {type_name(value)}")
        return []
    fields, names = [], set()
    for index, raw in enumerate(value):
        where = f"{path}[{index}]"
        if not isinstance(raw, dict):
            check.fail(where, f"must be an object, not {type_name(raw)}")
            continue
        check.unknown_keys(raw, ("name", "type", "label", "options", "required"), where)
        name = check.identifier(_get(raw, "name"), f"{where}.name")
        if name in names:
            check.fail(f"{where}.name", f"duplicate field name '{name}'")
        names.add(name)
        kind = check.choice(_get(raw, "type"), f"{where}.type", FIELD_TYPES, default="text")
        options = _get(raw, "options")
        if isinstance(options, str):
            options = [part.strip() for part in options.split(",") if part.strip()]
        options = check.string_list(options, f"{where}.options")
        if kind == "select" and not options:
            check.fail(f"{where}.options", "a select field needs options")
        label = check.string(_get(raw, "label"), f"{where}.label", default="")
        fields.append(
            {
                "name": name,
                "type": kind,
                "label": label or name.replace("_", " ").capitalize(),
                "options": options,
                "required": check.boolean(
                    _get(raw, "required"), f"{where}.required", default=False
                ),
            }
        )
    return fields


def _human_input(config: dict, path: str, check: Checker) -> dict:
    check.unknown_keys(config, ("prompt", "fields", "agent_context", "timeout_s"), path)
    return {
        "prompt": check.string(_get(config, "prompt"), f"{path}.prompt", default=""),
        "fields": _fields(_get(config, "fields"), f"{path}.fields", check),
        "agent_context": check.string(
            _get(config, "agent_context"), f"{path}.agent_context", default=""
        ),
        "timeout_s": check.number(
            _get(config, "timeout_s"),
            f"{path}.timeout_s",
            default=WEEK_S,
            minimum=0,
            exclusive_minimum=True,
            maximum=365 * 86400,
        ),
    }


def _subflow(config: dict, path: str, check: Checker) -> dict:
    check.unknown_keys(config, ("orchestration", "input"), path)
    return {
        "orchestration": check.string(
            _get(config, "orchestration"), f"{path}.orchestration", allow_empty=False
        ),
        "input": check.obj(_get(config, "input"), f"{path}.input", default={}),
    }


def _delay(config: dict, path: str, check: Checker) -> dict:
    check.unknown_keys(config, ("seconds",), path)
    return {
        "seconds": check.number(
            _get(config, "seconds"), f"{path}.seconds", minimum=0, maximum=MONTH_S
        ),
    }


NODE_TYPES: dict[str, NodeSpec] = {
    spec.name: spec
    for spec in (
        NodeSpec("agent", _agent, description="An LLM agent answering a prompt, with tools."),
        NodeSpec("transform", _transform, description="Builds a value from templates."),
        NodeSpec("http", _http, description="Calls an HTTP endpoint."),
        NodeSpec(
            "approval",
            _approval,
            waits_for_human=True,
            description="Waits for a person to approve or deny.",
        ),
        NodeSpec(
            "human_input",
            _human_input,
            waits_for_human=True,
            description="Waits for a person to fill in a form.",
        ),
        NodeSpec("subflow", _subflow, description="Runs another orchestration as a child run."),
        NodeSpec("delay", _delay, description="Waits, holding no worker."),
    )
}

# Keys whose strings are data, not templates.
_NOT_TEMPLATES = ("script", "fields")


def validate_config(node_type: str, config: Any, path: str, check: Checker) -> dict:
    if not isinstance(config, dict):
        check.fail(path, f"must be an object, not {type_name(config)}")
        config = {}
    normalized = NODE_TYPES[node_type].validate(config, path, check)
    for key, value in normalized.items():
        if key in _NOT_TEMPLATES:
            continue
        for text in strings_in(value):
            problem = template_syntax_error(text) if "{" in text else None
            if problem:
                check.fail(f"{path}.{key}", problem)
    return normalized


__all__ = ["IDENTIFIER", "NODE_TYPES", "NodeSpec", "validate_agent_object", "validate_config"]
