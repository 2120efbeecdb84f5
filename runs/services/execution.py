"""Executing a worker step: claim it, run its node outside any transaction, record the result.

The claim is a conditional update (`pending -> running` with a lease), so a duplicate delivery
of the same message finds nothing to claim and does nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from asgiref.sync import AsyncSingleThreadContext
from django.db import transaction
from django.utils import timezone
from structlog.contextvars import bound_contextvars

from core.types import Pk
from orchestrator.definition import TemplateError, render
from runs.engine import RUN_TERMINAL, ErrorCode, StepStatus
from runs.engine.nodes import EXECUTORS
from runs.engine.nodes.base import Event, StepContext, StepFailed, StepResult
from runs.engine.redaction import Redactor
from runs.models import Run, StepRun
from runs.services import events, resolve
from runs.services.context import UNREAD_BY_SCHEDULER, latest_attempts, run_context
from runs.services.deltas import DeltaSink
from runs.services.graphs import definition_of, graph_of
from runs.services.progress import Progress, lease_for
from runs.services.subflows import start_tool_calls, tool_call_results
from runs.services.transitions import claim_step, move_step
from runs.services.waiting import ask_about_tool_calls, tool_call_decisions

logger = logging.getLogger(__name__)

# How long a task goes on with the steps its outcomes hand it before it leaves the next one to
# the broker: a short chain runs without a round trip per step, and a long one still lets the
# runs queued behind it take their turn on this worker, as they would between Celery messages.
CONTINUE_FOR_S = 1.0


def claim(step_run_id: Pk) -> StepRun | None:
    """Claim a step whose message arrived. A duplicate delivery, or the message of a step that a
    worker already took on (`Progress.adopt_pending`), stops at the first read, outside any
    transaction."""
    step = StepRun.objects.filter(pk=step_run_id, status=StepStatus.PENDING).first()
    if step is None:
        return None
    with transaction.atomic():
        run = Run.objects.select_for_update().get(pk=step.run_id)
        if run.status in RUN_TERMINAL or run.cancel_requested:
            return None
        now = timezone.now()
        node = graph_of(run).nodes[step.node_id]
        lease = now + lease_for(node)
        claimed = claim_step(
            StepRun.objects.filter(pk=step_run_id).exclude(wake_at__gt=now), now, lease
        )
        if not claimed:
            return None
        # The conditional update succeeded, so the row is what was read, now running.
        move_step(step, StepStatus.RUNNING, now)
        step.lease_expires_at = lease
        step.run = run
        log = events.EventLog(run)
        log.add(
            "step_start", step.node_id, type=step.node_type, name=node["name"], attempt=step.attempt
        )
        log.flush()
        return step


def execute(step_run_id: Pk) -> None:
    """Run the claimed step, then each step its outcome handed to this worker (the next step of
    a chain, or a pending sibling of a fan-out), until there is none."""
    until = time.monotonic() + CONTINUE_FOR_S
    step = claim(step_run_id)
    known: Known | None = None
    # The agent steps this task runs share one thread for their event loop: async_to_sync
    # started a thread per step, and on a busy machine each start and hand-over waits for a core.
    with AsyncSingleThreadContext():  # type: ignore[no-untyped-call]  # asgiref leaves it untyped
        while step is not None:
            # Every line logged until the outcome is recorded (the node, its provider, httpx, the
            # services) carries these; the formatter merges them in. Unbound again on the way out.
            with bound_contextvars(
                run_id=str(step.run_id), step_id=step.node_id, attempt=step.attempt
            ):
                step, known = _execute_claimed(step, until, known)


def _execute_claimed(step: StepRun, until: float, known: Known | None = None) -> Following:
    """Runs the step and records its outcome; the step that outcome handed to this worker, with
    the steps that transaction read and left unchanged (for the next step's template context)."""
    run = step.run
    node = graph_of(run).nodes[step.node_id]
    started = time.monotonic()
    # The latest attempts as this step's template context reads them; the record reuses them.
    # A step handed on with its input rendered needs no context: its record reads what moved.
    if known is not None and known.input is not None:
        rendered, seen = known.input, known.unchanged
    else:
        rendered, seen = None, _seen(run, known)
    try:
        result = _run_node(run, step, node, seen, rendered)
    except StepFailed as exc:
        record = partial(_record, step, until, seen, failure=exc)
        outcome, level, extra = "failed", logging.WARNING, {"error": exc.message[:500]}
    except Exception as exc:  # a bug in a node must fail the step, never lose the run
        logger.exception("step %s of run %s crashed", step.node_id, run.pk)
        failure = StepFailed(_internal_error(exc))
        record = partial(_record, step, until, seen, failure=failure)
        outcome, level, extra = "crashed", logging.ERROR, {}
    else:
        if result.waiting:
            record = partial(_wait, step, result)
            outcome, level, extra = "waiting", logging.INFO, {}
        else:
            record = partial(_record, step, until, seen, result=result)
            outcome, level, extra = "succeeded", logging.INFO, {}
    following, unrecorded = _settle(step, until, record)
    if unrecorded is not None:
        # What the node did is not what the step's row says: the line says what it says.
        outcome, level, extra = "failed", logging.ERROR, {"error": unrecorded[:500]}
    logger.log(
        level,
        "step %s",
        outcome,
        extra={
            "node_type": step.node_type,
            "duration_ms": round((time.monotonic() - started) * 1000, 1),
            **extra,
        },
    )
    return following


def _internal_error(exc: Exception) -> str:
    return f"internal error: {exc.__class__.__name__}: {exc}"


def _settle(
    step: StepRun, until: float, record: Callable[[], Following]
) -> tuple[Following, str | None]:
    """Record the outcome (`record`); when recording it raises (a figure its column cannot hold,
    a bug), fail the step instead, saying why, in a transaction of its own. Returns what follows
    and, when the step was failed so, the error it was failed with.

    Left running, the step waited out its lease (an hour by default), and its next attempt
    paid for the node again only to fail to record it again. What the attempt spent is left
    out of the failure, as it may be what could not be recorded. A database that cannot be
    reached fails this too: then the step waits for its lease, as for a lost worker."""
    try:
        return record(), None
    except Exception as exc:
        logger.exception(
            "step %s of run %s: its outcome could not be recorded", step.node_id, step.run_id
        )
        message = f"{_internal_error(exc)} (the step's outcome could not be recorded)"
        return _record(step, until, failure=StepFailed(message, retryable=False)), message


def _run_node(
    run: Run,
    step: StepRun,
    node: Mapping[str, Any],
    seen: Mapping[str, StepRun],
    rendered: Any = None,
) -> StepResult:
    """Runs the node on its config: `rendered` when the record that handed the step on wrote it
    with the step, else rendered here and written before the node runs (viewers see a running
    step's input)."""
    config = rendered
    if config is None:
        try:
            config = render(node["config"], run_context(run, seen))
        except TemplateError as exc:
            raise StepFailed(f"template error: {exc}", retryable=False) from None
        StepRun.objects.filter(pk=step.pk).update(input=config)
        step.input = config
    agent = resolve.agent(run, definition_of(run), config) if node["type"] == "agent" else None
    credential = (
        resolve.credential(run, config.get("credential")) if node["type"] == "http" else None
    )
    # The servers a step talks to may send its secrets back (an echo, an error quoting the token
    # it refused): nothing the step emits, returns or fails with is stored or logged unmasked.
    hide = Redactor(
        [*(agent.secrets() if agent else ()), *(credential.secrets() if credential else ())]
    )

    # An agent's answer as it streams, for live viewers; where none can be reached (the embedded
    # profile's in-memory channel layer), ctx.delta stays the engine's no-op.
    sink = (
        DeltaSink(step.node_id, partial(events.publish_delta, run.pk), hide, later=events.later)
        if agent is not None and events.viewers_reachable()
        else None
    )
    streaming = {"delta": sink} if sink is not None else {}

    def emit(type: str, data: dict[str, Any]) -> None:
        if sink is not None:
            sink.flush()  # the text streamed so far goes out before the event that ends it
        events.append_now(run.pk, type, step.node_id, **hide(data))

    def record(transcript: list[Any], told: list[Event]) -> None:
        if sink is not None:
            sink.flush()
        save_transcript(step, hide(transcript), [(kind, hide(data)) for kind, data in told])

    timeout = node.get("timeout_s")
    limited, budget = _budget(run)
    ctx = StepContext(
        run_id=str(run.pk),
        step_id=step.node_id,
        attempt=step.attempt,
        config=config,
        emit=emit,
        deadline=time.monotonic() + timeout if timeout else None,
        net=resolve.net_policy(),
        agent=agent,
        credential=credential,
        credit_limited=limited,
        budget_usd=budget,
        record=record if agent is not None else None,
        # A transcript to go on from: the step waited for people, or is the next attempt after
        # a lost worker (`timers.requeue_expired`). What it waited with was spent then.
        resume=step.transcript or None,
        spent_turns=step.turns if step.transcript else 0,
        decisions=[
            *tool_call_decisions(run.pk, step.node_id),
            *tool_call_results(run, step.node_id),
        ]
        if step.transcript
        else [],
        **streaming,
    )
    try:
        result = EXECUTORS[node["type"]](ctx)
    except StepFailed as exc:
        exc.message, exc.details = hide(exc.message), hide(exc.details)
        exc.args = (exc.message,)
        raise
    finally:
        if sink is not None:
            sink.close()
    result.output = hide(result.output)
    # The tool calls that wait go into approvals and child runs' inputs: the model wrote them.
    result.waiting = hide(result.waiting)
    if result.last_turn is not None:
        transcript, told = result.last_turn
        result.last_turn = hide(transcript), [(kind, hide(data)) for kind, data in told]
    return result


def save_transcript(step: StepRun, transcript: list[Any], told: list[Event]) -> None:
    """Store an agent step's conversation so far with the events of what it just did, in one
    transaction: a step retried after its worker died goes on from exactly what its log shows.

    The run's row is locked first, as every state change does, then the step's transcript is
    written only while this attempt still runs: an attempt whose lease ran out (its step was
    queued again) or whose run ended stops here instead of calling more tools."""
    with transaction.atomic():
        run = Run.objects.select_for_update().only("id", "last_seq").get(pk=step.run_id)
        saved = StepRun.objects.filter(pk=step.pk, status=StepStatus.RUNNING).update(
            transcript=transcript
        )
        if not saved:
            raise StepFailed("this attempt of the step is no longer running", retryable=False)
        log = events.EventLog(run)
        for kind, data in told:
            log.add(kind, step.node_id, **data)
        log.flush()


def _budget(run: Run) -> tuple[bool, float | None]:
    """Whether the run has a credit limit, and what a step may spend before it goes over.

    With `budget_action: approve` the step is not stopped inside: it ends, and the run then
    holds for approval before anything new starts (a stopped step could not go on after it)."""
    limit = run.credit_limit
    if limit is None:
        return False, None
    if (run.orchestration_version.settings or {}).get("budget_action") == "approve":
        return True, None
    return True, float(limit - run.cost_usd)


def _wait(step: StepRun, result: StepResult) -> Following:
    """The agent asked for tool calls that wait for a person, or for orchestration tools (each a
    child run): the attempt ends waiting, holding no worker, unless the step is no longer ours
    (as `_record`). Nothing follows it in this task."""
    with transaction.atomic():
        progress = Progress.lock(step.run_id)
        current = StepRun.objects.filter(pk=step.pk, status=StepStatus.RUNNING).first()
        if current is None or progress.run.status in RUN_TERMINAL:
            return NOTHING_FOLLOWS
        # What the model calls so far cost is spent now, not when the step ends, which may be
        # days later: the step and the run show it while people decide, and the run's credit
        # limit counts it. The attempt that goes on counts only the calls it makes.
        progress.spend(current, **progress.report(current, result.usage()))
        asked = [call for call in result.waiting if "orchestration" not in call]
        started = [call for call in result.waiting if "orchestration" in call]
        if asked:
            ask_about_tool_calls(progress, current, asked)
        if started:
            start_tool_calls(progress, current, started)
        progress.advance()
        progress.save()
    return NOTHING_FOLLOWS


def _record(
    step: StepRun,
    until: float = 0.0,
    seen: Mapping[str, StepRun] | None = None,
    *,
    result: StepResult | None = None,
    failure: StepFailed | None = None,
) -> Following:
    """Apply the outcome, unless the step is no longer ours (its lease ran out and it was
    re-queued, or the run ended): then the late result is dropped, not applied twice.

    In the same transaction the worker claims its next step, when the outcome started one or a
    sibling waits in the queue, and it is not past `until` (a `time.monotonic()`); returns that
    step (running, leased, its `step_start` written) and the latest attempts left unchanged."""
    with transaction.atomic():
        progress = Progress.lock(step.run_id, reuse=seen)
        # The latest attempts were read under the run's lock: a step still running is ours.
        current = progress.steps.get(step.node_id)
        if (
            current is None
            or current.pk != step.pk
            or current.status != StepStatus.RUNNING
            or progress.run.status in RUN_TERMINAL
        ):
            return NOTHING_FOLLOWS
        current.input = step.input
        progress.worker_free = time.monotonic() < until
        if failure is None:
            assert result is not None  # one of the two is given
            if result.last_turn is not None:
                # The agent's last model call is recorded with the outcome, in this transaction.
                current.transcript, told = result.last_turn
                for kind, data in told:
                    progress.log.add(kind, current.node_id, **data)
            progress.succeed(current, result.output, **result.usage())
        else:
            progress.fail(
                current,
                failure.message,
                retryable=failure.retryable,
                code=failure.code or ErrorCode.STEP_FAILED,
                details=failure.details or None,
                **failure.usage,
            )
        progress.advance()
        progress.adopt_pending()
        progress.save()
        following = progress.taken
    if following is None:
        return NOTHING_FOLLOWS
    following.run = progress.run
    return following, _known(progress)


@dataclass(frozen=True)
class Known:
    """What the transaction that handed a step on knew of the run's steps: the latest attempts
    it read and left as they were (their rows hold what a new read would give, values as the
    database returns them), and the nodes whose steps it changed or added, to be read again."""

    unchanged: dict[str, StepRun]
    changed: list[str]
    # The handed-on step's rendered config, written with its row (None: the worker renders it).
    input: Any = None


# What recording an outcome hands on: the step this task runs next (None: none) and what the
# transaction knew of the run's steps.
Following = tuple[StepRun | None, Known | None]
NOTHING_FOLLOWS: Following = (None, None)


def _known(progress: Progress) -> Known:
    unchanged = {
        node_id: step
        for node_id, step in progress.steps.items()
        if progress.loaded.get(step.pk) == step.status
        and step.pk not in progress.stored
        and step is not progress.taken
    }
    return Known(
        unchanged,
        [node_id for node_id in progress.steps if node_id not in unchanged],
        progress.taken_input,
    )


def _seen(run: Run, known: Known | None) -> dict[str, StepRun]:
    """The latest attempts for a step's template context: when the last outcome handed this
    step on, the rows that transaction read and left unchanged are not read again (a chain's
    k-th step reads two rows, the last step and itself, not k)."""
    if known is None:
        return latest_attempts(run, skip=UNREAD_BY_SCHEDULER)
    return latest_attempts(
        run, skip=UNREAD_BY_SCHEDULER, reuse=known.unchanged, changed=known.changed
    )
