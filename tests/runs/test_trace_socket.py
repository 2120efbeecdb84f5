"""The run trace websocket: the event log after a seq, live wake-ups, and who may listen."""

from __future__ import annotations

import json
from unittest.mock import patch

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client

from config.asgi import application
from core.choices import Role
from orchestrator.models import ApiToken, Membership
from orchestrator.services.orchestrations import create_orchestration
from runs import consumers
from runs.models import TriggerKind as RunTrigger
from runs.services import events, lifecycle
from runs.services.events import append_now
from tests.runs.harness import drain

pytestmark = pytest.mark.django_db(transaction=True)


def session_cookie(organization, username: str) -> str:
    user = get_user_model().objects.create_user(username, password="pw-long-enough-1")
    Membership.objects.create(user=user, organization=organization, role=Role.VIEWER)
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}"


def finished_run(org):
    orchestration = create_orchestration(
        org,
        {
            "name": "Two",
            "status": "active",
            "definition": {
                "nodes": [
                    {"id": "a", "type": "transform", "config": {"output": "1"}},
                    {"id": "b", "type": "transform", "config": {"output": "2"}},
                ],
                "edges": [{"source": "a", "target": "b"}],
            },
        },
    )
    run, _ = lifecycle.fire(orchestration, {}, trigger_kind=RunTrigger.API)
    drain()
    return run


# What a browser on one of our pages sends: the page's origin, and the server it connects to.
OWN_PAGE = [(b"host", b"testserver"), (b"origin", b"http://testserver")]


def connect(
    path: str,
    *,
    cookie: str = "",
    origin: str | None = "http://testserver",
    host: str = "testserver",
    extra: tuple[tuple[bytes, bytes], ...] = (),
):
    headers = [(b"host", host.encode()), *extra]
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    if cookie:
        headers.append((b"cookie", cookie.encode()))

    async def go():
        communicator = WebsocketCommunicator(application, path, headers=headers)
        connected, code = await communicator.connect(timeout=5)
        messages = []
        if connected:
            while not await communicator.receive_nothing(timeout=0.5):
                messages.append(await communicator.receive_json_from())
            await communicator.disconnect()
        return connected, code, messages

    return async_to_sync(go)()


def seqs(messages) -> list[int]:
    return [event["seq"] for message in messages for event in message["events"]]


def test_a_member_gets_the_whole_log_in_order_and_a_reconnect_resumes_after_its_seq(org):
    run = finished_run(org)
    cookie = session_cookie(org, "reader")
    connected, _, messages = connect(f"/ws/runs/{run.pk}/", cookie=cookie)
    assert connected
    everything = seqs(messages)
    run.refresh_from_db()
    assert everything == list(range(1, run.last_seq + 1))
    assert messages[-1]["status"] == "succeeded"
    types = [event["type"] for message in messages for event in message["events"]]
    assert types[-1] == "orchestration_complete" and "step_complete" in types

    _, _, later = connect(f"/ws/runs/{run.pk}/?after=3", cookie=cookie)
    assert seqs(later) == everything[3:]


def test_an_api_token_in_the_query_string_works_too(org):
    run = finished_run(org)
    _, raw = ApiToken.issue(org, Role.VIEWER, service_account="dashboard")
    connected, _, messages = connect(f"/ws/runs/{run.pk}/?token={raw}")
    assert connected and seqs(messages)[0] == 1


def test_events_appended_while_connected_are_pushed(org):
    run = finished_run(org)
    cookie = session_cookie(org, "watcher")

    async def go():
        communicator = WebsocketCommunicator(
            application,
            f"/ws/runs/{run.pk}/",
            headers=[*OWN_PAGE, (b"cookie", cookie.encode())],
        )
        assert (await communicator.connect(timeout=5))[0]
        first = await communicator.receive_json_from(timeout=5)
        await database_sync_to_async(append_now)(run.pk, "approval_escalated", "", note="late")
        pushed = await communicator.receive_json_from(timeout=5)
        await communicator.disconnect()
        return first, pushed

    first, pushed = async_to_sync(go)()
    assert pushed["events"][0]["seq"] == first["events"][-1]["seq"] + 1
    assert pushed["events"][0]["type"] == "approval_escalated"


@pytest.mark.parametrize(
    "who", ["member of another organization", "signed out", "bad token", "not a run id"]
)
def test_nobody_else_gets_anything(org, other_org, who):
    run = finished_run(org)
    path, cookie = f"/ws/runs/{run.pk}/", ""
    if who == "member of another organization":
        cookie = session_cookie(other_org, "stranger")
    elif who == "bad token":
        path += "?token=orc_not-a-token"
    elif who == "not a run id":
        cookie = session_cookie(org, "reader")
        path = "/ws/runs/not-a-uuid/"
    connected, code, messages = connect(path, cookie=cookie)
    assert not connected and code == 4403
    assert messages == []


@pytest.mark.parametrize(
    ("host", "origin"),
    [
        ("testserver", "https://evil.example"),
        ("127.0.0.1:8000", "http://127.0.0.1:9000"),  # another port of the same host
        ("127.0.0.1:8000", "http://127.0.0.1"),
        ("127.0.0.1:8000", "https://127.0.0.1:8000"),  # another scheme
        ("127.0.0.1:8000", "http://localhost:8000"),  # another name of the same machine
        ("127.0.0.1:8000", None),  # no Origin: not one of our pages
        ("127.0.0.1:8000", "null"),  # a sandboxed frame or a file: page
        ("evil.example:8000", "http://evil.example:8000"),  # a Host not in ALLOWED_HOSTS
    ],
)
def test_a_session_socket_from_anything_but_our_own_origin_is_refused(org, host, origin):
    run = finished_run(org)
    cookie = session_cookie(org, "reader")
    connected, _, messages = connect(f"/ws/runs/{run.pk}/", cookie=cookie, host=host, origin=origin)
    assert not connected and messages == []


@pytest.mark.parametrize(
    ("host", "origin"),
    [
        ("127.0.0.1:8000", "http://127.0.0.1:8000"),
        ("localhost:8000", "http://LOCALHOST:8000"),
        ("testserver", "http://testserver"),
    ],
)
def test_a_session_socket_from_our_own_origin_is_accepted(org, host, origin):
    run = finished_run(org)
    cookie = session_cookie(org, "reader")
    connected, _, messages = connect(f"/ws/runs/{run.pk}/", cookie=cookie, host=host, origin=origin)
    assert connected and seqs(messages)[0] == 1


def test_behind_a_tls_proxy_the_https_origin_of_our_page_is_ours(org, settings):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    run = finished_run(org)
    cookie = session_cookie(org, "reader")
    path = f"/ws/runs/{run.pk}/"
    proxied = ((b"x-forwarded-proto", b"https"),)
    assert connect(path, cookie=cookie, origin="https://testserver", extra=proxied)[0]
    assert not connect(path, cookie=cookie, origin="http://testserver", extra=proxied)[0]
    assert not connect(path, cookie=cookie, origin="https://testserver")[0]


@pytest.mark.parametrize(
    ("trusted", "origin", "accepted"),
    [
        (["https://app.example.com"], "https://app.example.com", True),
        (["https://*.example.com"], "https://eu.example.com", True),
        (["https://*.example.com"], "http://eu.example.com", False),
        (["https://app.example.com"], "https://app.example.com:8443", False),
    ],
)
def test_csrf_trusted_origins_may_open_session_sockets(org, settings, trusted, origin, accepted):
    settings.CSRF_TRUSTED_ORIGINS = trusted
    run = finished_run(org)
    cookie = session_cookie(org, "reader")
    connected, _, _ = connect(f"/ws/runs/{run.pk}/", cookie=cookie, origin=origin)
    assert connected is accepted


@pytest.mark.parametrize("origin", [None, "https://evil.example", "http://127.0.0.1:9000"])
def test_a_token_socket_needs_no_origin_and_may_come_from_any_page(org, origin):
    run = finished_run(org)
    _, raw = ApiToken.issue(org, Role.VIEWER, service_account="dashboard")
    connected, _, messages = connect(f"/ws/runs/{run.pk}/?token={raw}", origin=origin)
    assert connected and seqs(messages)[0] == 1


def test_a_token_in_an_authorization_header_works_without_origin(org):
    run = finished_run(org)
    _, raw = ApiToken.issue(org, Role.VIEWER, service_account="script")
    bearer = ((b"authorization", f"Bearer {raw}".encode()),)
    connected, _, messages = connect(f"/ws/runs/{run.pk}/", origin=None, extra=bearer)
    assert connected and seqs(messages)[0] == 1


@pytest.mark.parametrize("origin", [None, "https://evil.example", "http://testserver"])
def test_a_bad_token_is_refused_even_with_a_valid_session(org, origin):
    """A foreign page must not pass the Origin check with a made-up token and ride on the
    session cookie the browser adds."""
    run = finished_run(org)
    cookie = session_cookie(org, "reader")
    connected, code, messages = connect(
        f"/ws/runs/{run.pk}/?token=orc_not-a-token", cookie=cookie, origin=origin
    )
    assert not connected and code == 4403 and messages == []


def test_a_token_of_another_organization_is_refused_from_any_origin(org, other_org):
    run = finished_run(org)
    _, raw = ApiToken.issue(other_org, Role.ADMIN, service_account="elsewhere")
    connected, _, _ = connect(f"/ws/runs/{run.pk}/?token={raw}", origin=None)
    assert not connected


redis_layer = pytest.mark.skipif(
    not settings.REDIS_URL, reason="wake-ups cross processes only on the Redis channel layer"
)


def watch(run, cookie: str, act):
    """Connect, take the backlog, await `act()`, then collect what is pushed until the socket
    goes quiet. Also returns the seqs after which the consumer read the event table."""
    reads = []
    original = consumers._events_after

    async def counted(run_id, seq):
        reads.append(seq)
        return await original(run_id, seq)

    async def go():
        communicator = WebsocketCommunicator(
            application,
            f"/ws/runs/{run.pk}/",
            headers=[*OWN_PAGE, (b"cookie", cookie.encode())],
        )
        assert (await communicator.connect(timeout=5))[0]
        backlog = await communicator.receive_json_from(timeout=5)
        await act()
        pushed = []
        while not await communicator.receive_nothing(timeout=1.0):
            pushed.append(await communicator.receive_json_from())
        await communicator.disconnect()
        return backlog, pushed

    with patch.object(consumers, "_events_after", counted):
        backlog, pushed = async_to_sync(go)()
    return backlog, pushed, reads


@redis_layer
def test_events_reach_a_viewer_with_their_wake_up_without_a_read(org):
    run = finished_run(org)
    cookie = session_cookie(org, "watcher")

    async def act():
        for n in range(5):
            await database_sync_to_async(append_now)(run.pk, "agent_turn", "a", turn=n)

    backlog, pushed, reads = watch(run, cookie, act)
    last = backlog["events"][-1]["seq"]
    events = [event for frame in pushed for event in frame["events"]]
    assert [event["seq"] for event in events] == list(range(last + 1, last + 6))
    assert [event["data"] for event in events] == [{"turn": n} for n in range(5)]
    assert all(event["ts"].endswith("Z") and event["step_id"] == "a" for event in events)
    assert reads == [0]  # only the backlog at connect came from the table


@redis_layer
def test_a_wake_up_that_does_not_follow_on_makes_the_viewer_read_the_table(org):
    run = finished_run(org)
    cookie = session_cookie(org, "watcher")

    async def act():
        # Events committed by another process, whose wake-up is lost...
        with patch.object(events, "notify"):
            await database_sync_to_async(append_now)(run.pk, "agent_turn", "a", turn=0)
        # ...then one whose wake-up arrives: it does not follow on from what the viewer has.
        await database_sync_to_async(append_now)(run.pk, "agent_turn", "a", turn=1)

    backlog, pushed, reads = watch(run, cookie, act)
    last = backlog["events"][-1]["seq"]
    events_ = [event for frame in pushed for event in frame["events"]]
    assert [event["seq"] for event in events_] == [last + 1, last + 2]
    assert reads == [0, last]


def test_batches_join_only_when_their_seqs_follow_on_and_stay_small():
    one = events.Batch(4, 5, '{"seq":4},{"seq":5}', "running")
    joined = one.then(events.Batch(6, 6, '{"seq":6}', ""))
    assert (joined.first, joined.last, joined.status) == (4, 6, "running")
    assert json.loads(joined.frame()) == {
        "events": [{"seq": 4}, {"seq": 5}, {"seq": 6}],
        "status": "running",
    }
    assert one.then(events.Batch(7, 7, '{"seq":7}', "")) is None  # a gap
    assert one.then(None) is None
    big = events.Batch(6, 6, "x" * events.WAKEUP_MAX_BYTES, "")
    assert one.then(big) is None
