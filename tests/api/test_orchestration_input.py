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
    from orchestrator.parsers import LimitedJSONParser

    class Stream:
        def __init__(self, data: bytes) -> None:
            self.data = data

        def read(self, size: int = -1) -> bytes:
            return self.data[:size]

    from core.domain_errors import PayloadTooLarge

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


def test_a_non_json_content_type_is_refused_saying_what_to_send(editor):
    # `curl -d '{...}'` without -H sends form encoding: the answer says what the API reads.
    for body, media_type in [("name=x", "application/x-www-form-urlencoded"), ("{}", "text/plain")]:
        response = assert_error(post_raw(editor, body, media_type), 415, "unsupported_media_type")
        assert response["detail"] == (
            f'Unsupported media type "{media_type}" in request. '
            "Send a JSON body with 'Content-Type: application/json'."
        )


def nested_json(levels: int) -> str:
    return "[" * levels + "]" * levels


@pytest.mark.parametrize("levels", [65, 500, 5000])
def test_json_nested_too_deeply_is_a_validation_error(editor, levels):
    # 500 levels parsed, then ended in a RecursionError (a 500) while the definition was checked.
    body = (
        '{"name": "deep", "definition": {"nodes": [{"id": "a", "type": "transform", '
        f'"config": {{"output": {nested_json(levels)}}}}}]}}}}'
    )
    response = assert_error(post_raw(editor, body), 400, "validation_error")
    assert "64 levels" in response["detail"]
    assert Orchestration.objects.count() == 0


def test_a_markdown_json_block_nested_too_deeply_is_refused_with_its_line(editor):
    markdown = (
        "# Deep\n## Steps\n### a\n- type: transform\n\n```json\n" + nested_json(500) + "\n```\n"
    )
    body = assert_error(
        editor.post(URL, {"markdown": markdown}, format="json"), 400, "validation_error"
    )
    assert body["fields"]["markdown"][0].startswith("line ")
    compiled = editor.post(f"{URL}/compile", {"markdown": markdown}, format="json")
    assert compiled.status_code == 200
    assert compiled.json()["valid"] is False


@pytest.mark.parametrize("value", ["maybe", "yes", "2"])
def test_a_boolean_filter_that_is_not_true_or_false_is_refused(editor, value):
    # django-filter read these as "no filter" and answered every orchestration.
    body = assert_error(editor.get(f"{URL}?is_public={value}"), 400, "validation_error")
    assert "is_public" in body["fields"]


@pytest.mark.parametrize("value", ["true", "True", "1", "false", "0"])
def test_a_boolean_filter_takes_true_false_1_and_0(editor, value):
    editor.post(URL, two_step(is_public=True), format="json")
    response = editor.get(f"{URL}?is_public={value}")
    assert response.status_code == 200
    assert len(response.json()["items"]) == (1 if value.lower() in ("true", "1") else 0)


@pytest.mark.parametrize(
    ("node", "key", "path"),
    [
        (0, "prompt", "definition.nodes[0].config.prompt"),
        (1, "output", "definition.nodes[1].config.output"),
    ],
)
def test_a_nul_character_in_a_definition_is_refused_with_its_path(editor, node, key, path):
    # PostgreSQL cannot store U+0000 in jsonb: the INSERT failed with a DataError, a 500.
    data = two_step()
    data["definition"]["nodes"][node]["config"][key] = "a\u0000b"
    body = assert_error(editor.post(URL, data, format="json"), 400, "validation_error")
    assert body["fields"] == {path: ["must not contain the NUL character (\\u0000)"]}
    assert Orchestration.objects.count() == 0


def test_a_nul_character_in_a_run_input_is_refused(editor):
    created = editor.post(URL, two_step(status="active"), format="json").json()
    response = editor.post(
        f"{URL}/{created['id']}/runs", {"input": {"topic": "a\u0000b"}}, format="json"
    )
    body = assert_error(response, 400, "validation_error")
    assert list(body["fields"]) == ["input.topic"]


@pytest.mark.parametrize("escape", ["\\ud800", "\\uDFFF", "x\\udc00"])
def test_an_unpaired_surrogate_is_refused_with_its_path(editor, escape):
    # JSON may escape half a surrogate pair, and Python reads it: PostgreSQL's jsonb refused it
    # (a 500), SQLite kept it and every answer holding it failed to encode (a 500 per read).
    data = json.dumps(two_step())
    data = data.replace('"Research {{', '"' + escape + " Research {{", 1)
    assert escape in data
    body = assert_error(
        editor.generic("POST", URL, data, content_type="application/json"), 400, "validation_error"
    )
    assert body["fields"] == {
        "definition.nodes[0].config.prompt": [
            "must not contain an unpaired surrogate (\\ud800-\\udfff)"
        ]
    }
    assert Orchestration.objects.count() == 0


def test_an_unpaired_surrogate_in_a_run_input_or_a_key_is_refused(editor):
    created = editor.post(URL, two_step(status="active"), format="json").json()
    runs = f"{URL}/{created['id']}/runs"
    for raw, field in (
        ('{"input": {"topic": "a\\ud83d"}}', "input.topic"),
        ('{"input": {"topic": "x"}, "metadata": {"k\\ude00": 1}}', "metadata"),
    ):
        response = editor.generic("POST", runs, raw, content_type="application/json")
        body = assert_error(response, 400, "validation_error")
        assert list(body["fields"]) == [field]
    # A pair, escaped as JSON escapes characters past U+FFFF, is one character: kept.
    paired = '{"input": {"topic": "smile \\ud83d\\ude00"}}'
    response = editor.generic("POST", runs, paired, content_type="application/json")
    assert response.status_code == 202, response.content
    assert response.json()["input"] == {"topic": "smile \U0001f600"}


def test_an_escaped_backslash_before_u0000_is_an_ordinary_string(editor):
    data = two_step()
    data["definition"]["nodes"][0]["config"]["prompt"] = "a literal \\u0000 in the text"
    created = editor.post(URL, data, format="json")
    assert created.status_code == 201, created.content
    prompt = created.json()["definition"]["nodes"][0]["config"]["prompt"]
    assert prompt == "a literal \\u0000 in the text"


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_nan_and_infinity_are_refused_wherever_they_are(editor, value):
    # Python's json reads them. A run's metadata kept one (PostgreSQL's jsonb refuses it), and a
    # markdown default of NaN made the compile answer fail to encode: both 500s.
    created = editor.post(URL, two_step(status="active"), format="json").json()
    run_body = '{"input": {"topic": "x"}, "metadata": {"a": ' + value + "}}"
    response = editor.generic(
        "POST", f"{URL}/{created['id']}/runs", run_body, content_type="application/json"
    )
    assert_error(response, 400, "validation_error")
    markdown = (
        f"# T\n## Inputs\n- n (number, default: {value}): x\n"
        "## Steps\n### a\n- type: transform\n{{ input.n }}\n"
    )
    compiled = editor.post(f"{URL}/compile", {"markdown": markdown}, format="json")
    assert compiled.status_code == 200
    assert compiled.json()["valid"] is False
    assert_error(editor.post(URL, {"markdown": markdown}, format="json"), 400, "validation_error")
