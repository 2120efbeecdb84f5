"""Any OpenAI-compatible chat completions server, through the official SDK.

The SDK gets its HTTP client from the net guard, so a `base_url` reaches only what an `http`
step could reach. The answer is read against the few fields we use, so that a server that sends
something else fails the step with a sentence rather than a Python exception.
"""

from __future__ import annotations

import json

import openai
from pydantic import BaseModel, Field, ValidationError

from runs.engine.netguard import guarded_client, parse_url
from runs.engine.nodes.base import AgentSpec, NetPolicy, StepFailed, header_value
from runs.engine.providers.types import Completion, ToolCall, words


class _Function(BaseModel):
    name: str
    arguments: str | None = None


class _ToolCall(BaseModel):
    id: str
    function: _Function


class _Message(BaseModel):
    content: str | None = None
    tool_calls: list[_ToolCall] | None = None


class _Choice(BaseModel):
    message: _Message


class _Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int


class _Answer(BaseModel):
    """The parts of a chat completion we read; anything else a server adds is ignored."""

    choices: list[_Choice] = Field(min_length=1)
    usage: _Usage | None = None


def _client(spec: AgentSpec, timeout: float, net: NetPolicy, transport) -> openai.OpenAI:
    # Read here first: the SDK would raise its own exception on a URL it cannot read.
    base_url = parse_url(spec.base_url) if spec.base_url else None
    return openai.OpenAI(
        base_url=str(base_url) if base_url else None,
        api_key=header_value(spec.api_key, "API key") if spec.api_key else "missing",
        timeout=timeout,
        max_retries=0,
        http_client=guarded_client(net, timeout=timeout, inner=transport),
    )


def _malformed(problem: str) -> StepFailed:
    return StepFailed(f"the model's answer was malformed: {problem}")


def _read(body: str) -> _Answer:
    try:
        data = json.loads(body)
    except ValueError:
        raise _malformed(f"not JSON: {body[:200]!r}") from None
    try:
        return _Answer.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "the answer"
        raise _malformed(f"{where}: {first['msg']}") from None


def complete(
    spec: AgentSpec,
    messages: list[dict],
    tools: list[dict],
    *,
    net: NetPolicy,
    response_format: str = "text",
    timeout: float = 60.0,
    transport=None,
) -> Completion:
    model = spec.model.split("/", 1)[1]
    kwargs: dict = {"model": model, "messages": messages}
    if tools:
        kwargs["tools"] = tools
    if spec.temperature is not None:
        kwargs["temperature"] = spec.temperature
    if response_format == "json":
        kwargs["response_format"] = {"type": "json_object"}
    client = _client(spec, timeout, net, transport)
    try:
        raw = client.chat.completions.with_raw_response.create(**kwargs)
    except openai.AuthenticationError as exc:
        raise StepFailed(
            f"the model server refused the API key: {exc.message}", retryable=False
        ) from None
    except (openai.BadRequestError, openai.NotFoundError, openai.PermissionDeniedError) as exc:
        raise StepFailed(
            f"the model server refused the request: {exc.message}", retryable=False
        ) from None
    except openai.APITimeoutError:
        raise StepFailed(f"the model server did not answer within {timeout:g} s") from None
    except openai.APIStatusError as exc:
        raise StepFailed(f"the model server answered {exc.status_code}: {exc.message}") from None
    except openai.APIError as exc:
        raise StepFailed(f"could not reach the model server: {exc}") from None
    finally:
        client.close()
    answer = _read(raw.http_response.text)
    message = answer.choices[0].message
    calls = []
    for call in message.tool_calls or []:
        try:
            arguments = json.loads(call.function.arguments or "{}")
        except ValueError:
            arguments = {"_raw": call.function.arguments}
        calls.append(ToolCall(call.id, call.function.name, arguments))
    usage = answer.usage
    tokens_in = usage.prompt_tokens if usage else sum(words(m.get("content")) for m in messages)
    tokens_out = usage.completion_tokens if usage else words(message.content)
    return Completion(
        content=message.content, tool_calls=calls, tokens_input=tokens_in, tokens_output=tokens_out
    )
