"""What agent steps cost: the agent's price, else the maintained price table; unknown is null."""

from __future__ import annotations

import pytest
from genai_prices import Usage, calc_price

from runs.models import RunEvent, StepRun
from tests.runs.harness import run_to_rest
from tests.runs.servers import local_server, reply

pytestmark = pytest.mark.django_db


@pytest.fixture
def model_server(settings):
    settings.HTTP_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    with local_server() as server:
        yield server


def ask(agent: dict, node_id: str = "ask", **config) -> dict:
    return {"id": node_id, "type": "agent", "config": {"agent": agent, "prompt": "Hi", **config}}


def test_a_known_openai_model_costs_what_the_price_table_says(make_flow, model_server):
    model_server.answers = [reply("hello", tokens=(1200, 300))]
    agent = {"model": "openai/gpt-4o", "base_url": f"{model_server.url}/v1"}
    run = run_to_rest(make_flow([ask(agent)]))
    assert run.status == "succeeded", run.error
    step = StepRun.objects.get(run=run)
    table = calc_price(Usage(input_tokens=1200, output_tokens=300), "gpt-4o", provider_id="openai")
    assert float(step.cost_usd) == pytest.approx(float(table.total_price))
    assert float(step.cost_usd) > 0
    assert (float(run.cost_usd), run.unpriced) == (float(step.cost_usd), False)


def test_the_agents_price_overrides_the_table(make_flow, model_server):
    model_server.answers = [reply("hello", tokens=(1000, 2000))]
    agent = {
        "model": "openai/gpt-4o",
        "base_url": f"{model_server.url}/v1",
        "price": {"input_per_1k": 1, "output_per_1k": 3},
    }
    run = run_to_rest(make_flow([ask(agent)]))
    assert float(StepRun.objects.get(run=run).cost_usd) == pytest.approx(1 * 1 + 2 * 3)


def test_a_model_the_table_does_not_know_runs_unpriced_never_at_zero(
    make_flow, model_server, viewer
):
    model_server.answers = [reply("hello", tokens=(50, 5))]
    agent = {"model": "openai/my-local-model", "base_url": f"{model_server.url}/v1"}
    flow = make_flow([ask(agent), {"id": "after", "type": "transform", "config": {"output": 1}}])
    run = run_to_rest(flow)
    assert run.status == "succeeded", run.error
    body = viewer.get(f"/api/v1/runs/{run.pk}").json()
    step = next(s for s in body["steps"] if s["step_id"] == "ask")
    assert (step["cost_usd"], step["unpriced"]) == (None, True)
    assert step["tokens"] == {"input": 50, "output": 5}
    other = next(s for s in body["steps"] if s["step_id"] == "after")
    assert (other["cost_usd"], other["unpriced"]) == (0.0, False)
    assert (body["cost_usd"], body["unpriced"]) == (0.0, True)
    turn = RunEvent.objects.get(run=run, type="agent_turn").data
    assert (turn["cost_usd"], turn["unpriced"]) == (None, True)
    done = RunEvent.objects.get(run=run, type="step_complete", step_id="ask").data
    assert (done["cost_usd"], done["unpriced"]) == (None, True)


def test_the_offline_models_cost_nothing_and_are_priced(make_flow):
    run = run_to_rest(make_flow([ask({"model": "builtin/echo"})]))
    step = StepRun.objects.get(run=run)
    assert (step.cost_usd, run.unpriced) == (0, False)


def test_an_agent_without_a_price_shows_null_and_one_with_a_price_shows_it(editor):
    plain = editor.post("/api/v1/agents", {"name": "a", "model": "gpt"}, format="json").json()
    assert plain["price"] is None
    priced = editor.post(
        "/api/v1/agents",
        {"name": "b", "model": "gpt", "price": {"input_per_1k": 0.5}},
        format="json",
    ).json()
    assert priced["price"] == {"input_per_1k": 0.5, "output_per_1k": 0}


def test_under_a_credit_limit_an_unpriced_model_is_refused_before_it_is_called(
    make_flow, model_server
):
    model_server.answers = [reply("hello")]
    agent = {"model": "openai/my-local-model", "base_url": f"{model_server.url}/v1"}
    run = run_to_rest(make_flow([ask(agent)], credit_limit="5"))
    assert run.status == "failed"
    assert run.error["code"] == "model_unpriced"
    assert "has no known price" in run.error["detail"]
    assert model_server.requests == []
    assert StepRun.objects.get(run=run).error["code"] == "model_unpriced"


def test_under_a_credit_limit_a_priced_local_model_runs(make_flow, model_server):
    model_server.answers = [reply("hello")]
    agent = {
        "model": "openai/my-local-model",
        "base_url": f"{model_server.url}/v1",
        "price": {"input_per_1k": 0, "output_per_1k": 0},
    }
    run = run_to_rest(make_flow([ask(agent)], credit_limit="5"))
    assert run.status == "succeeded", run.error
    assert len(model_server.requests) == 1


def looping_agent(calls: int) -> tuple[dict, list]:
    """A scripted agent that asks for a tool `calls` times, then answers; each model call costs
    (its words in and out) x 1 USD per token."""
    agent = {"model": "builtin/script", "price": {"input_per_1k": 1000, "output_per_1k": 1000}}
    script = [{"tool": "nosuch", "args": {}} for _ in range(calls)] + ["done"]
    return agent, script


@pytest.mark.parametrize("budget_action", ["fail", None])
def test_a_tool_loop_stops_inside_the_step_once_over_the_credit_limit(make_flow, budget_action):
    agent, script = looping_agent(9)
    settings = {"budget_action": budget_action} if budget_action else {}
    flow = make_flow(
        [ask(agent, script=script, max_turns=20)], credit_limit="25", settings=settings
    )
    run = run_to_rest(flow)
    assert run.status == "failed"
    assert run.error["code"] == "cost_limit_exceeded"
    step = StepRun.objects.get(run=run)
    turns = RunEvent.objects.filter(run=run, type="agent_turn").count()
    # Each call costs more than the one before (the conversation grows): it stops at the first
    # call that takes the step over $25, long before the 10 the script would make.
    assert 1 < turns < 10
    assert step.turns == turns and step.status == "failed"
    assert step.error["code"] == "cost_limit_exceeded"
    assert float(step.cost_usd) > 25
    assert float(run.cost_usd) == pytest.approx(float(step.cost_usd))
    costs = [e.data["cost_usd"] for e in RunEvent.objects.filter(run=run, type="agent_turn")]
    assert sum(costs[:-1]) <= 25 < sum(costs)


def test_the_budget_counts_what_earlier_steps_spent(make_flow):
    agent, script = looping_agent(9)
    first = {"id": "first", "type": "agent", "config": {"agent": agent, "prompt": "a b c d e"}}
    flow = make_flow(
        [first, ask(agent, script=script, max_turns=20)],
        [{"source": "first", "target": "ask"}],
        credit_limit="25",
    )
    run = run_to_rest(flow)
    spent_first = float(StepRun.objects.get(run=run, node_id="first").cost_usd)
    ask_step = StepRun.objects.get(run=run, node_id="ask")
    costs = [
        e.data["cost_usd"]
        for e in RunEvent.objects.filter(run=run, type="agent_turn", step_id="ask")
    ]
    assert spent_first > 0
    assert spent_first + sum(costs[:-1]) <= 25 < spent_first + sum(costs)
    assert ask_step.error["code"] == "cost_limit_exceeded"


def test_within_the_credit_limit_a_tool_loop_finishes(make_flow):
    agent, script = looping_agent(3)
    run = run_to_rest(make_flow([ask(agent, script=script)], credit_limit="1000"))
    assert run.status == "succeeded", run.error
    assert StepRun.objects.get(run=run).turns == 4


def test_with_budget_action_approve_the_step_ends_and_the_run_waits_for_a_raise(make_flow):
    agent, script = looping_agent(9)
    flow = make_flow(
        [
            ask(agent, script=script, max_turns=20),
            {"id": "after", "type": "transform", "config": {"output": 1}},
        ],
        [{"source": "ask", "target": "after"}],
        credit_limit="25",
        settings={"budget_action": "approve"},
    )
    run = run_to_rest(flow)
    assert (run.status, run.budget_hold) == ("paused", True)
    step = StepRun.objects.get(run=run)
    assert (step.node_id, step.status, step.turns) == ("ask", "succeeded", 10)


def test_a_step_whose_output_its_edge_refuses_still_counts_what_it_spent(make_flow):
    agent, script = looping_agent(0)
    edge = {"source": "ask", "target": "after", "payload_schema": {"type": "object"}}
    flow = make_flow(
        [ask(agent, script=script), {"id": "after", "type": "transform", "config": {"output": 1}}],
        [edge],
    )
    run = run_to_rest(flow)
    assert run.status == "failed"
    step = StepRun.objects.get(run=run, node_id="ask")
    assert step.status == "failed" and "edge" in step.error["message"]
    assert step.cost_usd > 0 and step.turns == 1
    assert (run.cost_usd, run.tokens_input) == (step.cost_usd, step.tokens_input)
