"""Durable agent steps: every finished model call and tool result is recorded as it happens, and
an attempt given what an earlier one recorded goes on from there: no recorded model call or tool
call is made again, no recorded event is told twice, and the usage counts each call once."""

from __future__ import annotations

import json
import time

import pytest

from runs.engine.nodes.agent import run_agent
from runs.engine.nodes.base import StepContext
from runs.engine.pricing import Price
from tests.runs.servers import local_server, reply
from tests.runs.test_agent_models import LOCAL, openai_agent


def script(url: str) -> list[tuple]:
    """Two tools at once, then one more, then the answer: three model calls, three tool calls."""
    return [
        reply(tools=[("http_get", {"url": f"{url}/a"}), ("http_get", {"url": f"{url}/b"})]),
        reply(tools=[("http_get", {"url": f"{url}/c"})], tokens=(30, 4)),
        reply("All three fetched.", tokens=(50, 6)),
    ]


class Attempt:
    """One attempt of the step, resuming from `resume`; keeps what it records and emits."""

    def __init__(self, server, resume: list | None = None) -> None:
        self.records: list[tuple[list, list]] = []
        self.events: list[tuple[str, dict]] = []
        self.ctx = StepContext(
            run_id="run-1",
            step_id="ask",
            attempt=2 if resume else 1,
            config={"prompt": "Fetch a, b and c."},
            emit=lambda kind, data: self.events.append((kind, data)),
            deadline=time.monotonic() + 30,
            net=LOCAL,
            agent=openai_agent(server, tools=("http_get",), price=Price(1, 2)),
            record=self.record,
            resume=resume,
        )

    def record(self, transcript: list, events: list) -> None:
        self.records.append((transcript, events))
        self.events.extend(events)

    def run(self):
        return run_agent(self.ctx)

    def kinds(self) -> list[str]:
        return [kind for kind, _ in self.events]


def test_each_model_call_and_tool_result_is_recorded_with_its_event_as_it_happens():
    with local_server() as server:
        server.answers = script(server.url)
        attempt = Attempt(server)
        result = attempt.run()
    assert result.output == "All three fetched."
    # A record per model call and per tool result, each with the events that tell of it.
    told = [[kind for kind, _ in events] for _, events in attempt.records]
    assert told[0] == ["agent_turn"] and told[3] == ["agent_turn"] and told[5] == ["agent_turn"]
    assert sum(told, []).count("tool_result") == 3
    assert len(attempt.records) == 6
    # The last record is the whole conversation: three answers.
    last = attempt.records[-1][0]
    assert [m["kind"] for m in last].count("response") == 3


@pytest.mark.parametrize("recorded", range(6))
def test_an_attempt_goes_on_from_what_the_lost_one_recorded(recorded):
    with local_server() as server:
        server.answers = script(server.url)
        first = Attempt(server)
        whole = first.run()
        transcript = first.records[recorded][0]
        told_before = [kind for _, events in first.records[: recorded + 1] for kind, _ in events]
        made_before = len(server.requests)
        # The lost attempt's model calls were all answered: the new one gets only what is left.
        answered = sum(1 for m in transcript if m["kind"] == "response")
        server.answers = script(server.url)[answered:]
        hits_before = dict(server.hits)
        second = Attempt(server, resume=transcript)
        result = second.run()
        model_calls = len(server.requests) - made_before
        tool_calls = {path: n - hits_before.get(path, 0) for path, n in server.hits.items()}

    assert result.output == whole.output
    # No recorded model call is made again, no recorded tool call runs again.
    assert model_calls == 3 - answered
    fetched = {
        json.loads(json.loads(part["content"])["body"])["path"]
        for message in transcript
        if message["kind"] == "request"
        for part in message["parts"]
        if part["part_kind"] == "tool-return"
    }
    assert {path: n for path, n in tool_calls.items() if n} == {
        path: 1 for path in {"/a", "/b", "/c"} - fetched
    }
    # Events: together the two attempts tell each call once, in the same order as one attempt.
    both = told_before + second.kinds()
    assert both.count("agent_turn") == 3 and both.count("tool_result") == 3
    # The usage counts each model call once: the same as an attempt that was never lost.
    assert (result.turns, result.tokens_input, result.tokens_output) == (
        whole.turns,
        whole.tokens_input,
        whole.tokens_output,
    )
    assert result.cost_usd == pytest.approx(whole.cost_usd)
    assert result.tool_calls == whole.tool_calls
