"""Outbound HTTP that cannot be pointed at the inside of the network (SSRF).

Every address a host resolves to is checked (loopback, private, link-local, metadata, shared,
reserved, multicast, and the IPv6 forms that embed such an IPv4 address) unless an allowed
network covers it; the request then goes to the vetted address itself, so a second DNS answer
cannot swap it (rebinding); redirects are followed by hand and checked again.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from typing import Any

import httpx

from runs.engine.nodes.base import NetPolicy, StepFailed

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
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


class BlockedAddress(StepFailed):
    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


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


def _networks(policy: NetPolicy) -> list:
    return [ipaddress.ip_network(net, strict=False) for net in policy.allowed_networks]


def is_blocked(address: IPAddress, allowed: Iterable) -> bool:
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
        address = ipaddress.ip_address(sockaddr[0].split("%")[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


def check_url(url: str, policy: NetPolicy) -> tuple[httpx.URL, IPAddress]:
    """The parsed URL and the vetted address to connect to, or BlockedAddress."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise BlockedAddress(f"not a valid URL: {url!r} ({exc})") from None
    if parsed.scheme not in ("http", "https"):
        raise BlockedAddress(f"only http and https URLs are allowed, not {parsed.scheme or '?'}:")
    if parsed.userinfo:
        raise BlockedAddress("URLs with a user name or password are not allowed")
    host = parsed.host
    if not host:
        raise BlockedAddress(f"the URL has no host: {url!r}")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    addresses = resolve(host, port)
    allowed = _networks(policy)
    blocked = [str(a) for a in addresses if is_blocked(a, allowed)]
    if blocked or not addresses:
        raise BlockedAddress(
            f"{host} resolves to an internal address ({', '.join(blocked)}); internal addresses "
            "are refused unless HTTP_ALLOWED_NETWORKS allows them"
        )
    return parsed, addresses[0]


def fetch(
    method: str,
    url: str,
    *,
    policy: NetPolicy,
    headers: dict[str, str] | None = None,
    content: bytes | None = None,
    timeout: float = 30.0,
    max_redirects: int = 5,
    transport: Any = None,
) -> httpx.Response:
    """One request through the guard, following redirects by hand."""
    headers = dict(headers or {})
    with httpx.Client(
        transport=transport, timeout=timeout, follow_redirects=False, trust_env=False
    ) as client:
        for _ in range(max_redirects + 1):
            parsed, address = check_url(url, policy)
            host = f"[{address}]" if address.version == 6 else str(address)
            target = parsed.copy_with(host=host.strip("[]") if address.version == 4 else host)
            request_headers = {**headers, "Host": parsed.netloc.decode().split("@")[-1]}
            extensions = {"sni_hostname": parsed.host} if parsed.scheme == "https" else {}
            try:
                response = client.request(
                    method, target, headers=request_headers, content=content, extensions=extensions
                )
            except httpx.TimeoutException:
                raise StepFailed(f"{method} {url} timed out after {timeout:g} s") from None
            except httpx.HTTPError as exc:
                raise StepFailed(f"{method} {url} failed: {exc}") from None
            location = response.headers.get("location")
            if response.status_code not in REDIRECTS or not location:
                return response
            url = str(parsed.join(location))
            if response.status_code == 303 or (
                response.status_code in (301, 302) and method == "POST"
            ):
                method, content = "GET", None
        raise StepFailed(f"more than {max_redirects} redirects from {url}", retryable=False)
