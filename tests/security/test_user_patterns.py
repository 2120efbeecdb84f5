"""Regular expressions that users write into JSON Schemas run in linear time (RE2).

Each hostile case below is a pattern and a value that Python's backtracking `re` takes minutes
to years on (exponential or high-polynomial backtracking): with RE2 it is answered at once.
Patterns RE2 cannot run (lookaround, backreferences) are refused when the schema is saved.
"""

from __future__ import annotations

import contextlib
import json
import signal
import time

import pytest
from rest_framework.test import APIClient

from orchestrator.models import Trigger
from orchestrator.services.webhooks import sign
from runs.engine import check_payload_schema
from runs.models import Run

LONG = 5000
# (schema, body): every body misses its schema, and backtracking on it would never end.
HOSTILE = {
    "nested quantifier": (
        {"properties": {"text": {"pattern": "^(a+)+$"}}},
        {"text": "a" * LONG + "!"},
    ),
    "overlapping alternation": (
        {"properties": {"text": {"pattern": "(a|a)*b"}}},
        {"text": "a" * LONG},
    ),
    "repeated wildcard group": (
        {"properties": {"text": {"pattern": "^(.*a){20}$"}}},
        {"text": "a" * LONG + "!"},
    ),
    "patternProperties key": (
        {"patternProperties": {"^(a|aa)+$": {"type": "integer"}}, "additionalProperties": False},
        {"a" * LONG + "!": 1},
    ),
    "propertyNames": (
        {"propertyNames": {"pattern": "^(a|aa)+$"}},
        {"a" * LONG + "!": 1},
    ),
    "unevaluatedProperties beside patternProperties": (
        {"patternProperties": {"^(a+)+$": {"type": "integer"}}, "unevaluatedProperties": False},
        {"a" * LONG + "!": 1},
    ),
    "nested in an array": (
        {"properties": {"items": {"type": "array", "items": {"pattern": "^(\\w+\\s?)*$"}}}},
        {"items": ["ok", "word " * 1000 + "!"]},
    ),
}
REFUSED = {
    "lookahead": "^(?=.*\\d)\\w+$",
    "negative lookahead": "^(?!admin)",
    "lookbehind": "(?<=a)b",
    "backreference": "^(a+)\\1$",
    "named backreference": "(?P<x>a)(?P=x)",
    "end of text as re writes it": "abc\\Z",
    "repetition past RE2's bound": "a{1001}",
}


@contextlib.contextmanager
def within(seconds: float):
    """Fails the test when the block runs longer; `re` checks signals while it backtracks."""

    def expire(signum, frame):
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def hook_for(editor, schema: dict) -> dict:
    flow = editor.post(
        "/api/v1/orchestrations",
        {
            "name": "Patterns",
            "status": "active",
            "definition": {"nodes": [{"id": "echo", "type": "transform", "config": {"output": 1}}]},
        },
        format="json",
    ).json()
    response = editor.post(
        f"/api/v1/orchestrations/{flow['id']}/triggers",
        {"kind": "webhook", "input_schema": schema},
        format="json",
    )
    assert response.status_code == 201, response.json()
    return response.json()


def deliver(hook: dict, payload: dict):
    body = json.dumps(payload).encode()
    at = int(time.time())
    return APIClient().generic(
        "POST",
        hook["webhook_url"],
        body,
        content_type="application/json",
        HTTP_X_ORCHESTRATOR_SIGNATURE=f"t={at},v1={sign(hook['signing_secret'], at, body)}",
    )


@pytest.mark.django_db
@pytest.mark.parametrize("case", HOSTILE)
def test_a_hostile_body_against_a_backtracking_pattern_is_refused_at_once(editor, case):
    schema, body = HOSTILE[case]
    hook = hook_for(editor, schema)
    with within(10):
        response = deliver(hook, body)
    assert response.status_code == 400
    assert response.json()["error"] == "trigger_mismatch"
    assert Run.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize("case", HOSTILE)
def test_a_hostile_payload_on_an_edge_fails_its_check_at_once(case):
    schema, body = HOSTILE[case]
    with within(10):
        message = check_payload_schema(schema, body)
    assert message is not None
    assert message.startswith("payload does not match the edge's schema")


@pytest.mark.django_db
def test_patterns_still_decide_what_a_webhook_accepts(editor):
    hook = hook_for(editor, {"properties": {"code": {"pattern": "^[A-Z]{3}-\\d{4}$"}}})
    assert deliver(hook, {"code": "ABC-1234"}).status_code == 202
    refused = deliver(hook, {"code": "abc-1234"})
    assert refused.status_code == 400
    assert refused.json()["error"] == "trigger_mismatch"
    assert "does not match" in refused.json()["detail"]


@pytest.mark.django_db
def test_unicode_classes_match_letters_of_every_script(editor):
    hook = hook_for(editor, {"properties": {"name": {"pattern": "^\\p{L}+$"}}})
    for name in ("Zoë", "Ünïcödé", "Ελληνικά", "日本語"):
        assert deliver(hook, {"name": name}).status_code == 202, name
    assert deliver(hook, {"name": "R2-D2"}).status_code == 400
    assert Run.objects.count() == 4


@pytest.mark.django_db
@pytest.mark.parametrize("case", REFUSED)
def test_a_pattern_re2_cannot_run_is_refused_when_the_trigger_is_saved(editor, case):
    flow = editor.post(
        "/api/v1/orchestrations",
        {
            "name": "P",
            "definition": {"nodes": [{"id": "a", "type": "transform", "config": {"output": 1}}]},
        },
        format="json",
    ).json()
    schema = {"type": "object", "properties": {"password": {"pattern": REFUSED[case]}}}
    response = editor.post(
        f"/api/v1/orchestrations/{flow['id']}/triggers",
        {"kind": "webhook", "input_schema": schema},
        format="json",
    )
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "validation_error"
    assert list(body["fields"]) == ["input_schema.properties.password.pattern"]
    assert "RE2" in body["fields"]["input_schema.properties.password.pattern"][0]


@pytest.mark.django_db
def test_a_pattern_property_re2_cannot_run_is_refused_on_create_and_on_change(editor):
    created = editor.post(
        "/api/v1/orchestrations",
        {
            "name": "P",
            "definition": {"nodes": [{"id": "a", "type": "transform", "config": {"output": 1}}]},
            "triggers": [{"kind": "webhook", "input_schema": {"patternProperties": {"(?!x)": {}}}}],
        },
        format="json",
    )
    assert created.status_code == 400
    assert any("input_schema.patternProperties" in path for path in created.json()["fields"])
    hook = hook_for(editor, {"type": "object"})
    changed = editor.patch(
        f"/api/v1/triggers/{hook['id']}",
        {"input_schema": {"properties": {"a": {"items": {"pattern": "(x)\\1"}}}}},
        format="json",
    )
    assert changed.status_code == 400
    assert list(changed.json()["fields"]) == ["input_schema.properties.a.items.pattern"]
    assert Trigger.objects.get(pk=hook["id"]).input_schema == {"type": "object"}


@pytest.mark.django_db
@pytest.mark.parametrize("case", REFUSED)
def test_a_payload_schema_re2_cannot_run_is_refused_when_the_definition_is_saved(editor, case):
    definition = {
        "nodes": [
            {"id": "a", "type": "transform", "config": {"output": 1}},
            {"id": "b", "type": "transform", "config": {"output": 1}},
        ],
        "edges": [
            {
                "source": "a",
                "target": "b",
                "payload_schema": {"properties": {"x": {"pattern": REFUSED[case]}}},
            }
        ],
    }
    response = editor.post(
        "/api/v1/orchestrations", {"name": "P", "definition": definition}, format="json"
    )
    assert response.status_code == 400
    fields = response.json()["fields"]
    assert [
        path for path in fields if path.endswith("edges[0].payload_schema.properties.x.pattern")
    ]


def test_a_stored_schema_with_a_pattern_re2_refuses_fails_the_edge_with_the_reason():
    message = check_payload_schema({"properties": {"x": {"pattern": "(?=a)"}}}, {"x": "a"})
    assert message is not None
    assert "RE2" in message
    assert "$.properties.x.pattern" in message


def test_a_schema_referring_to_the_network_fails_the_check_instead_of_raising():
    message = check_payload_schema({"$ref": "https://example.com/schema.json"}, {"x": 1})
    assert message is not None
    assert "cannot be resolved" in message


@pytest.mark.django_db
def test_the_admin_refuses_an_input_schema_re2_cannot_run(editor, operator):
    hook = hook_for(editor, {"type": "object"})
    trigger = Trigger.objects.get(pk=hook["id"])
    response = operator.post(
        f"/admin/orchestrator/trigger/{trigger.pk}/change/",
        {
            "orchestration": str(trigger.orchestration_id),
            "node_id": "",
            "is_active": "on",
            "input_schema": json.dumps({"properties": {"a": {"pattern": "(?<=a)b"}}}),
            "input": "{}",
            "cron_expression": "",
            "timezone": "UTC",
            "overlap": trigger.overlap,
            "catchup": trigger.catchup,
            "secret_rotated_at_0": "",
            "secret_rotated_at_1": "",
        },
    )
    assert response.status_code == 200  # the form again, with the error
    assert "properties.a.pattern" in response.content.decode()
    trigger.refresh_from_db()
    assert trigger.input_schema == {"type": "object"}
