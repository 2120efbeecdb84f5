"""Template context, shared state, the default run output and edge payload schemas."""

from __future__ import annotations

from runs.engine import apply_output_key, build_context, check_payload_schema, default_run_output


def test_the_context_exposes_input_steps_state_and_run():
    steps = {
        "research": {"output": {"n": 1}, "status": "succeeded", "error": None, "tokens": 9},
        "later": {"status": "pending"},
    }
    ctx = build_context({"topic": "x"}, steps, {"k": 1}, {"id": "r1"})
    assert ctx == {
        "input": {"topic": "x"},
        "steps": {
            "research": {"output": {"n": 1}, "status": "succeeded", "error": None},
            "later": {"output": None, "status": "pending", "error": None},
        },
        "state": {"k": 1},
        "run": {"id": "r1"},
    }


def test_the_context_tolerates_missing_parts():
    assert build_context(None, {}, None, None) == {"input": {}, "steps": {}, "state": {}, "run": {}}


def test_output_key_writes_the_output_into_a_new_state():
    state = {"a": 1}
    new = apply_output_key(state, {"id": "n", "output_key": "result"}, [1, 2])
    assert new == {"a": 1, "result": [1, 2]}
    assert state == {"a": 1}
    assert new is not state


def test_a_node_without_output_key_leaves_the_state_unchanged():
    state = {"a": 1}
    assert apply_output_key(state, {"id": "n", "output_key": None}, "x") == {"a": 1}


def test_the_default_output_is_the_last_succeeded_node_to_finish():
    order = ["a", "b", "c"]
    assert default_run_output(order, {"a": "A", "b": "B"}) == "B"  # c failed or was skipped
    assert default_run_output(order, {"a": "A", "b": "B", "c": None}) is None  # c's output is null
    assert default_run_output(order, {}) is None
    assert default_run_output([], {}) is None


def test_a_payload_matching_the_schema_passes():
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    assert check_payload_schema(schema, {"n": 3}) is None
    assert check_payload_schema(None, "anything") is None


def test_a_mismatch_names_the_path_and_the_problem():
    schema = {"type": "object", "properties": {"field": {"type": "integer"}}}
    assert check_payload_schema(schema, {"field": "x"}) == (
        "payload does not match the edge's schema at $.field: 'x' is not of type 'integer'"
    )


def test_a_mismatch_inside_an_array_uses_an_index():
    schema = {"type": "array", "items": {"type": "object", "properties": {"b": {"type": "string"}}}}
    message = check_payload_schema(schema, [{"b": "ok"}, {"b": 2}])
    assert (
        message == "payload does not match the edge's schema at $[1].b: 2 is not of type 'string'"
    )


def test_a_mismatch_at_the_top_level_names_the_root():
    message = check_payload_schema({"type": "object", "required": ["n"]}, {})
    assert message == "payload does not match the edge's schema at $: 'n' is a required property"


def test_an_invalid_schema_is_reported_not_raised():
    message = check_payload_schema({"type": "nonsense"}, 1)
    assert message is not None
    assert message.startswith("the edge's payload schema is invalid")
