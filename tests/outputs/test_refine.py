"""Refining a run's output with an agent, and the output versions it keeps."""

from __future__ import annotations

import pytest

from core import crypto
from orchestrator.models import Agent, Credential
from orchestrator.services.orchestrations import create_orchestration
from runs import tasks
from runs.models import OutputVersion, Run
from runs.services.lifecycle import fire
from tests.outputs.conftest import echo_flow
from tests.runs.harness import run_to_rest
from tests.runs.servers import error, local_server, reply

pytestmark = pytest.mark.django_db


@pytest.fixture
def upstream(settings):
    settings.HTTP_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    with local_server() as server:
        yield server


def versions(client, run) -> list[dict]:
    response = client.get(f"/api/v1/runs/{run.pk}/versions")
    assert response.status_code == 200, response.json()
    return response.json()["versions"]


def test_a_succeeded_run_lists_its_original_output_as_version_1(viewer, finished_run):
    run = finished_run("# Report")
    listed = versions(viewer, run)
    assert [(v["version"], v["prompt"]) for v in listed] == [(1, None)]
    assert listed[0]["created_at"].endswith("Z")
    one = viewer.get(f"/api/v1/runs/{run.pk}/versions/1").json()
    assert one == {
        "version": 1,
        "output": "# Report",
        "output_type": "markdown",
        "prompt": None,
        "created_at": listed[0]["created_at"],
    }
    assert not OutputVersion.objects.exists()


def test_refining_with_the_echo_model_stores_version_2(
    editor, viewer, finished_run, refine, refines
):
    run = finished_run("# Report\n\nLong text.")
    response = refine(editor, run, "Make it shorter.")
    assert response.status_code == 202, response.json()
    assert response.json() == {"status": "refining"}
    assert editor.get(f"/api/v1/runs/{run.pk}").json()["refine_status"] == "refining"

    assert refines.work() == 1
    run.refresh_from_db()
    assert run.refine_status == "idle"
    assert run.output != "# Report\n\nLong text."
    assert "Make it shorter." in run.output and "Long text." in run.output

    listed = versions(viewer, run)
    assert [(v["version"], v["prompt"]) for v in listed] == [(2, "Make it shorter."), (1, None)]
    two = viewer.get(f"/api/v1/runs/{run.pk}/versions/2").json()
    assert (two["output"], two["output_type"]) == (run.output, "markdown")
    assert viewer.get(f"/api/v1/runs/{run.pk}/versions/1").json()["output"] == (
        "# Report\n\nLong text."
    )
    detail = editor.get(f"/api/v1/runs/{run.pk}").json()
    assert (detail["refine_status"], detail["refine_error"], detail["output"]) == (
        "idle",
        None,
        run.output,
    )


def test_each_refine_starts_from_the_newest_version(editor, viewer, finished_run, refine, refines):
    run = finished_run("draft")
    refine(editor, run, "first")
    refines.work()
    refine(editor, run, "second")
    refines.work()
    listed = versions(viewer, run)
    assert [v["version"] for v in listed] == [3, 2, 1]
    three = viewer.get(f"/api/v1/runs/{run.pk}/versions/3").json()["output"]
    two = viewer.get(f"/api/v1/runs/{run.pk}/versions/2").json()["output"]
    assert two in three and "second" in three


def test_the_shared_page_shows_the_newest_version(client, editor, finished_run, refine, refines):
    run = finished_run("Original words.")
    url = editor.post(f"/api/v1/runs/{run.pk}/share").json()["share_url"]
    refine(editor, run, "Add a closing line: Fin.")
    refines.work()
    html = client.get(url).content.decode()
    assert "Add a closing line: Fin." in html
    assert "version 2" in html


def test_a_duplicate_task_delivery_stores_one_version(editor, finished_run, refine, refines):
    run = finished_run()
    refine(editor, run, "again")
    (args,) = refines.queued
    tasks.refine_output(*args)
    tasks.refine_output(*args)
    assert list(run.output_versions.values_list("version", flat=True)) == [2, 1]


def test_refining_an_unfinished_run_is_409(editor, org, refine, refines):
    run, _ = fire(echo_flow(org), {"text": "x"})
    response = refine(editor, run, "Shorter.")
    assert response.status_code == 409
    body = response.json()
    assert body["error"] == "conflict"
    assert "succeeded" in body["detail"] and "queued" in body["detail"]
    assert refines.queued == []
    assert versions(editor, run) == []


def test_refining_while_a_refine_is_running_is_409(editor, finished_run, refine, refines):
    run = finished_run()
    assert refine(editor, run, "one").status_code == 202
    response = refine(editor, run, "two")
    assert response.status_code == 409
    assert "already being refined" in response.json()["detail"]
    assert len(refines.queued) == 1


@pytest.mark.parametrize("body", [{"prompt": ""}, {"prompt": "   "}, {}, {"prompt": None}])
def test_a_missing_or_empty_prompt_is_a_validation_error(editor, finished_run, refines, body):
    run = finished_run()
    response = editor.post(f"/api/v1/runs/{run.pk}/refine", body, format="json")
    assert response.status_code == 400
    assert response.json()["error"] == "validation_error"
    assert "prompt" in response.json()["fields"]
    run.refresh_from_db()
    assert run.refine_status == "idle"


def test_an_unknown_version_is_404(viewer, finished_run):
    run = finished_run()
    for number in ("2", "0"):
        response = viewer.get(f"/api/v1/runs/{run.pk}/versions/{number}")
        assert response.status_code == 404, number
        assert response.json()["error"] == "not_found"
    assert viewer.get(f"/api/v1/runs/{run.pk}/versions/x").status_code == 400


def test_a_viewer_reads_versions_but_cannot_refine(viewer, finished_run, refine):
    run = finished_run()
    assert refine(viewer, run).status_code == 403
    assert viewer.get(f"/api/v1/runs/{run.pk}/versions").status_code == 200


def writer(org, upstream, key: str, **fields) -> Agent:
    """The library agent `writer` on the local model server, its key in a credential."""
    credential = Credential.objects.create(
        organization=org, name="key", kind="api_key", encrypted_value=crypto.encrypt(key)
    )
    return Agent.objects.create(
        organization=org,
        name="writer",
        model="openai/test-model",
        base_url=f"{upstream.url}/v1",
        credential=credential,
        **fields,
    )


def test_refining_through_an_openai_compatible_server(
    org, editor, finished_run, upstream, refine, refines
):
    writer(org, upstream, "sk-local", system_prompt="You write tersely.")
    upstream.answers = [reply("A long first draft."), reply("Short.")]
    run = finished_run("Write a summary.", agent="writer")
    assert run.output == "A long first draft."

    refine(editor, run, "Make it shorter.")
    refines.work()
    run.refresh_from_db()
    assert (run.output, run.refine_status) == ("Short.", "idle")
    sent = upstream.requests[-1]
    assert sent["model"] == "test-model"
    assert sent["messages"][0] == {"role": "system", "content": "You write tersely."}
    assert "Make it shorter." in sent["messages"][-1]["content"]
    assert "A long first draft." in sent["messages"][-1]["content"]
    headers = {k.lower(): v for k, v in upstream.headers_seen[-1].items()}
    assert headers["authorization"] == "Bearer sk-local"


def test_a_refine_keeps_no_secret_and_no_unstorable_text_the_model_server_sends(
    org, editor, finished_run, upstream, refine, refines
):
    # A step masks what its servers send back with its credentials; a refine kept the answer as
    # it came: a server that echoed the key put it in the run's output, for every viewer and any
    # share link, and a NUL in the answer failed the new version's INSERT on PostgreSQL.
    writer(org, upstream, "sk-local-9")
    upstream.answers = [reply("Draft."), reply("Short, with sk-local-9 and a\u0000b.")]
    run = finished_run("Write.", agent="writer")
    refine(editor, run, "Make it shorter.")
    refines.work()
    two = editor.get(f"/api/v1/runs/{run.pk}/versions/2").json()
    assert two["output"] == "Short, with [redacted] and a\ufffdb."
    upstream.answers = [error(401, "Incorrect API key provided: sk-local-9")]
    refine(editor, run, "Again.")
    refines.work()
    detail = editor.get(f"/api/v1/runs/{run.pk}").json()
    assert detail["refine_status"] == "failed"
    assert "sk-local-9" not in detail["refine_error"]
    assert "[redacted]" in detail["refine_error"]


def test_a_json_output_is_refined_in_json_mode(editor, finished_run, upstream, refine, refines):
    agent = {"model": "openai/test", "base_url": f"{upstream.url}/v1"}
    upstream.answers = [reply('{"items": [1, 2, 3]}'), reply('{"items": [1]}')]
    run = finished_run("List.", agent=agent, output_type="json")
    refine(editor, run, "Keep only the first item.")
    refines.work()
    assert upstream.requests[-1]["response_format"] == {"type": "json_object"}
    two = editor.get(f"/api/v1/runs/{run.pk}/versions/2").json()
    assert (two["output"], two["output_type"]) == ({"items": [1]}, "json")


def test_a_failed_refine_keeps_the_error_and_can_be_tried_again(
    editor, finished_run, upstream, refine, refines
):
    agent = {"model": "openai/test", "base_url": f"{upstream.url}/v1"}
    upstream.answers = [reply("Draft."), error(500, "model overloaded"), reply("Better.")]
    run = finished_run("Write.", agent=agent)

    refine(editor, run, "Improve it.")
    refines.work()
    detail = editor.get(f"/api/v1/runs/{run.pk}").json()
    assert detail["refine_status"] == "failed"
    assert "500" in detail["refine_error"] and "model overloaded" in detail["refine_error"]
    assert detail["output"] == "Draft."
    assert [v["version"] for v in versions(editor, run)] == [1]

    assert refine(editor, run, "Improve it.").status_code == 202
    assert editor.get(f"/api/v1/runs/{run.pk}").json()["refine_error"] is None
    refines.work()
    run.refresh_from_db()
    assert (run.output, run.refine_status, run.refine_error) == ("Better.", "idle", "")


def test_without_an_agent_step_the_default_model_refines(editor, org, refine, refines):
    definition = {
        "nodes": [{"id": "say", "type": "transform", "config": {"output": "Plain text."}}],
        "edges": [],
        "output_type": "markdown",
    }
    flow = create_orchestration(org, {"name": "T", "definition": definition, "status": "active"})
    run = run_to_rest(flow)
    refine(editor, run, "Shout it.")
    refines.work()
    run = Run.objects.get(pk=run.pk)
    assert run.refine_status == "idle", run.refine_error
    assert "Shout it." in run.output and "Plain text." in run.output


def test_what_a_refine_costs_is_added_to_the_run_and_kept_on_its_version(
    editor, finished_run, refine, refines
):
    priced = {"model": "builtin/echo", "price": {"input_per_1k": 1, "output_per_1k": 2}}
    run = finished_run("A draft of some length.", agent=priced)
    before = (run.tokens_input, run.tokens_output, run.cost_usd)
    assert before[0] > 0 and before[2] > 0

    refine(editor, run, "Make it shorter.")
    refines.work()
    run.refresh_from_db()
    two = OutputVersion.objects.get(run=run, version=2)
    assert two.tokens_input > 0 and two.tokens_output > 0 and two.cost_usd > 0
    assert (run.tokens_input, run.tokens_output, run.cost_usd) == (
        before[0] + two.tokens_input,
        before[1] + two.tokens_output,
        before[2] + two.cost_usd,
    )
    detail = editor.get(f"/api/v1/runs/{run.pk}").json()
    assert detail["cost_usd"] == pytest.approx(float(run.cost_usd))


def test_a_refine_whose_worker_was_lost_fails_and_can_be_asked_again(
    editor, finished_run, refine, refines
):
    from datetime import timedelta

    from django.utils import timezone

    from runs.services import timers

    run = finished_run("Draft.")
    refine(editor, run, "Improve it.")
    refines.queued.clear()  # the worker that took the task died with it
    timers.reap()
    assert editor.get(f"/api/v1/runs/{run.pk}").json()["refine_status"] == "refining"

    Run.objects.filter(pk=run.pk).update(refine_started_at=timezone.now() - timedelta(minutes=4))
    assert timers.reap()["refines_lost"] == 1
    detail = editor.get(f"/api/v1/runs/{run.pk}").json()
    assert detail["refine_status"] == "failed"
    assert "worker was lost" in detail["refine_error"]
    assert detail["output"] == "Draft."

    assert refine(editor, run, "Improve it.").status_code == 202
    refines.work()
    run.refresh_from_db()
    assert run.refine_status == "idle" and "Improve it." in run.output


def test_a_refine_goes_through_the_network_guard(
    editor, finished_run, upstream, settings, refine, refines
):
    """Refine calls the model on the same path as agent steps: once the model server's address
    is no longer allowed, the rewrite is refused before any request leaves."""
    agent = {"model": "openai/test", "base_url": f"{upstream.url}/v1"}
    upstream.answers = [reply("Draft."), reply("Better.")]
    run = finished_run("Write.", agent=agent)
    sent = len(upstream.requests)
    settings.HTTP_ALLOWED_NETWORKS = []

    refine(editor, run, "Improve it.")
    refines.work()
    detail = editor.get(f"/api/v1/runs/{run.pk}").json()
    assert detail["refine_status"] == "failed"
    assert "internal address" in detail["refine_error"]
    assert "127.0.0.1 is or resolves" in detail["refine_error"]
    assert len(upstream.requests) == sent
