"""Runs that earlier releases stored on SQLite with half a surrogate pair are repaired, so their
pages, answers and streams can be encoded again."""

from __future__ import annotations

import importlib
from types import SimpleNamespace

import pytest
from django.apps import apps
from django.db import connection

from runs.models import Run, RunEvent, StepRun
from tests.pages.test_pages import member_client
from tests.runs.harness import run_to_rest

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(
        connection.vendor != "sqlite", reason="PostgreSQL never stored such text: it refused it"
    ),
]

migration = importlib.import_module("runs.migrations.0015_repair_unstorable_text")


def test_kept_surrogates_become_replacement_characters_and_pairs_stay(make_flow, client, org):
    run = run_to_rest(make_flow([{"id": "t", "type": "transform", "config": {"output": "x"}}]))
    # What a step of an earlier release kept, as the upstream escaped it.
    broken = {"body": {"text": "a\ud800b", "k\udfff": ["smile \U0001f600"]}}
    Run.objects.filter(pk=run.pk).update(output="# Report\n\na\ud800b")
    StepRun.objects.filter(run=run).update(output=broken)
    RunEvent.objects.filter(run=run, type="step_complete").update(data={"output": "a\udc00"})
    member = member_client(client, org)
    member.raise_request_exception = False
    page = member.get(f"/runs/{run.pk}/outputs/")
    assert page.status_code == 500  # what the run's page answered before the repair

    migration.repair(apps, SimpleNamespace(connection=connection))

    fixed = {"body": {"text": "a\ufffdb", "k\ufffd": ["smile \U0001f600"]}}
    assert Run.objects.get(pk=run.pk).output == "# Report\n\na\ufffdb"
    assert StepRun.objects.get(run=run).output == fixed
    assert RunEvent.objects.get(run=run, type="step_complete").data == {"output": "a\ufffd"}
    assert member.get(f"/runs/{run.pk}/outputs/").status_code == 200
