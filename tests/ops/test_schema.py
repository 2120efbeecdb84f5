"""The OpenAPI schema generates without warnings: integrations are generated from it."""

from __future__ import annotations

from drf_spectacular.drainage import GENERATOR_STATS
from drf_spectacular.generators import SchemaGenerator


def test_the_schema_generates_without_new_warnings():
    GENERATOR_STATS.reset()
    with GENERATOR_STATS.silence():
        SchemaGenerator().get_schema(request=None, public=True)
    messages = [*GENERATOR_STATS._warn_cache, *GENERATOR_STATS._error_cache]
    assert messages == []


def test_orchestration_status_has_a_readable_enum_name():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    assert "OrchestrationStatusEnum" in schema["components"]["schemas"]
