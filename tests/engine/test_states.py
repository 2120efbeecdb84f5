"""The transition tables: what may follow what, and that finished things stay finished."""

from __future__ import annotations

import pytest

from runs.engine import (
    RUN_TERMINAL,
    RUN_TRANSITIONS,
    RUN_UNFINISHED,
    STEP_TERMINAL,
    STEP_TRANSITIONS,
    STEP_UNFINISHED,
    ErrorCode,
    InvalidTransition,
    RunStatus,
    StepStatus,
    check_run_transition,
    check_step_transition,
)

R, S = RunStatus, StepStatus


def test_every_status_has_a_row_in_its_table():
    assert set(RUN_TRANSITIONS) == set(RunStatus)
    assert set(STEP_TRANSITIONS) == set(StepStatus)


def test_terminal_and_unfinished_sets_split_the_statuses():
    assert {R.SUCCEEDED, R.FAILED, R.CANCELLED} == RUN_TERMINAL
    assert {R.QUEUED, R.RUNNING, R.PAUSED} == RUN_UNFINISHED
    assert {S.SUCCEEDED, S.FAILED, S.SKIPPED, S.CANCELLED} == STEP_TERMINAL
    assert {S.PENDING, S.RUNNING, S.WAITING} == STEP_UNFINISHED


@pytest.mark.parametrize("old", sorted(STEP_TERMINAL))
@pytest.mark.parametrize("new", sorted(StepStatus))
def test_a_finished_step_never_changes_again(old, new):
    with pytest.raises(InvalidTransition):
        check_step_transition(old, new)


@pytest.mark.parametrize("old", sorted(RUN_TERMINAL))
@pytest.mark.parametrize("new", sorted(RunStatus))
def test_a_finished_run_never_changes_again(old, new):
    with pytest.raises(InvalidTransition):
        check_run_transition(old, new)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (S.PENDING, S.RUNNING),
        (S.PENDING, S.SKIPPED),
        (S.PENDING, S.CANCELLED),
        (S.RUNNING, S.SUCCEEDED),
        (S.RUNNING, S.FAILED),
        (S.RUNNING, S.WAITING),
        (S.RUNNING, S.PENDING),  # lease expired: the reaper re-queues it
        (S.WAITING, S.PENDING),  # an agent's tool call decided: a worker goes on with it
        (S.WAITING, S.RUNNING),
        (S.WAITING, S.SUCCEEDED),
        (S.WAITING, S.FAILED),
        (S.WAITING, S.CANCELLED),
    ],
)
def test_allowed_step_transitions(old, new):
    check_step_transition(old, new)


def test_a_running_step_is_not_cancelled_it_finishes():
    with pytest.raises(InvalidTransition, match="running -> cancelled"):
        check_step_transition(S.RUNNING, S.CANCELLED)


def test_a_step_cannot_jump_from_pending_to_an_outcome():
    for new in (S.SUCCEEDED, S.FAILED, S.WAITING):
        with pytest.raises(InvalidTransition):
            check_step_transition(S.PENDING, new)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (R.QUEUED, R.RUNNING),
        (R.QUEUED, R.CANCELLED),
        (R.QUEUED, R.FAILED),
        (R.RUNNING, R.PAUSED),
        (R.RUNNING, R.SUCCEEDED),
        (R.RUNNING, R.FAILED),
        (R.RUNNING, R.CANCELLED),
        (R.PAUSED, R.RUNNING),
        (R.PAUSED, R.FAILED),
        (R.PAUSED, R.CANCELLED),
    ],
)
def test_allowed_run_transitions(old, new):
    check_run_transition(old, new)


def test_a_run_cannot_succeed_without_running_or_while_paused():
    for old in (R.QUEUED, R.PAUSED):
        with pytest.raises(InvalidTransition):
            check_run_transition(old, R.SUCCEEDED)


def test_transition_checks_accept_plain_strings_and_reject_unknown_ones():
    check_step_transition("pending", "running")
    check_run_transition("queued", "running")
    with pytest.raises(ValueError):
        check_step_transition("pending", "exploded")


def test_invalid_transition_says_what_was_attempted():
    with pytest.raises(InvalidTransition) as info:
        check_run_transition(R.SUCCEEDED, R.RUNNING)
    assert str(info.value) == "invalid run transition: succeeded -> running"
    assert (info.value.kind, info.value.old, info.value.new) == ("run", "succeeded", "running")


def test_error_codes_are_the_documented_strings():
    assert {
        "step_failed",
        "cost_limit_exceeded",
        "subflow_depth_exceeded",
        "run_limit_exceeded",
        "approval_denied",
        "approval_expired",
        "timeout",
        "cancelled",
        "model_unpriced",
        "output_invalid",
    } == ErrorCode.ALL
    assert ErrorCode.STEP_FAILED == "step_failed"


def test_statuses_serialize_as_their_values():
    assert str(S.WAITING) == "waiting"
    assert f"{R.PAUSED}" == "paused"
