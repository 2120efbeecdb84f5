"""The definition language is pure Python: importing any of it must not pull Django in."""

from __future__ import annotations

from tests.purity import forbidden_imports, imports_of


def test_importing_every_definition_module_imports_no_django_and_no_app_code():
    assert forbidden_imports("orchestrator.definition") == []


def test_the_walk_reaches_every_definition_module():
    walked, _ = imports_of("orchestrator.definition")
    assert {"orchestrator.definition.markdown", "orchestrator.definition.graph"} <= set(walked)
