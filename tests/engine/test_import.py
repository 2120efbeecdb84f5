"""The engine is pure Python: importing any of it must not pull Django or app code in."""

from __future__ import annotations

from tests.purity import forbidden_imports, imports_of


def test_importing_every_engine_module_imports_no_django_and_no_app_code():
    assert forbidden_imports("runs.engine") == []


def test_the_walk_reaches_the_node_executors_and_the_models():
    walked, _ = imports_of("runs.engine")
    assert "runs.engine.nodes.http" in walked
    assert "runs.engine.llm" in walked
