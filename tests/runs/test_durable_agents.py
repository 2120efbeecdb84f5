"""Durable agent steps: every finished model call and tool result is recorded as it happens, and
an attempt given what an earlier one recorded goes on from there: no recorded model call or tool
call is made again, no recorded event is told twice, and the usage counts each call once."""

from __future__ import annotations

import json
import time

import pytest
from django.utils import timezone
from pydantic_ai.messages import ModelMessagesTypeAdapter, ModelRequest, UserPromptPart

from runs.engine.nodes.agent import _Dumps, run_agent
from runs.engine.nodes.base import StepContext
from runs.engine.pricing import Price
from runs.models import RunEvent, StepRun
from runs.services import execution, lifecycle, timers
from tests.runs.harness import drain
from tests.runs.servers import local_server, reply
from tests.runs.test_agent_models import LOCAL, openai_agent


def script(url: str) -> list[tuple]:
    """Two tools at once, then one more, then the answer: three model calls, three tool calls."""
    return [
        reply(tools=[("http_get", {"url": f"{url}/a"}), ("http_get", {"url": f"{url}/b"})]),
        reply(tools=[("http_get", {"url": f"{url}/c"})], tokens=(30, 4)),
        reply("All three fetched.", tokens=(50, 6)),
    ]


def fetched_in(transcript: list) -> set[str]:
    """The paths whose results a transcript holds."""
    return {
        json.loads(json.loads(part["content"])["body"])["path"]
        for message in transcript
        if message["kind"] == "request"
        for part in message["parts"]
        if part["part_kind"] == "tool-return"
    }


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
        result = run_agent(self.ctx)
        if result.last_turn is not None:  # the executor writes it with the step's outcome
            self.record(*result.last_turn)
        return result

    def kinds(self) -> list[str]:
        return [kind for kind, _ in self.events]


def test_each_model_call_and_tool_result_is_recorded_with_its_event_as_it_happens():
    with local_server() as server:
        server.answers = script(server.url)
        attempt = Attempt(server)
        result = attempt.run()
    assert result.output == "All three fetched."
    # The last model call, which ends the conversation, comes with the result instead: the
    # executor writes it in the transaction that records the step's outcome.
    assert [kind for kind, _ in result.last_turn[1]] == ["agent_turn"]
    # A record per model call and per tool result, each with the events that tell of it.
    told = [[kind for kind, _ in events] for _, events in attempt.records]
    assert told[0] == ["agent_turn"] and told[3] == ["agent_turn"] and told[5] == ["agent_turn"]
    assert [kind for kinds in told for kind in kinds].count("tool_result") == 3
    assert len(attempt.records) == 6
    # The last record is the whole conversation: three answers.
    last = attempt.records[-1][0]
    assert [m["kind"] for m in last].count("response") == 3
    # Each record is the conversation as it stood (the messages are dumped once and reused):
    # read back and dumped afresh, it is the same; the two results of the first call's pair are
    # recorded one, then both.
    for transcript, _ in attempt.records:
        again = ModelMessagesTypeAdapter.validate_python(transcript)
        assert ModelMessagesTypeAdapter.dump_python(again, mode="json") == transcript
    assert [len(fetched_in(transcript)) for transcript, _ in attempt.records] == [0, 1, 2, 2, 3, 3]


def test_a_message_changed_after_it_was_recorded_is_recorded_as_it_now_is():
    dumps = _Dumps()
    request = ModelRequest(parts=[UserPromptPart("Fetch a.")])
    assert dumps([request])[0]["parts"][0]["content"] == "Fetch a."
    request.parts = [UserPromptPart("Fetch b.")]
    assert dumps([request])[0]["parts"][0]["content"] == "Fetch b."
    request.instructions = "Be brief."
    assert dumps([request])[0]["instructions"] == "Be brief."


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
    fetched = fetched_in(transcript)
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


# --- through the services: a worker lost in the middle of a step --------------------------------


class WorkerDied(BaseException):
    """What a SIGKILL looks like from inside: nothing after it runs, the step stays running."""


@pytest.mark.django_db
@pytest.mark.parametrize("dies_after", [1, 2, 4])
def test_a_step_whose_worker_died_goes_on_from_its_record(
    make_flow, settings, monkeypatch, dies_after
):
    settings.HTTP_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    with local_server() as server:
        server.answers = script(server.url)
        agent = {"model": "openai/test-model", "base_url": f"{server.url}/v1"}
        agent |= {"tools": ["http_get"], "price": {"input_per_1k": 1, "output_per_1k": 2}}
        node = {"id": "ask", "type": "agent", "config": {"agent": agent, "prompt": "Fetch."}}
        flow = make_flow([node])
        save = execution.save_transcript
        saved = []

        def dies(*args) -> None:
            save(*args)
            saved.append(1)
            if len(saved) == dies_after:
                raise WorkerDied

        monkeypatch.setattr(execution, "save_transcript", dies)
        run, _ = lifecycle.fire(flow, {})
        with pytest.raises(BaseException) as died:
            drain()
        assert (
            died.group_contains(WorkerDied)
            if isinstance(died.value, BaseExceptionGroup)
            else (died.type is WorkerDied)
        )
        monkeypatch.setattr(execution, "save_transcript", save)
        lost = StepRun.objects.get(run=run)
        assert lost.status == "running" and lost.transcript
        StepRun.objects.filter(pk=lost.pk).update(lease_expires_at=timezone.now())
        timers.reap()
        drain()
        run.refresh_from_db()
        requests, hits = len(server.requests), dict(server.hits)
        keys = [h.get("Idempotency-Key") for h in server.headers_seen if "Idempotency-Key" in h]

    assert run.status == "succeeded", run.error
    assert run.output == "All three fetched."
    # Three model calls in all, and no recorded tool call made again. A call that was in flight
    # when the worker died (its result not recorded) runs again, with the same Idempotency-Key.
    assert requests == 3
    recorded = {path: 1 for path in fetched_in(lost.transcript)}
    assert hits == {
        "/a": 1,
        "/b": 1,
        "/c": 1,
        **{p: n for p, n in hits.items() if p not in recorded},
    }
    assert sorted(set(keys)) == [
        f"{run.pk}:ask:1:call_0",
        f"{run.pk}:ask:1:call_1",
        f"{run.pk}:ask:2:call_0",
    ]
    attempts = list(StepRun.objects.filter(run=run).order_by("attempt"))
    assert [(s.attempt, s.status) for s in attempts] == [(1, "failed"), (2, "succeeded")]
    assert attempts[0].error["code"] == "worker_lost"
    # Each model call and tool result told once, and counted once.
    kinds = list(RunEvent.objects.filter(run=run, step_id="ask").values_list("type", flat=True))
    assert kinds.count("agent_turn") == 3 and kinds.count("tool_result") == 3
    done = attempts[1]
    assert (done.turns, done.tool_calls) == (3, 3)
    assert (run.tokens_input, run.tokens_output) == (11 + 30 + 50, 7 + 4 + 6)
