"""Structured logs: every line logged while a step executes carries its run_id and step_id,
whether it comes from the services, the pure engine (stdlib logging) or a library like httpx."""

from __future__ import annotations

import logging
import subprocess

import pytest
import structlog
from django.conf import settings

from orchestrator.services.orchestrations import create_orchestration
from runs import tasks
from runs.engine.nodes import EXECUTORS
from runs.models import Run, StepRun
from runs.services import lifecycle
from tests.ops.conftest import ROOT, base_env, configured_formatter, python
from tests.runs.harness import drain
from tests.runs.servers import local_server, reply

pytestmark = pytest.mark.django_db


@pytest.fixture
def upstream(settings):
    settings.HTTP_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    with local_server() as server:
        yield server


@pytest.fixture
def engine_logs(monkeypatch):
    """Executors that log through a stdlib logger under runs.engine, as engine code would."""
    for node_type, executor in list(EXECUTORS.items()):

        def logging_executor(ctx, _executor=executor, _type=node_type):
            logging.getLogger(f"runs.engine.nodes.{_type}").info("executing %s", ctx.step_id)
            return _executor(ctx)

        monkeypatch.setitem(EXECUTORS, node_type, logging_executor)


def flow(org, nodes: list[dict], edges: list[dict] = ()):
    definition = {"nodes": nodes, "edges": list(edges), "inputs": [], "output_type": "json"}
    return create_orchestration(
        org, {"name": "Logged", "definition": definition, "status": "active"}
    )


def fetch(node_id: str, url: str) -> dict:
    return {"id": node_id, "type": "http", "config": {"url": url}}


def test_every_line_logged_while_a_step_runs_carries_its_run_and_step(
    org, upstream, json_lines, engine_logs
):
    run, _ = lifecycle.fire(
        flow(
            org,
            [fetch("first", f"{upstream.url}/a"), fetch("second", f"{upstream.url}/b")],
            [{"source": "first", "target": "second"}],
        ),
        {},
    )
    drain()
    assert Run.objects.get(pk=run.pk).status == "succeeded"

    lines = json_lines.lines()
    during_steps = [
        line
        for line in lines
        if line["logger"].startswith(("runs.engine", "httpx", "runs.services.execution"))
    ]
    by_logger = {line["logger"] for line in during_steps}
    assert {"runs.engine.nodes.http", "httpx", "runs.services.execution"} <= by_logger
    for line in during_steps:
        assert line["run_id"] == str(run.pk), line
        assert line["step_id"] in {"first", "second"}, line
    requests = [line for line in during_steps if line["logger"] == "httpx"]
    assert [(line["step_id"], "/a" in line["event"]) for line in requests] == [
        ("first", True),
        ("second", False),
    ]
    finished = [line for line in lines if line["event"] == "step succeeded"]
    assert [line["step_id"] for line in finished] == ["first", "second"]
    assert all(line["node_type"] == "http" and line["attempt"] == 1 for line in finished)
    assert all(line["level"] == "info" and "timestamp" in line for line in finished)


def test_a_provider_call_is_logged_with_the_agent_step(org, upstream, json_lines, caplog):
    upstream.answers = [reply("hi")]
    # The openai SDK logs each request at DEBUG; let those through for this test.
    caplog.set_level(logging.DEBUG, logger="openai")
    agent = {"model": "openai/test", "base_url": f"{upstream.url}/v1"}
    node = {"id": "ask", "type": "agent", "config": {"agent": agent, "prompt": "Hello"}}
    run, _ = lifecycle.fire(flow(org, [node]), {})
    drain()
    assert Run.objects.get(pk=run.pk).status == "succeeded", Run.objects.get(pk=run.pk).error

    provider = [line for line in json_lines.lines() if line["logger"].startswith("openai")]
    assert provider
    assert all((line["run_id"], line["step_id"]) == (str(run.pk), "ask") for line in provider)


def test_the_ids_are_unbound_once_the_step_is_recorded(org, upstream, json_lines):
    lifecycle.fire(flow(org, [fetch("only", f"{upstream.url}/a")]), {})
    drain()
    logging.getLogger("tests.ops").warning("after the run")

    assert structlog.contextvars.get_contextvars() == {}
    after = json_lines.lines()[-1]
    assert after["event"] == "after the run"
    assert "run_id" not in after and "step_id" not in after


def test_a_failed_step_logs_a_warning_with_its_error(org, upstream, json_lines):
    run, _ = lifecycle.fire(flow(org, [fetch("broken", f"{upstream.url}/status/500")]), {})
    drain()

    failed = [line for line in json_lines.lines() if line["event"] == "step failed"]
    assert failed and failed[0]["level"] == "warning"
    assert (failed[0]["run_id"], failed[0]["step_id"]) == (str(run.pk), "broken")
    assert "500" in failed[0]["error"]


def test_the_execute_task_adds_the_step_row_id(org, upstream, json_lines):
    run, _ = lifecycle.fire(flow(org, [fetch("only", f"{upstream.url}/a")]), {})
    tasks.advance_run(str(run.pk))
    step = StepRun.objects.get(run=run, node_id="only")

    tasks.execute_step(str(step.pk))

    finished = [line for line in json_lines.lines() if line["event"] == "step succeeded"]
    assert len(finished) == 1
    assert finished[0]["step_run_id"] == str(step.pk)
    assert (finished[0]["run_id"], finished[0]["step_id"]) == (str(run.pk), "only")
    assert structlog.contextvars.get_contextvars() == {}


def test_an_outer_context_survives_a_task_run_inside_it(org, upstream):
    run, _ = lifecycle.fire(flow(org, [fetch("only", f"{upstream.url}/a")]), {})
    with structlog.contextvars.bound_contextvars(request_id="outer"):
        tasks.advance_run(str(run.pk))
        assert structlog.contextvars.get_contextvars() == {"request_id": "outer"}


def test_structlog_loggers_render_through_the_same_formatter(json_lines):
    with structlog.contextvars.bound_contextvars(run_id="r1", step_id="s1"):
        structlog.get_logger("tests.ops").info("from structlog", answer=42)

    line = json_lines.lines()[-1]
    assert line["event"] == "from structlog"
    assert (line["run_id"], line["step_id"], line["answer"]) == ("r1", "s1", 42)
    assert line["logger"] == "tests.ops" and line["level"] == "info"


def test_the_console_format_shows_the_ids_too():
    record = logging.LogRecord("runs.engine.nodes.http", logging.INFO, __file__, 1, "hi", (), None)
    with structlog.contextvars.bound_contextvars(run_id="r1", step_id="s1"):
        text = configured_formatter("console").format(record)
    assert "hi" in text and "run_id=r1" in text and "step_id=s1" in text


def test_json_is_the_default_with_debug_off():
    assert settings.LOG_FORMAT == "json"
    assert settings.LOGGING["handlers"]["console"]["formatter"] == "json"


@pytest.mark.parametrize(
    ("env", "expected"),
    [({"DEBUG": "true"}, "console"), ({"DEBUG": "true", "LOG_FORMAT": "json"}, "json")],
)
def test_debug_defaults_to_console_logs(tmp_path, env, expected):
    script = "from django.conf import settings; print(settings.LOG_FORMAT)"
    result = subprocess.run(
        [python(), "-c", f"import django; django.setup(); {script}"],
        cwd=ROOT,
        env=base_env(tmp_path, **env),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == expected


def test_an_unknown_log_format_stops_the_process(tmp_path):
    result = subprocess.run(
        [python(), "manage.py", "check"],
        cwd=ROOT,
        env=base_env(tmp_path, LOG_FORMAT="xml"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "LOG_FORMAT must be json or console" in result.stderr


def test_the_reapers_routine_lines_are_dropped_and_everything_else_kept():
    import logging

    from config.logfilters import QuietReaper

    def record(name: str, level: int, message: str, *args) -> logging.LogRecord:
        return logging.LogRecord(name, level, __file__, 1, message, args, None)

    quiet = QuietReaper()
    reap = "Task runs.tasks.reap[%s] succeeded in %ss: %s"
    assert not quiet.filter(record("celery.app.trace", logging.INFO, reap, "1", 0.01, {}))
    assert not quiet.filter(
        record("celery.beat", logging.INFO, "Scheduler: Sending due task reap-runs (%s)", "x")
    )
    step = "Task runs.tasks.execute_step[%s] succeeded in %ss: %s"
    assert quiet.filter(record("celery.app.trace", logging.INFO, step, "2", 0.5, None))
    failed = "Task runs.tasks.reap[%s] raised unexpected: %r"
    assert quiet.filter(record("celery.app.trace", logging.ERROR, failed, "3", ValueError()))
    assert quiet.filter(record("runs.services", logging.INFO, "reap-runs in a user's message"))
