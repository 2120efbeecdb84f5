"""The pinned definition of a run and its scheduler graph, built once per version per process."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from core.types import Pk
from orchestrator.models import OrchestrationVersion
from runs.engine import Graph
from runs.models import Run


@lru_cache(maxsize=256)
def _graph(version_id: Pk) -> tuple[dict[str, Any], Graph]:
    definition = OrchestrationVersion.objects.values_list("definition", flat=True).get(
        pk=version_id
    )
    return definition, Graph.from_definition(definition)


def definition_of(run: Run) -> dict[str, Any]:
    return _graph(run.orchestration_version_id)[0]


def graph_of(run: Run) -> Graph:
    """Versions are immutable, so caching by version id is always correct."""
    return _graph(run.orchestration_version_id)[1]
