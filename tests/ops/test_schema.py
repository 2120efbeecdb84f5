"""The OpenAPI schema generates without new warnings.

drf-spectacular's own `check --deploy` hook is off (config.settings: it reports documentation
gaps, not deployment risks); this test keeps those gaps from growing instead.
"""

from __future__ import annotations

from drf_spectacular.drainage import GENERATOR_STATS
from drf_spectacular.generators import SchemaGenerator

# Known gaps, each to be fixed where it lives; remove the entry with the fix.
KNOWN = {
    # orchestrator/api/trigger_views.py: OrchestrationTriggerViewSet has no `queryset`, so the
    # type of its path parameter cannot be read (fix: `queryset = Trigger.objects.none()`).
    "[OrchestrationTriggerViewSet]: Failed to obtain model through view's queryset",
}


def _known(message: str) -> bool:
    return any(fragment in message for fragment in KNOWN)


def test_the_schema_generates_without_new_warnings():
    GENERATOR_STATS.reset()
    with GENERATOR_STATS.silence():
        SchemaGenerator().get_schema(request=None, public=True)
    messages = [*GENERATOR_STATS._warn_cache, *GENERATOR_STATS._error_cache]
    assert [message for message in messages if not _known(message)] == []


def test_orchestration_status_has_a_readable_enum_name():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    assert "OrchestrationStatusEnum" in schema["components"]["schemas"]
