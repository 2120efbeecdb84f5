"""The MCP server registry: registering a server lists its tools, refresh lists them again, and
the agent loop resolves a server (by id or name) into something it can list and call.

Here rather than in orchestrator: listing needs the MCP client and the net policy, which live in
runs (orchestrator may not import runs). The row itself stays in the library, next to Agent and
Credential, so orchestrator's admin, pages and definition checks can read it.

Listing is a call out, so no transaction is held across it: the row is saved, then listed, then
its status written with the columns the listing owns.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.utils import timezone

from core import crypto
from core.domain_errors import Conflict, InvalidRequest
from core.lookups import by_id_or_name
from core.types import Pk
from orchestrator.choices import McpServerStatus
from orchestrator.models import Credential as CredentialRow
from orchestrator.models import McpServer, Organization
from orchestrator.services import mcp_refs
from runs.engine import mcp
from runs.engine.nodes.base import Credential, StepFailed
from runs.engine.redaction import Redactor
from runs.services import resolve

MAX_ERROR = 2000


@dataclass(frozen=True)
class StdioServer:
    """An operator's stdio server as the API shows it: read-only, never started by a request."""

    id: uuid.UUID
    name: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "name": self.name,
            "transport": "stdio",
            "url": None,
            "credential": None,
            "status": McpServerStatus.PENDING.value,
            "error": "",
            "tools": [],
            "checked_at": None,
            "read_only": True,
            "created_at": None,
            "updated_at": None,
        }


def stdio_servers() -> list[StdioServer]:
    names = sorted(settings.MCP_STDIO_SERVERS)
    return [StdioServer(mcp_refs.stdio_server_id(name), name) for name in names]


def stdio_server(key: str) -> StdioServer | None:
    return next((s for s in stdio_servers() if key in (str(s.id), s.name)), None)


def refuse_stdio(key: str) -> None:
    """A write to an operator's stdio server: 409, it is read-only here."""
    server = stdio_server(key)
    if server is not None:
        raise Conflict(
            f"The MCP server '{server.name}' is a local (stdio) server set by the operator in "
            "MCP_STDIO_SERVERS: it cannot be changed, refreshed or deleted through the API."
        )


def _secret(credential: CredentialRow | None) -> Credential | None:
    if credential is None:
        return None
    return Credential(kind=credential.kind, value=crypto.decrypt(credential.encrypted_value))


def _redactor(secret: Credential | None) -> Redactor:
    return Redactor(secret.secrets() if secret is not None else ())


def endpoint(server: McpServer) -> mcp.McpEndpoint:
    """The server as the MCP client takes it: its URL, the headers its credential makes (as an
    http step would send them) and the net policy. StepFailed if the credential cannot be sent."""
    secret = _secret(server.credential)
    return mcp.McpEndpoint(
        url=server.url,
        policy=resolve.net_policy(),
        headers=secret.headers() if secret is not None else {},
        timeout=settings.MCP_CLIENT_TIMEOUT_S,
    )


def vet_url(url: str) -> None:
    """Refuse (400, on `url`) an address the net guard would refuse, before it is stored."""
    try:
        mcp.vet(url, resolve.net_policy())
    except StepFailed as exc:
        raise InvalidRequest(
            f"The MCP server's URL cannot be used: {exc}", fields={"url": [str(exc)]}
        ) from None


def refresh(server: McpServer) -> McpServer:
    """List the server's tools again; `status` says whether that worked, `error` why not (with
    the credential's value masked, in case the server quoted it back)."""
    secret = None
    try:
        secret = _secret(server.credential)
        tools = mcp.list_tools_sync(endpoint(server))
    except StepFailed as exc:
        server.status = McpServerStatus.ERROR
        server.error = _redactor(secret)(str(exc))[:MAX_ERROR]
    else:
        server.status = McpServerStatus.OK
        server.error = ""
        server.tools = _redactor(secret)([tool.as_dict() for tool in tools])
    server.checked_at = timezone.now()
    server.save(update_fields=["status", "error", "tools", "checked_at", "updated_at"])
    return server


def create_server(
    organization: Organization, *, name: str, url: str, credential: CredentialRow | None = None
) -> McpServer:
    vet_url(url)
    server = McpServer.objects.create(
        organization=organization, name=name, url=url, credential=credential
    )
    return refresh(server)


def update_server(server: McpServer, **changes: Any) -> McpServer:
    """Apply the changes; a new URL or credential lists the tools again."""
    if "url" in changes:
        vet_url(changes["url"])
    relist = any(
        key in changes and changes[key] != getattr(server, key) for key in ("url", "credential")
    )
    for key, value in changes.items():
        setattr(server, key, value)
    server.save()
    return refresh(server) if relist else server


# --- what the agent loop calls -------------------------------------------------------------------


def _row(organization_id: Pk, ref: str) -> McpServer | None:
    return by_id_or_name(
        McpServer.objects.filter(organization_id=organization_id).select_related("credential"), ref
    )


def _stdio_command(ref: str) -> mcp.McpCommand | None:
    stdio = settings.MCP_STDIO_SERVERS.get(ref) or next(
        (settings.MCP_STDIO_SERVERS[s.name] for s in stdio_servers() if str(s.id) == ref), None
    )
    if stdio is None:
        return None
    return mcp.McpCommand(
        command=stdio["command"],
        args=tuple(stdio["args"]),
        env=stdio.get("env"),
        timeout=settings.MCP_CLIENT_TIMEOUT_S,
    )


def connect(organization_id: Pk, ref: str) -> tuple[mcp.McpEndpoint | mcp.McpCommand, Redactor]:
    """The org's MCP server `ref` (id or name; an operator's stdio server by its name) as the MCP
    client takes it, with the redactor for what it sends back. StepFailed if there is none."""
    row = _row(organization_id, ref)
    if row is not None:
        return endpoint(row), _redactor(_secret(row.credential))
    command = _stdio_command(ref)
    if command is not None:
        return command, Redactor()
    raise StepFailed(f"No MCP server '{ref}' in this organization.", retryable=False)


def _stored_tools(row: McpServer) -> list[mcp.McpTool]:
    tools: list[mcp.McpTool] = []
    for tool in row.tools or []:
        if not isinstance(tool, dict) or not tool.get("name"):
            continue
        schema = tool.get("input_schema")
        tools.append(
            mcp.McpTool(
                name=str(tool["name"]),
                description=str(tool.get("description") or ""),
                input_schema=schema if isinstance(schema, dict) else {"type": "object"},
            )
        )
    return tools


def tool_source(organization_id: Pk, item: dict[str, Any]) -> mcp.McpToolSource:
    """An agent's `{"mcp": server, "tools": [names]}` item as the engine takes it. A registered
    server's tools are the ones it listed when registered or refreshed (what the editor showed
    and the save checked); an operator's stdio server is listed now, as it has no stored list.
    StepFailed when the server is not the organization's or lists no tool of a given name."""
    ref = str(item["mcp"])
    row = _row(organization_id, ref)
    server: mcp.McpEndpoint | mcp.McpCommand
    if row is not None:
        secret = _secret(row.credential)
        server, name, listed = endpoint(row), row.name, _stored_tools(row)
        secrets = secret.secrets() if secret is not None else ()
    else:
        command = _stdio_command(ref)
        if command is None:
            raise StepFailed(f"No MCP server '{ref}' in this organization.", retryable=False)
        server, name, secrets = command, ref, ()
        listed = list_tools(organization_id, ref)
    wanted = item.get("tools")
    approval = item.get("approval")
    if wanted is None:
        return mcp.McpToolSource(server, name, tuple(listed), secrets, approval)
    by_name = {tool.name: tool for tool in listed}
    missing = [tool for tool in wanted if tool not in by_name]
    if missing:
        raise StepFailed(
            f"the MCP server '{name}' lists no tool '{missing[0]}' (refresh the server if its "
            "tools have changed)",
            retryable=False,
        )
    chosen = tuple(by_name[tool] for tool in wanted)
    return mcp.McpToolSource(server, name, chosen, secrets, approval)


def list_tools(organization_id: Pk, ref: str) -> list[mcp.McpTool]:
    """The tools server `ref` lists now (StepFailed, redacted, if it cannot be listed)."""
    server, redact = connect(organization_id, ref)
    try:
        return mcp.list_tools_sync(server)
    except StepFailed as exc:
        raise StepFailed(redact(str(exc)), retryable=exc.retryable) from None


def call_tool(
    organization_id: Pk, ref: str, name: str, arguments: dict[str, Any]
) -> mcp.McpToolResult:
    """Call tool `name` of server `ref`: the result's content (text or JSON) and `is_error`,
    with the server's credential masked in it. StepFailed when the server cannot be reached."""
    server, redact = connect(organization_id, ref)
    try:
        result = mcp.call_tool_sync(server, name, arguments)
    except StepFailed as exc:
        raise StepFailed(redact(str(exc)), retryable=exc.retryable) from None
    return mcp.McpToolResult(content=redact(result.content), is_error=result.is_error)
