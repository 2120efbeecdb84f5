"""Agent and HTTP steps run through the services, against local servers."""

from __future__ import annotations

import pytest

from approvals.models import Approval
from core import crypto
from orchestrator.models import Agent, Credential
from runs.models import RunEvent, StepRun
from tests.runs.conftest import edge
from tests.runs.harness import drain, run_to_rest, skip_waits, statuses
from tests.runs.servers import error, local_server, reply

pytestmark = pytest.mark.django_db


@pytest.fixture
def upstream(settings):
    settings.HTTP_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    with local_server() as server:
        yield server


def agent_node(node_id: str, agent, prompt: str = "Hello {{ input.name }}", **config) -> dict:
    return {"id": node_id, "type": "agent", "config": {"agent": agent, "prompt": prompt, **config}}


def test_the_echo_model_answers_with_its_rendered_prompt(make_flow):
    flow = make_flow(
        [agent_node("greet", {"model": "builtin/echo"})],
        inputs=[{"name": "name", "type": "string"}],
    )
    run = run_to_rest(flow, {"name": "Ada"})
    assert run.status == "succeeded"
    assert run.output == "Hello Ada"
    step = StepRun.objects.get(run=run)
    assert step.model == "builtin/echo"
    assert (step.tokens_input, step.tokens_output, step.turns) == (2, 2, 1)


def test_a_scripted_agent_calls_tools_and_the_trace_records_it(make_flow, upstream):
    agent = {
        "model": "builtin/script",
        "tools": ["http_get"],
        "price": {"input_per_1k": 10, "output_per_1k": 20},
    }
    script = [
        {"tool": "http_get", "args": {"url": f"{upstream.url}/a"}},
        {
            "tool_calls": [
                {"name": "http_get", "arguments": {"url": f"{upstream.url}/b"}},
                {"name": "rm_rf", "arguments": {}},
            ]
        },
        "done",
    ]
    run = run_to_rest(make_flow([agent_node("work", agent, "Look around", script=script)]))
    assert run.status == "succeeded", run.error
    step = StepRun.objects.get(run=run)
    assert (step.output, step.turns, step.tool_calls) == ("done", 3, 3)
    assert float(step.cost_usd) == pytest.approx(
        step.tokens_input / 1000 * 10 + step.tokens_output / 1000 * 20
    )
    assert run.cost_usd == step.cost_usd
    assert upstream.hits == {"/a": 1, "/b": 1}
    events = list(RunEvent.objects.filter(run=run, step_id="work").values_list("type", "data"))
    results = [data for kind, data in events if kind == "tool_result"]
    assert [r["ok"] for r in results] == [True, True, False]
    assert "no tool 'rm_rf'" in results[2]["preview"]
    assert [kind for kind, _ in events].count("agent_turn") == 3


def test_an_org_agent_on_an_openai_compatible_server(org, make_flow, upstream):
    upstream.answers = [
        reply(tools=[("http_get", {"url": f"{upstream.url}/weather"})], tokens=(20, 5)),
        reply('{"forecast": "sun"}', tokens=(40, 6)),
    ]
    credential = Credential.objects.create(
        organization=org, name="key", kind="api_key", encrypted_value=crypto.encrypt("sk-local")
    )
    Agent.objects.create(
        organization=org,
        name="forecaster",
        model="openai/test-model",
        base_url=f"{upstream.url}/v1",
        credential=credential,
        tools=["http_get"],
        system_prompt="You forecast.",
        price={"input_per_1k": 1, "output_per_1k": 1},
    )
    flow = make_flow([agent_node("ask", "forecaster", "Weather?", response_format="json")])
    run = run_to_rest(flow)
    assert run.status == "succeeded", run.error
    step = StepRun.objects.get(run=run)
    assert step.output == {"forecast": "sun"}
    assert (step.tokens_input, step.tokens_output, step.tool_calls) == (60, 11, 1)
    first, second = upstream.requests
    assert first["model"] == "test-model"
    assert first["messages"][0] == {"role": "system", "content": "You forecast."}
    assert first["tools"][0]["function"]["name"] == "http_get"
    assert second["messages"][-1]["role"] == "tool"
    assert second["response_format"] == {"type": "json_object"}
    sent = {k.lower(): v for k, v in upstream.headers_seen[0].items()}
    assert sent["authorization"] == "Bearer sk-local"


def test_a_refused_api_key_fails_without_retrying(make_flow, upstream):
    upstream.answers = [error(401, "bad key")]
    agent = {"model": "openai/test", "base_url": f"{upstream.url}/v1"}
    flow = make_flow([{**agent_node("ask", agent, "Hi"), "retry": {"max_attempts": 3}}])
    run = run_to_rest(flow)
    assert run.status == "failed"
    assert "refused the API key" in run.error["detail"]
    assert StepRun.objects.filter(run=run).count() == 1


MALFORMED_ANSWERS = [
    b"<html>Bad gateway</html>",
    [1, 2],
    {"choices": "x"},
    {"choices": []},
    {"choices": [{"message": None}]},
    {"choices": [{"message": {"content": ["not", "text"]}}]},
    {"choices": [{"message": {"tool_calls": [{"id": "c1", "function": None}]}}]},
    {"choices": [{"message": {"tool_calls": [{"id": "c1", "function": {"arguments": "{}"}}]}}]},
    {"choices": [{"message": {"content": "hi"}}], "usage": {"prompt_tokens": "many"}},
]


@pytest.mark.parametrize("answer", MALFORMED_ANSWERS, ids=range(len(MALFORMED_ANSWERS)))
def test_a_malformed_model_answer_fails_the_step_with_a_sentence(make_flow, upstream, answer):
    upstream.answers = [(200, answer)]
    agent = {"model": "openai/test", "base_url": f"{upstream.url}/v1"}
    run = run_to_rest(make_flow([agent_node("ask", agent, "Hi")]))
    assert run.status == "failed"
    message = StepRun.objects.get(run=run).error["message"]
    assert message.startswith("the model's answer was malformed: "), message
    assert "internal error" not in message and "Error" not in message


def test_a_model_base_url_that_is_no_url_fails_the_step_with_a_sentence(make_flow, upstream):
    agent = {"model": "openai/test", "base_url": "http://0177.0.0.1:8000/v1"}
    run = run_to_rest(make_flow([agent_node("ask", agent, "Hi")]))
    message = StepRun.objects.get(run=run).error["message"]
    assert message.startswith("not a valid URL: 'http://0177.0.0.1:8000/v1'"), message


def test_a_server_error_is_retried_then_succeeds(make_flow, upstream):
    upstream.answers = [error(500, "boom"), reply("fine")]
    agent = {"model": "openai/test", "base_url": f"{upstream.url}/v1"}
    flow = make_flow([{**agent_node("ask", agent, "Hi"), "retry": {"max_attempts": 2}}])
    run = run_to_rest(flow)
    assert run.status == "running"
    skip_waits()
    drain()
    run.refresh_from_db()
    assert run.status == "succeeded"
    attempts = StepRun.objects.filter(run=run).order_by("attempt")
    assert [(s.attempt, s.status) for s in attempts] == [(1, "failed"), (2, "succeeded")]
    assert RunEvent.objects.filter(run=run, type="step_retry").count() == 1


def test_credit_limit_stops_the_run_with_cost_limit_exceeded(make_flow):
    agent = {"model": "builtin/echo", "price": {"input_per_1k": 1000, "output_per_1k": 0}}
    flow = make_flow(
        [agent_node("one", agent), agent_node("two", agent)],
        [edge("one", "two")],
        inputs=[{"name": "name", "type": "string"}],
        credit_limit="0.5",
    )
    run = run_to_rest(flow, {"name": "Ada"})
    assert run.status == "failed"
    assert run.error["code"] == "cost_limit_exceeded"
    assert run.error["detail"] == "Cost limit exceeded: $2.00 > max $0.50"
    assert statuses(run) == {"one": "succeeded", "two": "cancelled"}


def test_a_run_over_its_credit_limit_stops_asking_people_and_fails(make_flow):
    """A branch goes over the limit while another waits for an approval: the run ends failed
    with cost_limit_exceeded at once, its open approval withdrawn, rather than staying paused
    until someone answers a question whose answer can no longer change anything."""
    agent = {"model": "builtin/echo", "price": {"input_per_1k": 1000, "output_per_1k": 0}}
    gate = {"id": "gate", "type": "approval", "config": {"prompt": "ok?"}}
    flow = make_flow(
        [agent_node("one", agent), gate],
        [],
        inputs=[{"name": "name", "type": "string"}],
        credit_limit="0.5",
    )
    run = run_to_rest(flow, {"name": "Ada"})
    assert run.status == "failed"
    assert run.error["code"] == "cost_limit_exceeded"
    assert statuses(run) == {"one": "succeeded", "gate": "cancelled"}
    assert list(Approval.objects.filter(run=run).values_list("status", flat=True)) == ["cancelled"]


def test_an_http_step_gets_json_and_sends_the_credential(org, make_flow, upstream):
    Credential.objects.create(
        organization=org, name="tok", kind="bearer", encrypted_value=crypto.encrypt("t0k")
    )
    flow = make_flow(
        [
            {
                "id": "get",
                "type": "http",
                "config": {"url": f"{upstream.url}/things", "credential": "tok"},
            },
            {
                "id": "count",
                "type": "transform",
                "config": {"output": "{{ steps.get.output.body['items'] | length }}"},
            },
        ],
        [edge("get", "count")],
        output_type="json",
    )
    run = run_to_rest(flow)
    assert run.status == "succeeded", run.error
    assert run.output == 3
    assert {k.lower(): v for k, v in upstream.headers_seen[0].items()}["authorization"] == (
        "Bearer t0k"
    )


def test_http_status_400_and_up_fails_the_step(make_flow, upstream):
    run = run_to_rest(
        make_flow([{"id": "get", "type": "http", "config": {"url": f"{upstream.url}/status/404"}}])
    )
    assert run.status == "failed"
    assert "HTTP 404" in run.error["detail"]


def test_http_steps_refuse_loopback_unless_allowed(make_flow, settings):
    settings.HTTP_ALLOWED_NETWORKS = []
    with local_server() as server:
        run = run_to_rest(
            make_flow(
                [
                    {
                        "id": "get",
                        "type": "http",
                        "config": {"url": f"{server.url}/secret"},
                        "retry": {"max_attempts": 3},
                    }
                ]
            )
        )
        assert server.hits == {}
    assert run.status == "failed"
    assert "internal address" in run.error["detail"]
    assert StepRun.objects.filter(run=run).count() == 1


def budget_flow(make_flow):
    agent = {"model": "builtin/echo", "price": {"input_per_1k": 1000, "output_per_1k": 0}}
    return make_flow(
        [agent_node("one", agent), agent_node("two", agent)],
        [edge("one", "two")],
        inputs=[{"name": "name", "type": "string"}],
        credit_limit="0.5",
        settings={"budget_action": "approve"},
    )


def test_budget_action_approve_pauses_and_a_raised_limit_lets_the_run_finish(make_flow, editor):
    from approvals.models import Approval

    run = run_to_rest(budget_flow(make_flow), {"name": "Ada"})
    assert (run.status, run.budget_hold) == ("paused", True)
    assert statuses(run) == {"one": "succeeded"}
    gate = Approval.objects.get(run=run, status="pending")
    assert gate.prompt.startswith("Cost limit exceeded: $2.00 > max $0.50")
    detail = editor.get(f"/api/v1/runs/{run.pk}").json()
    assert detail["human_input_required"]["approval_id"] == str(gate.pk)
    too_low = editor.post(
        f"/api/v1/approvals/{gate.pk}/approve", {"response": {"credit_limit": 1}}, format="json"
    )
    assert too_low.status_code == 400
    ok = editor.post(
        f"/api/v1/approvals/{gate.pk}/approve", {"response": {"credit_limit": 1000}}, format="json"
    )
    assert ok.status_code == 200, ok.json()
    drain()
    run.refresh_from_db()
    assert run.status == "succeeded"
    assert run.credit_limit == 1000


def test_budget_action_approve_denied_fails_with_cost_limit_exceeded(make_flow, editor):
    from approvals.models import Approval

    run = run_to_rest(budget_flow(make_flow), {"name": "Ada"})
    gate = Approval.objects.get(run=run, status="pending")
    editor.post(f"/api/v1/approvals/{gate.pk}/deny")
    run.refresh_from_db()
    assert run.status == "failed"
    assert run.error["code"] == "cost_limit_exceeded"
    assert statuses(run) == {"one": "succeeded", "two": "cancelled"}


def test_every_attempt_of_an_http_step_sends_the_same_idempotency_key(make_flow, upstream):
    flaky = {
        "id": "charge",
        "type": "http",
        "config": {"url": f"{upstream.url}/status/503"},
        "retry": {"max_attempts": 2},
    }
    own = {
        "id": "own",
        "type": "http",
        "config": {"url": f"{upstream.url}/things", "headers": {"idempotency-key": "mine-1"}},
    }
    run = run_to_rest(make_flow([flaky, own]))
    skip_waits()
    drain()
    run.refresh_from_db()
    assert StepRun.objects.filter(run=run, node_id="charge").count() == 2
    keys = [
        {k.lower(): v for k, v in seen.items()}["idempotency-key"] for seen in upstream.headers_seen
    ]
    assert sorted(keys) == sorted([f"{run.pk}:charge", f"{run.pk}:charge", "mine-1"])
