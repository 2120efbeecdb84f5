"""Any OpenAI-compatible chat completions server, through the official SDK."""

from __future__ import annotations

import json

import httpx2
import openai

from runs.engine.nodes.base import AgentSpec, StepFailed, header_value
from runs.engine.providers.types import Completion, ToolCall, words


def _client(spec: AgentSpec, timeout: float, transport) -> openai.OpenAI:
    http_client = httpx2.Client(transport=transport, timeout=timeout) if transport else None
    return openai.OpenAI(
        base_url=spec.base_url or None,
        api_key=header_value(spec.api_key, "API key") if spec.api_key else "missing",
        timeout=timeout,
        max_retries=0,
        http_client=http_client,
    )


def complete(
    spec: AgentSpec,
    messages: list[dict],
    tools: list[dict],
    *,
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
    try:
        response = _client(spec, timeout, transport).chat.completions.create(**kwargs)
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
    if not response.choices:
        raise StepFailed("the model server answered with no choices")
    message = response.choices[0].message
    calls = []
    for call in message.tool_calls or []:
        try:
            arguments = json.loads(call.function.arguments or "{}")
        except ValueError:
            arguments = {"_raw": call.function.arguments}
        calls.append(ToolCall(call.id, call.function.name, arguments))
    usage = response.usage
    tokens_in = usage.prompt_tokens if usage else sum(words(m.get("content")) for m in messages)
    tokens_out = usage.completion_tokens if usage else words(message.content)
    return Completion(
        content=message.content, tool_calls=calls, tokens_input=tokens_in, tokens_output=tokens_out
    )
