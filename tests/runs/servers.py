"""Small local servers for steps that talk to the network: a JSON upstream and an
OpenAI-compatible chat completions server that plays scripted answers."""

from __future__ import annotations

import json
import threading
from collections import Counter
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, *args) -> None:
        pass

    def _send(self, status: int, body: dict | list | bytes) -> None:
        """JSON, or bytes sent as they are (a server that answers with something else)."""
        raw = isinstance(body, bytes)
        data = body if raw else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html" if raw else "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self.server.hits[self.path] += 1
        self.server.headers_seen.append(dict(self.headers))
        if self.path.startswith("/status/"):
            return self._send(int(self.path.rsplit("/", 1)[1]), {"status": "as asked"})
        return self._send(200, {"path": self.path, "items": [1, 2, 3]})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        self.server.requests.append(body)
        self.server.headers_seen.append(dict(self.headers))
        if self.path.endswith("/chat/completions"):
            status, answer = self.server.answers.pop(0) if self.server.answers else (200, None)
            return self._send(status, answer or _reply("(no scripted answer)"))
        return self._send(200, {"echo": body})


class _Server(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.hits: Counter = Counter()
        self.requests: list[dict] = []
        self.headers_seen: list[dict] = []
        self.answers: list[tuple[int, dict]] = []

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
