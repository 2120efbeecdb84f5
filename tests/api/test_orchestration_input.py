"""Bad input gets a clear 4xx in the error format, never a 500."""

from __future__ import annotations

import copy
import json

import pytest

from orchestrator.models import Orchestration
from tests.api.helpers import TWO_STEP, two_step

pytestmark = pytest.mark.django_db

URL = "/api/v1/orchestrations"


def post_raw(client, body: str | bytes, content_type: str = "application/json"):
    return client.generic("POST", URL, body, content_type=content_type)


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert body["error"] == code
    assert isinstance(body["detail"], str) and body["detail"]
    return body


def test_malformed_json_is_a_validation_error(editor):
    body = assert_error(post_raw(editor, '{"name": '), 400, "validation_error")
    assert body["detail"].startswith("Malformed JSON")
    assert Orchestration.objects.count() == 0


def test_a_json_array_body_is_refused(editor):
    assert_error(post_raw(editor, "[1, 2]"), 400, "validation_error")


def test_wrong_types_name_their_field(editor):
    body = assert_error(
        editor.post(URL, two_step(tags="x", settings={"max_subflow_depth": "deep"}), format="json"),
        400,
        "validation_error",
    )
    assert "tags" in body["fields"]
    assert "settings.max_subflow_depth" in body["fields"]


def test_unknown_fields_are_refused(editor):
    body = assert_error(
        editor.post(URL, two_step(colour="red"), format="json"), 400, "validation_error"
    )
    assert body["fields"] == {"colour": ["unknown field"]}


def test_a_cycle_is_reported_on_the_edges(editor):
    definition = copy.deepcopy(TWO_STEP)
    definition["edges"].append({"source": "report", "target": "research"})
    body = assert_error(
        editor.post(URL, {"name": "Loop", "definition": definition}, format="json"),
        400,
        "validation_error",
    )
    assert any(path.startswith("definition.edges") for path in body["fields"])
    assert "cycle" in json.dumps(body["fields"])


def test_an_unknown_node_type_is_reported_with_its_path(editor):
    definition = copy.deepcopy(TWO_STEP)
    definition["nodes"][1]["type"] = "teleport"
    body = assert_error(
        editor.post(URL, {"name": "X", "definition": definition}, format="json"),
        400,
        "validation_error",
    )
    assert "definition.nodes[1].type" in body["fields"]


def test_an_unknown_org_agent_is_reported(editor):
    definition = copy.deepcopy(TWO_STEP)
    definition["nodes"][0]["config"]["agent"] = "nobody"
    body = assert_error(
        editor.post(URL, {"name": "X", "definition": definition}, format="json"),
        400,
        "validation_error",
    )
    assert body["fields"] == {
        "definition.nodes[0].config.agent": ["no agent 'nobody' in this organization"]
    }


def test_a_definition_must_be_given(editor):
    body = assert_error(editor.post(URL, {"name": "Empty"}, format="json"), 400, "validation_error")
    assert "definition" in body["fields"]


def test_two_definition_sources_are_refused(editor):
    assert_error(editor.post(URL, two_step(markdown="# X"), format="json"), 400, "validation_error")


def test_broken_markdown_is_refused_with_line_numbers(editor):
    body = assert_error(
        editor.post(URL, {"markdown": "## Steps\n### a\n- type: nonsense\n"}, format="json"),
        400,
        "validation_error",
    )
    assert body["fields"]["markdown"][0].startswith("line ")


def test_a_10_mb_body_is_refused_with_413(editor):
    huge = json.dumps({"name": "x", "description": "a" * (10 * 1024 * 1024)})
    assert_error(post_raw(editor, huge), 413, "payload_too_large")


def test_a_body_without_content_length_is_still_limited(editor, settings):
    settings.API_MAX_BODY_BYTES = 2048
    from orchestrator.api.parsers import LimitedJSONParser

    class Stream:
        def __init__(self, data: bytes) -> None:
            self.data = data

        def read(self, size: int = -1) -> bytes:
            return self.data[:size]

    from orchestrator.api.errors import PayloadTooLarge

    with pytest.raises(PayloadTooLarge):
        LimitedJSONParser().parse(Stream(b'{"a": "' + b"x" * 5000 + b'"}'))


def test_unknown_filters_are_refused(editor):
    body = assert_error(editor.get(f"{URL}?colour=red"), 400, "validation_error")
    assert "colour" in body["fields"]


def test_an_invalid_filter_value_is_refused(editor):
    body = assert_error(editor.get(f"{URL}?status=sleeping"), 400, "validation_error")
    assert "status" in body["fields"]


@pytest.mark.parametrize("query", ["limit=0", "limit=201", "limit=abc", "cursor=not-a-cursor"])
def test_bad_pagination_parameters_are_refused(editor, query):
    assert_error(editor.get(f"{URL}?{query}"), 400, "validation_error")


def test_a_stale_if_match_on_patch_is_412(editor):
    created = editor.post(URL, two_step(), format="json").json()
    response = editor.patch(
        f"{URL}/{created['id']}", {"name": "y"}, format="json", HTTP_IF_MATCH="nope"
    )
    assert_error(response, 412, "version_conflict")


def test_method_not_allowed_uses_the_error_format(editor):
    assert_error(editor.put(URL, {}, format="json"), 405, "method_not_allowed")


def test_an_unknown_api_path_is_a_json_404(editor):
    assert_error(editor.get("/api/v1/nothing-here"), 404, "not_found")


def test_a_non_json_content_type_is_refused(editor):
    assert_error(
        post_raw(editor, "name=x", "application/x-www-form-urlencoded"),
        415,
        "unsupported_media_type",
    )
