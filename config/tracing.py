"""OpenTelemetry traces, exported over OTLP/HTTP, and nothing at all when tracing is off.

The work traced here outlives any process: a run goes on across many Celery tasks, in workers,
web processes and beat, so no span can be held open in memory until its work ends. Each span is
written once, when its work has ended, with the start and end times the database recorded and
with ids derived from the rows it describes; spans written by different processes at different
times then join up into one tree. `emit` takes those ids and times; `_PlannedIds` hands them to
the SDK, whose tracer otherwise draws random ones.

With no OTLP endpoint set (settings.TRACING_ENABLED) the SDK is not even imported: `enabled()`
is a flag check, and callers build nothing when it is false. Otherwise every process (web,
worker, beat, manage.py) sets the provider up on first use, so forked workers each get their
own export thread; it is flushed when a Celery pool process or the interpreter exits.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import SpanProcessor, Tracer, TracerProvider

SERVICE_NAME = "orchestrator"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MASK_64 = (1 << 64) - 1


@dataclass(frozen=True)
class SpanRecord:
    """One finished piece of work. `span_id` None: a random id (a leaf nothing refers to)."""

    name: str
    trace_id: int
    parent_id: int | None
    start: datetime
    end: datetime
    span_id: int | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    error: str | None = None  # set: the span's status is ERROR, with this description
    kind: str = "INTERNAL"


def trace_id_of(uuid_value) -> int:
    """A UUID is 128 bits, exactly a trace id."""
    return uuid_value.int or 1


def span_id_of(uuid_value) -> int:
    """64 of a UUID's random bits: a span id that every process derives the same way."""
    return (uuid_value.int & _MASK_64) or 1


_lock = threading.Lock()
_tracer: Tracer | None = None
_provider: TracerProvider | None = None
_configured = False
_planned: contextvars.ContextVar[tuple[int, int | None] | None] = contextvars.ContextVar(
    "planned_span_ids", default=None
)


def enabled() -> bool:
    """True when spans are exported; the first call in a process sets the exporter up."""
    global _configured
    if not _configured:
        with _lock:
            if not _configured and settings.TRACING_ENABLED:
                _install_otlp()
            _configured = True
    return _tracer is not None


def _install_otlp() -> None:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    install(BatchSpanProcessor(OTLPSpanExporter()))


def install(processor: SpanProcessor) -> TracerProvider:
    """Send spans to `processor` from now on (at start-up, or a test's in-memory exporter)."""
    global _tracer, _provider, _configured
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    resource = Resource.create()
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        # OTEL_SERVICE_NAME (or service.name in OTEL_RESOURCE_ATTRIBUTES) wins when set.
        resource = resource.merge(Resource({"service.name": SERVICE_NAME}))
    provider = TracerProvider(resource=resource, id_generator=_planned_ids())
    provider.add_span_processor(processor)
    shutdown()
    _provider, _tracer = provider, provider.get_tracer(SERVICE_NAME)
    _configured = True
    return provider


def shutdown() -> None:
    """Export what is buffered and stop; a later `enabled()` sets up again from the settings."""
    global _tracer, _provider, _configured
    provider, _provider, _tracer = _provider, None, None
    _configured = False
    if provider is not None:
        provider.shutdown()


def flush() -> None:
    if _provider is not None:
        _provider.force_flush()


def _planned_ids():
    from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

    class PlannedIds(RandomIdGenerator):
        """The ids `emit` chose for the span being started, else random ones."""

        def generate_trace_id(self) -> int:
            planned = _planned.get()
            return planned[0] if planned else super().generate_trace_id()

        def generate_span_id(self) -> int:
            planned = _planned.get()
            if planned and planned[1] is not None:
                return planned[1]
            return super().generate_span_id()

        def is_trace_id_random(self) -> bool:
            return False  # derived from a run id: not the W3C "random trace id" kind

    return PlannedIds()


def _nanoseconds(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1) * 1000


def emit(records: Iterable[SpanRecord]) -> None:
    """Write finished spans. Parents need not be written yet, or by this process."""
    tracer = _tracer
    if tracer is None:
        return
    from opentelemetry import trace
    from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags

    for record in records:
        context = None
        if record.parent_id is not None:
            parent = SpanContext(
                trace_id=record.trace_id,
                span_id=record.parent_id,
                is_remote=True,
                trace_flags=TraceFlags(TraceFlags.SAMPLED),
            )
            context = trace.set_span_in_context(NonRecordingSpan(parent))
        token = _planned.set((record.trace_id, record.span_id))
        try:
            span = tracer.start_span(
                record.name,
                context=context,
                kind=SpanKind[record.kind],
                attributes={k: v for k, v in record.attributes.items() if v is not None},
                start_time=_nanoseconds(record.start),
            )
        finally:
            _planned.reset(token)
        if record.error is not None:
            span.set_status(trace.Status(trace.StatusCode.ERROR, record.error))
        span.end(end_time=_nanoseconds(max(record.end, record.start)))
