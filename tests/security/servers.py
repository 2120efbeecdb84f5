"""Local servers for the SSRF tests: a canary that counts every connection it is offered, and a
"public" server (on an address the test allows) that answers or redirects where it is told."""

from __future__ import annotations

import json
import socket
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


class _CanaryHandler(BaseHTTPRequestHandler):
    server: Canary

    def log_message(self, *args) -> None:
        pass

    def _answer(self) -> None:
        self.server.requests.append(f"{self.command} {self.path}")
        body = json.dumps({"canary": True}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = _answer


class Canary(ThreadingHTTPServer):
    """Counts connections, not only HTTP requests: a gopher or dict client would show too.

    Bound to `::` with IPV6_V6ONLY off, it hears every local address on its port, IPv4 and IPv6
    alike (127.0.0.1, 127.0.0.2, 0.0.0.0, ::1, ::ffff:127.0.0.1, the host's own addresses), so a
    request that slips through in any spelling is seen. It only lives for the test module.
    """

    address_family = socket.AF_INET6
    daemon_threads = True

    def __init__(self, host: str = "::", port: int = 0) -> None:
        self.connections = 0
        self.requests: list[str] = []
        self._host = host
        if ":" not in host:
            self.address_family = socket.AF_INET
        super().__init__((host, port), _CanaryHandler)

    def server_bind(self) -> None:
        if self.address_family == socket.AF_INET6:
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()

    def verify_request(self, request, client_address) -> bool:
        self.connections += 1
        return True

    @property
    def port(self) -> int:
        return self.server_address[1]

    @property
    def hits(self) -> int:
        return self.connections


class _PublicHandler(BaseHTTPRequestHandler):
    """`/ok` answers 200; `/redirect?to=<url>&code=<status>` answers a redirect, and so does
    every path when the server has a `redirect_all` (code, url) (a model server's base URL
    gets paths of the SDK's own appended)."""

    server: PublicServer

    def log_message(self, *args) -> None:
        pass

    def _answer(self) -> None:
        self.server.requests.append(self.path)
        self.server.headers_seen.append({k.lower(): v for k, v in self.headers.items()})
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        redirect = self.server.redirect_all
        if redirect is None and parts.path == "/redirect":
            redirect = (int(query.get("code", ["302"])[0]), query["to"][0])
        if redirect is not None:
            self.send_response(redirect[0])
            self.send_header("Location", redirect[1])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = json.dumps({"public": True, "path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer


class PublicServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, host: str, redirect_all: tuple[int, str] | None = None) -> None:
        self.requests: list[str] = []
        self.headers_seen: list[dict[str, str]] = []
        self.redirect_all = redirect_all
        super().__init__((host, 0), _PublicHandler)

    @property
    def port(self) -> int:
        return self.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{self.server_address[0]}:{self.port}"


@contextmanager
def serving(*servers):
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in servers]
    for thread in threads:
        thread.start()
    try:
        yield servers
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


def public_with_rebind_canary(attempts: int = 20) -> tuple[PublicServer, Canary]:
    """A public server on 127.0.0.2:P and a canary on 127.0.0.1:P, the same port: a request
    meant for the first that a second DNS answer sent to the second would land on the canary."""
    for _ in range(attempts):
        public = PublicServer("127.0.0.2")
        try:
            return public, Canary("127.0.0.1", public.port)
        except OSError:
            public.server_close()
    raise RuntimeError("no port free on both 127.0.0.1 and 127.0.0.2")
