"""The agent step: the tool loop, with a live event for every turn, tool call and result."""

from __future__ import annotations

import json
import time

from runs.engine.nodes.base import AgentSpec, StepContext, StepFailed, StepResult
from runs.engine.providers import provider_for
from runs.engine.states import ErrorCode
from runs.engine.tools import SCHEMAS, run_tool

DEFAULT_MAX_TURNS = 10
PREVIEW = 500
CONTENT_PREVIEW = 2000


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


def _final(content: str | None, response_format: str):
    if response_format != "json":
        return content or ""
    try:
        return json.loads(content or "")
    except ValueError:
        raise StepFailed(
            f"the agent was asked for JSON but answered: {(content or '')[:200]}"
        ) from None


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
        return _converse(ctx, spec, result)
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


def _converse(ctx: StepContext, spec: AgentSpec, result: StepResult) -> StepResult:
    config = ctx.config
    response_format = config.get("response_format", "text")
    max_turns = config.get("max_turns") or spec.max_turns or DEFAULT_MAX_TURNS
    complete = provider_for(spec)
    tools = [SCHEMAS[name] for name in spec.tools if name in SCHEMAS]
    messages: list[dict] = []
    if spec.system_prompt:
        messages.append({"role": "system", "content": spec.system_prompt})
    messages.append({"role": "user", "content": str(config.get("prompt", ""))})

    for turn in range(1, max_turns + 1):
        began = time.monotonic()
        completion = complete(
            spec,
            messages,
            tools,
            net=ctx.net,
            response_format=response_format,
            timeout=_timeout(ctx),
            transport=ctx.transport,
        )
        duration_ms = _since(began)
        result.turns = turn
        result.tokens_input += completion.tokens_input
        result.tokens_output += completion.tokens_output
        # Each call is priced on its own tokens: a table's tiers apply per request.
        turn_cost = spec.cost(completion.tokens_input, completion.tokens_output)
        result.cost_usd = (
            None if turn_cost is None or result.cost_usd is None else result.cost_usd + turn_cost
        )
        ctx.emit(
            "agent_turn",
            {
                "turn": turn,
                "model": spec.model,
                "content": (completion.content or "")[:CONTENT_PREVIEW],
                "tool_calls": [call.name for call in completion.tool_calls],
                "tokens": {"input": completion.tokens_input, "output": completion.tokens_output},
                "cost_usd": turn_cost,
                "unpriced": turn_cost is None,
                "duration_ms": duration_ms,
            },
        )
        if not completion.tool_calls:
            result.output = _final(completion.content, response_format)
            return result
        _check_budget(ctx, result)
        messages.append(
            {
                "role": "assistant",
                "content": completion.content,
                "tool_calls": [
                    {
                        "id": call.id,
                        "type": "function",
                        "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
                    }
                    for call in completion.tool_calls
                ],
            }
        )
        for call in completion.tool_calls:
            result.tool_calls += 1
            ctx.emit("tool_execution", {"tool_name": call.name, "args": call.arguments})
            began = time.monotonic()
            ok, text = run_tool(call.name, call.arguments, spec.tools, ctx.net, ctx.transport)
            ctx.emit(
                "tool_result",
                {
                    "tool_name": call.name,
                    "ok": ok,
                    "preview": text[:PREVIEW],
                    "duration_ms": _since(began),
                },
            )
            messages.append({"role": "tool", "tool_call_id": call.id, "content": text})
    raise StepFailed(f"the agent used all {max_turns} turns without a final answer")
