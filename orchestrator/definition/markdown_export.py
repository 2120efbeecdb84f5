"""A definition written back as a markdown document, for the editor's markdown tab.

The markdown language is smaller than the JSON one (no per-edge conditions that differ, no
objects in `- key: value` lines, no field labels), so the export also says what it could not
write: the editor shows those warnings before someone applies an edited document.
"""

from __future__ import annotations

import json
import re
from typing import Any

from orchestrator.definition.graph import topological_order
from orchestrator.definition.nodes import NODE_TYPES

LIST_KEYS = ("approvers", "escalate_to", "tools")
NODE_DEFAULTS = {"timeout_s": 300, "on_error": "fail"}
RETRY_DEFAULTS = {"max_attempts": 1, "backoff_s": 1.0, "backoff_factor": 2.0}
AGENT_KEYS = (
    "model",
    "base_url",
    "credential",
    "description",
    "temperature",
    "max_turns",
    "max_tokens",
)


def _slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")
    if slug and not slug[0].isalpha():
        slug = f"step_{slug}"
    return slug[:63]


def _scalar(value: Any) -> str | None:
    """A config value as the compiler reads it back, or None when a line cannot hold it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str) and "\n" not in value:
        return value
    return None


def _fence(value: Any) -> str:
    return "```json\n" + json.dumps(value, indent=2) + "\n```"


class _Writer:
    def __init__(self, definition: dict[str, Any]) -> None:
        self.definition = definition
        self.lines: list[str] = []
        self.warnings: list[str] = []
        self.agents: list[dict[str, Any]] = [dict(a) for a in definition.get("agents", [])]

    def out(self, *lines: str) -> None:
        self.lines.extend(lines)

    def inputs(self) -> None:
        if not self.definition.get("inputs"):
            return
        self.out("## Inputs")
        for spec in self.definition["inputs"]:
            options = [spec.get("type", "string"), "required" if spec.get("required") else ""]
            if spec.get("default") is not None:
                default = spec["default"]
                options.append(
                    f"default: {default if isinstance(default, str) else json.dumps(default)}"
                )
            text = f"- {spec['name']} ({', '.join(o for o in options if o)})"
            if spec.get("description"):
                text += f": {spec['description']}"
            self.out(text)
        self.out("")

    def agent_name(self, node: dict[str, Any]) -> str | None:
        agent = node["config"].get("agent")
        if isinstance(agent, str):
            return agent
        if not isinstance(agent, dict):
            return None
        known = next((a for a in self.agents if a == agent), None)
        if known is not None:
            known_name: str = known["name"]
            return known_name
        name = agent.get("name") or f"{node['id']}_agent"
        taken = {a["name"] for a in self.agents}
        while name in taken:
            name = f"{name}_{node['id']}"
        self.agents.append({**agent, "name": name})
        return name

    def agent_sections(self) -> None:
        if not self.agents:
            return
        self.out("## Agents")
        for agent in self.agents:
            self.out(f"### {agent['name']}")
            for key in AGENT_KEYS:
                if agent.get(key) not in (None, ""):
                    self.out(f"- {key}: {agent[key]}")
            names = self.tool_names(f"agent '{agent['name']}'", agent.get("tools") or [])
            if names:
                self.out(f"- tools: {', '.join(names)}")
            if agent.get("output_schema") is not None:
                self.out("- output_schema:", _fence(agent["output_schema"]))
            dropped = sorted(
                key
                for key, value in agent.items()
                if key not in (*AGENT_KEYS, "tools", "name", "system_prompt", "output_schema")
                and value not in (None, "", [], {})
                and not (isinstance(value, dict) and not any(value.values()))
            )
            if dropped:
                self.warnings.append(f"agent '{agent['name']}': {', '.join(dropped)} not written")
            if agent.get("system_prompt"):
                self.out(agent["system_prompt"])
            self.out("")

    def steps(self, ordered: list[dict[str, Any]]) -> list[str]:
        body: list[str] = ["## Steps"]
        edges = self.definition.get("edges", [])
        previous: str | None = None
        for node in ordered:
            node_id = node["id"]
            heading = node.get("name") or node_id
            if _slug(heading) != node_id:
                heading = node_id
            body.append(f"### {heading}")
            incoming = [e for e in edges if e["target"] == node_id]
            sources = [e["source"] for e in incoming]
            kind = node["type"]
            config = dict(node.get("config") or {})
            if kind == "agent":
                name = self.agent_name(node)
                config.pop("agent", None)
                if name:
                    body.append(f"- agent: {name}")
            else:
                body.append(f"- type: {kind}")
            if sources != ([previous] if previous else []):
                body.append(f"- after: {', '.join(sources)}")
            conditions = {e.get("condition") for e in incoming}
            if len(conditions) > 1:
                self.warnings.append(f"step '{node_id}': its edges have different conditions")
            condition = next(iter(conditions), None)
            if condition:
                body.append(f"- when: {condition}")
            for key in ("description", "output_key"):
                if node.get(key):
                    body.append(f"- {key}: {node[key]}")
            if node.get("on_error", "fail") != "fail":
                body.append(f"- on_error: {node['on_error']}")
            retry = node.get("retry") or {}
            if retry.get("max_attempts", 1) != 1:
                body.append(f"- retries: {retry['max_attempts']}")
            for key in ("backoff_s", "backoff_factor"):
                if key in retry and retry[key] != RETRY_DEFAULTS[key]:
                    body.append(f"- {key}: {retry[key]}")
            if node.get("timeout_s") not in (None, NODE_DEFAULTS["timeout_s"]):
                body.append(f"- timeout_s: {node['timeout_s']}")
            paragraph = self.config_lines(node_id, kind, config, body)
            if paragraph:
                body.append(paragraph)
            body.append("")
            previous = node_id
        return body

    def config_lines(self, node_id: str, kind: str, config: dict[str, Any], body: list[str]) -> str:
        """Writes `- key: value` lines into `body`; returns the step's paragraph."""
        paragraph = ""
        spec = NODE_TYPES.get(kind)
        body_key = spec.body_key if spec is not None else None
        # A body read only as a json block can give back only an object written as one.
        if (
            spec is not None
            and body_key is not None
            and body_key in config
            and (spec.body_reads != "json" or isinstance(config[body_key], dict))
        ):
            value = config.pop(body_key)
            paragraph = value if isinstance(value, str) else _fence(value)
        schema = config.pop("output_schema", None)
        if schema is not None:
            # Its block goes after every `- key: value` line (a list item after a block would
            # be read as prompt text) and before the prompt, whose own json blocks stay text.
            body.append("- output_schema:")
            paragraph = "\n".join(part for part in (_fence(schema), paragraph) if part)
        for key, value in config.items():
            if value in ({}, []):
                continue
            if key == "fields" and isinstance(value, list):
                body.append(f"- fields: {', '.join(self.field(node_id, f) for f in value)}")
            elif key == "tools" and isinstance(value, list):
                names = self.tool_names(f"step '{node_id}'", value)
                if names:
                    body.append(f"- tools: {', '.join(names)}")
            elif key in LIST_KEYS and isinstance(value, list):
                body.append(f"- {key}: {', '.join(map(str, value))}")
            elif (text := _scalar(value)) is not None:
                body.append(f"- {key}: {text}")
            else:
                self.warnings.append(f"step '{node_id}': config '{key}' is not written")
        return paragraph

    def tool_names(self, owner: str, tools: list[Any]) -> list[str]:
        """The built-in tools named plainly, which a `- tools:` line can say; tool objects (MCP
        and orchestration items, a tool with an `approval`) cannot, and are named in the
        warnings."""
        if any(not isinstance(tool, str) for tool in tools):
            self.warnings.append(
                f"{owner}: tool objects (MCP, orchestration, approval) not written"
            )
        return [tool for tool in tools if isinstance(tool, str)]

    def field(self, node_id: str, spec: dict[str, Any]) -> str:
        if set(spec) - {"name", "type", "options"}:
            self.warnings.append(f"step '{node_id}': field labels and 'required' are not written")
        options = spec.get("options")
        if isinstance(options, str):
            options = [o.strip() for o in options.split(",")]
        suffix = f"({'|'.join(options)})" if options else ""
        return f"{spec['name']}:{spec.get('type', 'text')}{suffix}"

    def write(self, name: str, description: str) -> str:
        nodes = self.definition.get("nodes", [])
        order = topological_order(
            [n["id"] for n in nodes],
            [(e["source"], e["target"]) for e in self.definition.get("edges", [])],
        )
        by_id = {n["id"]: n for n in nodes}
        steps = self.steps([by_id[i] for i in order if i in by_id])
        self.out(f"# {name or 'Untitled'}")
        if description:
            self.out(description)
        self.out("")
        self.inputs()
        self.agent_sections()
        self.out(*steps)
        if self.definition.get("output") or self.definition.get("output_type", "markdown") != (
            "markdown"
        ):
            self.out("## Output", f"- type: {self.definition.get('output_type', 'markdown')}")
            if self.definition.get("output"):
                self.out(self.definition["output"])
        return "\n".join(self.lines).rstrip() + "\n"


def to_markdown(name: str, description: str, definition: dict[str, Any]) -> tuple[str, list[str]]:
    """(document, warnings about what the document leaves out)."""
    writer = _Writer(definition)
    return writer.write(name, description), writer.warnings
