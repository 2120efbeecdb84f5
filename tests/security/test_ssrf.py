"""SSRF: `http` steps, the `http_get` tool and MCP servers (registering, refreshing) never
reach loopback, private, link-local or metadata addresses, in any spelling, through DNS or
through a redirect, unless HTTP_ALLOWED_NETWORKS allows them.

Every target runs through the real path (a run is fired, the step executed by the services, the
guard asked by the node or the tool) while a canary listens on every local address on its port
and counts connections. The figures are printed (`pytest -s`) and asserted.
"""

from __future__ import annotations

import socket

import pytest

from orchestrator.models import McpServer
from runs.models import RunEvent, StepRun
from runs.services import mcp_servers
from tests.runs.harness import run_to_rest
from tests.security.servers import Canary, PublicServer, public_with_rebind_canary, serving

pytestmark = pytest.mark.django_db

# What the guard says when it refuses; any other failure (a timeout, a refused connection) means
# the request went out and only failed by luck.
GUARD_MESSAGES = (
    "internal address",
    "only http and https",
    "user name or password",
    "not a valid URL",
    "has no host",
)

# Targets the system resolver may not know at all (a trailing dot, a zone id): refusing them as
# unresolvable is as good as refusing them as internal, as long as nothing is sent.
MAY_NOT_RESOLVE = ("localhost.", "%25eth0")

# Names the patched resolver answers (see `fake_dns`): each resolves to internal addresses, but
# example.com, whose "#@127.0.0.1" is a fragment, goes to a documentation address (refused too),
# so that no test ever leaves the machine.
FAKE_DNS = {
    "example.com": ["192.0.2.10"],
    "internal.test": ["127.0.0.1"],
    "v6.internal.test": ["::1"],
    "mapped.internal.test": ["::ffff:127.0.0.1"],
    "mixed.internal.test": ["93.184.216.34", "127.0.0.1"],
    "metadata.internal.test": ["169.254.169.254"],
    "private.internal.test": ["10.1.2.3"],
    "ula.internal.test": ["fd00::1"],
}


def targets(port: int) -> list[str]:
    """Every spelling of an inside address; `port` is the canary's, so a loopback request that
    got through would be counted."""
    p = port
    return [
        # loopback
        f"http://127.0.0.1:{p}/",
        f"http://127.1:{p}/",
        f"http://127.0.1:{p}/",
        f"http://127.0.0.2:{p}/",
        f"http://127.255.255.254:{p}/",
        f"http://localhost:{p}/",
        f"http://LOCALHOST:{p}/",
        f"http://localhost.:{p}/",
        f"http://0.0.0.0:{p}/",
        f"http://0:{p}/",
        f"http://[::1]:{p}/",
        f"http://[::]:{p}/",
        f"http://[0000::1]:{p}/",
        f"http://[0:0:0:0:0:0:0:1]:{p}/",
        f"https://127.0.0.1:{p}/",
        f"HTTP://127.0.0.1:{p}/",
        f"http://127\u30020\u30020\u30021:{p}/",
        # IPv4-mapped, IPv4-compatible and other IPv6 forms that embed 127.0.0.1
        f"http://[::ffff:127.0.0.1]:{p}/",
        f"http://[::ffff:7f00:1]:{p}/",
        f"http://[0:0:0:0:0:ffff:127.0.0.1]:{p}/",
        f"http://[::127.0.0.1]:{p}/",
        f"http://[::7f00:1]:{p}/",
        f"http://[64:ff9b::127.0.0.1]:{p}/",
        f"http://[2002:7f00:1::]:{p}/",
        # decimal, octal, hex and short forms
        f"http://2130706433:{p}/",
        f"http://0177.0.0.1:{p}/",
        f"http://017700000001:{p}/",
        f"http://0x7f000001:{p}/",
        f"http://0x7f.0.0.1:{p}/",
        f"http://0x7f.1:{p}/",
        f"http://0177.1:{p}/",
        # private
        "http://10.0.0.1/",
        "http://10.255.255.254/",
        "http://172.16.0.1/",
        "http://172.31.255.254/",
        "http://192.168.0.1/",
        "http://192.168.255.254/",
        "http://100.64.0.1/",
        "http://100.127.255.254/",
        "http://167772161/",
        "http://0xa000001/",
        "http://012.0.0.1/",
        "http://[::ffff:10.0.0.1]/",
        "http://[::ffff:192.168.0.1]/",
        "http://[::ffff:172.16.0.1]/",
        "http://192.0.0.1/",
        "http://198.18.0.1/",
        # link-local and cloud metadata
        "http://169.254.169.254/latest/meta-data/",
        "http://169.254.0.1/",
        "http://2852039166/",
        "http://0xa9fea9fe/",
        "http://0251.0376.0251.0376/",
        "http://[::ffff:169.254.169.254]/",
        "http://[::ffff:a9fe:a9fe]/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://[fe80::1]/",
        "http://[fe80::1%25eth0]/",
        # IPv6 unique local
        "http://[fc00::1]/",
        "http://[fd12:3456:789a::1]/",
        "http://[fdff:ffff:ffff::1]/",
        # multicast, broadcast, reserved
        "http://224.0.0.1/",
        "http://255.255.255.255/",
        "http://240.0.0.1/",
        "http://[ff02::1]/",
        # DNS names that resolve inside (patched resolver)
        f"http://internal.test:{p}/",
        f"http://v6.internal.test:{p}/",
        f"http://mapped.internal.test:{p}/",
        f"http://mixed.internal.test:{p}/",
        "http://metadata.internal.test/latest/meta-data/",
        "http://private.internal.test/",
        "http://ula.internal.test/",
        # userinfo and fragment tricks
        f"http://example.com@127.0.0.1:{p}/",
        f"http://example.com:80@127.0.0.1:{p}/",
        f"http://user:pass@127.0.0.1:{p}/",
        f"http://127.0.0.1:{p}#@example.com/",
        f"http://127.0.0.1:{p}?@example.com/",
        f"http://127.0.0.1:{p}\\@example.com/",
        f"http://example.com#@127.0.0.1:{p}/",
        # other schemes
        "file:///etc/passwd",
        "file://localhost/etc/passwd",
        f"gopher://127.0.0.1:{p}/_GET%20/",
        f"ftp://127.0.0.1:{p}/",
        f"dict://127.0.0.1:{p}/info",
        f"ldap://127.0.0.1:{p}/",
        "data:text/plain,hello",
        f"//127.0.0.1:{p}/",
        f"127.0.0.1:{p}",
    ]


@pytest.fixture(scope="module")
def canary():
    with serving(Canary()) as (server,):
        yield server


@pytest.fixture
def fake_dns(monkeypatch):
    """The guard resolves with `socket.getaddrinfo`; answer the FAKE_DNS names, pass the rest."""
    real = socket.getaddrinfo
    asked: list[str] = []

    def getaddrinfo(host, port, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else host
        asked.append(name)
        if name in FAKE_DNS:
            return [
                (
                    socket.AF_INET6 if ":" in address else socket.AF_INET,
                    socket.SOCK_STREAM,
                    socket.IPPROTO_TCP,
                    "",
                    (address, port or 0, 0, 0) if ":" in address else (address, port or 0),
                )
                for address in FAKE_DNS[name]
            ]
        return real(host, port, *args, **kwargs)

    # runs.engine.netguard.resolve calls socket.getaddrinfo (the module attribute, at call time).
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return asked


@pytest.fixture
def nothing_allowed(settings):
    settings.HTTP_ALLOWED_NETWORKS = []


def http_node(node_id: str, url: str) -> dict:
    return {
        "id": node_id,
        "type": "http",
        "config": {"url": url, "timeout_s": 2},
        "on_error": "continue",
    }


def run_http_steps(make_flow, urls: list[str]) -> dict[str, dict]:
    """One run, one independent `http` node per URL; the error (or None) of each step."""
    nodes = [http_node(f"t{i}", url) for i, url in enumerate(urls)]
    run = run_to_rest(make_flow(nodes, name="SSRF http"))
    steps = {s.node_id: s for s in StepRun.objects.filter(run=run)}
    return {url: steps[f"t{i}"] for i, url in enumerate(urls)}


def run_tool_calls(make_flow, urls: list[str]) -> list[dict]:
    """One run, one scripted agent that calls `http_get` once per URL; the tool results."""
    agent = {"model": "builtin/script", "tools": ["http_get"]}
    calls = [{"name": "http_get", "arguments": {"url": url}} for url in urls]
    node = {
        "id": "agent",
        "type": "agent",
        "config": {"agent": agent, "prompt": "Fetch", "script": [{"tool_calls": calls}, "done"]},
    }
    run = run_to_rest(make_flow([node], name="SSRF tool"))
    assert run.status == "succeeded", run.error
    results = [
        data
        for data in RunEvent.objects.filter(run=run, type="tool_result")
        .order_by("seq")
        .values_list("data", flat=True)
    ]
    assert len(results) == len(urls)
    return results


def refused_by_guard(message: str, url: str = "") -> bool:
    if any(part in message for part in GUARD_MESSAGES):
        return True
    return "cannot resolve" in message and any(part in url for part in MAY_NOT_RESOLVE)


def test_the_matrix_has_at_least_sixty_targets():
    assert len(targets(1)) >= 60
    assert len(set(targets(1))) == len(targets(1))


def test_http_steps_refuse_every_inside_target(make_flow, canary, fake_dns, nothing_allowed):
    urls = targets(canary.port)
    before = canary.hits
    steps = run_http_steps(make_flow, urls)
    wrong = {
        url: (step.status, (step.error or {}).get("message"))
        for url, step in steps.items()
        if step.status != "failed"
        or not refused_by_guard((step.error or {}).get("message", ""), url)
    }
    assert wrong == {}
    assert canary.hits == before, canary.requests
    assert {"internal.test", "mixed.internal.test"} <= set(fake_dns)
    print(f"\nSSRF http step: {len(urls)} targets refused by the guard, canary hits 0")


def test_the_http_get_tool_refuses_every_inside_target(
    make_flow, canary, fake_dns, nothing_allowed
):
    urls = targets(canary.port)
    before = canary.hits
    results = run_tool_calls(make_flow, urls)
    wrong = {
        url: result["preview"]
        for url, result in zip(urls, results, strict=True)
        if result["ok"] or not refused_by_guard(result["preview"], url)
    }
    assert wrong == {}
    assert canary.hits == before, canary.requests
    print(f"\nSSRF http_get tool: {len(urls)} targets refused by the guard, canary hits 0")


def test_a_refused_target_is_not_retried(make_flow, canary, nothing_allowed):
    node = {**http_node("get", f"http://127.0.0.1:{canary.port}/"), "retry": {"max_attempts": 3}}
    del node["on_error"]
    run = run_to_rest(make_flow([node]))
    assert run.status == "failed"
    assert StepRun.objects.filter(run=run).count() == 1
    assert "internal address" in run.error["detail"]


def test_with_loopback_allowed_the_canary_is_reached(make_flow, canary, settings):
    """The positive control: the same setup reaches the canary once loopback is allowed, so a
    zero above means refused, not unreachable."""
    settings.HTTP_ALLOWED_NETWORKS = ["127.0.0.0/8", "::1/128"]
    before = canary.hits
    urls = [f"http://127.0.0.1:{canary.port}/step", f"http://[::1]:{canary.port}/step6"]
    steps = run_http_steps(make_flow, urls)
    assert {url: step.status for url, step in steps.items()} == dict.fromkeys(urls, "succeeded")
    assert steps[urls[0]].output["body"] == {"canary": True}
    results = run_tool_calls(make_flow, [f"http://127.0.0.1:{canary.port}/tool"])
    assert results[0]["ok"], results[0]
    assert canary.hits == before + 3
    assert canary.requests[-3:] == ["GET /step", "GET /step6", "GET /tool"]


# --- redirects: a server the test allows (127.0.0.2) sends the client inside ------------------


def redirect_targets(canary_port: int) -> list[str]:
    p = canary_port
    return [
        f"http://127.0.0.1:{p}/",
        f"http://localhost:{p}/",
        f"http://[::1]:{p}/",
        f"http://[::ffff:127.0.0.1]:{p}/",
        f"http://2130706433:{p}/",
        f"http://0x7f000001:{p}/",
        f"http://internal.test:{p}/",
        f"http://example.com@127.0.0.1:{p}/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/",
        "http://10.0.0.1/",
        "file:///etc/passwd",
        f"gopher://127.0.0.1:{p}/_GET",
        f"//127.0.0.1:{p}/",
    ]


@pytest.fixture
def public(settings):
    """A server on 127.0.0.2, the only address allowed; the canary stays on 127.0.0.1 & co."""
    settings.HTTP_ALLOWED_NETWORKS = ["127.0.0.2/32"]
    with serving(PublicServer("127.0.0.2")) as (server,):
        yield server


def redirect_url(public: PublicServer, to: str, code: int) -> str:
    from urllib.parse import quote

    return f"{public.url}/redirect?code={code}&to={quote(to, safe='')}"


def test_the_allowed_server_itself_is_reached(make_flow, public):
    steps = run_http_steps(make_flow, [f"{public.url}/ok"])
    step = next(iter(steps.values()))
    assert step.status == "succeeded", step.error
    assert step.output["body"]["public"] is True


@pytest.mark.parametrize(
    ("code", "count"), [(302, None), (307, None), (301, 3), (303, 3), (308, 3)]
)
def test_a_redirect_to_an_inside_address_is_refused(
    make_flow, canary, fake_dns, public, code, count
):
    targets_ = redirect_targets(canary.port)[:count]
    urls = [redirect_url(public, to, code) for to in targets_]
    before = canary.hits
    steps = run_http_steps(make_flow, urls)
    results = run_tool_calls(make_flow, urls)
    wrong = {
        to: (step.status, (step.error or {}).get("message"), result["preview"])
        for to, step, result in zip(targets_, steps.values(), results, strict=True)
        if step.status != "failed"
        or not refused_by_guard((step.error or {}).get("message", ""))
        or result["ok"]
        or not refused_by_guard(result["preview"])
    }
    assert wrong == {}
    assert canary.hits == before, canary.requests
    assert len(public.requests) == 2 * len(targets_)  # the first hop was made, and only it
    print(f"\nSSRF redirect {code}: {len(targets_)} inside targets refused (step and tool)")


def test_a_second_dns_answer_cannot_move_the_request_inside(make_flow, settings, monkeypatch):
    """DNS rebinding: the name resolves to the allowed address when checked and to loopback
    after; the request goes to the checked address, never to the second answer."""
    settings.HTTP_ALLOWED_NETWORKS = ["127.0.0.2/32"]
    public_server, rebind_canary = public_with_rebind_canary()
    answers = iter(["127.0.0.2"])
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host == "rebind.test":
            address = next(answers, "127.0.0.1")
            return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    with serving(public_server, rebind_canary):
        steps = run_http_steps(make_flow, [f"http://rebind.test:{public_server.port}/ok"])
        step = next(iter(steps.values()))
        assert step.status == "succeeded", step.error
        assert public_server.requests == ["/ok"]
        assert rebind_canary.hits == 0


# --- model calls: an agent's base_url goes through the same guard ------------------------------


def model_node(node_id: str, base_url: str) -> dict:
    agent = {"model": "openai/test", "base_url": base_url}
    config = {"agent": agent, "prompt": "Hello"}
    return {"id": node_id, "type": "agent", "config": config, "on_error": "continue"}


def run_model_calls(make_flow, urls: list[str]) -> dict[str, StepRun]:
    """One run, one independent agent step per base URL; each step by its URL."""
    nodes = [model_node(f"m{i}", url) for i, url in enumerate(urls)]
    run = run_to_rest(make_flow(nodes, name="SSRF model"))
    steps = {s.node_id: s for s in StepRun.objects.filter(run=run)}
    return {url: steps[f"m{i}"] for i, url in enumerate(urls)}


def message_of(step: StepRun) -> str:
    return (step.error or {}).get("message", "")


def test_model_calls_refuse_every_inside_base_url(make_flow, canary, fake_dns, nothing_allowed):
    urls = targets(canary.port)
    before = canary.hits
    steps = run_model_calls(make_flow, urls)
    wrong = {
        url: (step.status, message_of(step))
        for url, step in steps.items()
        if step.status != "failed" or not refused_by_guard(message_of(step), url)
    }
    assert wrong == {}
    assert canary.hits == before, canary.requests
    print(f"\nSSRF model base_url: {len(urls)} targets refused by the guard, canary hits 0")


def test_with_loopback_allowed_a_model_call_reaches_the_canary(make_flow, canary, settings):
    """The positive control for the model matrix: allowed, the same call gets through."""
    settings.HTTP_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    before = canary.hits
    steps = run_model_calls(make_flow, [f"http://127.0.0.1:{canary.port}/v1"])
    assert canary.hits == before + 1
    assert canary.requests[-1] == "POST /v1/chat/completions"
    # The canary's {"canary": true} is no chat completion: a sentence, not a Python error.
    assert message_of(next(iter(steps.values()))).startswith("the model's answer was malformed")


def test_a_model_server_cannot_redirect_the_call_inside(make_flow, canary, fake_dns, settings):
    settings.HTTP_ALLOWED_NETWORKS = ["127.0.0.2/32"]
    before = canary.hits
    wrong = {}
    with serving(PublicServer("127.0.0.2")) as (public,):
        for code in (302, 307, 308):
            for to in redirect_targets(canary.port):
                public.redirect_all = (code, to)
                step = next(iter(run_model_calls(make_flow, [f"{public.url}/v1"]).values()))
                if step.status != "failed" or not refused_by_guard(message_of(step)):
                    wrong[(code, to)] = message_of(step)
    assert wrong == {}
    assert canary.hits == before, canary.requests
    assert len(public.requests) == 3 * len(redirect_targets(canary.port))


def test_a_refused_model_server_looks_the_same_whether_its_port_is_open_or_closed(
    make_flow, canary, nothing_allowed
):
    """A port scan through the step errors: the refusal comes before any connection, so an open
    port (the canary) and a closed one give the same words."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    urls = [f"http://127.0.0.1:{canary.port}/v1", f"http://127.0.0.1:{closed}/v1"]
    before = canary.hits
    messages = {message_of(step) for step in run_model_calls(make_flow, urls).values()}
    assert len(messages) == 1
    assert refused_by_guard(messages.pop())
    assert canary.hits == before


def test_a_refusal_does_not_say_what_an_internal_name_resolves_to(
    make_flow, fake_dns, nothing_allowed
):
    names = ["internal.test", "v6.internal.test", "mapped.internal.test", "mixed.internal.test"]
    names += ["metadata.internal.test", "private.internal.test", "ula.internal.test"]
    urls = [f"http://{name}/" for name in names]
    said = [message_of(step) for step in run_http_steps(make_flow, urls).values()]
    said += [message_of(step) for step in run_model_calls(make_flow, urls).values()]
    said += [result["preview"] for result in run_tool_calls(make_flow, urls)]
    assert len(said) == 3 * len(names)
    assert all(refused_by_guard(message) for message in said), said
    leaked = {
        (message, address)
        for message in said
        for name in names
        for address in FAKE_DNS[name]
        if address in message
    }
    assert leaked == set()


# --- MCP servers: registering and refreshing one goes through the same guard --------------------


def test_registering_an_mcp_server_refuses_every_inside_target(
    editor, canary, fake_dns, nothing_allowed
):
    urls = targets(canary.port)
    before = canary.hits
    answers = {
        url: editor.post("/api/v1/mcp-servers", {"name": f"s{i}", "url": url}, format="json")
        for i, url in enumerate(urls)
    }
    wrong = {
        url: (a.status_code, a.content[:200]) for url, a in answers.items() if a.status_code != 400
    }
    assert wrong == {}
    assert not McpServer.objects.exists()
    assert canary.hits == before, canary.requests
    by_guard = sum(refused_by_guard(a.json()["detail"], url) for url, a in answers.items())
    assert by_guard >= 50  # the rest are not URLs at all (data:, //host, host:port)
    print(f"\nSSRF MCP register: {len(urls)} targets refused ({by_guard} by the guard), 0 hits")


def test_refreshing_an_mcp_server_refuses_every_inside_target(
    org, canary, fake_dns, nothing_allowed
):
    """A server stored while the setting allowed its address is refused once it no longer does:
    the check is made on every call, not only when the URL was written."""
    urls = targets(canary.port)
    before = canary.hits
    rows = [
        McpServer.objects.create(organization=org, name=f"s{i}", url=url)
        for i, url in enumerate(urls)
    ]
    wrong = {}
    for row in rows:
        refreshed = mcp_servers.refresh(row)
        if refreshed.status != "error" or not refused_by_guard(refreshed.error, row.url):
            wrong[row.url] = (refreshed.status, refreshed.error)
    assert wrong == {}
    assert canary.hits == before, canary.requests
    print(f"\nSSRF MCP refresh: {len(urls)} targets refused by the guard, canary hits 0")


def test_with_loopback_allowed_an_mcp_server_reaches_the_canary(editor, canary, settings):
    settings.HTTP_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    before = canary.hits
    answer = editor.post(
        "/api/v1/mcp-servers",
        {"name": "canary", "url": f"http://127.0.0.1:{canary.port}/mcp"},
        format="json",
    )
    assert answer.status_code == 201
    assert answer.json()["status"] == "error"  # a canary speaks no MCP
    assert canary.hits > before


@pytest.mark.parametrize("code", [302, 307, 308])
def test_an_mcp_server_that_redirects_inside_is_refused(editor, canary, fake_dns, public, code):
    targets_ = redirect_targets(canary.port)[:8]
    before = canary.hits
    for i, to in enumerate(targets_):
        answer = editor.post(
            "/api/v1/mcp-servers",
            {"name": f"r{i}", "url": redirect_url(public, to, code)},
            format="json",
        )
        assert answer.status_code == 201
        assert answer.json()["status"] == "error"
        assert refused_by_guard(answer.json()["error"]), answer.json()["error"]
    assert canary.hits == before, canary.requests
