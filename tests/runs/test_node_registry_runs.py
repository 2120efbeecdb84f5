"""A node type declared in the registry alone is run the way its entry says: the run services,
the API and the pages read where it runs from there, with no list of their own to update."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest

from orchestrator.definition.nodes import NODE_TYPES, RUNS_ON, palette
from runs.engine.nodes import EXECUTORS
from runs.engine.tools import TOOLS, run_tool
from runs.services.progress import STARTERS
from tests.pages.test_pages import member_client, orchestration
from tests.runs.conftest import edge, transform
from tests.runs.harness import run_to_rest, statuses

pytestmark = pytest.mark.django_db


def declare(monkeypatch, name: str, like: str, **changes) -> None:
    """Add a node type to the registry, as a new entry would, shaped like an existing one."""
    spec = dataclasses.replace(NODE_TYPES[like], name=name, **changes)
    monkeypatch.setitem(NODE_TYPES, name, spec)


def test_every_place_a_step_can_run_has_a_way_to_start_it():
    assert set(STARTERS) == set(RUNS_ON)


def test_a_new_type_that_asks_people_pauses_the_run_and_asks_through_the_api(
    monkeypatch, make_flow, editor
):
    declare(monkeypatch, "sign_off", like="human_input")
    flow = make_flow(
        [
            {"id": "ask", "type": "sign_off", "config": {"prompt": "Ship it?"}},
            transform("after", "done"),
        ],
        [edge("ask", "after")],
    )
    run = run_to_rest(flow)
    assert run.status == "paused"
    assert statuses(run) == {"ask": "waiting"}
    body = editor.get(f"/api/v1/runs/{run.pk}").json()
    assert body["human_input_required"]["step_id"] == "ask"
    listed = editor.get("/api/v1/runs").json()["items"]
    assert [r["human_input_required"]["step_id"] for r in listed] == ["ask"]


def test_a_new_type_on_a_timer_waits_and_then_goes_on(monkeypatch, make_flow):
    declare(monkeypatch, "pause", like="delay")
    flow = make_flow(
        [{"id": "wait", "type": "pause", "config": {"seconds": 0}}, transform("b", "after")],
        [edge("wait", "b")],
        output="{{ steps.b.output }}",
    )
    run = run_to_rest(flow)
    assert (run.status, run.output) == ("succeeded", "after")
    assert statuses(run) == {"b": "succeeded", "wait": "succeeded"}


def test_a_new_worker_type_runs_its_executor_on_a_worker(monkeypatch, make_flow):
    declare(monkeypatch, "fetch", like="http", runs_on="worker")
    monkeypatch.setitem(EXECUTORS, "fetch", EXECUTORS["http"])
    flow = make_flow(
        [{"id": "get", "type": "fetch", "config": {"url": "http://127.0.0.1:9/"}}],
    )
    run = run_to_rest(flow)
    step = run.step_runs.get(node_id="get")
    # The worker ran the http executor, whose network guard refused the loopback address.
    assert step.status == "failed" and "127.0.0.1" in json.dumps(step.error)


def test_an_agent_tool_runs_what_the_tool_registry_holds(monkeypatch):
    monkeypatch.setitem(
        TOOLS, "shout", lambda args, policy, transport, key: (True, args["x"].upper())
    )
    assert run_tool("shout", {"x": "hi"}, ("shout",), policy=None) == (True, "HI")
    assert run_tool("whisper", {}, ("whisper",), policy=None) == (
        False,
        "error: unknown tool 'whisper'",
    )


def embedded_types(html: str) -> list[dict]:
    found = re.search(r'<script id="node-types" type="application/json">(.*?)</script>', html, re.S)
    assert found, "the page carries no node types"
    return json.loads(found.group(1))


def test_the_editor_offers_every_registry_type_with_its_defaults_and_fields(client, org):
    flow = orchestration(org)
    html = member_client(client, org).get(f"/orchestrations/{flow.pk}/").content.decode()
    assert embedded_types(html) == palette()
    for entry in palette():
        assert f'data-add-type="{entry["type"]}"' in html


def test_the_run_view_draws_each_step_with_its_registry_icon(client, org):
    flow = orchestration(org)
    run = run_to_rest(flow)
    html = member_client(client, org).get(f"/runs/{run.pk}/").content.decode()
    assert {t["type"]: t["icon"] for t in embedded_types(html)}["transform"] == "⇄"
