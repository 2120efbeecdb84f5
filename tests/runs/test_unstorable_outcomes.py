"""What a step brings back from outside is kept, whatever its text or figures, and a step whose
outcome cannot be recorded ends, saying why, instead of running until its lease runs out."""

from __future__ import annotations

import pytest
from django.db import connection

from runs.models import RunEvent, StepRun
from tests.runs.harness import run_to_rest
from tests.runs.servers import local_server, reply

pytestmark = pytest.mark.django_db

REPAIRED = "\ufffd"


@pytest.fixture
def upstream(settings):
    settings.HTTP_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    with local_server() as server:
        yield server


def ask(agent: dict) -> dict:
    return {"id": "ask", "type": "agent", "config": {"agent": agent, "prompt": "Hi"}}


def test_an_answer_with_a_nul_or_half_a_surrogate_pair_is_kept_repaired(
    make_flow, upstream, viewer
):
    # PostgreSQL's jsonb refused the step's output: the record failed and the step stayed
    # running for its lease (an hour). SQLite kept it, and every read of the run was a 500.
    flow = make_flow(
        [{"id": "get", "type": "http", "config": {"url": f"{upstream.url}/unstorable"}}]
    )
    run = run_to_rest(flow)
    assert run.status == "succeeded", run.error
    body = StepRun.objects.get(run=run).output["body"]
    assert body == {"text": f"a{REPAIRED}b{REPAIRED}c", f"k{REPAIRED}": [REPAIRED]}
    answer = viewer.get(f"/api/v1/runs/{run.pk}")
    assert answer.status_code == 200
    assert answer.json()["steps"][0]["output"]["body"]["text"] == f"a{REPAIRED}b{REPAIRED}c"


def test_a_model_answer_with_a_nul_is_kept_repaired_in_the_output_and_the_trace(
    make_flow, upstream
):
    upstream.answers = [reply("a\u0000b\ud800c")]
    agent = {"model": "openai/gpt-4o", "base_url": f"{upstream.url}/v1"}
    run = run_to_rest(make_flow([ask(agent)]))
    assert run.status == "succeeded", run.error
    assert StepRun.objects.get(run=run).output == f"a{REPAIRED}b{REPAIRED}c"
    turn = RunEvent.objects.get(run=run, type="agent_turn").data
    assert turn["content"] == f"a{REPAIRED}b{REPAIRED}c"


def test_a_model_server_that_reports_an_impossible_usage_fails_the_step(make_flow, upstream):
    # Three billion tokens overflowed the step's count on PostgreSQL: its record failed and the
    # step stayed running until its lease ran out, then ran and failed alike again.
    upstream.answers = [reply("hello", tokens=(11, 3_000_000_000))]
    agent = {"model": "openai/gpt-4o", "base_url": f"{upstream.url}/v1"}
    run = run_to_rest(make_flow([ask(agent)]))
    assert run.status == "failed"
    step = StepRun.objects.get(run=run)
    assert step.status == "failed"
    assert step.error["message"] == (
        "the model server reported an impossible usage for one call: 11 input and 3000000000 "
        "output tokens (0 to 40,000,000 each)"
    )


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="SQLite keeps a decimal of any size: it records it"
)
def test_a_cost_past_what_a_step_can_record_fails_the_step_saying_so(make_flow, upstream, caplog):
    # Each figure is allowed (the dearest price an agent may give, a call of 40M tokens each
    # way), but two such calls cost more than the cost column holds (100M USD): recording the
    # outcome raised, and the step stayed running until its lease ran out, to fail again.
    upstream.answers = [
        reply(tools=[("http_get", {"url": f"{upstream.url}/data"})], tokens=(40_000_000,) * 2),
        reply("done", tokens=(40_000_000,) * 2),
    ]
    agent = {
        "model": "openai/gpt-4o",
        "base_url": f"{upstream.url}/v1",
        "tools": ["http_get"],
        "price": {"input_per_1k": 1000, "output_per_1k": 1000},
    }
    run = run_to_rest(make_flow([ask(agent)]))
    assert run.status == "failed"
    step = StepRun.objects.get(run=run)
    assert step.status == "failed"
    assert "the step's outcome could not be recorded" in step.error["message"]
    assert run.error["step_id"] == "ask"
    assert StepRun.objects.filter(run=run).count() == 1  # not retried: it would fail alike
    # The worker's line for the step says what its row says, not what the node did.
    [ended] = [r for r in caplog.records if r.msg == "step %s"]
    assert ended.args == ("failed",) and ended.levelname == "ERROR"
    assert "could not be recorded" in ended.error


@pytest.mark.parametrize("where", ["input_per_1k", "output_per_1k"])
def test_a_price_past_the_ceiling_is_refused_on_agents_and_in_definitions(editor, where):
    # A price of 1e308 was kept: the step's cost became infinite and its outcome unrecordable.
    price = {"input_per_1k": 0.1, "output_per_1k": 0.1, where: 1000.5}
    response = editor.post(
        "/api/v1/agents", {"name": "dear", "model": "openai/gpt-4o", "price": price}, format="json"
    )
    assert response.status_code == 400
    assert list(response.json()["fields"]) == [f"price.{where}"]
    inline = {"model": "openai/gpt-4o", "price": price}
    definition = {"nodes": [ask(inline)], "edges": []}
    response = editor.post(
        "/api/v1/orchestrations", {"name": "dear", "definition": definition}, format="json"
    )
    assert response.status_code == 400
    assert list(response.json()["fields"]) == [f"definition.nodes[0].config.agent.price.{where}"]


def test_a_gated_tool_call_whose_arguments_hold_a_nul_waits_for_approval(
    make_flow, upstream, editor
):
    # The model's arguments went into the approval as they came: on PostgreSQL its INSERT
    # failed, and the step stayed running until its lease ran out instead of asking anyone.
    upstream.answers = [reply(tools=[("http_get", {"url": f"{upstream.url}/a\u0000b"})])]
    agent = {
        "model": "openai/gpt-4o",
        "base_url": f"{upstream.url}/v1",
        "tools": [{"tool": "http_get", "approval": {"timeout_s": 3600}}],
    }
    run = run_to_rest(make_flow([ask(agent)]))
    assert run.status == "paused"
    assert StepRun.objects.get(run=run).status == "waiting"
    asked = editor.get(f"/api/v1/approvals?pending=true&run={run.pk}").json()["items"]
    assert [item["args"] for item in asked] == [{"url": f"{upstream.url}/a{REPAIRED}b"}]
