"""A model's answer reaches live viewers as it streams: agent_delta frames over the websocket and
Server-Sent Events, through the Redis channel layer, masked, before the stored turn, never
stored. The streaming model loop itself is the engine's; here a step's executor (or the test)
calls the sink the service layer gives it, as that loop does."""

from __future__ import annotations

import json
from functools import partial
from unittest.mock import patch

import httpx
import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from httpx_sse import connect_sse

from config.asgi import application
from core.choices import Role
from orchestrator.models import ApiToken
from orchestrator.services.orchestrations import create_orchestration
from runs.engine.nodes import EXECUTORS
from runs.engine.nodes.base import StepContext, StepResult
from runs.engine.redaction import MASK, Redactor
from runs.models import Run, RunEvent
from runs.models import TriggerKind as RunTrigger
from runs.services import events, lifecycle
from runs.services.deltas import DeltaSink
from tests.runs.harness import drain
from tests.runs.servers import local_server, reply
from tests.runs.test_trace_socket import OWN_PAGE, session_cookie
from tests.serving import serve

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not settings.REDIS_URL, reason="deltas reach viewers only through the Redis channel layer"
    ),
]

KEY = "sk-test-Qm7vR2xL9"
ANSWER = f"Checked the account: its key is {KEY}, and it works."


def streaming_agent(ctx: StepContext) -> StepResult:
    """What the streaming agent loop does: text in small pieces through ctx.delta, then the
    stored turn through ctx.emit."""
    for start in range(0, len(ANSWER), 5):
        ctx.delta(1, ANSWER[start : start + 5])
    ctx.emit("agent_turn", {"turn": 1, "model": ctx.agent.model, "content": ANSWER})
    return StepResult(output=ANSWER, model=ctx.agent.model, turns=1)


def agent_flow(org):
    return create_orchestration(
        org,
        {
            "name": "Streams",
            "status": "active",
            "definition": {
                "nodes": [
                    {
                        "id": "writer",
                        "type": "agent",
                        "config": {"agent": {"model": "openai/gpt-4o-mini"}, "prompt": "Check."},
                    }
                ],
                "edges": [],
            },
        },
    )


def frames_while(run, cookie: str, act) -> list[dict]:
    """Connect to the run's socket, take the backlog, await `act()`, then collect every frame
    until the socket goes quiet."""

    async def go():
        communicator = WebsocketCommunicator(
            application, f"/ws/runs/{run.pk}/", headers=[*OWN_PAGE, (b"cookie", cookie.encode())]
        )
        assert (await communicator.connect(timeout=5))[0]
        await communicator.receive_json_from(timeout=5)  # the backlog
        await act()
        frames = []
        while not await communicator.receive_nothing(timeout=1.0):
            frames.append(await communicator.receive_json_from())
        await communicator.disconnect()
        return frames

    return async_to_sync(go)()


def test_an_agent_steps_streamed_answer_reaches_the_socket_masked_and_before_its_turn(
    org, settings
):
    settings.OPENAI_API_KEY = KEY
    run, _ = lifecycle.fire(agent_flow(org), {}, trigger_kind=RunTrigger.API)
    cookie = session_cookie(org, "watcher")

    async def act():
        with patch.dict(EXECUTORS, {"agent": streaming_agent}):
            await database_sync_to_async(drain)()

    frames = frames_while(run, cookie, act)
    seen = [
        ("delta", frame["agent_delta"])
        if "agent_delta" in frame
        else ("event", event["type"], event["data"])
        for frame in frames
        for event in (frame.get("events") or [None])
    ]
    deltas = [item[1] for item in seen if item[0] == "delta"]
    assert deltas, seen
    assert all(set(delta) == {"step_id", "turn", "text"} for delta in deltas)
    assert {(delta["step_id"], delta["turn"]) for delta in deltas} == {("writer", 1)}
    masked = ANSWER.replace(KEY, MASK)
    assert "".join(delta["text"] for delta in deltas) == masked
    assert KEY[:6] not in json.dumps(frames)
    # The text streamed before the stored turn, which holds the whole (masked) answer.
    turn_at = next(i for i, item in enumerate(seen) if item[:2] == ("event", "agent_turn"))
    assert all(item[0] == "event" for item in seen[turn_at:])
    assert seen[turn_at][2]["content"] == masked
    # Never stored: the log holds the turn, no delta.
    assert not RunEvent.objects.filter(run=run, type="agent_delta").exists()
    assert Run.objects.get(pk=run.pk).status == "succeeded"


def test_a_real_models_streamed_answer_reaches_the_socket_before_its_stored_turn(org, settings):
    """No stand-in: the agent loop, the OpenAI SDK and a local server that streams word by word."""
    settings.HTTP_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    answer = "Bees dance to tell the hive where the flowers are, and how far away they grow."
    with local_server() as server:
        server.answers = [reply(answer)]
        agent = {"model": "openai/local", "base_url": f"{server.url}/v1", "credential": None}
        flow = create_orchestration(
            org,
            {
                "name": "Real stream",
                "status": "active",
                "definition": {
                    "nodes": [
                        {
                            "id": "writer",
                            "type": "agent",
                            "config": {"agent": agent, "prompt": "About bees?"},
                        }
                    ],
                    "edges": [],
                },
            },
        )
        settings.OPENAI_API_KEY = "sk-local-key"
        run, _ = lifecycle.fire(flow, {}, trigger_kind=RunTrigger.API)
        cookie = session_cookie(org, "watcher")

        async def act():
            await database_sync_to_async(drain)()

        frames = frames_while(run, cookie, act)
    assert server.requests[0]["stream"] is True
    kinds = [
        "delta" if "agent_delta" in f else e["type"] for f in frames for e in f.get("events") or [f]
    ]
    deltas = [f["agent_delta"] for f in frames if "agent_delta" in f]
    assert "".join(d["text"] for d in deltas) == answer
    assert {(d["step_id"], d["turn"]) for d in deltas} == {("writer", 1)}
    assert kinds.index("agent_turn") > max(i for i, kind in enumerate(kinds) if kind == "delta")
    assert Run.objects.get(pk=run.pk).output == answer


def test_frames_published_by_a_sink_reach_every_socket_of_the_run_in_order(org):
    run, _ = lifecycle.fire(agent_flow(org), {}, trigger_kind=RunTrigger.API)
    cookie = session_cookie(org, "watcher")
    pieces = [f"word{n} " for n in range(40)]

    async def act():
        sink = DeltaSink(
            "writer", partial(events.publish_delta, run.pk), Redactor(), later=events.later
        )
        for piece in pieces:
            sink(3, piece)
        sink.close()

    frames = frames_while(run, cookie, act)
    assert all(set(frame) == {"agent_delta"} for frame in frames)
    assert "".join(frame["agent_delta"]["text"] for frame in frames) == "".join(pieces)
    assert {frame["agent_delta"]["turn"] for frame in frames} == {3}


def test_a_delta_for_a_turn_the_socket_already_has_whole_is_dropped(org):
    run, _ = lifecycle.fire(agent_flow(org), {}, trigger_kind=RunTrigger.API)
    cookie = session_cookie(org, "watcher")

    async def go():
        communicator = WebsocketCommunicator(
            application, f"/ws/runs/{run.pk}/", headers=[*OWN_PAGE, (b"cookie", cookie.encode())]
        )
        assert (await communicator.connect(timeout=5))[0]
        await communicator.receive_json_from(timeout=5)  # the backlog
        await database_sync_to_async(events.append_now)(
            run.pk, "agent_turn", "writer", turn=1, content="whole"
        )
        stored = await communicator.receive_json_from(timeout=5)
        # Late: the socket has the whole turn by the time it comes.
        events.publish_delta(run.pk, {"step_id": "writer", "turn": 1, "text": "late"})
        events.publish_delta(run.pk, {"step_id": "writer", "turn": 2, "text": "next"})
        after = await communicator.receive_json_from(timeout=5)
        await communicator.disconnect()
        return stored, after

    stored, after = async_to_sync(go)()
    assert stored["events"][0]["type"] == "agent_turn"
    assert after == {"agent_delta": {"step_id": "writer", "turn": 2, "text": "next"}}


def test_without_a_cross_process_channel_layer_a_step_gets_no_sink(org, settings):
    """Embedded (in-memory layer), no delta could reach the web process: nothing is built."""
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    sinks = []

    def agent(ctx: StepContext) -> StepResult:
        sinks.append(ctx.delta)
        ctx.delta(1, "ignored")
        return StepResult(output="ok", model=ctx.agent.model, turns=1)

    run, _ = lifecycle.fire(agent_flow(org), {}, trigger_kind=RunTrigger.API)
    with patch.dict(EXECUTORS, {"agent": agent}), patch.object(events, "publish_delta") as sent:
        drain()
    assert Run.objects.get(pk=run.pk).status == "succeeded"
    assert not isinstance(sinks[0], DeltaSink)
    sent.assert_not_called()


# --- Server-Sent Events, with httpx-sse against daphne --------------------------------------


@pytest.fixture(scope="module")
def daphne(django_db_setup, tmp_path_factory):
    log = tmp_path_factory.mktemp("daphne") / "daphne.log"
    with serve(log, CELERY_TASK_ALWAYS_EAGER="true") as base:
        yield base


def test_the_events_stream_sends_deltas_without_an_id_and_drops_those_of_a_stored_turn(daphne, org):
    _, raw = ApiToken.issue(org, Role.EDITOR, service_account="sse-client")
    ask = {"id": "ask", "type": "human_input", "config": {"prompt": "Go on?"}}
    flow = create_orchestration(
        org, {"name": "Waits", "status": "active", "definition": {"nodes": [ask], "edges": []}}
    )
    run, _ = lifecycle.fire(flow, {}, trigger_kind=RunTrigger.API)
    drain()
    run.refresh_from_db()
    assert run.status == "paused"
    sink = DeltaSink("ask", partial(events.publish_delta, run.pk), Redactor([KEY]))
    with (
        httpx.Client(
            base_url=f"{daphne}/api/v1",
            headers={"Authorization": f"Bearer {raw}"},
            timeout=10,  # under the stream's keep-alive: a frame that never comes fails the test
            trust_env=False,
        ) as client,
        connect_sse(client, "GET", f"/runs/{run.pk}/events/stream") as source,
    ):
        stream = source.iter_sse()
        stored = [next(stream) for _ in range(run.last_seq)]  # subscribed by the first one
        assert [int(event.id) for event in stored] == list(range(1, run.last_seq + 1))

        sink(1, f"Thinking about {KEY[:8]}")
        sink.flush()
        delta = next(stream)
        assert delta.event == "agent_delta"
        assert json.loads(delta.data) == {"step_id": "ask", "turn": 1, "text": "Thinking about "}
        # No id line: a reconnect's Last-Event-ID is still the last stored event's seq.
        assert delta.id == stored[-1].id
        rest = next(stream)
        assert (rest.event, json.loads(rest.data)["text"]) == ("agent_delta", KEY[:8])

        events.append_now(run.pk, "agent_turn", "ask", turn=1, content="Thinking")
        turn = next(stream)
        assert (turn.event, turn.id) == ("agent_turn", str(run.last_seq + 1))
        events.publish_delta(run.pk, {"step_id": "ask", "turn": 1, "text": "late"})
        events.publish_delta(run.pk, {"step_id": "ask", "turn": 2, "text": "next"})
        after = next(stream)
        assert (after.event, json.loads(after.data)["text"]) == ("agent_delta", "next")
        assert after.id == turn.id
