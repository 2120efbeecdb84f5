"""What an http step or the http_get tool reads of a server's answer is bounded, in bytes and in
time: a download of gigabytes filled the worker's memory, and a server that sent a byte every
few seconds held the step past its timeout (each read came in time, the whole never did)."""

from __future__ import annotations

import json
import time

import pytest

from runs.models import RunEvent, StepRun
from runs.services import mcp_servers
from tests.mcp_servers import mcp_server
from tests.runs.harness import run_to_rest, tool_returns
from tests.runs.servers import local_server

pytestmark = pytest.mark.django_db

LIMIT = 2 * 1024 * 1024


@pytest.fixture
def upstream(settings):
    settings.HTTP_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    settings.HTTP_MAX_RESPONSE_BYTES = LIMIT
    with local_server() as server:
        yield server


def get(url: str, **config) -> dict:
    return {"id": "get", "type": "http", "config": {"url": url, **config}}


def test_a_large_text_answer_is_kept_cut_short(make_flow, upstream):
    run = run_to_rest(make_flow([get(f"{upstream.url}/large/40/text")]))
    assert run.status == "succeeded", run.error
    body = StepRun.objects.get(run=run).output["body"]
    assert body == "x" * 1_000_000  # the text a step keeps, read from the first 2 MiB


def test_a_json_answer_past_the_limit_fails_the_step_saying_so(make_flow, upstream):
    run = run_to_rest(make_flow([get(f"{upstream.url}/large/40/json")]))
    assert run.status == "failed"
    step = StepRun.objects.get(run=run)  # one attempt: the same answer would come again
    assert step.error["message"] == (
        f"GET {upstream.url}/large/40/json: the JSON response is larger than {LIMIT} bytes "
        "(HTTP_MAX_RESPONSE_BYTES)"
    )


def test_an_error_status_with_a_large_json_body_fails_as_the_status_says(make_flow, upstream):
    # A 503 (which a step's retry takes up) whatever the size of the page that came with it.
    url = f"{upstream.url}/large/40/json/503"
    run = run_to_rest(make_flow([get(url)]))
    assert run.status == "failed"
    assert StepRun.objects.get(run=run).error["message"] == f"HTTP 503 from {url}"


def test_a_json_answer_within_the_limit_is_parsed(make_flow, upstream):
    run = run_to_rest(make_flow([get(f"{upstream.url}/large/1/json")]))
    assert run.status == "succeeded", run.error
    assert StepRun.objects.get(run=run).output["body"] == ["x" * (1 << 20)]


def test_a_server_that_drips_its_answer_times_out_on_the_steps_timeout(make_flow, upstream):
    started = time.monotonic()
    run = run_to_rest(make_flow([get(f"{upstream.url}/drip", timeout_s=1)]))
    assert run.status == "failed"
    assert StepRun.objects.get(run=run).error["message"] == (
        f"GET {upstream.url}/drip timed out after 1 s"
    )
    assert time.monotonic() - started < 30  # the server drips for a minute


def test_the_http_get_tool_reads_a_large_page_within_the_limit(make_flow, upstream):
    url = f"{upstream.url}/large/40/text"
    script = [{"tool": "http_get", "args": {"url": url}}, "Read it."]
    agent = {"model": "builtin/script", "tools": ["http_get"]}
    node = {
        "id": "ask",
        "type": "agent",
        "config": {"agent": agent, "prompt": "Read", "script": script},
    }
    run = run_to_rest(make_flow([node]))
    assert run.status == "succeeded", run.error
    result = RunEvent.objects.get(run=run, type="tool_result").data
    assert result["ok"] is True
    assert result["preview"].startswith('{"status": 200, "body": "xxx')
    # The model was given the page's start, and told that it goes on.
    [returned] = tool_returns(StepRun.objects.get(run=run))
    told = json.loads(returned)
    assert told["body"] == "x" * 20_000 and told["truncated"] is True


@pytest.mark.parametrize("sent", ["large", "gzip"])
def test_a_model_server_that_answers_past_the_limit_fails_the_step(make_flow, upstream, sent):
    # The SDKs read a whole answer into memory: the guard's transport stops it at the limit,
    # counted as decompressed (40 MiB of gzip is 40 KiB on the wire).
    agent = {"model": "openai/gpt-4o", "base_url": f"{upstream.url}/{sent}/40/v1"}
    node = {"id": "ask", "type": "agent", "config": {"agent": agent, "prompt": "Hi"}}
    run = run_to_rest(make_flow([node]))
    assert run.status == "failed"
    assert StepRun.objects.get(run=run).error["message"] == (
        f"the answer from {upstream.url}/{sent}/40/v1/chat/completions is larger than {LIMIT} "
        "bytes (HTTP_MAX_RESPONSE_BYTES)"
    )


def test_an_mcp_tool_that_answers_past_the_limit_fails_the_step(org, make_flow, upstream):
    with mcp_server(large=True) as url:
        assert mcp_servers.create_server(org, name="tools", url=url).status == "ok"
        script = [{"tool": "large_text", "args": {"mebibytes": 40}}, "Read it."]
        agent = {"model": "builtin/script", "tools": [{"mcp": "tools", "tools": ["large_text"]}]}
        node = {
            "id": "ask",
            "type": "agent",
            "config": {"agent": agent, "prompt": "Read", "script": script},
        }
        run = run_to_rest(make_flow([node]))
    assert run.status == "failed"
    assert StepRun.objects.get(run=run).error["message"] == (
        f"the answer from {url} is larger than {LIMIT} bytes (HTTP_MAX_RESPONSE_BYTES)"
    )
