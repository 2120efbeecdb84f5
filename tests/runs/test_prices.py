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
