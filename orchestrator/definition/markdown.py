"""The markdown definition language: a document a person can read, compiled to a definition.

Structure comes from markdown-it-py's tokens (which carry line numbers); prompt and template text
is taken verbatim from the source lines so that `{{ ... }}` and markdown survive untouched.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from markdown_it import MarkdownIt

from orchestrator.definition.checks import MISSING, loads_strict
from orchestrator.definition.errors import DefinitionError
from orchestrator.definition.expressions import referenced_roots, strings_in
from orchestrator.definition.graph import depths
from orchestrator.definition.nodes import NODE_TYPES, waits_for_people
from orchestrator.definition.schema import INPUT_TYPES, validate_definition

_MD = MarkdownIt("commonmark", {"html": False})
_INPUT = re.compile(
    r"^(?P<name>[^\s(:]+)\s*(?:\((?P<opts>[^)]*)\))?\s*(?::\s*(?P<desc>.*))?$", re.DOTALL
)
_ITEM = re.compile(r"^(?P<key>[A-Za-z_][\w ]*?)\s*:\s*(?P<value>.*)$", re.DOTALL)
_FIELD = re.compile(r"^(?P<name>[^:\s]+)\s*:\s*(?P<type>[a-z_]+)\s*(?:\((?P<opts>[^)]*)\))?$")
LIST_KEYS = ("approvers", "escalate_to", "tools")
SECTIONS = ("inputs", "agents", "steps", "output")
X_SPACING, Y_SPACING = 240, 140


@dataclass
class Block:
    """A heading, a list item, a paragraph-like chunk of source text, or a fenced code block."""

    kind: str
    line: int
    text: str
    level: int = 0
    info: str = ""


@dataclass
class Entity:
    heading: str
    line: int
    items: list[Block] = field(default_factory=list)
    body: list[Block] = field(default_factory=list)

    def body_text(self) -> str:
        parts = [b.text if b.kind != "fence" else f"```{b.info}\n{b.text}```" for b in self.body]
        return "\n\n".join(part.strip("\n") for part in parts).strip()

    def json_fence(self) -> Block | None:
        fences = [b for b in self.body if b.kind == "fence" and b.info.strip() == "json"]
        return fences[0] if fences else None

    def take_json_fence(self) -> Block | None:
        """The first json block of the body, taken out of it (it is data, not prompt text)."""
        fence = self.json_fence()
        if fence is not None:
            self.body.remove(fence)
        return fence


@dataclass
class CompileResult:
    valid: bool
    name: str | None = None
    description: str = ""
    inputs: list[dict[str, Any]] = field(default_factory=list)
    agents: list[dict[str, Any]] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)
    output: str | None = None
    output_type: str = "markdown"
    compiler_notes: list[str] = field(default_factory=list)
    definition: dict[str, Any] | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = {
            "valid": self.valid,
            "name": self.name,
            "description": self.description,
            "inputs": self.inputs,
            "agents": self.agents,
            "steps": self.steps,
            "output": self.output,
            "output_type": self.output_type,
            "compiler_notes": self.compiler_notes,
            "definition": self.definition,
        }
        if not self.valid:
            data["errors"] = self.errors
        return data


def _blocks(source: str) -> list[Block]:
    lines = source.splitlines()
    tokens = _MD.parse(source)
    blocks: list[Block] = []
    index = 0
    while index < len(tokens):
        token = tokens[index]
        line = (token.map[0] + 1) if token.map else 1
        if token.type == "heading_open":
            level = int(token.tag[1])
            blocks.append(Block("heading", line, tokens[index + 1].content.strip(), level))
            index += 3
            continue
        if token.type == "bullet_list_open" and token.level == 0:
            depth = 0
            while index < len(tokens):
                inner = tokens[index]
                if inner.type == "bullet_list_open":
                    depth += 1
                elif inner.type == "bullet_list_close":
                    depth -= 1
                    if depth == 0:
                        break
                elif inner.type == "inline" and depth == 1 and inner.map:
                    # A paragraph written right under the last item, with no blank line, is a
                    # lazy continuation of that item in CommonMark: it is the step's body.
                    first, _, rest = inner.content.partition("\n")
                    blocks.append(Block("item", inner.map[0] + 1, first.strip()))
                    if rest.strip():
                        start, end = inner.map
                        raw = "\n".join(lines[start + 1 : end])
                        blocks.append(Block("text", start + 2, raw))
                index += 1
            index += 1
            continue
        if token.type == "fence" and token.level == 0:
            blocks.append(Block("fence", line, token.content, info=token.info))
        elif token.level == 0 and token.map and token.nesting in (0, 1):
            start, end = token.map
            blocks.append(Block("text", start + 1, "\n".join(lines[start:end])))
            close = token.type.replace("_open", "_close")
            if token.nesting == 1:
                while index < len(tokens) and not (
                    tokens[index].type == close and tokens[index].level == 0
                ):
                    index += 1
        index += 1
    return blocks


def _slug(heading: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "_", heading.lower()).strip("_")
    if slug and not slug[0].isalpha():
        slug = f"step_{slug}"
    return slug[:63]


def _scalar(value: str) -> Any:
    text = value.strip()
    lowered = text.lower()
    if lowered in ("true", "yes"):
        return True
    if lowered in ("false", "no"):
        return False
    if lowered in ("null", "none"):
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


class _Compiler:
    def __init__(self, source: str) -> None:
        self.source = source
        self.errors: list[dict[str, Any]] = []
        self.notes: list[str] = []
        self.lines: dict[str, int] = {}

    def error(self, line: int, message: str) -> None:
        self.errors.append({"line": line, "message": message})

    def note(self, message: str) -> None:
        if message not in self.notes:
            self.notes.append(message)

    # --- document structure -----------------------------------------------------------------

    def sections(self) -> tuple[str | None, str, dict[str, list[Entity]]]:
        name: str | None = None
        description: list[str] = []
        sections: dict[str, list[Entity]] = {key: [] for key in SECTIONS}
        current: str | None = None
        preamble = True
        for block in _blocks(self.source):
            if block.kind == "heading" and block.level == 1:
                if name is None:
                    name = block.text
                else:
                    self.note(f"line {block.line}: a second '# {block.text}' title is ignored")
                continue
            if block.kind == "heading" and block.level == 2:
                preamble = False
                current = block.text.strip().lower()
                if current not in sections:
                    self.note(f"line {block.line}: unknown section '## {block.text}' is ignored")
                    current = None
                elif current in ("inputs", "output"):
                    sections[current].append(Entity(block.text, block.line))
                continue
            if preamble:
                if block.kind == "text" and name is not None:
                    description.append(block.text.strip())
                elif block.kind != "heading":
                    self.error(block.line, "text before the '# Title' line")
                continue
            if current is None:
                continue
            if block.kind == "heading":
                if current in ("agents", "steps") and block.level == 3:
                    sections[current].append(Entity(block.text, block.line))
                else:
                    self.error(block.line, f"unexpected heading '{block.text}' in ## {current}")
                continue
            entities = sections[current]
            if not entities:
                self.error(
                    block.line, f"## {current.capitalize()} needs a '### name' heading before this"
                )
                continue
            target = entities[-1]
            (target.items if block.kind == "item" and not target.body else target.body).append(
                block
            )
        if name is None:
            self.error(1, "the document needs a '# Title' line: the orchestration's name")
        return name, "\n\n".join(description), sections

    def items(self, entity: Entity) -> list[tuple[str, str, int]]:
        pairs = []
        for item in entity.items:
            match = _ITEM.match(item.text)
            if match is None:
                self.error(item.line, f"expected '- key: value', got '{item.text[:60]}'")
                continue
            pairs.append(
                (match["key"].strip().lower().replace(" ", "_"), match["value"].strip(), item.line)
            )
        return pairs

    # --- sections ---------------------------------------------------------------------------

    def inputs(self, entities: list[Entity]) -> list[dict[str, Any]]:
        inputs: list[dict[str, Any]] = []
        for entity in entities:
            for item in entity.items:
                match = _INPUT.match(item.text)
                if match is None:
                    self.error(
                        item.line,
                        f"expected '- name (type, required): description', got '{item.text[:60]}'",
                    )
                    continue
                spec = {
                    "name": match["name"],
                    "type": "string",
                    "required": False,
                    "default": None,
                    "description": (match["desc"] or "").strip(),
                }
                for option in _split(match["opts"] or ""):
                    key, _, value = option.partition(":")
                    key = key.strip().lower()
                    if key in INPUT_TYPES:
                        spec["type"] = key
                    elif key == "required":
                        spec["required"] = True
                    elif key == "optional":
                        spec["required"] = False
                    elif key == "default":
                        spec["default"] = value.strip()
                    else:
                        self.error(item.line, f"unknown input option '{option}'")
                spec["default"] = self.typed_default(spec, item.line)
                self.lines[f"inputs[{len(inputs)}]"] = item.line
                inputs.append(spec)
            for block in entity.body:
                self.error(block.line, "## Inputs holds a list: '- name (type): description'")
        return inputs

    def output_schema(self, entity: Entity, value: str, line: int) -> Any:
        """`- output_schema: {...}` on one line, or `- output_schema:` alone with the schema in
        the first ```json block under the heading (which is then no part of the prompt)."""
        where = f"'{entity.heading.strip()}'"
        if value:
            text, at = value, line
        else:
            fence = entity.take_json_fence()
            if fence is None:
                self.error(
                    line,
                    f"{where}: output_schema needs the schema on the same line, or a ```json "
                    "block below the '- key: value' lines",
                )
                return None
            text, at = fence.text, fence.line
        try:
            return loads_strict(text)
        except ValueError as exc:
            self.error(at, f"{where}: the output_schema is not JSON ({exc})")
        except RecursionError:
            self.error(at, f"{where}: the output_schema nests too deeply")
        return None

    def typed_default(self, spec: dict[str, Any], line: int) -> Any:
        raw = spec["default"]
        if raw is None or spec["type"] == "string":
            return raw
        try:
            value = loads_strict(raw.lower() if spec["type"] == "boolean" else raw)
        except (ValueError, RecursionError):
            self.error(line, f"default '{raw}' is not a valid {spec['type']}")
            return None
        return value

    def agents(self, entities: list[Entity]) -> list[dict[str, Any]]:
        agents: list[dict[str, Any]] = []
        for entity in entities:
            agent: dict[str, Any] = {"name": entity.heading}
            for key, value, line in self.items(entity):
                if key in LIST_KEYS:
                    agent[key] = _split(value)
                elif key in ("model", "base_url", "credential", "description"):
                    agent[key] = value
                elif key in ("temperature", "max_turns", "max_tokens"):
                    agent[key] = _scalar(value)
                elif key == "output_schema":
                    agent[key] = self.output_schema(entity, value, line)
                else:
                    self.error(line, f"unknown agent option '{key}'")
            prompt = entity.body_text()
            if prompt:
                agent["system_prompt"] = prompt
            agent.setdefault("model", "default")
            self.lines[f"agents[{len(agents)}]"] = entity.line
            agents.append(agent)
        return agents

    def steps(
        self, entities: list[Entity], agents: list[dict[str, Any]]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        declared_agents = {a["name"] for a in agents}
        ids: dict[str, int] = {}
        by_heading: dict[str, str] = {}
        for index, entity in enumerate(entities):
            node_id = _slug(entity.heading)
            if not node_id:
                self.error(
                    entity.line,
                    f"'{entity.heading}' cannot become a step id; use letters in the heading",
                )
            elif node_id in ids:
                self.error(entity.line, f"two steps are called '{node_id}'")
            ids[node_id] = index
            by_heading[entity.heading.strip().lower()] = node_id

        nodes: list[dict[str, Any]] = []
        edges: list[dict[str, Any]] = []
        previous: str | None = None
        for index, entity in enumerate(entities):
            node_id = _slug(entity.heading)
            self.lines[f"nodes[{index}]"] = entity.line
            node, after, when = self.step(entity, node_id, declared_agents)
            nodes.append(node)
            sources: list[str] = []
            if after is None:
                sources = [previous] if previous else []
            else:
                for name, line in after:
                    source = name if name in ids else by_heading.get(name.lower())
                    if source is None:
                        source = _slug(name) if _slug(name) in ids else None
                    if source is None:
                        self.error(line, f"after: no step '{name}'")
                    elif ids[source] > index:
                        self.note(f"step '{node_id}' runs after '{source}', which is written later")
                        sources.append(source)
                    else:
                        sources.append(source)
            if when and not sources:
                self.error(entity.line, f"step '{node_id}' has '- when:' but no step before it")
            for source in sources:
                self.lines[f"edges[{len(edges)}]"] = entity.line
                edges.append({"source": source, "target": node_id, "condition": when})
            previous = node_id
        return nodes, edges

    def step(
        self, entity: Entity, node_id: str, declared_agents: set[str]
    ) -> tuple[dict[str, Any], list[tuple[str, int]] | None, str | None]:
        node: dict[str, Any] = {"id": node_id, "name": entity.heading.strip()}
        config: dict[str, Any] = {}
        node_type: str | None = None
        after: list[tuple[str, int]] | None = None
        when: str | None = None
        retry: dict[str, Any] = {}
        for key, value, line in self.items(entity):
            if key == "type":
                node_type = value.strip().lower()
            elif key == "agent":
                config["agent"] = value
                if value not in declared_agents and value != "default":
                    self.note(
                        f"agent '{value}' is not declared in ## Agents; it must exist in "
                        "the organization"
                    )
            elif key == "after":
                after = [(name, line) for name in _split(value)]
            elif key == "when":
                when = value
            elif key in ("output_key", "on_error", "description"):
                node[key] = value
            elif key in ("retries", "max_attempts"):
                retry["max_attempts"] = _scalar(value)
            elif key in ("backoff_s", "backoff_factor"):
                retry[key] = _scalar(value)
            elif key in ("timeout", "timeout_s") and not waits_for_people(node_type):
                node["timeout_s"] = _scalar(value)
            elif key == "fields":
                config["fields"] = self.fields(value, line)
            elif key == "output_schema":
                config[key] = self.output_schema(entity, value, line)
            elif key in LIST_KEYS:
                config[key] = _split(value)
            else:
                config["timeout_s" if key == "timeout" else key] = _scalar(value)
        if retry:
            node["retry"] = retry
        if node_type is None:
            node_type = "agent"
            if "agent" not in config:
                config["agent"] = {"model": "default"}
                self.note(
                    f"step '{node_id}' names no agent; it uses the organization's default model"
                )
        if node_type not in NODE_TYPES:
            self.error(
                entity.line,
                f"step '{node_id}': unknown type '{node_type}'; known: {', '.join(NODE_TYPES)}",
            )
            node_type = "transform"
        node["type"] = node_type
        self.body_into_config(entity, node_id, node_type, config)
        node["config"] = config
        return node, after, when

    def fields(self, value: str, line: int) -> list[dict[str, Any]]:
        fields = []
        for part in _split(value):
            match = _FIELD.match(part)
            if match is None:
                self.error(line, f"field '{part}' should be name:type, e.g. notes:text")
                continue
            spec: dict[str, Any] = {"name": match["name"], "type": match["type"]}
            if match["opts"]:
                spec["options"] = [o.strip() for o in match["opts"].split("|") if o.strip()]
            fields.append(spec)
        return fields

    def body_into_config(
        self, entity: Entity, node_id: str, node_type: str, config: dict[str, Any]
    ) -> None:
        text = entity.body_text()
        fence = entity.json_fence()
        fenced_json = None
        if fence is not None:
            try:
                fenced_json = loads_strict(fence.text)
            except ValueError as exc:
                self.error(fence.line, f"step '{node_id}': the json block is not JSON ({exc})")
            except RecursionError:
                self.error(fence.line, f"step '{node_id}': the json block nests too deeply")
        spec = NODE_TYPES[node_type]
        if spec.body_key is None:
            return
        value: Any = MISSING
        if spec.body_reads == "value":
            if fence is not None and len(entity.body) == 1:
                value = fenced_json
            elif text:
                value = text
        elif spec.body_reads == "json":
            if fence is not None:
                value = fenced_json
        elif text:
            value = fenced_json if spec.body_reads == "json_or_text" and fence is not None else text
        if value is not MISSING:
            config.setdefault(spec.body_key, value)
        elif spec.body_needed_as:
            self.error(
                entity.line,
                f"step '{node_id}': a {node_type} needs a body: {spec.body_needed_as}",
            )
        elif spec.waits_for_people and not config.get(spec.body_key):
            self.note(f"step '{node_id}' asks people without a prompt")

    def output(self, entities: list[Entity]) -> tuple[str | None, str]:
        output, output_type = None, "markdown"
        for entity in entities[:1]:
            self.lines["output"] = entity.line
            self.lines["output_type"] = entity.line
            for key, value, line in self.items(entity):
                if key == "type":
                    output_type = value.strip().lower()
                else:
                    self.error(line, f"unknown output option '{key}'")
            output = entity.body_text() or None
        return output, output_type

    # --- assembly ---------------------------------------------------------------------------

    def line_for(self, path: str) -> int:
        root = re.match(r"^[a-z_]+(\[\d+\])?", path)
        key = root.group(0) if root else path
        return self.lines.get(key, self.lines.get(key.split("[")[0], 1))

    def describe(self, path: str, definition: dict[str, Any]) -> str:
        match = re.match(r"^(nodes|inputs|agents)\[(\d+)\]\.?(.*)$", path)
        if match:
            kind, index, rest = match.group(1), int(match.group(2)), match.group(3)
            items = definition.get(kind, [])
            if index < len(items) and isinstance(items[index], dict):
                label = {"nodes": "step", "inputs": "input", "agents": "agent"}[kind]
                name = items[index].get("id") or items[index].get("name")
                return f"{label} '{name}'" + (f": {rest}" if rest else "")
        return path

    def layout(self, nodes: list[dict[str, Any]], edges: list[dict[str, Any]]) -> None:
        ids = [n["id"] for n in nodes]
        pairs = [(e["source"], e["target"]) for e in edges]
        depth = depths(ids, pairs)
        per_level: dict[int, int] = {}
        for node in nodes:
            level = depth.get(node["id"], 0)
            column = per_level.get(level, 0)
            per_level[level] = column + 1
            node["position"] = {"x": column * X_SPACING, "y": level * Y_SPACING}

    def check_references(self, definition: dict[str, Any]) -> None:
        step_ids = {n["id"] for n in definition["nodes"]}
        input_names = {i["name"] for i in definition["inputs"]}
        templates = [s for n in definition["nodes"] for s in strings_in(n["config"])]
        templates += [f"{{{{ {e['condition']} }}}}" for e in definition["edges"] if e["condition"]]
        if definition["output"]:
            templates.append(definition["output"])
        used_inputs: set[str] = set()
        for text in templates:
            if "{" not in text:
                continue
            roots = referenced_roots(text)
            used_inputs |= roots["input"]
            for step in sorted(roots["steps"] - step_ids):
                self.note(f"a template names step '{step}', which does not exist")
            for name in sorted(roots["input"] - input_names):
                self.note(f"a template names input '{name}', which is not declared")
        for name in sorted(input_names - used_inputs):
            self.note(f"input '{name}' is never used by a template")
        used_agents = {
            n["config"].get("agent")
            for n in definition["nodes"]
            if n["type"] == "agent" and isinstance(n["config"].get("agent"), str)
        }
        for agent in definition["agents"]:
            if agent["name"] not in used_agents:
                self.note(f"agent '{agent['name']}' is declared but no step uses it")

    def compile(self) -> CompileResult:
        name, description, sections = self.sections()
        inputs = self.inputs(sections["inputs"])
        agents = self.agents(sections["agents"])
        nodes, edges = self.steps(sections["steps"], agents)
        output, output_type = self.output(sections["output"])
        if not sections["steps"]:
            self.error(1, "the document needs a '## Steps' section with at least one '### step'")
        self.layout(nodes, edges)
        raw = {
            "inputs": inputs,
            "agents": agents,
            "nodes": nodes,
            "edges": edges,
            "output": output,
            "output_type": output_type,
        }
        result = CompileResult(
            valid=False, name=name, description=description, output=output, output_type=output_type
        )
        definition = None
        if not self.errors:
            try:
                definition = validate_definition(raw)
            except DefinitionError as exc:
                for problem in exc.errors:
                    self.error(
                        self.line_for(problem.path),
                        f"{self.describe(problem.path, raw)}: {problem.message}",
                    )
        if definition is not None:
            self.check_references(definition)
            result.valid = True
            result.definition = definition
            result.inputs = definition["inputs"]
            result.agents = definition["agents"]
            result.steps = [
                {
                    "id": n["id"],
                    "name": n["name"],
                    "type": n["type"],
                    "after": [e["source"] for e in definition["edges"] if e["target"] == n["id"]],
                }
                for n in definition["nodes"]
            ]
        result.errors = sorted(self.errors, key=lambda e: e["line"])
        result.compiler_notes = self.notes
        return result


def compile_markdown(source: str) -> CompileResult:
    """Compile a markdown definition; problems come back as line-numbered errors, never raised."""
    if not isinstance(source, str):
        return CompileResult(valid=False, errors=[{"line": 1, "message": "expected text"}])
    # Editors on Windows start a UTF-8 file with a byte order mark; it is not text before the title.
    return _Compiler(source.removeprefix("\ufeff")).compile()
