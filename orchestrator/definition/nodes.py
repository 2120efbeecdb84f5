"""The registry of node types, and the validation of each one's `config`.

`NODE_TYPES` is the one place that declares a node type: its config validator, where it runs
(`runs_on`), and what the editor's palette and inspector show for it. The run services, the
metrics, the API and the editor read it rather than keeping their own lists, so a new node type
is its entry here, its executor (`runs.engine.nodes` for the worker and inline ones) and its
tests.

Each validator returns the normalized config (defaults filled in) and records problems at
`nodes[i].config.<key>`; unknown keys are errors so that a misspelt option is never ignored.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from orchestrator.definition.checks import IDENTIFIER, MISSING, Checker, bound_text, type_name
from orchestrator.definition.expressions import strings_in, template_syntax_error
from orchestrator.definition.jsonschemas import schema_problem

# The tools an agent may name; runs.engine.tools holds what each one does.
KNOWN_TOOLS = ("http_get",)
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD")
FIELD_TYPES = ("text", "textarea", "select", "number", "boolean")
# Model names: `provider/name`, `default` (the DEFAULT_MODEL setting) or an alias (a bare name,
# resolved through the MODEL_ALIASES setting, which callers pass in: this package reads none).
MODEL_PROVIDERS = ("openai", "anthropic", "google", "builtin")
MODEL = re.compile(r"^(?P<provider>[a-z]+)/[A-Za-z0-9._:\-/]+$")
ALIAS = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,62}$")
BUILTIN_MODELS = ("builtin/echo", "builtin/script")
WEEK_S = 7 * 86400
MONTH_S = 30 * 86400

# Where a step of a type does its work: a worker of its own (enqueued), inline in the state
# change that starts it, with people (it waits for an answer), on a timer, or in a child run.
RunsOn = Literal["worker", "inline", "people", "timer", "child_run"]
RUNS_ON: tuple[RunsOn, ...] = ("worker", "inline", "people", "timer", "child_run")

Validator = Callable[[dict[str, Any], str, Checker], dict[str, Any]]

# How a step's body (its paragraphs under `### id` in a markdown definition) reads into its
# config: "text" as written; "json" only a ```json block (the text alone is not read);
# "json_or_text" the json block when there is one, else the text; "value" a json block standing
# alone, else the text. The export writes the key back as the body the same way.
BodyReading = Literal["text", "json", "json_or_text", "value"]


@dataclass(frozen=True)
class NodeSpec:
    """One node type. `inspector` lists the config fields the editor offers as a form (other
    keys are kept as they are); `default_config` is what a step added from the palette starts
    with."""

    name: str
    validate: Validator
    runs_on: RunsOn
    description: str
    label: str
    icon: str
    default_config: Mapping[str, Any] = field(default_factory=dict)
    inspector: tuple[Mapping[str, Any], ...] = ()
    # The config key a markdown step's body fills (None: the type reads no body), how the body
    # reads, and, for a type that cannot do without one, what the body is (named in the error).
    body_key: str | None = None
    body_reads: BodyReading = "text"
    body_needed_as: str = ""

    @property
    def waits_for_people(self) -> bool:
        """A step of this type pauses the run until a person answers it."""
        return self.runs_on == "people"

    def palette_entry(self) -> dict[str, Any]:
        """What the editor needs to offer, draw and inspect a step of this type."""
        return {
            "type": self.name,
            "label": self.label,
            "icon": self.icon,
            "description": self.description,
            "default_config": dict(self.default_config),
            "inspector": [dict(f) for f in self.inspector],
        }


def _get(config: dict[str, Any], key: str) -> Any:
    return config.get(key, MISSING)


def model_problem(model: str, aliases: Mapping[str, str] | None = None) -> str | None:
    """Why `model` is no model name an agent can use, or None: the one check of model names,
    for agents declared in a definition and agents saved through the API.

    A bare name is an alias: checked against `aliases` when the caller has the table (the API
    and the services pass the MODEL_ALIASES setting), only for its shape when not (the
    definition's own validation, which reads no settings)."""
    if model == "default":
        return None
    if "/" not in model:
        if not ALIAS.match(model):
            return (
                "must be provider/name (openai/<model>, anthropic/<model>, google/<model>, "
                "builtin/echo, builtin/script), default, or a model alias"
            )
        if aliases is not None and model not in aliases:
            known = ", ".join(sorted(aliases)) or "none"
            return f"unknown model alias '{model}'; known aliases: {known}"
        return None
    provider = model.split("/", 1)[0]
    if provider not in MODEL_PROVIDERS:
        return f"unknown model provider; known: {', '.join(MODEL_PROVIDERS)}"
    if not MODEL.match(model):
        return (
            f"the model's name after '{provider}/' is missing or has characters a model name "
            "does not (letters, digits and . _ : - / only)"
        )
    if model.startswith("builtin/") and model not in BUILTIN_MODELS:
        return f"unknown builtin model; known: {', '.join(BUILTIN_MODELS)}"
    return None


def resolve_model(model: str, *, default_model: str, aliases: Mapping[str, str]) -> str:
    """The `provider/name` a model name stands for when the step runs: `default` and aliases
    resolve then, not when the definition is saved, so a changed setting takes effect.

    Raises ValueError with the reason when the name (or what it resolves to) is no model."""
    name = default_model if model == "default" else model
    if "/" not in name:
        if name not in aliases:
            raise ValueError(model_problem(name, aliases) or f"unknown model alias '{name}'")
        name = aliases[name]
    problem = model_problem(name) if "/" in name else f"alias target '{name}' is not provider/name"
    if problem:
        raise ValueError(f"'{name}': {problem}")
    return name


def _model(value: Any, path: str, check: Checker) -> str:
    model: str = check.string(value, path)
    problem = model_problem(model) if model else None
    if problem:
        check.fail(path, problem)
    return model


# The most output tokens an agent may ask of one model call: above every provider's own limit
# today, so only a slip (a digit too many) is refused when saved; a model's own lower limit is
# the provider's to report when the step runs.
MAX_TOKENS_CEILING = 200_000
# USD per 1,000 tokens an agent's own `price` may say: over a thousand times the dearest model's
# price table entry. A bigger figure is a typo, and its costs overflowed what a run can record
# (a price of 1e308 made the step's cost infinite: its outcome could not be saved).
PRICE_PER_1K_CEILING = 1_000

AGENT_KEYS = (
    "name",
    "model",
    "system_prompt",
    "tools",
    "temperature",
    "max_turns",
    "max_tokens",
    "base_url",
    "credential",
    "price",
    "script",
    "description",
    "output_schema",
)


def tool_names(tools: list[Any]) -> tuple[str, ...]:
    """The names of an agent's built-in tools, whichever form each is given in."""
    return tuple(
        t if isinstance(t, str) else str(t["tool"])
        for t in tools
        if isinstance(t, str) or (isinstance(t, dict) and "tool" in t)
    )


def tool_approvals(tools: list[Any]) -> dict[str, dict[str, Any]]:
    """The `approval` of each built-in tool whose calls wait for a person, by tool name."""
    return {
        str(t["tool"]): t["approval"]
        for t in tools
        if isinstance(t, dict) and "tool" in t and "approval" in t
    }


def validate_agent_object(agent: dict[str, Any], path: str, check: Checker) -> dict[str, Any]:
    """An agent declared inline in a node, or in the definition's `agents` list."""
    check.unknown_keys(agent, AGENT_KEYS, path)
    tools = tool_items(_get(agent, "tools"), f"{path}.tools", check)
    # No price (absent, null or {}) means the price table's; a given one replaces it.
    price = check.obj(_get(agent, "price"), f"{path}.price", default={}) or {}
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
        "max_tokens": check.number(
            _get(agent, "max_tokens"),
            f"{path}.max_tokens",
            default=None,
            minimum=1,
            maximum=MAX_TOKENS_CEILING,
            integer=True,
            nullable=True,
        ),
        "base_url": check.string(_get(agent, "base_url"), f"{path}.base_url", default=""),
        "credential": check.string(_get(agent, "credential"), f"{path}.credential", default=None),
        "price": {
            key: check.number(
                _get(price, key),
                f"{path}.price.{key}",
                default=0,
                minimum=0,
                maximum=PRICE_PER_1K_CEILING,
            )
            for key in ("input_per_1k", "output_per_1k")
        }
        if price
        else None,
        "script": _script(_get(agent, "script"), f"{path}.script", check),
        "output_schema": output_schema(
            _get(agent, "output_schema"), f"{path}.output_schema", check
        ),
    }
    if "name" in agent:
        normalized = {"name": check.string(agent["name"], f"{path}.name"), **normalized}
    return normalized


# A tool's name as the model sees it: what every provider accepts.
TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_TOOL_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def model_tool_name(name: str) -> str:
    """A tool's name as the model is told it: MCP allows dots and longer names than providers
    accept, so anything else becomes `_` and the name is cut at 64 characters."""
    return _TOOL_NAME_UNSAFE.sub("_", name)[:64] or "tool"


def duplicate_tool_name(name: str) -> str:
    """The problem of a tool item whose name another item of the same list already has: the
    model could not tell them apart, so the step would fail before its first call."""
    return f"the agent has two tools named '{name}': give each tool its own name"


TOOL_APPROVAL_TIMEOUTS = ("deny", "approve")  # as an approval step's


def tool_items(value: Any, path: str, check: Checker) -> list[Any]:
    """An agent's (or agent step's) `tools`: built-in tool names (or `{"tool": name}` objects, to
    add an `approval`), `{"mcp": server, "tools":
    [names]}` (all the server's tools without `tools`), `{"orchestration", "name",
    "description"}`; any object item may add `approval`. Whether the server or orchestration
    exists in the organization is the saving service's check: this package reads no rows."""
    if value is MISSING or value is None:
        return []
    if not isinstance(value, list):
        check.fail(path, f"must be a list of tools, not {type_name(value)}")
        return []
    items: list[Any] = []
    # The names an item gives its tool without reading rows (built-in tools, orchestrations);
    # an MCP server's names are known from its listing, so the saving service checks those.
    named: set[str] = set()

    def once(name: Any, where: str) -> None:
        if isinstance(name, str) and name:
            if name in named:
                check.fail(where, duplicate_tool_name(name))
            named.add(name)

    for index, item in enumerate(value):
        where = f"{path}[{index}]"
        if isinstance(item, str):
            if item not in KNOWN_TOOLS:
                check.fail(where, f"unknown tool; known: {', '.join(KNOWN_TOOLS)}")
            once(item, where)
            items.append(item)
        elif isinstance(item, dict) and "tool" in item:
            items.append(_builtin_tool_item(item, where, check))
            once(item["tool"], f"{where}.tool")
        elif isinstance(item, dict) and "mcp" in item:
            items.append(_mcp_tool_item(item, where, check))
        elif isinstance(item, dict) and "orchestration" in item:
            items.append(_orchestration_tool_item(item, where, check))
            once(items[-1]["name"], f"{where}.name")
        else:
            check.fail(
                where,
                f"must be a built-in tool ({', '.join(KNOWN_TOOLS)}), an object with `mcp` (a "
                "server) or one with `orchestration`, not "
                + (type_name(item) if not isinstance(item, dict) else "an object with neither"),
            )
    return items


def _builtin_tool_item(item: dict[str, Any], path: str, check: Checker) -> dict[str, Any]:
    check.unknown_keys(item, ("tool", "approval"), path)
    if item["tool"] not in KNOWN_TOOLS:
        check.fail(f"{path}.tool", f"unknown tool; known: {', '.join(KNOWN_TOOLS)}")
    normalized: dict[str, Any] = {"tool": item["tool"]}
    if "approval" in item:
        normalized["approval"] = tool_approval(item["approval"], f"{path}.approval", check)
    return normalized


def _mcp_tool_item(item: dict[str, Any], path: str, check: Checker) -> dict[str, Any]:
    check.unknown_keys(item, ("mcp", "tools", "approval"), path)
    normalized: dict[str, Any] = {
        "mcp": check.string(item["mcp"], f"{path}.mcp", allow_empty=False, max_length=200)
    }
    if item.get("tools") is not None:
        names = check.string_list(item["tools"], f"{path}.tools")
        for index, name in enumerate(names):
            if not name.strip():
                check.fail(f"{path}.tools[{index}]", "must not be empty")
        normalized["tools"] = names
    if "approval" in item:
        normalized["approval"] = tool_approval(item["approval"], f"{path}.approval", check)
    return normalized


def _orchestration_tool_item(item: dict[str, Any], path: str, check: Checker) -> dict[str, Any]:
    check.unknown_keys(item, ("orchestration", "name", "description", "approval"), path)
    name = check.string(_get(item, "name"), f"{path}.name")
    if name and not TOOL_NAME.match(name):
        check.fail(f"{path}.name", "must be 1 to 64 letters, digits, _ or - (the tool's name)")
    normalized: dict[str, Any] = {
        "orchestration": check.string(
            item["orchestration"], f"{path}.orchestration", allow_empty=False, max_length=200
        ),
        "name": name,
        "description": check.string(
            _get(item, "description"), f"{path}.description", default="", max_length=4000
        ),
    }
    if "approval" in item:
        normalized["approval"] = tool_approval(item["approval"], f"{path}.approval", check)
    return normalized


def tool_approval(value: Any, path: str, check: Checker) -> dict[str, Any]:
    """A tool item's `approval`: who decides a call, how long it waits, what its timeout does.
    `{}` is valid (the defaults apply when the call waits); given keys are checked and kept."""
    approval = check.obj(value, path, default={})
    check.unknown_keys(approval, ("approvers", "timeout_s", "on_timeout"), path)
    normalized: dict[str, Any] = {}
    if "approvers" in approval:
        normalized["approvers"] = check.string_list(approval["approvers"], f"{path}.approvers")
    if "timeout_s" in approval:
        normalized["timeout_s"] = check.number(
            approval["timeout_s"],
            f"{path}.timeout_s",
            minimum=0,
            exclusive_minimum=True,
            maximum=365 * 86400,
            integer=True,
        )
    if "on_timeout" in approval:
        normalized["on_timeout"] = check.choice(
            approval["on_timeout"], f"{path}.on_timeout", TOOL_APPROVAL_TIMEOUTS, default="deny"
        )
    return normalized


def output_schema(value: Any, path: str, check: Checker) -> dict[str, Any] | None:
    """An agent's or an agent step's `output_schema`: a JSON Schema object, or None (a text
    answer). Checked when saved, where its author reads the reason, rather than at every run;
    problems are reported at their path inside the schema."""
    if value is MISSING or value is None:
        return None
    if not isinstance(value, dict):
        check.fail(path, f"must be a JSON Schema object, not {type_name(value)}")
        return None
    problem = schema_problem(value, path)
    if problem is not None:
        where, message = problem
        check.fail(where, f"not a valid JSON Schema: {message}")
    return value


def _script(value: Any, path: str, check: Checker) -> list[Any]:
    if value is MISSING or value is None:
        return []
    if not isinstance(value, list):
        check.fail(path, f"must be a list of replies, not {type_name(value)}")
        return []
    return value


def _agent(config: dict[str, Any], path: str, check: Checker) -> dict[str, Any]:
    check.unknown_keys(
        config,
        ("agent", "prompt", "response_format", "output_schema", "max_turns", "script", "tools"),
        path,
    )
    agent = _get(config, "agent")
    if agent is MISSING or agent is None:
        check.fail(f"{path}.agent", "is required: an agent id or name, or an inline agent object")
        agent = "default"
    elif isinstance(agent, dict):
        agent = validate_agent_object(agent, f"{path}.agent", check)
    elif not isinstance(agent, str) or not agent.strip():
        check.fail(f"{path}.agent", "must be an agent id or name, or an inline agent object")
    normalized = {
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
        "output_schema": output_schema(
            _get(config, "output_schema"), f"{path}.output_schema", check
        ),
        "script": _script(_get(config, "script"), f"{path}.script", check),
    }
    # The step's own tools, added to its agent's (kept out of a step that names none).
    if config.get("tools") is not None:
        normalized["tools"] = tool_items(config["tools"], f"{path}.tools", check)
    return normalized


def _transform(config: dict[str, Any], path: str, check: Checker) -> dict[str, Any]:
    check.unknown_keys(config, ("output",), path)
    if "output" not in config:
        check.fail(f"{path}.output", "is required: the value this step produces")
    return {"output": config.get("output")}


def _http(config: dict[str, Any], path: str, check: Checker) -> dict[str, Any]:
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


def _approval(config: dict[str, Any], path: str, check: Checker) -> dict[str, Any]:
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
    escalate, timeout = normalized["escalate_after_s"], normalized["timeout_s"]
    if escalate is not None and escalate >= timeout:
        check.fail(
            f"{path}.escalate_after_s",
            f"must be less than timeout_s ({bound_text(timeout)}): the approval would expire "
            "before it escalates",
        )
    return normalized


def _fields(value: Any, path: str, check: Checker) -> list[dict[str, Any]]:
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


def _human_input(config: dict[str, Any], path: str, check: Checker) -> dict[str, Any]:
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


def _subflow(config: dict[str, Any], path: str, check: Checker) -> dict[str, Any]:
    check.unknown_keys(config, ("orchestration", "input"), path)
    return {
        "orchestration": check.string(
            _get(config, "orchestration"), f"{path}.orchestration", allow_empty=False
        ),
        "input": check.obj(_get(config, "input"), f"{path}.input", default={}),
    }


def _delay(config: dict[str, Any], path: str, check: Checker) -> dict[str, Any]:
    check.unknown_keys(config, ("seconds",), path)
    return {
        "seconds": check.number(
            _get(config, "seconds"), f"{path}.seconds", minimum=0, maximum=MONTH_S
        ),
    }


TIMEOUT_FIELD = {"key": "timeout_s", "label": "Timeout (s)", "kind": "number"}
PROMPT_FIELD = {"key": "prompt", "label": "Prompt", "kind": "textarea"}

NODE_TYPES: dict[str, NodeSpec] = {
    spec.name: spec
    for spec in (
        NodeSpec(
            "agent",
            _agent,
            runs_on="worker",
            description="An LLM agent answering a prompt, with tools.",
            label="Agent",
            icon="✦",
            default_config={
                "agent": {"name": "assistant", "model": "builtin/echo"},
                "prompt": "{{ input }}",
            },
            inspector=(
                {
                    **PROMPT_FIELD,
                    "hint": "Template: {{ input.topic }}, {{ steps.x.output }}",
                },
                {
                    "key": "response_format",
                    "label": "Response format",
                    "kind": "select",
                    "options": ["text", "json"],
                },
                {"key": "max_turns", "label": "Max turns", "kind": "number"},
                {
                    "key": "output_schema",
                    "label": "Output schema (JSON Schema)",
                    "kind": "schema",
                    "hint": "The answer must validate against it; overrides the agent's own. "
                    "Empty: a text answer.",
                },
            ),
            body_key="prompt",
        ),
        NodeSpec(
            "transform",
            _transform,
            runs_on="inline",
            description="Builds a value from templates.",
            label="Transform",
            icon="⇄",
            default_config={"output": "{{ input }}"},
            inspector=(
                {
                    "key": "output",
                    "label": "Output",
                    "kind": "template",
                    "hint": "A template, or JSON with templates inside",
                },
            ),
            body_key="output",
            body_reads="value",
            body_needed_as="the value it produces",
        ),
        NodeSpec(
            "http",
            _http,
            runs_on="worker",
            description="Calls an HTTP endpoint.",
            label="Http",
            icon="⇅",
            default_config={"method": "GET", "url": "https://example.com/"},
            inspector=(
                {
                    "key": "method",
                    "label": "Method",
                    "kind": "select",
                    "options": ["GET", "POST", "PUT", "PATCH", "DELETE"],
                },
                {"key": "url", "label": "URL", "kind": "text"},
                {"key": "headers", "label": "Headers (JSON)", "kind": "json"},
                {"key": "body", "label": "Body", "kind": "template"},
                {
                    "key": "credential",
                    "label": "Credential",
                    "kind": "text",
                    "list": "credential-options",
                    "hint": "A credential's id (pick one by name)",
                },
                TIMEOUT_FIELD,
            ),
            body_key="body",
            body_reads="json_or_text",
        ),
        NodeSpec(
            "approval",
            _approval,
            runs_on="people",
            description="Waits for a person to approve or deny.",
            label="Approval",
            icon="✓",
            default_config={"prompt": "Approve this step?"},
            inspector=(
                PROMPT_FIELD,
                {
                    "key": "approvers",
                    "label": "Approvers (usernames, comma-separated)",
                    "kind": "list",
                },
                TIMEOUT_FIELD,
                {
                    "key": "on_timeout",
                    "label": "On timeout",
                    "kind": "select",
                    "options": ["deny", "approve"],
                },
                {
                    "key": "on_deny",
                    "label": "On deny",
                    "kind": "select",
                    "options": ["fail", "continue"],
                },
                {"key": "escalate_after_s", "label": "Escalate after (s)", "kind": "number"},
                {"key": "escalate_to", "label": "Escalate to (usernames)", "kind": "list"},
            ),
            body_key="prompt",
        ),
        NodeSpec(
            "human_input",
            _human_input,
            runs_on="people",
            description="Waits for a person to fill in a form.",
            label="Human input",
            icon="✎",
            default_config={
                "prompt": "Please review.",
                "fields": [{"name": "notes", "type": "textarea", "label": "Notes"}],
            },
            inspector=(
                PROMPT_FIELD,
                {
                    "key": "fields",
                    "label": "Fields (JSON list)",
                    "kind": "json",
                    "hint": '[{"name": "notes", "type": "textarea", "label": "Notes"}]',
                },
                {"key": "agent_context", "label": "Context shown to people", "kind": "textarea"},
                TIMEOUT_FIELD,
            ),
            body_key="prompt",
        ),
        NodeSpec(
            "subflow",
            _subflow,
            runs_on="child_run",
            description="Runs another orchestration as a child run.",
            label="Subflow",
            icon="↳",
            default_config={"orchestration": "", "input": {}},
            inspector=(
                {
                    "key": "orchestration",
                    "label": "Orchestration (slug or id)",
                    "kind": "text",
                    "list": "orchestration-options",
                },
                {"key": "input", "label": "Input (JSON)", "kind": "json"},
            ),
            body_key="input",
            body_reads="json",
        ),
        NodeSpec(
            "delay",
            _delay,
            runs_on="timer",
            description="Waits, holding no worker.",
            label="Delay",
            icon="◷",
            default_config={"seconds": 60},
            inspector=({"key": "seconds", "label": "Seconds", "kind": "number"},),
        ),
    )
}


def types_running_on(*where: RunsOn) -> frozenset[str]:
    """The node types whose steps run on any of `where`, e.g. the ones a worker must claim."""
    return frozenset(name for name, spec in NODE_TYPES.items() if spec.runs_on in where)


def waits_for_people(node_type: str | None) -> bool:
    """Whether a step of this type (as stored on a step row) waits for a person's answer."""
    spec = NODE_TYPES.get(node_type) if node_type is not None else None
    return spec is not None and spec.waits_for_people


def palette() -> list[dict[str, Any]]:
    """The editor's palette and inspector metadata, in the registry's order."""
    return [spec.palette_entry() for spec in NODE_TYPES.values()]


# Keys whose strings are data, not templates.
_NOT_TEMPLATES = ("script", "fields")


def validate_config(node_type: str, config: Any, path: str, check: Checker) -> dict[str, Any]:
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


__all__ = [
    "IDENTIFIER",
    "KNOWN_TOOLS",
    "MODEL_PROVIDERS",
    "NODE_TYPES",
    "RUNS_ON",
    "NodeSpec",
    "model_problem",
    "model_tool_name",
    "output_schema",
    "palette",
    "resolve_model",
    "tool_approval",
    "tool_approvals",
    "tool_names",
    "types_running_on",
    "validate_agent_object",
    "validate_config",
    "waits_for_people",
]
