"""The model behind an agent step, as a pydantic-ai model, and what its failures mean for the step.

`openai/*` (OpenAI, or any OpenAI-compatible server through `base_url`), `anthropic/*` (the
Messages API) and `google/*` (Gemini) use the providers' own SDKs, each given an HTTP client from
the net guard, so a `base_url` reaches only what an `http` step could reach. The SDKs do not retry
on their own: a 429 or a 5xx is a retryable step failure, and the step's `retry` decides.

`builtin/echo` answers with its prompt; `builtin/script` plays `config.script`, one item per model
call: a string (or {"reply": ...}) is an answer; {"tool": name, "args": {...}} or
{"tool_calls": [{"name", "arguments"}]} asks for tools. Both are offline and deterministic, and
stream their answer word by word like a real model.
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator, Iterable, Sequence
from functools import cached_property
from typing import Any

import httpx2
import openai
from openai.resources.chat import AsyncChat
from openai.resources.chat.completions import AsyncCompletions
from pydantic_ai import exceptions
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    SystemPromptPart,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models import Model
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, DeltaToolCalls, FunctionModel
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.profiles import merge_profile
from pydantic_ai.profiles.openai import OpenAIModelProfile
from pydantic_ai.providers.openai import OpenAIProvider

from runs.engine.failures import StepFailed
from runs.engine.netguard import NetPolicy, guarded_async_client, parse_url
from runs.engine.nodes.base import AgentSpec, header_value
from runs.engine.states import ErrorCode

PROVIDERS = ("openai", "anthropic", "google")
# Where each provider's key comes from when the agent names no credential (said in errors).
KEY_SETTINGS = {
    "openai": "OPENAI_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "google": "GOOGLE_API_KEY",
}


def words(text: Any) -> int:
    """The builtin models count a token per word: deterministic and good enough for budgets."""
    return len(str(text or "").split())


# --- the builtin models -----------------------------------------------------------------------


def _last_user_prompt(messages: Sequence[ModelMessage]) -> str:
    for message in reversed(messages):
        if isinstance(message, ModelRequest):
            for part in reversed(message.parts):
                if isinstance(part, UserPromptPart):
                    return part.content if isinstance(part.content, str) else str(part.content)
    return ""


def _last_tool_return(messages: Sequence[ModelMessage]) -> str:
    for message in reversed(messages):
        if isinstance(message, ModelRequest):
            for part in reversed(message.parts):
                if isinstance(part, ToolReturnPart):
                    return part.model_response_str()
    return ""


def _script_item(spec: AgentSpec, messages: Sequence[ModelMessage]) -> tuple[int, Any]:
    """The script item for this model call (the number of answers so far), or None past its end."""
    turn = sum(1 for message in messages if isinstance(message, ModelResponse))
    return turn, spec.script[turn] if turn < len(spec.script) else None


def _chunks(text: str) -> list[str]:
    """A text as a model streams it: word by word, the spaces kept, so the pieces join to it."""
    pieces = text.split(" ")
    return [piece + " " for piece in pieces[:-1]] + [pieces[-1]] if text else []


def _script_calls(turn: int, item: Any) -> list[tuple[str, str, dict[str, Any]]]:
    """(id, name, arguments) of the tools a script item asks for; [] for an answer."""
    if isinstance(item, dict) and "tool" in item:
        return [(f"call_{turn}_0", str(item["tool"]), dict(item.get("args") or {}))]
    if isinstance(item, dict) and isinstance(item.get("tool_calls"), list):
        return [
            (f"call_{turn}_{index}", str(call.get("name")), dict(call.get("arguments") or {}))
            for index, call in enumerate(item["tool_calls"])
        ]
    return []


def _script_text(item: Any, messages: Sequence[ModelMessage]) -> str:
    if item is None:
        return _last_tool_return(messages) or _last_user_prompt(messages)
    if isinstance(item, str):
        return item
    if isinstance(item, dict) and "reply" in item:
        return item["reply"] if isinstance(item["reply"], str) else json.dumps(item["reply"])
    return json.dumps(item)


def builtin_model(spec: AgentSpec) -> FunctionModel:
    """`builtin/echo` or `builtin/script` as a streaming pydantic-ai FunctionModel."""

    async def stream(
        messages: list[ModelMessage], info: AgentInfo
    ) -> AsyncIterator[str | DeltaToolCalls]:
        if spec.model == "builtin/echo":
            for chunk in _chunks(_last_user_prompt(messages)):
                yield chunk
            return
        turn, item = _script_item(spec, messages)
        calls = _script_calls(turn, item)
        if calls:
            yield {
                index: DeltaToolCall(name=name, json_args=json.dumps(args), tool_call_id=call_id)
                for index, (call_id, name, args) in enumerate(calls)
            }
            return
        for chunk in _chunks(_script_text(item, messages)):
            yield chunk

    if spec.model not in ("builtin/echo", "builtin/script"):
        raise StepFailed(f"unknown builtin model '{spec.model}'", retryable=False)
    return FunctionModel(stream_function=stream, model_name=spec.model)


def builtin_tokens(messages: Sequence[ModelMessage], response: ModelResponse) -> tuple[int, int]:
    """A builtin model's tokens for one call: the words it was sent, the words it answered."""
    sent = 0
    for message in messages:
        parts: Sequence[Any] = message.parts
        for part in parts:
            if isinstance(part, SystemPromptPart | UserPromptPart | TextPart):
                sent += words(part.content)
            elif isinstance(part, ToolReturnPart):
                sent += words(part.model_response_str())
    answered = sum(
        words(part.content) if isinstance(part, TextPart) else words(part.args_as_json_str())
        for part in response.parts
        if isinstance(part, TextPart | ToolCallPart)
    )
    return sent, max(answered, 1)


# --- the providers' models --------------------------------------------------------------------


def _api_key(spec: AgentSpec) -> str:
    return header_value(spec.api_key, "API key") if spec.api_key else "missing"


def _base_url(spec: AgentSpec) -> str | None:
    # Read here first: an SDK would raise its own exception on a URL it cannot read.
    return str(parse_url(spec.base_url)) if spec.base_url else None


class _Completions(AsyncCompletions):
    """Chat completions that send the conversation and the tools as pydantic-ai built them.

    The SDK walks every request's parameters against its TypedDict types to apply key aliases and
    formats; the chat messages' and tools' types have none, so the walk changes nothing, but it
    goes through every message of the conversation, trying each member of the message union, on
    every call: over a 20-turn tool loop that was about 3 ms a call, half of what the step cost
    on top of the model calls (`make bench`, agent steps). Given as `extra_body`, which the SDK
    merges into the JSON body as it is, the same JSON goes out without the walk."""

    async def create(  # type: ignore[override]
        self,
        *,
        messages: Iterable[Any],
        tools: Any = openai.omit,
        extra_body: dict[str, Any] | None = None,
        **params: Any,
    ) -> Any:
        sent: dict[str, Any] = {"messages": list(messages)}
        if tools is not openai.omit:
            sent["tools"] = tools
        return await super().create(
            messages=[], extra_body={**(extra_body or {}), **sent}, **params
        )


class _Chat(AsyncChat):
    @cached_property
    def completions(self) -> _Completions:
        return _Completions(self._client)


class _OpenAI(openai.AsyncOpenAI):
    """The async OpenAI client, its chat completions as `_Completions`."""

    @cached_property
    def chat(self) -> _Chat:
        return _Chat(self)


# OpenAI's own hosts (its API, and Azure's deployments of it): the ones that want the output
# limit as `max_completion_tokens`.
OPENAI_HOST = "api.openai.com"
AZURE_OPENAI_DOMAIN = ".openai.azure.com"


def _openai_profile(spec: AgentSpec, provider: OpenAIProvider, name: str) -> Any:
    """pydantic-ai's profile of the model, told to send the agent's `max_tokens` as `max_tokens`
    to an OpenAI-compatible server (Ollama, vLLM, LM Studio, llama.cpp, OpenRouter read that
    field; some ignore `max_completion_tokens`, the one OpenAI's own API wants, which pydantic-ai
    sends by default); None to keep the provider's own."""
    if not spec.base_url:
        return None
    host = parse_url(spec.base_url).host.lower()
    if host == OPENAI_HOST or host.endswith(AZURE_OPENAI_DOMAIN):
        return None
    return merge_profile(
        provider.model_profile(name),
        OpenAIModelProfile(openai_chat_supports_max_completion_tokens=False),
    )


def provider_model(spec: AgentSpec, http_client: httpx2.AsyncClient, timeout: float) -> Model:
    """The pydantic-ai model of an `openai/`, `anthropic/` or `google/` agent, over the guarded
    client; the SDKs' own retries are off."""
    provider, _, name = spec.model.partition("/")
    if provider in PROVIDERS and not spec.api_key and not spec.base_url:
        raise StepFailed(
            f"no API key for the {provider} provider: set {KEY_SETTINGS[provider]}, or give the "
            "agent a credential",
            retryable=False,
        )
    if provider == "openai":
        client = _OpenAI(
            base_url=_base_url(spec),
            api_key=_api_key(spec),
            timeout=timeout,
            max_retries=0,
            http_client=http_client,
        )
        openai_provider = OpenAIProvider(openai_client=client)
        return OpenAIChatModel(
            name, provider=openai_provider, profile=_openai_profile(spec, openai_provider, name)
        )
    if provider == "anthropic":
        # The Anthropic and Google SDKs are imported when a step first uses them: together they
        # were a second and a half of every process's start-up (web, worker, manage.py), most
        # of which never call those providers.
        import anthropic
        from pydantic_ai.models.anthropic import AnthropicModel
        from pydantic_ai.providers.anthropic import AnthropicProvider

        messages = anthropic.AsyncAnthropic(
            base_url=_base_url(spec),
            api_key=_api_key(spec),
            timeout=timeout,
            max_retries=0,
            http_client=http_client,
        )
        return AnthropicModel(name, provider=AnthropicProvider(anthropic_client=messages))
    if provider == "google":
        from google.genai.types import HttpRetryOptions
        from pydantic_ai.models.google import GoogleModel
        from pydantic_ai.providers.google import GoogleProvider

        return GoogleModel(
            name,
            provider=GoogleProvider(
                api_key=_api_key(spec),
                base_url=_base_url(spec),
                http_client=http_client,
                retry_options=HttpRetryOptions(attempts=1),
            ),
        )
    raise StepFailed(f"unknown model provider in '{spec.model}'", retryable=False)


def http_client(net: NetPolicy, timeout: float) -> httpx2.AsyncClient:
    return guarded_async_client(net, timeout=timeout)


# --- failures ---------------------------------------------------------------------------------


def _said(body: object, limit: int = 300) -> str:
    """The provider's own words from an error body: its `error.message` where it has one."""
    error = body.get("error", body) if isinstance(body, dict) else body
    message = error.get("message") if isinstance(error, dict) else None
    return str(message if isinstance(message, str) and message else body)[:limit]


def _guard_refusal(exc: BaseException) -> StepFailed | None:
    """The net guard's refusal (or another StepFailed) an SDK wrapped on its way up, if any."""
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return None
        if isinstance(seen, StepFailed):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def failure(exc: BaseException, spec: AgentSpec, max_turns: int) -> StepFailed:
    """What a pydantic-ai or SDK exception means for the step: a sentence, retryable or not. The
    API key never appears in it (the service's redactor masks it too, this is the first line)."""
    step_failed = _failure(exc, max_turns)
    for secret in spec.secrets():
        if len(secret) >= 4:
            step_failed.message = step_failed.message.replace(secret, "[redacted]")
    step_failed.args = (step_failed.message,)
    return step_failed


def _failure(exc: BaseException, max_turns: int) -> StepFailed:
    wrapped = _guard_refusal(exc)
    if wrapped is not None:
        return wrapped
    if isinstance(exc, exceptions.UsageLimitExceeded):
        return StepFailed(f"the agent used all {max_turns} turns without a final answer")
    if isinstance(exc, exceptions.ModelAuthenticationError):
        said = _said(exc.body) if exc.body is not None else str(exc)
        return StepFailed(
            f"the provider refused the API key: check the agent's credential or the provider's "
            f"key setting ({said})",
            retryable=False,
        )
    if isinstance(exc, exceptions.ModelHTTPError):
        said = _said(exc.body)
        if exc.status_code == 429 or exc.status_code >= 500:
            return StepFailed(f"the model server answered {exc.status_code}: {said}")
        return StepFailed(
            f"the model server refused the request ({exc.status_code}): {said}", retryable=False
        )
    if isinstance(exc, exceptions.ModelTimeoutError | exceptions.ModelRequestTimeout):
        return StepFailed("the model server did not answer in time")
    if isinstance(exc, exceptions.ModelConnectionError):
        return StepFailed(f"could not reach the model server: {exc.message}")
    if isinstance(exc, exceptions.UnexpectedModelBehavior):
        if "output retries" in exc.message:
            return StepFailed(
                f"the agent's answer did not match its output_schema, after 2 retries: "
                f"{_last_validation(exc)}",
                retryable=False,
                code=ErrorCode.OUTPUT_INVALID,
            )
        return StepFailed(f"the model's answer was malformed: {_lower(exc.message)}")
    if isinstance(exc, exceptions.ModelAPIError) or _sdk_error(exc):
        return StepFailed(f"the model's answer was malformed: {_lower(str(exc))}")
    raise exc


def _sdk_error(exc: BaseException) -> bool:
    """An SDK's own error that pydantic-ai let through. Anthropic's is looked for only once its
    SDK was loaded (by an `anthropic/` step): before that, nothing can raise it."""
    anthropic = sys.modules.get("anthropic")
    return isinstance(exc, openai.APIError) or (
        anthropic is not None and isinstance(exc, anthropic.APIError)
    )


def _last_validation(exc: exceptions.UnexpectedModelBehavior) -> str:
    cause = exc.__cause__
    return str(cause)[:500] if cause is not None else exc.message


def _lower(text: str) -> str:
    """A library's sentence inside ours: no capital, no trailing full stop, no Python names."""
    text = text.strip().rstrip(".")
    return (text[:1].lower() + text[1:])[:300].replace("Error", "error")
