"""Outbound HTTP that cannot be pointed at the inside of the network (SSRF).

Every address a host resolves to is checked (loopback, private, link-local, metadata, shared,
reserved, multicast, and the IPv6 forms that embed such an IPv4 address) unless an allowed
network covers it; the request then goes to the vetted address itself, so a second DNS answer
cannot swap it (rebinding); redirects are followed by hand and checked again, and a redirect to
another origin loses the credential headers.

All of it lives in one httpx transport, `GuardedTransport` (and its async twin), which
`guarded_client` wraps in a client: http steps, the http_get tool and the model providers take
their client from there, and any later outbound client (an SDK's `http_client=`) should too.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
import ssl
import time
import zlib
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import anyio
import httpx
import httpx2

from runs.engine.failures import StepFailed

DEFAULT_MAX_RESPONSE_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True)
class NetPolicy:
    """CIDRs that outbound calls may reach although they are loopback or private, and the most
    of a response's body that `fetch` reads."""

    allowed_networks: tuple[str, ...] = ()
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
_ALWAYS_BLOCKED = [
    ipaddress.ip_network(net)
    for net in (
        "0.0.0.0/8",
        "100.64.0.0/10",
        "169.254.0.0/16",
        "192.0.0.0/24",
        "198.18.0.0/15",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "64:ff9b::/96",
        "64:ff9b:1::/48",
        "2002::/16",
        "2001::/32",
        "fec0::/10",
        "fd00:ec2::254/128",
    )
]
REDIRECTS = {301, 302, 303, 307, 308}
MAX_REDIRECTS = 5
# Headers that carry a credential, dropped when a redirect leaves the origin they were meant for;
# a credential sent under a name of its own (an X-API-Key, a custom header) is added by the caller.
CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})


class BlockedAddress(StepFailed):
    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


class ResponseTooLarge(StepFailed):
    def __init__(self, url: str, limit: int) -> None:
        super().__init__(
            f"the answer from {url} is larger than {limit} bytes (HTTP_MAX_RESPONSE_BYTES)",
            retryable=False,
        )


class _CappedStream(httpx2.AsyncByteStream):
    """An answer's body that stops past `limit` bytes, counted as the client will read them. The
    SDKs (model providers, MCP) read whole answers into memory: a server sending gigabytes filled
    the worker's. A compressed body is decompressed here, a bounded piece at a time, since a few
    megabytes of gzip can hold gigabytes; the client then gets it plain."""

    def __init__(self, inner: httpx2.AsyncByteStream, limit: int, url: str, decoder: Any) -> None:
        self._inner, self._limit, self._url, self._decoder = inner, limit, url, decoder

    async def __aiter__(self) -> AsyncIterator[bytes]:
        size = 0
        async for chunk in self._inner:
            for piece in self._decoded(chunk, size):
                size = self._counted(size, piece)
                yield piece
        if self._decoder is not None:
            rest = self._decoder.flush()
            self._counted(size, rest)
            yield rest

    def _counted(self, size: int, piece: bytes) -> int:
        if size + len(piece) > self._limit:
            raise ResponseTooLarge(self._url, self._limit)
        return size + len(piece)

    def _decoded(self, chunk: bytes, size: int) -> Iterator[bytes]:
        if self._decoder is None:
            yield chunk
            return
        room = self._limit - size + 1  # one byte past the limit tells it was passed
        try:
            yield self._decoder.decompress(chunk, room)
            while self._decoder.unconsumed_tail:
                yield self._decoder.decompress(self._decoder.unconsumed_tail, room)
        except zlib.error as exc:
            raise StepFailed(
                f"the answer from {self._url} is not valid compressed data: {exc}"
            ) from None

    async def aclose(self) -> None:
        await self._inner.aclose()


def _capped(response: httpx2.Response, limit: int, url: str) -> httpx2.Response:
    """The answer with its body held to `limit`, decompressed here when it is compressed."""
    encoding = response.headers.get("content-encoding", "").strip().lower()
    if encoding in ("", "identity"):
        decoder = None
    elif encoding in ("gzip", "x-gzip", "deflate"):
        decoder = zlib.decompressobj(zlib.MAX_WBITS | 32)  # a gzip or a zlib header, as sent
        del response.headers["content-encoding"]
        response.headers.pop("content-length", None)
    else:  # the client asks for gzip and deflate only (it can decode no other)
        raise StepFailed(f"the answer from {url} came in an encoding not asked for: {encoding}")
    stream = response.stream
    assert isinstance(stream, httpx2.AsyncByteStream)  # a transport's answer
    response.stream = _CappedStream(stream, limit, url, decoder)
    return response


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped:
        return address.ipv4_mapped
    if address.sixtofour:
        return address.sixtofour
    if address.teredo:
        return address.teredo[1]
    packed = int(address)
    if packed >> 32 == 0 and packed > 1:  # IPv4-compatible ::a.b.c.d
        return ipaddress.IPv4Address(packed & 0xFFFFFFFF)
    if address in ipaddress.ip_network("64:ff9b::/96"):
        return ipaddress.IPv4Address(packed & 0xFFFFFFFF)
    return None


def _networks(policy: NetPolicy) -> list[IPNetwork]:
    return [ipaddress.ip_network(net, strict=False) for net in policy.allowed_networks]


def is_blocked(address: IPAddress, allowed: Iterable[IPNetwork]) -> bool:
    allowed = list(allowed)
    if any(address.version == net.version and address in net for net in allowed):
        return False
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None and is_blocked(embedded, allowed):
            return True
    if any(address.version == net.version and address in net for net in _ALWAYS_BLOCKED):
        return True
    return not address.is_global or address.is_multicast


def resolve(host: str, port: int) -> list[IPAddress]:
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as exc:
        raise StepFailed(f"cannot resolve {host}: {exc}", retryable=True) from None
    addresses = []
    for *_, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%")[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


def parse_url(url: str | httpx.URL) -> httpx.URL:
    """The URL as httpx reads it, or BlockedAddress saying why it is none (an octal address)."""
    try:
        return httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise BlockedAddress(f"not a valid URL: {str(url)!r} ({exc})") from None


def check_url(url: str | httpx.URL, policy: NetPolicy) -> tuple[httpx.URL, IPAddress]:
    """The parsed URL and the vetted address to connect to, or BlockedAddress.

    The refusal names the host as it was written and never what it resolved to: an internal
    name's address is itself something an outsider should not learn.
    """
    parsed = parse_url(url)
    if parsed.scheme not in ("http", "https"):
        raise BlockedAddress(f"only http and https URLs are allowed, not {parsed.scheme or '?'}:")
    if parsed.userinfo:
        raise BlockedAddress("URLs with a user name or password are not allowed")
    host = parsed.host
    if not host:
        raise BlockedAddress(f"the URL has no host: {str(url)!r}")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    addresses = resolve(host, port)
    allowed = _networks(policy)
    if not addresses or any(is_blocked(address, allowed) for address in addresses):
        raise BlockedAddress(
            f"{host} is or resolves to an internal address; internal addresses are refused "
            "unless HTTP_ALLOWED_NETWORKS allows them"
        )
    return parsed, addresses[0]


def _origin(url: httpx.URL) -> tuple[str, str, int]:
    return url.scheme, url.host, url.port or (443 if url.scheme == "https" else 80)


class _Guard:
    """What both transports share: the vetted, pinned request for each hop, and the next hop."""

    def __init__(
        self,
        policy: NetPolicy,
        credential_headers: Iterable[str],
        max_redirects: int,
        http: ModuleType = httpx,
    ) -> None:
        self.policy = policy
        self.credential_headers = CREDENTIAL_HEADERS | {h.lower() for h in credential_headers}
        self.max_redirects = max_redirects
        # httpx (sync calls), or its fork httpx2 (the async SDKs'): the same request API, so the
        # requests and responses below are of either.
        self.http = http

    def pinned(self, request: Any) -> Any:
        """The request sent to the vetted address; the Host header and the TLS server name keep
        the name, so virtual hosts and certificates work as they would have."""
        url = request.url if isinstance(request.url, httpx.URL) else str(request.url)
        parsed, address = check_url(url, self.policy)
        extensions = dict(request.extensions)
        if parsed.scheme == "https":
            extensions["sni_hostname"] = parsed.host
        pinned = parsed.copy_with(host=str(address))
        return self.http.Request(
            request.method,
            pinned if self.http is httpx else str(pinned),
            headers=request.headers,
            stream=request.stream,
            extensions=extensions,
        )

    def next_hop(self, request: Any, response: Any) -> Any:
        """The request a redirect asks for (checked when it is sent), or None if not one."""
        location = response.headers.get("location")
        if response.status_code not in REDIRECTS or not location:
            return None
        try:
            url = request.url.join(location)
        except (httpx.InvalidURL, self.http.InvalidURL, ValueError) as exc:
            raise BlockedAddress(f"not a valid URL: {location!r} ({exc})") from None
        method = request.method
        stream: httpx.SyncByteStream | httpx.AsyncByteStream | None = request.stream
        headers = request.headers.copy()
        headers["Host"] = url.netloc.decode("ascii")
        if (response.status_code == 303 and method != "HEAD") or (
            response.status_code in (301, 302) and method == "POST"
        ):
            method, stream = "GET", None
            for name in ("content-length", "content-type", "transfer-encoding"):
                headers.pop(name, None)
        if _origin(url) != _origin(request.url):
            for name in self.credential_headers:
                headers.pop(name, None)
        return self.http.Request(
            method, url, headers=headers, stream=stream, extensions=request.extensions
        )

    def too_many(self, request: Any) -> StepFailed:
        return StepFailed(
            f"more than {self.max_redirects} redirects from {request.url}", retryable=False
        )


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The certificate-checking TLS context of every outbound connection. Building one loads the
    CA bundle (about 75 ms here), which a transport of its own per call paid every time; one
    context, safe to share between threads, serves them all."""
    return httpx.create_ssl_context()


class GuardedTransport(httpx.BaseTransport):
    """An httpx transport that only reaches vetted addresses and follows redirects itself, so
    that every hop is vetted and credentials stay with their origin. A refusal raises
    BlockedAddress before any connection is made."""

    def __init__(
        self,
        policy: NetPolicy,
        *,
        credential_headers: Iterable[str] = (),
        max_redirects: int = MAX_REDIRECTS,
        inner: httpx.BaseTransport | None = None,
    ) -> None:
        self._guard = _Guard(policy, credential_headers, max_redirects)
        self._inner = inner or httpx.HTTPTransport(verify=tls_context())

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        for _ in range(self._guard.max_redirects + 1):
            response = self._inner.handle_request(self._guard.pinned(request))
            following = self._guard.next_hop(request, response)
            if following is None:
                return response
            response.close()
            request = following
        raise self._guard.too_many(request)

    def close(self) -> None:
        self._inner.close()


class AsyncGuardedTransport(httpx2.AsyncBaseTransport):
    """`GuardedTransport` for the async SDKs, which are built on httpx2 (the OpenAI, Anthropic,
    Gemini and MCP clients): the same guard, hop by hop; names are resolved in a worker thread."""

    def __init__(
        self,
        policy: NetPolicy,
        *,
        credential_headers: Iterable[str] = (),
        max_redirects: int = MAX_REDIRECTS,
        inner: httpx2.AsyncBaseTransport | None = None,
    ) -> None:
        self._guard = _Guard(policy, credential_headers, max_redirects, http=httpx2)
        self._inner = inner or httpx2.AsyncHTTPTransport(verify=tls_context(), trust_env=False)
        self._limit = policy.max_response_bytes

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        for _ in range(self._guard.max_redirects + 1):
            pinned = await anyio.to_thread.run_sync(self._guard.pinned, request)
            response = await self._inner.handle_async_request(pinned)
            following = self._guard.next_hop(request, response)
            if following is None:
                return _capped(response, self._limit, str(request.url))
            await response.aclose()
            request = following
        raise self._guard.too_many(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


def guarded_client(
    policy: NetPolicy,
    *,
    timeout: float,
    credential_headers: Iterable[str] = (),
    inner: httpx.BaseTransport | None = None,
) -> httpx.Client:
    """The client for every outbound call. The transport follows redirects, so the client does
    not; `trust_env` is off so that no proxy or .netrc from the environment steps in."""
    return httpx.Client(
        transport=GuardedTransport(policy, credential_headers=credential_headers, inner=inner),
        timeout=timeout,
        follow_redirects=False,
        trust_env=False,
    )


def guarded_async_client(
    policy: NetPolicy,
    *,
    timeout: float,
    headers: dict[str, str] | None = None,
    credential_headers: Iterable[str] = (),
) -> httpx2.AsyncClient:
    """`guarded_client` for the async SDKs: the `http_client` of the model providers' and the MCP
    client's. Their own retries stay off where they have them: a step's `retry` decides."""
    return httpx2.AsyncClient(
        transport=AsyncGuardedTransport(policy, credential_headers=credential_headers),
        headers=headers,
        timeout=timeout,
        follow_redirects=False,
        trust_env=False,
    )


def fetch(
    method: str,
    url: str,
    *,
    policy: NetPolicy,
    headers: dict[str, str] | None = None,
    content: bytes | None = None,
    timeout: float = 30.0,
    credential_headers: Iterable[str] = (),
    transport: httpx.BaseTransport | None = None,
) -> httpx.Response:
    """One request through the guard, its body read; a failure is a StepFailed to show.

    `timeout` bounds the whole request, its body included: httpx's bounds each read, so a server
    that sent a byte every few seconds held the step for ever. The body is read up to the
    policy's `max_response_bytes` (decoded): a download of gigabytes filled the worker's memory.
    What lies beyond is not read; the response's `extensions["truncated"]` then says so."""
    deadline = time.monotonic() + timeout
    with guarded_client(
        policy, timeout=timeout, credential_headers=credential_headers, inner=transport
    ) as client:
        try:
            with client.stream(method, url, headers=headers, content=content) as streamed:
                body, truncated = _read_body(streamed, policy.max_response_bytes, deadline)
        except httpx.TimeoutException:
            raise StepFailed(f"{method} {url} timed out after {timeout:g} s") from None
        except httpx.InvalidURL as exc:
            raise BlockedAddress(f"not a valid URL: {url!r} ({exc})") from None
        except httpx.HTTPError as exc:
            raise StepFailed(f"{method} {url} failed: {exc}") from None
    response = httpx.Response(
        streamed.status_code,
        content=body,
        request=streamed.request,
        extensions={**streamed.extensions, "truncated": truncated},
    )
    # The body is decoded already: the server's headers (its Content-Encoding among them) are
    # set after it, for the caller to read, not to decode it again.
    response.headers = streamed.headers
    return response


def _read_body(response: httpx.Response, limit: int, deadline: float) -> tuple[bytes, bool]:
    """The decoded body up to `limit` bytes, and whether there was more."""
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        if time.monotonic() > deadline:
            raise httpx.ReadTimeout("the response took longer than the request's timeout")
        if size + len(chunk) > limit:
            chunks.append(chunk[: limit - size])
            return b"".join(chunks), True
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks), False
