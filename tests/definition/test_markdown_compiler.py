"""The markdown definition language of API.md."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.definition import compile_markdown, validate_definition

API_EXAMPLE = """# Market Research Report
Researches a topic and produces a report.

## Inputs
- topic (string, required): the topic to research
- depth (string, default: normal): shallow, normal or deep

## Agents
### researcher
- model: builtin/echo
- tools: http_get
You are a meticulous researcher.

## Steps
### research
- agent: researcher
- output_key: research_results
Research {{ input.topic }} in {{ input.depth }} depth.

### review
- type: approval
Check the research before the report is written.

### report
- type: transform
- after: research, review
{{ steps.research.output }}

## Output
- type: markdown
{{ steps.report.output }}
"""


def test_the_api_example_compiles_to_three_steps():
    result = compile_markdown(API_EXAMPLE)
    assert result.valid, result.errors
    nodes = {n["id"]: n for n in result.definition["nodes"]}
    assert [(n["id"], n["type"]) for n in result.definition["nodes"]] == [
        ("research", "agent"),
        ("review", "approval"),
        ("report", "transform"),
    ]
    assert nodes["research"]["output_key"] == "research_results"
    assert nodes["research"]["config"]["prompt"] == (
        "Research {{ input.topic }} in {{ input.depth }} depth."
    )
    assert nodes["review"]["config"]["prompt"] == "Check the research before the report is written."
    edges = {(e["source"], e["target"]) for e in result.definition["edges"]}
    assert edges == {("research", "review"), ("research", "report"), ("review", "report")}
    assert [i["name"] for i in result.inputs] == ["topic", "depth"]
    assert result.inputs[1]["default"] == "normal"
    assert result.agents[0]["tools"] == ["http_get"]
    assert result.agents[0]["system_prompt"] == "You are a meticulous researcher."
    assert (result.output, result.output_type) == ("{{ steps.report.output }}", "markdown")
    assert result.compiler_notes == []
    body = result.to_dict()
    assert set(body) == {
        "valid",
        "name",
        "description",
        "inputs",
        "agents",
        "steps",
        "output",
        "output_type",
        "compiler_notes",
        "definition",
    }


def test_a_file_saved_with_a_byte_order_mark_compiles_as_without_one():
    # Notepad starts a UTF-8 file with U+FEFF: it was "text before the title".
    plain = compile_markdown(API_EXAMPLE)
    marked = compile_markdown("\ufeff" + API_EXAMPLE)
    assert marked.valid, marked.errors
    assert marked.definition == plain.definition and marked.name == "Market Research Report"


def test_when_fields_and_json_bodies():
    source = """# Review
## Steps
### Ask
- type: human_input
- fields: decision:select(approve|reject), notes:text
Please review.

### Publish
- type: transform
- when: steps.ask.output.decision == 'approve'
```json
{"published": true}
```
"""
    result = compile_markdown(source)
    assert result.valid, result.errors
    ask, publish = result.definition["nodes"]
    assert ask["config"]["fields"][0]["options"] == ["approve", "reject"]
    assert ask["config"]["fields"][1]["type"] == "text"
    assert publish["config"]["output"] == {"published": True}
    assert result.definition["edges"][0]["condition"] == "steps.ask.output.decision == 'approve'"


def test_errors_carry_line_numbers():
    assert compile_markdown("no title").errors[-1]["line"] == 1
    bad_type = compile_markdown("# T\n## Steps\n### a\n- type: nonsense\nbody\n")
    assert bad_type.errors[0]["line"] == 3
    assert "unknown type 'nonsense'" in bad_type.errors[0]["message"]
    missing = compile_markdown(
        "# T\n## Steps\n### a\n- type: delay\n- seconds: 1\n\n"
        "### b\n- type: delay\n- seconds: 1\n- after: ghost\n"
    )
    assert missing.errors == [{"line": 10, "message": "after: no step 'ghost'"}]
    broken_json = compile_markdown("# T\n## Steps\n### a\n- type: transform\n\n```json\n{x\n```\n")
    assert broken_json.errors[0]["line"] == 6


def fenced_transform(json_text: str) -> str:
    return f"# T\n## Steps\n### a\n- type: transform\n\n```json\n{json_text}\n```\n"


def test_nan_and_infinity_are_line_numbered_errors_not_values():
    # Python's json reads them; the compile answer then failed to encode (a 500).
    default = compile_markdown(
        "# T\n## Inputs\n- n (number, default: NaN): x\n## Steps\n### a\n- type: transform\n"
        "{{ input.n }}\n"
    )
    assert not default.valid
    assert default.errors[0]["line"] == 3, default.errors
    for value in ("Infinity", "1e400"):
        fenced = compile_markdown(fenced_transform('{"x": ' + value + "}"))
        assert not fenced.valid
        assert fenced.errors[0]["line"] == 6, fenced.errors
        assert "not JSON" in fenced.errors[0]["message"]


def test_a_json_block_nested_too_deeply_is_a_line_numbered_error_not_a_crash():
    # 500 levels parse, then overflowed the recursive walks; 5,000 overflowed json.loads itself.
    for levels in (500, 5000):
        result = compile_markdown(fenced_transform("[" * levels + "]" * levels))
        assert not result.valid
        assert result.errors[0]["line"] in (3, 6), result.errors
        assert "deep" in result.errors[0]["message"], result.errors


def test_compiler_notes_warn_about_likely_mistakes():
    source = """# T
## Inputs
- unused (string): never referenced
## Agents
### idle
- model: builtin/echo
## Steps
### first
Hello {{ steps.nowhere.output }}
## Extras
"""
    notes = compile_markdown(source).compiler_notes
    assert any("unknown section" in n for n in notes)
    assert any("input 'unused' is never used" in n for n in notes)
    assert any("agent 'idle' is declared but no step uses it" in n for n in notes)
    assert any("step 'nowhere'" in n for n in notes)
    assert any("default model" in n for n in notes)


LINES = st.sampled_from(
    [
        "# Title",
        "## Steps",
        "## Inputs",
        "## Agents",
        "## Output",
        "### a",
        "### Step Two",
        "- type: transform",
        "- type: approval",
        "- after: a",
        "- when: output",
        "- topic (string, required): x",
        "- fields: x:text",
        "- model: builtin/echo",
        "text {{ input.topic }}",
        "```json",
        '{"a": 1}',
        "```",
        "",
        "- seconds: 3",
        "- type: delay",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(LINES, max_size=25))
def test_random_documents_compile_or_fail_with_line_numbers(lines):
    result = compile_markdown("\n".join(lines))
    if result.valid:
        assert validate_definition(result.definition) == result.definition
    else:
        assert result.errors and all(e["line"] >= 1 for e in result.errors)


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_arbitrary_text_never_crashes_the_compiler(text):
    assert compile_markdown(text).valid in (True, False)


def test_an_output_schema_is_written_on_its_line_or_in_the_json_block_below_the_keys():
    source = """# Rated
## Agents
### judge
- model: builtin/echo
- output_schema: {"type": "object", "required": ["score"]}
You judge.

## Steps
### rate
- agent: judge
- output_schema:
```json
{"type": "object", "properties": {"score": {"type": "integer"}}}
```
Rate {{ input.thing }}.
"""
    result = compile_markdown(source)
    assert result.valid, result.errors
    assert result.definition["agents"][0]["output_schema"] == {
        "type": "object",
        "required": ["score"],
    }
    assert result.definition["agents"][0]["system_prompt"] == "You judge."
    config = result.definition["nodes"][0]["config"]
    assert config["output_schema"]["properties"] == {"score": {"type": "integer"}}
    assert config["prompt"] == "Rate {{ input.thing }}."


def test_a_missing_unparsable_or_invalid_output_schema_is_a_line_numbered_error():
    head = "# Rated\n## Steps\n### rate\n- agent: default\n"
    missing = compile_markdown(head + "- output_schema:\nRate it.\n")
    assert [e["line"] for e in missing.errors] == [5]
    assert "```json block" in missing.errors[0]["message"]
    broken = compile_markdown(head + "- output_schema: {type: object}\nRate it.\n")
    assert [e["line"] for e in broken.errors] == [5]
    assert "not JSON" in broken.errors[0]["message"]
    invalid = compile_markdown(head + '- output_schema: {"type": "nosuch"}\nRate it.\n')
    assert not invalid.valid
    assert "output_schema.type" in invalid.errors[0]["message"]


def test_an_agents_sampling_settings_are_read_from_its_lines_and_checked():
    head = "# Brief\n## Agents\n### writer\n- model: builtin/echo\n"
    steps = "\n## Steps\n### write\n- agent: writer\nWrite.\n"
    result = compile_markdown(
        head + "- temperature: 0.2\n- max_turns: 4\n- max_tokens: 800\nBe brief.\n" + steps
    )
    assert result.valid, result.errors
    agent = result.definition["agents"][0]
    assert (agent["temperature"], agent["max_turns"], agent["max_tokens"]) == (0.2, 4, 800)
    for bad in ("0", "lots", "200001"):
        refused = compile_markdown(head + f"- max_tokens: {bad}\n" + steps)
        assert not refused.valid
        assert refused.errors[0]["line"] == 3, refused.errors
        assert "agent 'writer': max_tokens:" in refused.errors[0]["message"]
