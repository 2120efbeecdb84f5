"""The agent step's own cost, engine side, against a local OpenAI-compatible server that answers
at once (streaming, as the engine always asks):

1. per model call: a 20-turn agent step (a tool call each turn, then the answer) next to the same
   20 streamed calls and 19 tool fetches made with the SDK and httpx directly, in one process,
   and (for where the time goes) with a bare pydantic-ai agent on the same SDK, no engine;
2. from the server's first streamed byte to the step's first `ctx.delta` call: the engine's part
   of the first-delta figure (the websocket part is measured with the live view).

Needs no database: `python -m bench.agents` runs it alone; bench.engine runs it too.
"""

from __future__ import annotations

import asyncio
import statistics
import time

import httpx
import httpx2
import openai
from pydantic_ai import Agent
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider

from bench.common import percentile, progress, quiet_client_logs, report
from runs.engine.netguard import NetPolicy
from runs.engine.nodes.agent import run_agent
from runs.engine.nodes.base import AgentSpec, StepContext
from runs.engine.pricing import Price
from tests.runs.servers import local_server, reply

TURNS = 20
REPEATS = 7
FIRST_DELTA_STEPS = 200
OVERHEAD_TARGET_MS = 3.0
LOCAL = NetPolicy(allowed_networks=("127.0.0.1/32",))
TOOL = {
    "type": "function",
    "function": {
        "name": "http_get",
        "parameters": {"type": "object", "properties": {"url": {"type": "string"}}},
    },
}


def _script(url: str) -> list[tuple]:
    calls = [reply(tools=[("http_get", {"url": f"{url}/x"})]) for _ in range(TURNS - 1)]
    return [*calls, reply("All done: the twenty calls came back.")]


def _context(spec: AgentSpec, delta=lambda turn, text: None) -> StepContext:
    return StepContext(
        run_id="bench",
        step_id="agent",
        attempt=1,
        config={"prompt": "Fetch it twenty times.", "max_turns": TURNS},
        emit=lambda kind, data: None,
        deadline=None,
        net=LOCAL,
        agent=spec,
        delta=delta,
    )


def engine_step(server, spec: AgentSpec) -> tuple[float, float]:
    """Wall and CPU seconds of the step (the CPU of this process: the server's threads too)."""
    server.answers = _script(server.url)
    began, cpu = time.perf_counter(), time.process_time()
    result = run_agent(_context(spec))
    elapsed = time.perf_counter() - began, time.process_time() - cpu
    assert result.turns == TURNS and result.tool_calls == TURNS - 1, result
    return elapsed


def direct_calls(server) -> tuple[float, float]:
    """The same model calls and tool fetches without the engine: the SDK's streamed chat
    completions and plain httpx GETs, the conversation growing as the agent's does."""
    server.answers = _script(server.url)
    began, cpu = time.perf_counter(), time.process_time()
    with (
        openai.OpenAI(base_url=f"{server.url}/v1", api_key="sk-bench", max_retries=0) as client,
        httpx.Client() as fetcher,
    ):
        messages: list = [{"role": "user", "content": "Fetch it twenty times."}]
        for _ in range(TURNS):
            # Plain dicts for the SDK's TypedDict parameters, as a user of the SDK writes them.
            stream = client.chat.completions.create(  # type: ignore[call-overload]
                model="bench",
                messages=messages,
                tools=[TOOL],
                stream=True,
                stream_options={"include_usage": True},
            )
            calls = [
                c
                for chunk in stream
                for choice in chunk.choices
                for c in choice.delta.tool_calls or []
            ]
            if not calls:
                break
            messages.append({"role": "assistant", "tool_calls": [c.model_dump() for c in calls]})
            body = fetcher.get(f"{server.url}/x").text
            messages.append({"role": "tool", "tool_call_id": calls[0].id, "content": body})
    return time.perf_counter() - began, time.process_time() - cpu


def library_calls(server) -> tuple[float, float]:
    """The same conversation through pydantic-ai alone: its agent, the async SDK and a plain
    tool, streamed node by node as the engine walks it; no engine, no network guard."""
    server.answers = _script(server.url)

    async def converse() -> None:
        async with httpx2.AsyncClient() as client, httpx.AsyncClient() as fetcher:
            sdk = openai.AsyncOpenAI(
                base_url=f"{server.url}/v1", api_key="sk-bench", max_retries=0, http_client=client
            )
            agent = Agent(OpenAIChatModel("bench", provider=OpenAIProvider(openai_client=sdk)))

            @agent.tool_plain
            async def http_get(url: str) -> str:
                return (await fetcher.get(url)).text

            async with agent.iter("Fetch it twenty times.") as run:
                async for node in run:
                    if Agent.is_model_request_node(node) or Agent.is_call_tools_node(node):
                        async with node.stream(run.ctx) as events:
                            async for _ in events:
                                pass

    began, cpu = time.perf_counter(), time.process_time()
    asyncio.run(converse())
    return time.perf_counter() - began, time.process_time() - cpu


def first_delta(server, spec: AgentSpec) -> list[float]:
    """Milliseconds from the server's first streamed event to the step's first delta."""
    gaps = []
    for _ in range(FIRST_DELTA_STEPS):
        server.answers = [reply("Twenty words would do, but these few are enough here.")]
        seen: list[float] = []

        def delta(turn: int, text: str, seen: list[float] = seen) -> None:
            if not seen:
                seen.append(time.perf_counter())

        run_agent(_context(spec, delta))
        gaps.append((seen[0] - server.first_bytes[-1]) * 1000)
    return gaps


def run() -> None:
    progress(f"agent steps: {TURNS}-turn step against a local model server, and first deltas")
    with local_server() as server:
        spec = AgentSpec(
            name="bench",
            model="openai/bench",
            base_url=f"{server.url}/v1",
            api_key="sk-bench",
            tools=("http_get",),
            price=Price(0.001, 0.002),
        )
        engine_step(server, spec)  # warm-up: imports, the price table, connections
        direct_calls(server)
        library_calls(server)
        engines, directs, libraries = [], [], []
        for _ in range(REPEATS):  # alternating, so that the machine's swings fall on all three
            engines.append(engine_step(server, spec))
            directs.append(direct_calls(server))
            libraries.append(library_calls(server))
        engine = statistics.median(wall for wall, _ in engines)
        direct = statistics.median(wall for wall, _ in directs)
        engine_cpu = statistics.median(cpu for _, cpu in engines)
        direct_cpu = statistics.median(cpu for _, cpu in directs)
        per_call = (engine - direct) / TURNS * 1000
        report(
            "agent_overhead_per_model_call",
            per_call,
            "ms/call",
            f"<= {OVERHEAD_TARGET_MS:g}",
            per_call <= OVERHEAD_TARGET_MS,
            engine_step_ms=round(engine * 1000, 1),
            sdk_direct_ms=round(direct * 1000, 1),
            cpu_ms_per_call_engine=round(engine_cpu / TURNS * 1000, 2),
            cpu_ms_per_call_direct=round(direct_cpu / TURNS * 1000, 2),
            pydantic_ai_alone_ms=round(statistics.median(w for w, _ in libraries) * 1000, 1),
            cpu_ms_per_call_pydantic_ai_alone=round(
                statistics.median(c for _, c in libraries) / TURNS * 1000, 2
            ),
            turns=TURNS,
            note="a 20-turn step with a tool call each turn, next to the same calls made "
            "with the openai SDK and httpx directly, and with pydantic-ai alone",
        )
        gaps = first_delta(server, spec)
        p50, p99 = percentile(gaps, 50), percentile(gaps, 99)
        report(
            "agent_first_delta_engine",
            p50,
            "ms p50",
            "p50 < 150, p99 < 300",
            p50 < 150 and p99 < 300,
            p99_ms=round(p99, 2),
            samples=len(gaps),
            note="engine only: from the model server's first streamed byte to the step's "
            "first ctx.delta call; the websocket part is measured with the live view",
        )


if __name__ == "__main__":
    quiet_client_logs()
    run()
