"""Definitions stored with the old default price (0 and 0) are read as having no price."""

from __future__ import annotations

import importlib

import pytest
from django.apps import apps

from orchestrator.models import Orchestration, OrchestrationVersion
from tests.api.helpers import two_step

pytestmark = pytest.mark.django_db

migration = importlib.import_module("orchestrator.migrations.0007_agent_prices_from_the_table")


def test_old_zero_prices_are_cleared_and_real_prices_kept(editor):
    created = editor.post("/api/v1/orchestrations", two_step(), format="json").json()
    zero = {"input_per_1k": 0, "output_per_1k": 0}
    paid = {"input_per_1k": 0.5, "output_per_1k": 0}
    definition = {
        **created["definition"],
        "agents": [{"name": "old", "model": "openai/gpt-4o", "price": dict(zero)}],
    }
    definition["nodes"][0]["config"]["agent"] = {"model": "openai/gpt-4o", "price": dict(paid)}
    Orchestration.objects.filter(pk=created["id"]).update(definition=definition)
    OrchestrationVersion.objects.filter(orchestration_id=created["id"]).update(
        definition=definition
    )

    migration.forwards(apps, None)

    for stored in (
        Orchestration.objects.get(pk=created["id"]).definition,
        OrchestrationVersion.objects.get(orchestration_id=created["id"]).definition,
    ):
        assert stored["agents"][0]["price"] is None
        assert stored["nodes"][0]["config"]["agent"]["price"] == paid
