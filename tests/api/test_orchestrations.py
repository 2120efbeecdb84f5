from __future__ import annotations

import pytest

from orchestrator.models import Orchestration, OrchestrationVersion
from runs.models import Run
from tests.api.helpers import MARKDOWN, TWO_STEP, three_step, two_step

pytestmark = pytest.mark.django_db

URL = "/api/v1/orchestrations"


def create(client, **data):
    response = client.post(URL, data or two_step(), format="json")
    assert response.status_code == 201, response.json()
    return response


def test_creating_from_a_definition_gives_a_draft_at_version_1(editor):
    response = create(editor, **two_step(tags=["research", "daily"], zone="growth"))
    body = response.json()
    assert body["status"] == "draft"
    assert body["version"] == 1
    assert body["slug"] == "research"
    assert body["steps"] == 2
    assert body["tags"] == ["research", "daily"]
    assert response.headers["ETag"] == f'"{body["etag"]}"'
    node = body["definition"]["nodes"][0]
    assert node["retry"]["max_attempts"] == 1
    assert node["on_error"] == "fail"


def test_status_active_skips_the_draft_step(editor):
    body = create(editor, **two_step(status="active")).json()
    assert body["status"] == "active"


def test_slugs_are_made_unique_in_the_organization(editor):
    create(editor)
    assert create(editor).json()["slug"] == "research-2"


def test_creating_from_markdown_keeps_the_source_and_takes_the_name(editor):
    body = create(editor, markdown=MARKDOWN).json()
    assert body["name"] == "Market Research Report"
    assert body["description"].startswith("Researches a topic")
    assert body["markdown"] == MARKDOWN
    assert [n["id"] for n in body["definition"]["nodes"]] == ["research", "report"]


def test_the_shorthand_creates_nodes_edges_and_its_trigger(editor):
    body = create(
        editor,
        name="Short",
        nodes=TWO_STEP["nodes"],
        edges=TWO_STEP["edges"],
        trigger={"kind": "webhook"},
    ).json()
    assert body["steps"] == 2
    assert [t["kind"] for t in body["triggers"]] == ["webhook"]
    assert body["triggers"][0]["webhook_url"].startswith(f"/api/v1/webhooks/{body['id']}/")


def test_an_orchestration_is_found_by_slug_with_its_etag(editor):
    created = create(editor).json()
    response = editor.get(f"{URL}/research")
    assert response.status_code == 200
    assert response.json()["id"] == created["id"]
    assert response.headers["ETag"] == f'"{created["etag"]}"'


def test_if_none_match_with_the_current_etag_answers_not_modified(editor):
    created = create(editor).json()
    response = editor.get(f"{URL}/{created['id']}", HTTP_IF_NONE_MATCH=f'"{created["etag"]}"')
    assert response.status_code == 304


def test_put_without_if_match_is_refused_with_428(editor):
    created = create(editor).json()
    response = editor.put(f"{URL}/{created['id']}", two_step(), format="json")
    assert response.status_code == 428
    assert response.json()["error"] == "precondition_required"


def test_put_with_a_stale_etag_is_refused_and_changes_nothing(editor):
    created = create(editor).json()
    response = editor.put(
        f"{URL}/{created['id']}",
        {"name": "New", "definition": three_step()},
        format="json",
        HTTP_IF_MATCH='"stale"',
    )
    assert response.status_code == 412
    assert response.json()["error"] == "version_conflict"
    assert Orchestration.objects.get(pk=created["id"]).name == "Research"


def test_put_with_the_right_etag_creates_version_2_and_a_new_etag(editor):
    created = create(editor).json()
    response = editor.put(
        f"{URL}/{created['id']}",
        {"name": "Research v2", "definition": three_step()},
        format="json",
        HTTP_IF_MATCH=f'"{created["etag"]}"',
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["version"] == 2
    assert body["steps"] == 3
    assert body["etag"] != created["etag"]
    assert response.headers["ETag"] == f'"{body["etag"]}"'
    stale = editor.put(
        f"{URL}/{created['id']}", two_step(), format="json", HTTP_IF_MATCH=f'"{created["etag"]}"'
    )
    assert stale.status_code == 412


def test_put_replaces_the_fields_it_owns(editor):
    created = create(editor, **two_step(description="old", metadata={"team": "a"})).json()
    body = editor.put(
        f"{URL}/{created['id']}", two_step(), format="json", HTTP_IF_MATCH=created["etag"]
    ).json()
    assert body["description"] == ""
    assert body["metadata"] == {}


def test_patch_of_tags_changes_the_etag_but_not_the_version(editor):
    created = create(editor).json()
    body = editor.patch(
        f"{URL}/{created['id']}", {"tags": ["x"]}, format="json", HTTP_IF_MATCH=created["etag"]
    ).json()
    assert body["version"] == 1
    assert body["tags"] == ["x"]
    assert body["etag"] != created["etag"]


def test_patch_of_the_definition_adds_a_version(editor):
    created = create(editor).json()
    body = editor.patch(
        f"{URL}/{created['id']}",
        {"definition": three_step()},
        format="json",
        HTTP_IF_MATCH=created["etag"],
    ).json()
    assert body["version"] == 2
    assert body["name"] == "Research"


@pytest.mark.parametrize("method", ["put", "patch"])
@pytest.mark.parametrize(
    "extra",
    [
        {"triggers": [{"kind": "webhook"}]},
        {"trigger": {"kind": "schedule", "cron_expression": "0 9 * * *"}},
        {"triggers": []},
        {"triggers": "not even a list"},
    ],
    ids=["triggers", "trigger", "empty-list", "garbage"],
)
@pytest.mark.parametrize("with_changes", [True, False], ids=["with-changes", "alone"])
def test_put_and_patch_refuse_triggers_by_name_and_save_nothing(
    editor, method, extra, with_changes
):
    created = create(editor).json()
    # A PUT must carry a definition; "alone" sends the one it has (a PATCH sends nothing else).
    if with_changes:
        body = {"name": "Renamed", "definition": three_step(), **extra}
    else:
        body = {**two_step(), **extra} if method == "put" else extra
    response = getattr(editor, method)(
        f"{URL}/{created['id']}", body, format="json", HTTP_IF_MATCH=created["etag"]
    )
    assert response.status_code == 400, response.json()
    error = response.json()
    assert error["error"] == "validation_error"
    (field,) = [key for key in ("trigger", "triggers") if key in extra]
    assert f"/api/v1/orchestrations/{created['id']}/triggers" in error["fields"][field][0]
    after = editor.get(f"{URL}/{created['id']}").json()
    assert (after["version"], after["etag"], after["name"]) == (1, created["etag"], "Research")
    assert after["triggers"] == []


def test_versions_list_diff_and_restore(editor):
    created = create(editor).json()
    editor.put(
        f"{URL}/{created['id']}",
        {"name": "Research", "definition": three_step()},
        format="json",
        HTTP_IF_MATCH=created["etag"],
    )
    versions = editor.get(f"{URL}/{created['id']}/versions").json()
    assert [v["version"] for v in versions["items"]] == [2, 1]
    assert versions["items"][0]["summary"].startswith("Changed definition (+1 nodes")

    v1 = editor.get(f"{URL}/{created['id']}/versions/1").json()
    assert len(v1["definition"]["nodes"]) == 2

    diff = editor.get(f"{URL}/{created['id']}/versions/1/diff/2").json()
    assert diff["nodes"]["added"] == ["publish"]
    assert diff["nodes"]["removed"] == []
    assert [(e["source"], e["target"]) for e in diff["edges"]["added"]] == [("report", "publish")]

    restored = editor.post(f"{URL}/{created['id']}/versions/1/restore").json()
    assert restored["version"] == 3
    assert restored["steps"] == 2
    assert OrchestrationVersion.objects.filter(orchestration_id=created["id"]).count() == 3


def test_a_missing_version_answers_404(editor):
    created = create(editor).json()
    assert editor.get(f"{URL}/{created['id']}/versions/9").status_code == 404
    assert editor.get(f"{URL}/{created['id']}/versions/1/diff/9").status_code == 404
    assert editor.post(f"{URL}/{created['id']}/versions/9/restore").status_code == 404


def test_a_version_number_beyond_any_integer_answers_400(editor):
    # The diff's lookup handed the number to SQLite, which raised OverflowError: a 500. Now no
    # number past a 64-bit column's range reaches a query (see core.params).
    created = create(editor).json()
    huge = "9" * 25
    for method, path in (
        ("get", f"versions/{huge}"),
        ("get", f"versions/1/diff/{huge}"),
        ("get", f"versions/{huge}/diff/1"),
        ("post", f"versions/{huge}/restore"),
    ):
        response = getattr(editor, method)(f"{URL}/{created['id']}/{path}")
        assert response.status_code == 400, (path, response.content)
        assert response.json()["error"] == "validation_error"


def test_activate_and_pause(editor):
    created = create(editor).json()
    assert editor.post(f"{URL}/{created['id']}/activate").json()["status"] == "active"
    assert editor.post(f"{URL}/{created['id']}/pause").json()["status"] == "paused"


def test_soft_delete_hides_it_and_frees_the_slug(editor):
    created = create(editor).json()
    assert editor.delete(f"{URL}/{created['id']}").status_code == 204
    assert editor.get(f"{URL}/{created['id']}").status_code == 404
    assert editor.get(URL).json()["items"] == []
    assert Orchestration.objects.filter(pk=created["id"]).exists()
    assert create(editor).json()["slug"] == "research"


def test_purge_needs_the_admin_role_and_removes_the_row(editor, admin_client):
    created = create(editor).json()
    response = editor.delete(f"{URL}/{created['id']}?purge=true")
    assert response.status_code == 403
    assert response.json()["error"] == "forbidden"
    assert admin_client.delete(f"{URL}/{created['id']}?purge=true").status_code == 204
    assert not Orchestration.objects.filter(pk=created["id"]).exists()


def test_purge_removes_a_soft_deleted_orchestration_and_its_runs_for_good(editor, admin_client):
    created = create(editor, **two_step(status="active")).json()
    started = editor.post(f"{URL}/{created['id']}/runs", {"input": {"topic": "x"}}, format="json")
    assert started.status_code == 202
    assert editor.delete(f"{URL}/{created['id']}").status_code == 204
    assert admin_client.delete(f"{URL}/{created['id']}?purge=true").status_code == 204
    assert not Orchestration.objects.filter(pk=created["id"]).exists()
    assert not Run.objects.filter(pk=started.json()["id"]).exists()
    again = admin_client.delete(f"{URL}/{created['id']}?purge=true")
    assert again.status_code == 404
    assert again.json()["error"] == "not_found"


def test_purging_a_soft_deleted_orchestration_needs_the_admin_role(editor, admin_client):
    created = create(editor).json()
    editor.delete(f"{URL}/{created['id']}")
    response = editor.delete(f"{URL}/{created['id']}?purge=true")
    assert response.status_code == 403
    assert Orchestration.objects.filter(pk=created["id"]).exists()


def test_another_organization_cannot_purge_a_soft_deleted_orchestration(editor, outsider):
    created = create(editor).json()
    editor.delete(f"{URL}/{created['id']}")
    response = outsider.delete(f"{URL}/{created['id']}?purge=true")
    assert response.status_code == 404
    assert Orchestration.objects.filter(pk=created["id"]).exists()


def test_a_soft_deleted_orchestration_stays_out_of_sight_of_everything_but_purge(editor):
    created = create(editor).json()
    editor.delete(f"{URL}/{created['id']}")
    assert editor.delete(f"{URL}/{created['id']}").status_code == 404
    assert editor.delete(f"{URL}/{created['id']}?purge=false").status_code == 404
    assert editor.get(f"{URL}/{created['id']}").status_code == 404
    assert editor.patch(f"{URL}/{created['id']}", {"name": "x"}, format="json").status_code == 404
    assert editor.post(f"{URL}/{created['id']}/activate").status_code == 404
    assert editor.get(URL).json()["items"] == []


def test_a_slug_purges_the_living_orchestration_not_a_soft_deleted_namesake(editor, admin_client):
    deleted = create(editor).json()
    editor.delete(f"{URL}/{deleted['id']}")
    living = create(editor).json()
    assert living["slug"] == deleted["slug"]
    assert admin_client.delete(f"{URL}/{living['slug']}?purge=true").status_code == 204
    assert not Orchestration.objects.filter(pk=living["id"]).exists()
    assert Orchestration.objects.filter(pk=deleted["id"]).exists()
    # With no living namesake left, the slug names the latest deleted one (as on the run routes).
    assert admin_client.delete(f"{URL}/{deleted['slug']}?purge=true").status_code == 204
    assert not Orchestration.objects.filter(pk=deleted["id"]).exists()
    assert admin_client.delete(f"{URL}/{deleted['id']}?purge=true").status_code == 404


def test_a_purge_value_that_is_not_true_or_false_is_refused_and_deletes_nothing(admin_client):
    created = create(admin_client).json()
    response = admin_client.delete(f"{URL}/{created['id']}?purge=yes")
    assert response.status_code == 400
    assert response.json()["fields"] == {"purge": ["'yes' is not true or false."]}
    assert admin_client.get(f"{URL}/{created['id']}").status_code == 200
    assert admin_client.delete(f"{URL}/{created['id']}?purge=false").status_code == 204
    assert Orchestration.objects.filter(pk=created["id"]).exists()


def test_compile_reports_what_the_markdown_would_be_without_saving(editor):
    response = editor.post(f"{URL}/compile", {"markdown": MARKDOWN}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert body["valid"] is True
    assert body["name"] == "Market Research Report"
    assert body["output_type"] == "markdown"
    assert Orchestration.objects.count() == 0


def test_compile_of_broken_markdown_is_200_with_line_numbered_errors(editor):
    response = editor.post(f"{URL}/compile", {"markdown": "no title here"}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert body["valid"] is False
    assert body["errors"][0]["line"] >= 1


def test_viewers_read_but_cannot_write(editor, viewer):
    created = create(editor).json()
    assert viewer.get(f"{URL}/{created['id']}").status_code == 200
    response = viewer.post(URL, two_step(), format="json")
    assert response.status_code == 403
    assert response.json() == {
        "error": "forbidden",
        "detail": "This needs the editor role; your role here is viewer.",
    }
    assert viewer.post(f"{URL}/compile", {"markdown": MARKDOWN}, format="json").status_code == 200
