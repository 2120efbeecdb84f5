"""The agent step: one pydantic-ai agent run inside the engine, with a live event for every model
call, tool call and tool result, and the model's text streamed to `ctx.delta` as it arrives.

pydantic-ai runs the conversation (messages, tool calls, structured output and its retries); the
step walks its graph node by node (`Agent.iter`), so that each model answer is seen, priced,
recorded and checked against the budget before the tools it asks for run.

Durable: after every model answer and every tool result the conversation so far goes to
`ctx.record` with the event that tells of it; an attempt given `ctx.resume` (what a lost one
recorded) goes on from there, making no recorded call again and telling no recorded event again.
A call to a tool that waits for approval ends the attempt with `StepResult.waiting` (pydantic-ai's
deferred tools); the attempt given `ctx.decisions` goes on with them.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import anyio
from asgiref.sync import async_to_sync, sync_to_async
from pydantic import ValidationError
from pydantic_ai import (
    Agent,
    DeferredToolRequests,
    DeferredToolResults,
    ModelRetry,
    NativeOutput,
    PromptedOutput,
    StructuredDict,
    ToolApproved,
    ToolDenied,
    UsageLimits,
)
from pydantic_ai._agent_graph import mark_deferred_pause
from pydantic_ai.messages import (
    FunctionToolCallEvent,
    FunctionToolResultEvent,
    ModelMessage,
    ModelMessagesTypeAdapter,
    ModelRequest,
    ModelResponse,
    PartDeltaEvent,
    PartStartEvent,
    TextPart,
    TextPartDelta,
    ToolCallPart,
    ToolReturnPart,
)
from pydantic_ai.models import Model
from pydantic_ai.models.function import FunctionModel
from pydantic_ai.output import OutputSpec
from pydantic_ai.settings import ModelSettings

from orchestrator.definition.jsonschemas import error_lines
from runs.engine import llm
from runs.engine.failures import StepFailed
from runs.engine.nodes.base import AgentSpec, Event, StepContext, StepResult
from runs.engine.states import ErrorCode
from runs.engine.tools import agent_tools

DEFAULT_MAX_TURNS = 10
PREVIEW = 500
# An answer that does not match the output_schema goes back to the model this many times.
OUTPUT_RETRIES = 2
# The most tokens one model call can report each way: four times the largest context window a
# model has. A server that reports more, or fewer than none, is wrong, and its figure would not
# fit a step's counts (50 turns of this fit; a negative count broke the record of the outcome).
MAX_CALL_TOKENS = 40_000_000
# What a provider refuses in a schema's or tool's name (a schema's title may hold anything).
_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
# What reading a streamed chunk of the wrong shape raises inside pydantic-ai.
MALFORMED = (AttributeError, TypeError, KeyError, IndexError, ValidationError)


def _timeout(ctx: StepContext) -> float:
    if ctx.deadline is None:
        return 120.0
    left = ctx.deadline - time.monotonic()
    if left <= 0:
        raise StepFailed("the step timed out")
    return left


def _since(began: float) -> float:
    """Milliseconds since a time.monotonic() reading: the call's duration in its event."""
    return round((time.monotonic() - began) * 1000, 1)


def _final(content: Any, response_format: str) -> Any:
    if response_format != "json" or not isinstance(content, str):
        return content
    try:
        return json.loads(content)
    except ValueError:
        raise StepFailed(f"the agent was asked for JSON but answered: {content[:200]}") from None


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def run_agent(ctx: StepContext) -> StepResult:
    spec = ctx.agent
    if spec is None:
        raise StepFailed("the agent step has no agent", retryable=False)
    if ctx.credit_limited and not spec.priced:
        raise StepFailed(
            f"the model '{spec.model}' has no known price, and this run has a credit limit: give "
            "the agent a price, or use a model the price table knows",
            retryable=False,
            code=ErrorCode.MODEL_UNPRICED,
        )
    result = StepResult(output=None, model=spec.model)
    try:
        if not _loop_running():
            return async_to_sync(_converse)(ctx, spec, result)
        # A caller whose thread runs an event loop (a test driving a browser, a notebook) cannot
        # block it on the conversation: it runs on a thread of its own, the caller waiting.
        with ThreadPoolExecutor(1, thread_name_prefix="agent-step") as pool:
            return pool.submit(async_to_sync(_converse), ctx, spec, result).result()
    except StepFailed as exc:
        # What the attempt spent before it failed is spent all the same: it counts.
        exc.usage = exc.usage or result.usage()
        raise


def _check_budget(ctx: StepContext, result: StepResult) -> None:
    """After every model call that asks for more (tools, then another call): a tool loop stops
    inside the step once it is over the budget. A final answer is kept: it is paid for, and the
    run's own check when the step ends stops what would follow."""
    if ctx.budget_usd is None or result.cost_usd is None or result.cost_usd <= ctx.budget_usd:
        return
    raise StepFailed(
        f"cost limit exceeded after {result.turns} model calls: this step spent "
        f"${result.cost_usd:.4f}, the run had ${max(ctx.budget_usd, 0):.4f} left",
        retryable=False,
        code=ErrorCode.COST_LIMIT_EXCEEDED,
    )


def _output_schema(ctx: StepContext, spec: AgentSpec) -> dict[str, Any] | None:
    """The step's output_schema, else its agent's."""
    schema = ctx.config.get("output_schema")
    return schema if isinstance(schema, dict) else spec.output_schema


def _output_type(schema: dict[str, Any] | None, model: Model) -> OutputSpec[Any]:
    """Text, or the schema in the provider's structured-output mode where it has one (OpenAI's
    and Gemini's JSON schema mode), else as a final-answer tool; the builtin models answer it
    in their text."""
    if schema is None:
        return str
    structured = StructuredDict(
        schema, name=_NAME_UNSAFE.sub("_", str(schema.get("title") or "answer"))[:64]
    )
    if isinstance(model, FunctionModel):
        return PromptedOutput(structured)
    if model.profile.get("supports_json_schema_output"):
        return NativeOutput(structured)
    return structured


def _settings(
    spec: AgentSpec, response_format: str, schema: dict[str, Any] | None
) -> ModelSettings:
    settings: ModelSettings = {}
    if spec.temperature is not None:
        settings["temperature"] = spec.temperature
    if spec.max_tokens is not None:
        settings["max_tokens"] = spec.max_tokens
    if response_format == "json" and schema is None and spec.model.startswith("openai/"):
        settings["extra_body"] = {"response_format": {"type": "json_object"}}
    return settings


def _schema_check(schema: dict[str, Any]) -> Callable[[Any], Any]:
    """The output validator of an output_schema: an answer that does not match it goes back to
    the model with what is wrong (pydantic-ai checks only that it is an object)."""

    def check(output: Any) -> Any:
        problems = error_lines(schema, output, "answer")
        if problems:
            raise ModelRetry("the answer does not match the output schema: " + "; ".join(problems))
        return output

    return check


@dataclass
class _Turn:
    """The model call in progress: its number, when it began, the messages it was sent (the
    builtin models count their tokens on them)."""

    number: int = 0
    began: float = 0.0
    sent: list[ModelMessage] = field(default_factory=list)


async def _converse(ctx: StepContext, spec: AgentSpec, result: StepResult) -> StepResult:
    config = ctx.config
    response_format = str(config.get("response_format") or "text")
    max_turns = int(config.get("max_turns") or spec.max_turns or DEFAULT_MAX_TURNS)
    timeout = _timeout(ctx)
    builtin = spec.model.startswith("builtin/")
    client = None if builtin else llm.http_client(ctx.net, timeout)
    try:
        model = llm.provider_model(spec, client, timeout) if client else llm.builtin_model(spec)
        schema = _output_schema(ctx, spec)
        outcomes: dict[str, bool] = {}
        agent: Agent[None, Any] = Agent(
            model,
            output_type=_output_type(schema, model)
            if not spec.approvals and not spec.orchestrations
            else [_output_type(schema, model), DeferredToolRequests],
            system_prompt=spec.system_prompt or (),
            tools=agent_tools(
                spec.tools,
                ctx.net,
                ctx.transport,
                outcomes,
                spec.tool_sources,
                f"{ctx.run_id}:{ctx.step_id}",
                frozenset(spec.approvals),
                spec.orchestrations,
            ),
            retries={"tools": max_turns, "output": OUTPUT_RETRIES},
            model_settings=_settings(spec, response_format, schema),
        )
        if schema is not None:
            agent.output_validator(_schema_check(schema))
        try:
            # The whole conversation ends by the step's deadline, not only each read.
            with anyio.fail_after(timeout if ctx.deadline is not None else None):
                output = await _walk(
                    ctx, spec, agent, str(config.get("prompt", "")), max_turns, result, outcomes
                )
        except TimeoutError:
            raise StepFailed("the step timed out") from None
        except StepFailed:
            raise
        except Exception as exc:  # pydantic-ai's and the SDKs' failures, as sentences
            raise llm.failure(exc, spec, max_turns) from None
    finally:
        if client is not None:
            await client.aclose()
    if isinstance(output, DeferredToolRequests):
        result.waiting = [
            {
                "turn": result.turns,
                "tool_call_id": call.tool_call_id,
                "tool": call.tool_name,
                "args": _args(call),
                "approval": spec.approvals.get(call.tool_name, {}),
            }
            for call in output.approvals
        ]
        targets = {source.name: source.target_id for source in spec.orchestrations}
        result.waiting += [
            {
                "turn": result.turns,
                "tool_call_id": call.tool_call_id,
                "tool": call.tool_name,
                "args": _args(call),
                "orchestration": targets.get(call.tool_name, ""),
            }
            for call in output.calls
        ]
        return result
    result.output = _final(output, response_format)
    return result


async def _walk(
    ctx: StepContext,
    spec: AgentSpec,
    agent: Agent[None, Any],
    prompt: str,
    max_turns: int,
    result: StepResult,
    outcomes: dict[str, bool],
) -> Any:
    history = _history(ctx.resume)
    # What the recorded model calls spent is counted here, once: a lost attempt counted none of
    # its calls, a step that waited counted those it had made (`ctx.spent_turns`) then.
    recorded = _restore(spec, result, history, ctx.spent_turns)
    turn = _Turn(recorded)
    started: dict[str, float] = {}
    # Events go to the step's own thread, which the agent's loop waits on: the event log writes
    # to the database, which Django refuses from inside an event loop. Streamed text does not:
    # `ctx.delta` only queues it, and a hop to that thread for every piece a provider streams
    # (dozens a call) cost more than the piece.
    emit = sync_to_async(ctx.emit, thread_sensitive=True)
    record = sync_to_async(_recorder(ctx), thread_sensitive=True)
    decided = _decided(ctx.decisions, history)
    # A decided call's `tool_execution` went out when the model asked for it, before the pause,
    # as did that of a call whose child run gave its result.
    asked_before = {*decided.approvals, *decided.calls} if decided is not None else set()
    for call_id, given in (decided.calls if decided is not None else {}).items():
        # A child run's failure is given as an error text: its `tool_result` is not ok.
        outcomes[call_id] = not (isinstance(given, str) and given.startswith("error:"))
    # The record of a model call that asked for no tools is held: when the conversation ends
    # there, the step's outcome carries it (`StepResult.last_turn`) and both are written in one
    # transaction; when anything follows (an answer sent back to be fixed), it is written first.
    held: list[tuple[list[Any], list[Event]]] = []
    dumps = _Dumps()

    async def write_held() -> None:
        with anyio.CancelScope(shield=True):  # also when the step's deadline cancels the loop
            while held:
                await record(*held.pop(0))

    try:
        async with agent.iter(
            None if history else prompt,
            message_history=history or None,
            deferred_tool_results=decided,
            usage_limits=UsageLimits(request_limit=max(max_turns - recorded, 0)),
            infer_name=False,
        ) as run:
            async for node in run:
                if Agent.is_model_request_node(node):
                    await write_held()
                    turn = _Turn(turn.number + 1, time.monotonic())
                    try:
                        async with node.stream(run.ctx) as stream:
                            async for event in stream:
                                text = _streamed_text(event)
                                if text:
                                    ctx.delta(turn.number, text)
                    except MALFORMED as exc:
                        # pydantic-ai reads a streamed chunk without checking its shape.
                        raise StepFailed(
                            "the model's answer was malformed: a streamed chunk could not be read "
                            f"({type(exc).__name__.removesuffix('Error').lower()})"
                        ) from None
                elif Agent.is_call_tools_node(node):
                    response = node.model_response
                    if not response.parts:
                        raise StepFailed(
                            "the model's answer was malformed: it held neither text nor tool calls"
                        )
                    messages = run.all_messages()
                    at = max(i for i, m in enumerate(messages) if isinstance(m, ModelResponse))
                    head, answered = messages[: at + 1], _results(messages[at + 1 :])
                    if _responses(head) > recorded:  # a new model call, not a recorded one
                        recorded = _responses(head)
                        turn.sent = head[:-1]
                        data = _record_turn(spec, result, turn, response)
                        if _tool_calls(response):
                            await record(dumps(head), [("agent_turn", data)])
                            _check_budget(ctx, result)
                        else:
                            held.append((dumps(head), [("agent_turn", data)]))
                    # Results are recorded as they come, their events go out in the order of the
                    # calls, whichever finished first: a recorded result's event went out unless an
                    # earlier call had none yet (then it goes out with that one's).
                    calls = [p.tool_call_id for p in response.parts if isinstance(p, ToolCallPart)]
                    done = {p.tool_call_id: _result_data(p) for p in answered}
                    while calls and calls[0] in done:
                        done.pop(calls.pop(0))
                    parts = list(answered)
                    async with node.stream(run.ctx) as events:
                        async for event in events:
                            noted = _record_tool(spec, result, event, outcomes, started)
                            if noted is None:
                                continue
                            kind, data, call_id = noted
                            if kind != "tool_result":
                                if call_id not in asked_before:
                                    await emit(kind, data)
                                continue
                            assert isinstance(
                                event, FunctionToolResultEvent
                            )  # what a tool_result comes from
                            done[call_id] = data
                            parts.append(event.part)
                            ready: list[Event] = []
                            while calls and calls[0] in done:
                                ready.append((kind, done.pop(calls.pop(0))))
                            await record(dumps([*head, _paused(parts)]), ready)
                    for left in done.values():
                        await emit("tool_result", left)
            if run.result is None:
                raise StepFailed("the agent ended without an answer")
            if isinstance(run.result.output, DeferredToolRequests):
                # The step waits for people: what it did so far, the results of the calls that did
                # not wait among them, is where it goes on from.
                await record(dumps(run.all_messages()), [])
            return run.result.output
    except BaseException:
        await write_held()
        raise
    finally:
        if held and ctx.record is not None:
            result.last_turn = held.pop()
        await write_held()


def _decided(
    decisions: list[dict[str, Any]], history: list[ModelMessage]
) -> DeferredToolResults | None:
    """People's decisions on the calls the recorded conversation waits for, as pydantic-ai's
    results of deferred calls: an approved call runs, a denied one answers the model that it was
    denied, with the decider's comment; a call whose child run ended (a decision with a
    `result`) answers with that result. None when it waits for none (or nobody decided yet)."""
    if not history or not decisions:
        return None
    at = max((i for i, m in enumerate(history) if isinstance(m, ModelResponse)), default=None)
    if at is None:
        return None
    response = history[at]
    assert isinstance(response, ModelResponse)
    answered = {part.tool_call_id for part in _results(history[at + 1 :])}
    open_calls = {call.tool_call_id for call in response.tool_calls} - answered
    approvals: dict[str, bool | ToolApproved | ToolDenied] = {}
    calls: dict[str, Any] = {}
    for decision in decisions:
        call_id = decision.get("tool_call_id")
        if call_id not in open_calls:
            continue
        if "result" in decision:
            calls[call_id] = decision["result"]
            continue
        if decision.get("turn") != _responses(history):
            continue
        if decision.get("approved"):
            approvals[call_id] = ToolApproved()
        else:
            comment = str(decision.get("comment") or "").strip()
            said = f": {comment}" if comment else "."
            approvals[call_id] = ToolDenied(
                f"{decision.get('by') or 'A person'} denied this call{said}"
            )
    for call_id in calls:  # an approved orchestration call that has run: its result stands
        approvals.pop(call_id, None)
    return DeferredToolResults(approvals=approvals, calls=calls) if approvals or calls else None


def _history(resume: list[Any] | None) -> list[ModelMessage]:
    """The recorded conversation to go on from; [] to start over (none was recorded, or it was
    recorded by a version of pydantic-ai that cannot read it back)."""
    if not resume:
        return []
    try:
        return ModelMessagesTypeAdapter.validate_python(resume)
    except ValidationError:
        return []


class _Dumps:
    """The conversation as the JSON its records hold, each message dumped once.

    The conversation is recorded after every model call and every tool result: dumping all of it
    each time grew with the square of the turns. A message pydantic-ai changed since it was
    dumped (its parts or its instructions replaced) is dumped again. The messages are held with
    their dumps, so no other message can take their ids while the step runs."""

    def __init__(self) -> None:
        self._seen: dict[int, tuple[ModelMessage, tuple[Any, ...], Any]] = {}

    def __call__(self, messages: list[ModelMessage]) -> list[Any]:
        dumped = []
        for message in messages:
            mark = (getattr(message, "instructions", None), *map(id, message.parts))
            seen = self._seen.get(id(message))
            if seen is None or seen[1] != mark:
                seen = (
                    message,
                    mark,
                    ModelMessagesTypeAdapter.dump_python([message], mode="json")[0],
                )
                self._seen[id(message)] = seen
            dumped.append(seen[2])
        return dumped


def _responses(messages: list[ModelMessage]) -> int:
    return sum(1 for message in messages if isinstance(message, ModelResponse))


def _results(messages: list[ModelMessage]) -> list[ToolReturnPart]:
    """The tool results recorded after the last model call (on a resumed transcript)."""
    return [
        part
        for message in messages
        if isinstance(message, ModelRequest)
        for part in message.parts
        if isinstance(part, ToolReturnPart)
    ]


def _paused(parts: list[Any]) -> ModelRequest:
    """The results so far of a model call's tools, as pydantic-ai records a pause for deferred
    calls: a history that ends on it runs only the calls that have no result yet."""
    request = ModelRequest(parts=parts)
    mark_deferred_pause(request)
    return request


def _restore(
    spec: AgentSpec, result: StepResult, history: list[ModelMessage], spent: int = 0
) -> int:
    """Counts the recorded model calls and tool calls into the step's usage, as they were counted
    when they were made, but for the tokens and cost of the first `spent` calls, which were
    spent when the step waited; returns how many model calls there were."""
    turns = 0
    for index, message in enumerate(history):
        if isinstance(message, ModelResponse):
            turns += 1
            counted = result if turns > spent else StepResult(output=None)
            _record_turn(spec, counted, _Turn(turns, time.monotonic(), history[:index]), message)
            result.turns = turns
        else:
            result.tool_calls += sum(
                1
                for part in message.parts
                if isinstance(part, ToolReturnPart) and part.tool_kind != "output"
            )
    return turns


def _result_data(part: ToolReturnPart) -> dict[str, Any]:
    """The `tool_result` event of a result recorded by a lost attempt whose event had not gone
    out yet (its duration went with the worker)."""
    text = part.model_response_str()
    ok = part.outcome == "success" and not text.startswith("error:")
    return _result_event(part, ok, text, None)


def _result_event(
    part: ToolReturnPart, ok: bool, text: str, duration_ms: float | None
) -> dict[str, Any]:
    """A `tool_result` event's data; `denied` when a person said no (the call was never made)."""
    data: dict[str, Any] = {
        "tool_name": part.tool_name,
        "ok": ok,
        "preview": text[:PREVIEW],
        "duration_ms": duration_ms,
    }
    if part.outcome == "denied":
        data["denied"] = True
    return data


def _recorder(ctx: StepContext) -> Callable[[list[Any], list[Event]], None]:
    """Where the transcript and its events go: the service's record, else only the events."""
    if ctx.record is not None:
        return ctx.record

    def emit_only(transcript: list[Any], events: list[Event]) -> None:
        for kind, data in events:
            ctx.emit(kind, data)

    return emit_only


def _streamed_text(event: Any) -> str:
    """The text a stream event adds to the answer ("" for any other event)."""
    if isinstance(event, PartStartEvent) and isinstance(event.part, TextPart):
        return event.part.content
    if isinstance(event, PartDeltaEvent) and isinstance(event.delta, TextPartDelta):
        return event.delta.content_delta
    return ""


def _is_answer(part: ToolCallPart) -> bool:
    """Whether a tool call is the model's final answer (an output_schema's answer tool)."""
    return getattr(part, "tool_kind", None) == "output"


def _tool_calls(response: ModelResponse) -> list[ToolCallPart]:
    """The tools a model call asks for: what makes the agent go on (its answer tool aside)."""
    return [p for p in response.parts if isinstance(p, ToolCallPart) and not _is_answer(p)]


def _record_turn(
    spec: AgentSpec, result: StepResult, turn: _Turn, response: ModelResponse
) -> dict[str, Any]:
    """Adds a model call to the step's usage; its `agent_turn` event."""
    if spec.model.startswith("builtin/"):
        tokens_in, tokens_out = llm.builtin_tokens(turn.sent, response)
    else:
        tokens_in, tokens_out = response.usage.input_tokens, response.usage.output_tokens
        if not (0 <= tokens_in <= MAX_CALL_TOKENS and 0 <= tokens_out <= MAX_CALL_TOKENS):
            raise StepFailed(
                f"the model server reported an impossible usage for one call: {tokens_in} input "
                f"and {tokens_out} output tokens (0 to {MAX_CALL_TOKENS:,} each)",
                retryable=False,
            )
    result.turns = turn.number
    result.tokens_input += tokens_in
    result.tokens_output += tokens_out
    # Each call is priced on its own tokens: a table's tiers apply per request.
    turn_cost = spec.cost(tokens_in, tokens_out)
    result.cost_usd = (
        None if turn_cost is None or result.cost_usd is None else result.cost_usd + turn_cost
    )
    content = "".join(part.content for part in response.parts if isinstance(part, TextPart))
    answers = [p for p in response.parts if isinstance(p, ToolCallPart) and _is_answer(p)]
    if answers and not content:
        content = answers[0].args_as_json_str()  # a structured answer given as a tool call
    return {
        "turn": turn.number,
        "model": spec.model,
        # The whole answer: live viewers replace the text they streamed with it.
        "content": content,
        "tool_calls": [call.tool_name for call in _tool_calls(response)],
        "tokens": {"input": tokens_in, "output": tokens_out},
        "cost_usd": turn_cost,
        "unpriced": turn_cost is None,
        "duration_ms": _since(turn.began),
    }


def _record_tool(
    spec: AgentSpec,
    result: StepResult,
    event: Any,
    outcomes: dict[str, bool],
    started: dict[str, float],
) -> tuple[str, dict[str, Any], str] | None:
    """A tool call's `tool_execution` event, or its result's `tool_result` one, with the call's
    id (None for other events)."""
    if isinstance(event, FunctionToolCallEvent):
        result.tool_calls += 1
        started[event.part.tool_call_id] = time.monotonic()
        data = {"tool_name": event.part.tool_name, "args": _args(event.part)}
        return "tool_execution", data, event.part.tool_call_id
    if isinstance(event, FunctionToolResultEvent):
        part = event.part
        began = started.pop(part.tool_call_id, time.monotonic())
        if part.outcome == "success":
            ok, text = outcomes.get(part.tool_call_id, True), part.model_response_str()
        elif part.tool_name not in spec.tools:
            ok, text = False, f"error: this agent has no tool '{part.tool_name}'"
        else:
            ok, text = False, f"error: {part.model_response_str()}"
        return "tool_result", _result_event(part, ok, text, _since(began)), part.tool_call_id
    return None


def _args(part: ToolCallPart) -> Any:
    """A call's arguments as the model sent them: a dict, or the text when it is no JSON."""
    try:
        return part.args_as_dict()
    except ValueError:
        return part.args
