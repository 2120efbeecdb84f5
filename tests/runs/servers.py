"""Small local servers for steps that talk to the network: a JSON upstream, and model servers
that play scripted answers: OpenAI-compatible chat completions (`/chat/completions`),
Anthropic's Messages API (`/v1/messages`) and Gemini's generateContent
(`/v1beta/models/<model>:generateContent`), each as one JSON answer or, when the request asks
for a stream, as the server-sent events the real APIs send, the text a few words per event."""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections import Counter
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from openai.types.chat import ChatCompletion
from pydantic import ValidationError


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    # Each write goes out at once: a streamed event, or a body after its headers (with Nagle's
    # algorithm the second write waits for the client's delayed ACK, 40 ms here).
    disable_nagle_algorithm = True

    def log_message(self, *args) -> None:
        pass

    def _send(
        self, status: int, body: dict | list | bytes, content_type: str = "text/html"
    ) -> None:
        """JSON, or bytes sent as they are (a server that answers with something else, or with
        JSON text no encoder would write)."""
        raw = isinstance(body, bytes)
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type if raw else "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self.server.hits[self.path] += 1
        self.server.headers_seen.append(dict(self.headers))
        if self.path.startswith("/status/"):
            return self._send(int(self.path.rsplit("/", 1)[1]), {"status": "as asked"})
        if self.path.startswith("/large/"):
            # /large/<MiB>/<json|text>[/<status>]: a body of that size, sent in chunks as it is
            # made, with that status (200 by default).
            _, _, size, kind, *status = self.path.split("/")
            return self._chunked(int(size), kind, int(status[0]) if status else 200)
        if self.path == "/drip":
            return self._drip()
        if self.path == "/unstorable":
            # JSON may escape what no column can store: a NUL, half of a surrogate pair.
            data = b'{"text": "a\\u0000b\\ud800c", "k\\udfff": ["\\u0000"]}'
            return self._send(200, data, content_type="application/json")
        return self._send(200, {"path": self.path, "items": [1, 2, 3]})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        self.server.requests.append(body)
        self.server.headers_seen.append(dict(self.headers))
        if self.path.startswith(("/large/", "/gzip/")):
            # A model server (base_url /large/<MiB>/v1) whose every answer is that large; under
            # /gzip/ the same, compressed to a thousandth of it.
            size = int(self.path.split("/")[2])
            if self.path.startswith("/large/"):
                return self._chunked(size, "text")
            data = gzip.compress(b"x" * (size << 20))
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return None
        if self.path.endswith("/chat/completions"):
            status, answer = self.server.answers.pop(0) if self.server.answers else (200, None)
            answer = answer or _reply("(no scripted answer)")
            if status == 200 and body.get("stream"):
                return self._stream(openai_events(answer, body))
            return self._send(status, answer)
        if ":streamGenerateContent" in self.path or ":generateContent" in self.path:
            status, answer = self.server.answers.pop(0) if self.server.answers else (200, None)
            answer = answer or _gemini("(no scripted answer)")
            if status == 200 and ":streamGenerateContent" in self.path:
                return self._stream(gemini_events(answer))
            return self._send(status, answer)
        if self.path.endswith("/v1/messages"):
            status, answer = self.server.answers.pop(0) if self.server.answers else (200, None)
            answer = answer or _message("(no scripted answer)")
            if status == 200 and body.get("stream"):
                return self._stream(anthropic_events(answer))
            return self._send(status, answer)
        return self._send(200, {"echo": body})

    def _chunked(self, mebibytes: int, kind: str, status: int = 200) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json" if kind == "json" else "text/plain")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        parts = [b'["', *[b"x" * (1 << 20)] * mebibytes, b'"]'] if kind == "json" else None
        for part in parts or [b"x" * (1 << 20)] * mebibytes:
            try:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            except OSError:  # the client stopped reading: what it does past its limit
                return
        self.wfile.write(b"0\r\n\r\n")
        self.close_connection = True

    def _drip(self) -> None:
        """A byte every 0.2 s, for a minute: each read comes soon, the whole never."""
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for _ in range(300):
            try:
                self.wfile.write(b"1\r\nx\r\n")
                self.wfile.flush()
            except OSError:
                return
            time.sleep(0.2)
        self.close_connection = True

    def _stream(self, events: list[bytes]) -> None:
        """Server-sent events, each written and flushed on its own as a model streams them."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        for index, event in enumerate(events):
            if index == 0:
                self.server.first_bytes.append(time.perf_counter())
            self.wfile.write(event)
            self.wfile.flush()
        self.close_connection = True


class _Server(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.hits: Counter = Counter()
        self.requests: list[dict] = []
        self.headers_seen: list[dict] = []
        self.answers: list[tuple[int, dict]] = []
        # When each streamed answer's first event was written (time.perf_counter()).
        self.first_bytes: list[float] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


def _reply(content: str | None, tool_calls: list | None = None, tokens=(11, 7)) -> dict:
    message: dict = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = [
            {
                "id": f"call_{i}",
                "type": "function",
                "function": {"name": name, "arguments": json.dumps(args)},
            }
            for i, (name, args) in enumerate(tool_calls)
        ]
    return {
        "id": "x",
        "object": "chat.completion",
        "created": 0,
        "model": "test",
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if tool_calls else "stop",
            }
        ],
        "usage": {
            "prompt_tokens": tokens[0],
            "completion_tokens": tokens[1],
            "total_tokens": sum(tokens),
        },
    }


def words_of(text: str) -> list[str]:
    """A text in the pieces a model streams: a word and the space after it."""
    pieces = text.split(" ")
    return [piece + " " for piece in pieces[:-1]] + [pieces[-1]]


def _sse(data: dict | str, event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {data if isinstance(data, str) else json.dumps(data)}\n\n".encode()


def openai_events(answer: dict | list | bytes, request: dict) -> list[bytes]:
    """A chat completion as `stream: true` sends it: a chunk per few words of text, a chunk per
    tool call, the finish reason, then the usage in a chunk of its own when
    `stream_options.include_usage` asks for it. An answer that is no chat completion (the
    malformed ones) goes out as it is, as one event."""
    try:
        ChatCompletion.model_validate(answer)
    except ValidationError:
        raw = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
        return [b"data: " + raw + b"\n\n", _sse("[DONE]")]
    assert isinstance(answer, dict)
    choice = answer["choices"][0]
    text, calls = choice["message"].get("content"), choice["message"].get("tool_calls") or []
    finish = choice.get("finish_reason") or "stop"
    head = {"id": answer.get("id", "x"), "object": "chat.completion.chunk", "created": 0}
    head["model"] = answer.get("model", "test")

    def chunk(delta: dict, finish_reason: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish_reason}
        return _sse({**head, "choices": [choice]})

    events = [chunk({"role": "assistant", "content": ""})]
    events += [chunk({"content": piece}) for piece in words_of(text or "") if piece]
    for index, call in enumerate(calls):
        events.append(chunk({"tool_calls": [{"index": index, **call}]}))
    events.append(chunk({}, finish))
    if (request.get("stream_options") or {}).get("include_usage"):
        events.append(_sse({**head, "choices": [], "usage": answer.get("usage")}))
    return [*events, _sse("[DONE]")]


def _message(content: str | None, tool_calls: list | None = None, tokens=(11, 7)) -> dict:
    """An Anthropic Messages API answer: text and tool_use blocks, and the usage."""
    blocks: list[dict] = [{"type": "text", "text": content}] if content else []
    blocks += [
        {"type": "tool_use", "id": f"toolu_{i}", "name": name, "input": args}
        for i, (name, args) in enumerate(tool_calls or [])
    ]
    return {
        "id": "msg_local",
        "type": "message",
        "role": "assistant",
        "model": "claude-local",
        "content": blocks,
        "stop_reason": "tool_use" if tool_calls else "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": tokens[0], "output_tokens": tokens[1]},
    }


def anthropic_events(message: dict) -> list[bytes]:
    """A Messages API answer as `stream: true` sends it: message_start, each block's start,
    deltas (text a few words at a time, tool input as partial JSON) and stop, message_delta with
    the stop reason and output tokens, message_stop."""
    usage = message["usage"]
    start = {**message, "content": [], "stop_reason": None}
    start["usage"] = {"input_tokens": usage["input_tokens"], "output_tokens": 1}
    events = [_sse({"type": "message_start", "message": start}, "message_start")]
    for index, block in enumerate(message["content"]):
        opened: dict[str, Any]
        deltas: list[dict[str, Any]]
        if block["type"] == "text":
            opened, deltas = (
                {"type": "text", "text": ""},
                [{"type": "text_delta", "text": piece} for piece in words_of(block["text"])],
            )
        else:
            opened = {**block, "input": {}}
            deltas = [{"type": "input_json_delta", "partial_json": json.dumps(block["input"])}]
        events.append(
            _sse(
                {"type": "content_block_start", "index": index, "content_block": opened},
                "content_block_start",
            )
        )
        events += [
            _sse(
                {"type": "content_block_delta", "index": index, "delta": delta},
                "content_block_delta",
            )
            for delta in deltas
        ]
        events.append(_sse({"type": "content_block_stop", "index": index}, "content_block_stop"))
    finish = {"stop_reason": message["stop_reason"], "stop_sequence": None}
    events.append(
        _sse(
            {
                "type": "message_delta",
                "delta": finish,
                "usage": {"output_tokens": usage["output_tokens"]},
            },
            "message_delta",
        )
    )
    return [*events, _sse({"type": "message_stop"}, "message_stop")]


def claude(content: str | None = None, *, tools: list | None = None, tokens=(11, 7)) -> tuple:
    """A scripted answer of the local Anthropic-compatible server."""
    return 200, _message(content, tools, tokens)


def anthropic_error(status: int, kind: str, message: str) -> tuple:
    return status, {"type": "error", "error": {"type": kind, "message": message}}


def _gemini(content: str | None, tool_calls: list | None = None, tokens=(11, 7)) -> dict:
    """A Gemini generateContent answer: text and functionCall parts, and the usage."""
    parts: list[dict] = [{"text": content}] if content else []
    parts += [{"functionCall": {"name": name, "args": args}} for name, args in tool_calls or []]
    return {
        "candidates": [
            {"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}
        ],
        "usageMetadata": {
            "promptTokenCount": tokens[0],
            "candidatesTokenCount": tokens[1],
            "totalTokenCount": sum(tokens),
        },
        "modelVersion": "gemini-local",
    }


def gemini_events(answer: dict) -> list[bytes]:
    """A Gemini answer as streamGenerateContent (alt=sse) sends it: a response per few words of
    text, the function calls, finish reason and usage in the last one."""
    candidate = answer["candidates"][0]
    parts = candidate["content"]["parts"]
    texts = [piece for part in parts if "text" in part for piece in words_of(part["text"])]
    calls = [part for part in parts if "functionCall" in part]

    def event(chunk_parts: list[dict], last: bool) -> bytes:
        chunk: dict = {"content": {"role": "model", "parts": chunk_parts}, "index": 0}
        body: dict = {"candidates": [chunk], "modelVersion": answer.get("modelVersion")}
        if last:
            chunk["finishReason"] = candidate.get("finishReason", "STOP")
            body["usageMetadata"] = answer.get("usageMetadata")
        return _sse(body)

    pieces: list[list[dict]] = [[{"text": text}] for text in texts]
    if calls:
        pieces.append(calls)
    pieces = pieces or [[]]
    return [event(piece, index == len(pieces) - 1) for index, piece in enumerate(pieces)]


def gemini(content: str | None = None, *, tools: list | None = None, tokens=(11, 7)) -> tuple:
    """A scripted answer of the local Gemini-compatible server."""
    return 200, _gemini(content, tools, tokens)


def gemini_error(status: int, state: str, message: str) -> tuple:
    return status, {"error": {"code": status, "message": message, "status": state}}


def reply(content: str | None = None, *, tools: list | None = None, tokens=(11, 7)) -> tuple:
    return 200, _reply(content, tools, tokens)


def error(status: int, message: str) -> tuple:
    return status, {"error": {"message": message, "type": "error", "code": status}}


@contextmanager
def local_server():
    server = _Server()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
