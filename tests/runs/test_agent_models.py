"""The agent step on pydantic-ai against local model servers (real HTTP, the real SDKs): tools,
streamed text, structured output, provider errors and the budget, for OpenAI-compatible and
Anthropic servers; and through the services, with the event log."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import anthropic
import httpx
import openai
import pytest

from orchestrator.models import Agent
from runs.engine import llm
from runs.engine.netguard import NetPolicy
from runs.engine.nodes.agent import run_agent
from runs.engine.nodes.base import AgentSpec, StepContext, StepFailed
from runs.engine.pricing import Price
from runs.engine.states import ErrorCode
from runs.models import RunEvent, StepRun
from tests.runs.harness import run_to_rest
from tests.runs.servers import (
    anthropic_error,
    claude,
    error,
    gemini,
    gemini_error,
    local_server,
    reply,
)

LOCAL = NetPolicy(allowed_networks=("127.0.0.1/32",))
SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "degrees": {"type": "integer"}},
    "required": ["city", "degrees"],
}


@pytest.fixture
def server() -> Iterator:
    with local_server() as running:
        yield running


class Step:
    """A StepContext whose events and streamed text are kept, for one agent step."""

    def __init__(self, spec: AgentSpec, budget_usd: float | None = None, **config) -> None:
        self.events: list[tuple[str, dict]] = []
        self.deltas: list[tuple[int, str]] = []
        self.ctx = StepContext(
            run_id="r",
            step_id="ask",
            attempt=1,
            config={"prompt": "Weather in Paris?", **config},
            emit=lambda kind, data: self.events.append((kind, data)),
            deadline=time.monotonic() + 30,
            net=LOCAL,
            agent=spec,
            budget_usd=budget_usd,
            delta=lambda turn, text: self.deltas.append((turn, text)),
        )

    def run(self):
        return run_agent(self.ctx)

    def of(self, kind: str) -> list[dict]:
        return [data for k, data in self.events if k == kind]

    def streamed(self, turn: int) -> str:
        return "".join(text for t, text in self.deltas if t == turn)


def openai_agent(server, **fields) -> AgentSpec:
    return AgentSpec(
        name="a",
        model="openai/test-model",
        base_url=f"{server.url}/v1",
        api_key="sk-local-key",
        **fields,
    )


def anthropic_agent(server, **fields) -> AgentSpec:
    return AgentSpec(
        name="a",
        model="anthropic/claude-local",
        base_url=server.url,
        api_key="sk-ant-local",
        **fields,
    )


# --- OpenAI-compatible ------------------------------------------------------------------------


def test_an_openai_agent_calls_a_tool_then_answers_streaming_its_text(server):
    server.answers = [
        reply(tools=[("http_get", {"url": f"{server.url}/weather"})], tokens=(20, 5)),
        reply("Sunny and 21 degrees in Paris today.", tokens=(40, 9)),
    ]
    step = Step(
        openai_agent(
            server, tools=("http_get",), price=Price(1, 2), temperature=0.3, max_tokens=321
        )
    )
    result = step.run()
    assert result.output == "Sunny and 21 degrees in Paris today."
    assert (result.turns, result.tool_calls) == (2, 1)
    assert (result.tokens_input, result.tokens_output) == (60, 14)
    assert result.cost_usd == pytest.approx(60 / 1000 * 1 + 14 / 1000 * 2)
    assert server.hits == {"/weather": 1}
    assert [kind for kind, _ in step.events] == [
        "agent_turn",
        "tool_execution",
        "tool_result",
        "agent_turn",
    ]
    first, second = step.of("agent_turn")
    assert first["tool_calls"] == ["http_get"] and first["tokens"] == {"input": 20, "output": 5}
    assert second["content"] == result.output and second["turn"] == 2
    assert step.of("tool_result")[0]["ok"] is True
    # The answer streamed in several pieces, in order, and they make the stored answer.
    assert len([d for d in step.deltas if d[0] == 2]) > 3
    assert step.streamed(2) == result.output
    assert all(request["stream"] is True for request in server.requests)
    assert server.requests[0]["stream_options"] == {"include_usage": True}
    # The agent's settings go on every model call.
    for request in server.requests:
        assert request["temperature"] == 0.3
        # The field an OpenAI-compatible server reads (some ignore `max_completion_tokens`).
        assert request["max_tokens"] == 321 and "max_completion_tokens" not in request
    # Each call carries the tools and the whole conversation: the second, the model's tool call
    # and the tool's result after the prompt.
    first_call, second_call = server.requests
    for request in server.requests:
        assert [tool["function"]["name"] for tool in request["tools"]] == ["http_get"]
    assert [message["role"] for message in first_call["messages"]][-1] == "user"
    asked, answered = second_call["messages"][-2:]
    assert second_call["messages"][:-2] == first_call["messages"]
    assert asked["role"] == "assistant" and answered["role"] == "tool"
    assert asked["tool_calls"][0]["id"] == answered["tool_call_id"]
    assert asked["tool_calls"][0]["function"]["name"] == "http_get"
    assert f"{server.url}/weather" in asked["tool_calls"][0]["function"]["arguments"]
    assert answered["content"]


@pytest.mark.parametrize(
    ("base_url", "field"),
    [
        (None, "max_completion_tokens"),
        ("https://api.openai.com/v1", "max_completion_tokens"),
        ("https://acme.openai.azure.com/openai/v1", "max_completion_tokens"),
        ("http://127.0.0.1:11434/v1", "max_tokens"),
        ("https://openrouter.ai/api/v1", "max_tokens"),
    ],
)
def test_the_output_limit_goes_in_the_field_the_server_reads(base_url, field):
    """OpenAI's own API wants `max_completion_tokens`; the servers that speak its protocol read
    `max_tokens`, and some ignore the other."""
    spec = AgentSpec(
        name="a", model="openai/gpt-4o", base_url=base_url, api_key="sk-key", max_tokens=9
    )
    model = llm.provider_model(spec, llm.http_client(LOCAL, 5), 5)
    supports = model.profile.get("openai_chat_supports_max_completion_tokens", True)
    assert ("max_completion_tokens" if supports else "max_tokens") == field


def test_a_long_answer_is_stored_whole_in_its_turn(server):
    """The stored turn replaces the text a viewer saw stream: it must hold all of it."""
    answer = " ".join(f"word{n}" for n in range(900))
    server.answers = [reply(answer)]
    step = Step(openai_agent(server))
    assert step.run().output == answer
    assert step.of("agent_turn")[0]["content"] == answer == step.streamed(1)


@pytest.mark.parametrize(
    ("answers", "turns"),
    [
        ([reply('{"city": "Paris", "degrees": 21}')], 1),
        ([reply('{"city": "Paris"}'), reply('{"city": "Paris", "degrees": 21}')], 2),
    ],
    ids=["valid", "invalid-then-valid"],
)
def test_an_output_schema_is_asked_for_natively_and_a_wrong_answer_is_sent_back(
    server, answers, turns
):
    server.answers = list(answers)
    step = Step(openai_agent(server), output_schema=SCHEMA)
    result = step.run()
    assert result.output == {"city": "Paris", "degrees": 21}
    assert result.turns == turns
    asked = server.requests[0]["response_format"]
    assert asked["type"] == "json_schema"
    assert asked["json_schema"]["schema"]["required"] == ["city", "degrees"]
    if turns == 2:
        told = json.dumps(server.requests[1]["messages"][-1])
        assert "degrees" in told


def test_the_agents_output_schema_applies_when_the_step_has_none(server):
    server.answers = [reply('{"city": "Paris", "degrees": 21}')]
    result = Step(openai_agent(server, output_schema=SCHEMA)).run()
    assert result.output == {"city": "Paris", "degrees": 21}


def test_the_steps_output_schema_wins_over_its_agents(server):
    server.answers = [reply('{"city": "Paris", "degrees": 21}')]
    agents = {"type": "object", "required": ["summary"]}
    result = Step(openai_agent(server, output_schema=agents), output_schema=SCHEMA).run()
    assert result.output == {"city": "Paris", "degrees": 21}
    assert server.requests[0]["response_format"]["json_schema"]["schema"]["required"] == [
        "city",
        "degrees",
    ]


@pytest.mark.parametrize(
    ("script", "outcome"),
    [
        ([{"reply": {"city": "Oslo", "degrees": 3}}], {"city": "Oslo", "degrees": 3}),
        (["not json", {"reply": {"city": "Oslo", "degrees": 3}}], {"city": "Oslo", "degrees": 3}),
        ([{"reply": {"city": "Oslo"}}] * 3, ErrorCode.OUTPUT_INVALID),
    ],
    ids=["valid", "invalid-then-valid", "invalid-three-times"],
)
def test_a_scripted_agent_answers_an_output_schema_in_its_text(script, outcome):
    step = Step(AgentSpec(name="s", model="builtin/script", script=tuple(script)))
    step.ctx.config["output_schema"] = SCHEMA
    if isinstance(outcome, dict):
        assert step.run().output == outcome
        return
    with pytest.raises(StepFailed) as failed:
        step.run()
    assert failed.value.code == outcome


def test_an_answer_still_invalid_after_two_retries_fails_with_output_invalid(server):
    server.answers = [reply('{"city": "Paris"}')] * 3
    step = Step(openai_agent(server), output_schema=SCHEMA)
    with pytest.raises(StepFailed) as failed:
        step.run()
    assert failed.value.code == ErrorCode.OUTPUT_INVALID
    assert failed.value.retryable is False
    assert "output_schema" in failed.value.message
    assert len(server.requests) == 3
    assert failed.value.usage["turns"] == 3


@pytest.mark.parametrize(
    ("status", "retryable", "words"),
    [
        (401, False, "the provider refused the API key"),
        (429, True, "the model server answered 429"),
        (500, True, "the model server answered 500"),
        (503, True, "the model server answered 503"),
        (400, False, "the model server refused the request (400)"),
    ],
)
def test_provider_errors_map_to_step_errors(server, status, retryable, words):
    server.answers = [error(status, "nope, sk-local-key is not welcome here")]
    with pytest.raises(StepFailed) as failed:
        Step(openai_agent(server)).run()
    assert failed.value.retryable is retryable
    assert failed.value.message.startswith(words), failed.value.message
    assert "sk-local-key" not in failed.value.message
    assert len(server.requests) == 1  # the SDK does not retry on its own: the step's retry does


def test_an_sdk_error_pydantic_ai_lets_through_is_a_sentence_for_each_provider():
    """The Anthropic SDK is loaded by the first `anthropic/` step (it is not imported at start-up,
    `tests/ops/test_start_up.py`); its errors read as the OpenAI SDK's do."""
    request = httpx.Request("POST", "http://127.0.0.1/v1/messages")
    spec = AgentSpec(name="a", model="anthropic/claude", api_key="sk-ant-local-key")
    for error_class in (anthropic.APIError, openai.APIError):
        error = error_class("Stream broke off, sk-ant-local-key.", request, body=None)
        failed = llm.failure(error, spec, 10)
        assert failed.message == "the model's answer was malformed: stream broke off, [redacted]"
        assert failed.retryable


def test_a_looping_agent_stops_inside_the_step_once_over_its_budget(server):
    loop = [reply(tools=[("http_get", {"url": f"{server.url}/x"})], tokens=(1000, 0))] * 10
    server.answers = loop
    spec = openai_agent(server, tools=("http_get",), price=Price(1, 0))  # $1 per call
    with pytest.raises(StepFailed) as failed:
        Step(spec, budget_usd=2.5).run()
    assert failed.value.code == ErrorCode.COST_LIMIT_EXCEEDED
    assert failed.value.usage["turns"] == 3
    assert server.hits["/x"] == 2  # the third call's tools never ran


def test_max_turns_fails_the_step_with_a_sentence(server):
    server.answers = [reply(tools=[("http_get", {"url": f"{server.url}/x"})])] * 5
    with pytest.raises(StepFailed) as failed:
        Step(openai_agent(server, tools=("http_get",), max_turns=2)).run()
    assert failed.value.message == "the agent used all 2 turns without a final answer"
    assert len(server.requests) == 2


# --- Anthropic --------------------------------------------------------------------------------


def test_an_anthropic_agent_uses_a_tool_and_streams_over_the_messages_api(server):
    server.answers = [
        claude(
            "Let me look.", tools=[("http_get", {"url": f"{server.url}/weather"})], tokens=(30, 8)
        ),
        claude("It is sunny in Paris, 21 degrees.", tokens=(50, 10)),
    ]
    spec = anthropic_agent(
        server, tools=("http_get",), system_prompt="You forecast.", max_tokens=321
    )
    step = Step(spec)
    result = step.run()
    assert result.output == "It is sunny in Paris, 21 degrees."
    assert (result.turns, result.tool_calls) == (2, 1)
    assert (result.tokens_input, result.tokens_output) == (80, 18)
    assert server.hits == {"/weather": 1}
    first, second = server.requests
    assert first["stream"] is True and first["model"] == "claude-local"
    assert first["system"] in ("You forecast.", [{"type": "text", "text": "You forecast."}])
    assert first["tools"][0]["name"] == "http_get"
    assert first["max_tokens"] == second["max_tokens"] == 321
    returned = second["messages"][-1]["content"][0]
    assert returned["type"] == "tool_result" and returned["tool_use_id"] == "toolu_0"
    assert step.streamed(1) == "Let me look."
    assert step.streamed(2) == result.output
    assert [d[0] for d in step.deltas] == sorted(d[0] for d in step.deltas)
    assert step.of("agent_turn")[0]["tool_calls"] == ["http_get"]


def test_an_anthropic_agent_answers_an_output_schema_through_its_answer_tool(server):
    titled = {**SCHEMA, "title": "Weather report"}
    server.answers = [claude(tools=[("final_result", {"city": "Paris", "degrees": 2})])]
    step = Step(anthropic_agent(server, price=Price(1000, 1000)), budget_usd=0.0)
    step.ctx.config["output_schema"] = titled
    result = step.run()
    # The answer tool is no tool call: the budget check lets the final answer through.
    assert result.output == {"city": "Paris", "degrees": 2}
    turn = step.of("agent_turn")[0]
    assert turn["tool_calls"] == [] and json.loads(turn["content"])["city"] == "Paris"
    assert server.requests[0]["tools"][0]["input_schema"]["required"] == ["city", "degrees"]


@pytest.mark.parametrize(
    ("status", "kind", "retryable"),
    [
        (401, "authentication_error", False),
        (429, "rate_limit_error", True),
        (529, "overloaded_error", True),
    ],
)
def test_anthropic_errors_map_to_step_errors(server, status, kind, retryable):
    server.answers = [anthropic_error(status, kind, "no")]
    with pytest.raises(StepFailed) as failed:
        Step(anthropic_agent(server)).run()
    assert failed.value.retryable is retryable
    if status == 401:
        assert failed.value.message.startswith("the provider refused the API key")


# --- Gemini -----------------------------------------------------------------------------------


def gemini_agent(server, **fields) -> AgentSpec:
    return AgentSpec(
        name="g", model="google/gemini-local", base_url=server.url, api_key="g-local-key", **fields
    )


def test_a_gemini_agent_calls_a_tool_and_streams_its_answer(server):
    server.answers = [
        gemini(tools=[("http_get", {"url": f"{server.url}/weather"})], tokens=(30, 4)),
        gemini("Sunny in Paris, 21 degrees.", tokens=(45, 8)),
    ]
    step = Step(
        gemini_agent(
            server, tools=("http_get",), price=Price(1, 1), temperature=0.3, max_tokens=321
        )
    )
    result = step.run()
    assert result.output == "Sunny in Paris, 21 degrees."
    assert (result.turns, result.tool_calls) == (2, 1)
    assert (result.tokens_input, result.tokens_output) == (75, 12)
    assert server.hits == {"/weather": 1}
    assert step.streamed(2) == result.output
    assert len([d for d in step.deltas if d[0] == 2]) > 3
    sent = {k.lower(): v for k, v in server.headers_seen[0].items()}
    assert sent["x-goog-api-key"] == "g-local-key"
    for request in server.requests:
        assert request["generationConfig"]["maxOutputTokens"] == 321
        assert request["generationConfig"]["temperature"] == 0.3


@pytest.mark.parametrize(
    ("status", "state", "retryable"),
    [(401, "UNAUTHENTICATED", False), (429, "RESOURCE_EXHAUSTED", True), (500, "INTERNAL", True)],
)
def test_gemini_errors_map_to_step_errors(server, status, state, retryable):
    server.answers = [gemini_error(status, state, "no")]
    with pytest.raises(StepFailed) as failed:
        Step(gemini_agent(server)).run()
    assert failed.value.retryable is retryable, failed.value.message
    if status == 401:
        assert failed.value.message.startswith("the provider refused the API key")
    assert len(server.requests) == 1


def test_a_google_agents_calls_go_through_the_net_guard():
    """No local Gemini server here: the model's requests are refused by the guard before any
    connection, which shows that the Gemini SDK was given the guarded client."""
    spec = AgentSpec(
        name="g",
        model="google/gemini-3.5-flash-lite",
        base_url="http://10.1.2.3/",
        api_key="g-key-123",
    )
    step = Step(spec)
    step.ctx.net = NetPolicy()
    with pytest.raises(StepFailed) as failed:
        step.run()
    assert "internal addresses are refused" in failed.value.message


# --- through the services ---------------------------------------------------------------------


@pytest.mark.django_db
def test_an_anthropic_agent_step_records_its_turns_in_the_event_log(make_flow, settings, server):
    settings.HTTP_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    server.answers = [
        claude(tools=[("http_get", {"url": f"{server.url}/weather"})]),
        claude("Sunny."),
    ]
    agent = {"model": "anthropic/claude-local", "base_url": server.url, "tools": ["http_get"]}
    agent["price"] = {"input_per_1k": 1, "output_per_1k": 1}
    node = {"id": "ask", "type": "agent", "config": {"agent": agent, "prompt": "Weather?"}}
    run = run_to_rest(make_flow([node]))
    assert run.status == "succeeded", run.error
    assert run.output == "Sunny."
    step = StepRun.objects.get(run=run)
    assert (step.turns, step.tool_calls, step.tokens_input) == (2, 1, 22)
    kinds = list(RunEvent.objects.filter(run=run, step_id="ask").values_list("type", flat=True))
    assert [k for k in kinds if k in ("agent_turn", "tool_execution", "tool_result")] == [
        "agent_turn",
        "tool_execution",
        "tool_result",
        "agent_turn",
    ]


@pytest.mark.django_db
def test_a_library_agents_max_tokens_and_temperature_reach_the_model(
    org, make_flow, settings, server
):
    settings.HTTP_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    server.answers = [reply("Brief.")]
    Agent.objects.create(
        organization=org,
        name="brief",
        model="openai/test-model",
        base_url=f"{server.url}/v1",
        temperature=0.3,
        max_tokens=64,
        price={"input_per_1k": 0, "output_per_1k": 0},
    )
    node = {"id": "ask", "type": "agent", "config": {"agent": "brief", "prompt": "Weather?"}}
    settings.OPENAI_API_KEY = "sk-local-key"
    run = run_to_rest(make_flow([node]))
    assert run.status == "succeeded", run.error
    (request,) = server.requests
    assert request["temperature"] == 0.3
    assert request["max_tokens"] == 64


@pytest.mark.django_db
def test_a_credit_limit_stops_a_looping_agent_inside_its_step(make_flow, settings, server):
    settings.HTTP_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    agent = {
        "model": "builtin/script",
        "tools": ["http_get"],
        "price": {"input_per_1k": 100, "output_per_1k": 100},
    }
    script = [{"tool": "http_get", "args": {"url": f"{server.url}/x"}}] * 20
    node = {
        "id": "loop",
        "type": "agent",
        "config": {"agent": agent, "prompt": "Go", "script": script},
    }
    run = run_to_rest(make_flow([node], credit_limit="5"))
    assert run.status == "failed"
    assert run.error["code"] == "cost_limit_exceeded"
    step = StepRun.objects.get(run=run)
    assert step.error["code"] == "cost_limit_exceeded"
    assert 1 <= step.turns < 20
    assert server.hits["/x"] == step.turns - 1


def test_an_output_schemas_pattern_runs_on_re2_not_on_backtracking_re():
    """A pattern that backtracks for ever on Python's `re` (`^(a+)+$` against 40 a's and a `!`)
    checks an agent's answer at once: an output_schema is applied as every user schema is."""
    schema = {"type": "object", "properties": {"code": {"type": "string", "pattern": "^(a+)+$"}}}
    answer = {"code": "a" * 40 + "!"}
    step = Step(AgentSpec(name="s", model="builtin/script", script=({"reply": answer},) * 3))
    step.ctx.config["output_schema"] = schema
    with pytest.raises(StepFailed) as failed:
        step.run()
    assert failed.value.code == ErrorCode.OUTPUT_INVALID
    assert "does not match" in failed.value.message
