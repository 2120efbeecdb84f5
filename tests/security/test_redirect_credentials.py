"""A credential goes only to the origin it was given for: when a redirect changes the scheme, the
host or the port, the credential headers (Authorization, Proxy-Authorization, Cookie and the
credential's own header) are not sent again; a redirect within the origin keeps them.

Real servers on loopback, allowed for these tests: the origin on 127.0.0.1, another port on
127.0.0.1 and another host on 127.0.0.2. The figures are printed (`pytest -s`) and asserted.
"""

from __future__ import annotations

from urllib.parse import quote

import pytest

from core import crypto
from orchestrator.models import Credential
from runs.models import RunEvent, StepRun
from tests.runs.harness import run_to_rest
from tests.security.servers import PublicServer, serving

pytestmark = pytest.mark.django_db

SECRET = "s3cret-cr3dential"
# Each kind of stored credential and the header it travels in.
KINDS = {
    "bearer": "authorization",
    "basic": "authorization",
    "api_key": "x-api-key",
    "header": "x-token",
}
# Headers a step's author may write by hand, which carry a credential as well.
HAND_WRITTEN = {"Cookie": "session=abc", "Proxy-Authorization": "Basic Zm9vOmJhcg=="}
CODES = (301, 302, 303, 307, 308)


@pytest.fixture
def servers(settings):
    settings.HTTP_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    with serving(
        PublicServer("127.0.0.1"), PublicServer("127.0.0.1"), PublicServer("127.0.0.2")
    ) as started:
        yield started


@pytest.fixture
def credentials(org):
    for kind in KINDS:
        value = f"X-Token: {SECRET}" if kind == "header" else SECRET
        Credential.objects.create(
            organization=org, name=kind, kind=kind, encrypted_value=crypto.encrypt(value)
        )


def http_step(node_id: str, url: str, credential: str) -> dict:
    config = {"url": url, "credential": credential, "headers": HAND_WRITTEN, "timeout_s": 5}
    return {"id": node_id, "type": "http", "config": config}


def redirected_headers(make_flow, origin: PublicServer, target: PublicServer, to: str) -> dict:
    """What the target heard after the origin redirected to `to`, by (credential kind, redirect
    code); one run each, so that each landing is known to belong to its step."""
    heard = {}
    for code in CODES:
        start = f"{origin.url}/redirect?code={code}&to={quote(to, safe='')}"
        for kind in KINDS:
            run = run_to_rest(make_flow([http_step("get", start, kind)]))
            assert run.status == "succeeded", run.error
            assert StepRun.objects.get(run=run).output["body"]["path"] == "/landed"
            heard[(kind, code)] = target.headers_seen[-1]
    return heard


def credential_headers(headers: dict, kind: str) -> set[str]:
    names = {KINDS[kind], *(name.lower() for name in HAND_WRITTEN)}
    return {name for name in names if name in headers}


@pytest.mark.parametrize("where", ["another port", "another host"])
def test_a_redirect_to_another_origin_drops_every_credential_header(
    make_flow, servers, credentials, where
):
    origin, other_port, other_host = servers
    target = other_port if where == "another port" else other_host
    heard = redirected_headers(make_flow, origin, target, f"{target.url}/landed")
    kept = {key: credential_headers(headers, key[0]) for key, headers in heard.items()}
    assert kept == {key: set() for key in heard}
    assert not any(SECRET in str(headers) for headers in heard.values())
    # The origin itself was sent them all, so the test would see them if they had followed.
    sent = {name for headers in origin.headers_seen for name in headers}
    assert {"authorization", "x-api-key", "x-token", "cookie", "proxy-authorization"} <= sent
    print(f"\nredirect to {where}: {len(heard)} redirects, 0 credential headers followed")


def test_a_redirect_within_the_origin_keeps_the_credential(make_flow, servers, credentials):
    origin, _, _ = servers
    heard = redirected_headers(make_flow, origin, origin, "/landed")
    missing = {
        key: {KINDS[key[0]], "cookie", "proxy-authorization"} - set(headers)
        for key, headers in heard.items()
    }
    assert missing == {key: set() for key in heard}
    assert heard[("header", 307)]["x-token"] == SECRET


def test_the_http_get_tool_drops_its_authorization_on_a_redirect_elsewhere(make_flow, servers):
    origin, other_port, _ = servers
    start = f"{origin.url}/redirect?code=302&to={quote(other_port.url + '/landed', safe='')}"
    headers = {"Authorization": f"Bearer {SECRET}", "Cookie": "session=abc"}
    agent = {"model": "builtin/script", "tools": ["http_get"]}
    call = {"tool": "http_get", "args": {"url": start, "headers": headers}}
    node = {
        "id": "agent",
        "type": "agent",
        "config": {"agent": agent, "prompt": "Fetch", "script": [call, "done"]},
    }
    run = run_to_rest(make_flow([node]))
    assert run.status == "succeeded", run.error
    result = RunEvent.objects.get(run=run, type="tool_result").data
    assert result["ok"], result
    assert origin.headers_seen[0]["authorization"] == f"Bearer {SECRET}"
    assert other_port.requests == ["/landed"]
    assert {"authorization", "cookie"} & set(other_port.headers_seen[0]) == set()
