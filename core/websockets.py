"""Who may open a websocket: the Origin rule, by the credential the socket carries.

A browser sends the session cookie with a websocket from any page, and a websocket is not held
to the same-origin policy: without a check, any page the user opens (another site, or another
port of this host) could read their runs live. So a socket that relies on the session must come
from one of our own pages: its Origin (scheme, host and port) must be this server's, as Django's
CSRF check requires of unsafe requests, or one of CSRF_TRUSTED_ORIGINS.

A socket that carries an API token (`?token=` or `Authorization: Bearer`) relies on nothing the
browser adds by itself: whoever holds the token chose to use it, from a script with no Origin or
from a page of their own. So its Origin is not checked; the consumer refuses a bad token, and
never falls back to the session when one is given.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import split_domain_port, validate_host
from django.utils.http import is_same_domain

if TYPE_CHECKING:
    from asgiref.typing import ASGIReceiveCallable, ASGISendCallable
    from channels.consumer import _ChannelScope

SECURE_SCHEMES = ("https", "wss")


def _headers(scope: Mapping[str, Any]) -> dict[str, str]:
    return {name.decode("latin1"): value.decode("latin1") for name, value in scope["headers"]}


def websocket_token(scope: Mapping[str, Any]) -> str:
    """The API token a websocket carries: `?token=`, else an `Authorization: Bearer` header
    (clients other than browsers can send one); empty when it carries none."""
    raw_query: bytes = scope.get("query_string", b"")
    query = parse_qs(raw_query.decode("latin1"))
    token = (query.get("token") or [""])[0].strip()
    if token:
        return token
    scheme, _, raw = _headers(scope).get("authorization", "").partition(" ")
    return raw.strip() if scheme.lower() == "bearer" else ""


def _is_secure(scope: Mapping[str, Any], headers: dict[str, str]) -> bool:
    """As Django decides for a request: the connection's scheme, or the proxy's header when
    SECURE_PROXY_SSL_HEADER (BEHIND_PROXY) says to trust it."""
    if scope.get("scheme") in SECURE_SCHEMES:
        return True
    if settings.SECURE_PROXY_SSL_HEADER:
        meta_name, secure_value = settings.SECURE_PROXY_SSL_HEADER
        header = meta_name.removeprefix("HTTP_").replace("_", "-").lower()
        return headers.get(header, "").split(",")[0].strip() == secure_value
    return False


def from_own_page(scope: Mapping[str, Any]) -> bool:
    """Whether the socket's Origin is this server (scheme, host and port, the host one of
    ALLOWED_HOSTS) or one of CSRF_TRUSTED_ORIGINS. No Origin is no page of ours."""
    headers = _headers(scope)
    origin = headers.get("origin", "").strip().lower()
    host = headers.get("host", "").strip().lower()
    if not origin or origin == "null":
        return False
    domain, _ = split_domain_port(host)
    if host and domain and validate_host(domain, settings.ALLOWED_HOSTS):
        own = f"{'https' if _is_secure(scope, headers) else 'http'}://{host}"
        if origin == own:
            return True
    # CSRF_TRUSTED_ORIGINS as Django reads them: exact, or `https://*.example.com` for subdomains.
    parsed = urlsplit(origin)
    for trusted in (entry.lower() for entry in settings.CSRF_TRUSTED_ORIGINS):
        if origin == trusted:
            return True
        allowed = urlsplit(trusted)
        if (
            "*" in trusted
            and parsed.scheme == allowed.scheme
            and is_same_domain(parsed.netloc, allowed.netloc.lstrip("*"))
        ):
            return True
    return False


class OriginCheck:
    """ASGI middleware for the websocket routes: refuses a socket that would ride on the session
    from a page that is not ours (see the module's docstring)."""

    def __init__(self, application: Any) -> None:  # the ASGI application it guards
        self.application = application

    async def __call__(
        self, scope: _ChannelScope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> Any:
        if websocket_token(scope) or from_own_page(scope):
            return await self.application(scope, receive, send)
        return await WebsocketDenier()(scope, receive, send)
