"""Retry counts and exponential backoff."""

from __future__ import annotations

import pytest

from runs.engine import MAX_BACKOFF_S, RetryPolicy, backoff_seconds, should_retry


def test_the_policy_comes_from_the_nodes_retry_block():
    node = {"id": "a", "retry": {"max_attempts": 3, "backoff_s": 0.5, "backoff_factor": 3}}
    assert RetryPolicy.from_node(node) == RetryPolicy(3, 0.5, 3.0)


def test_a_node_without_retry_gets_the_defaults_one_attempt():
    assert RetryPolicy.from_node({"id": "a"}) == RetryPolicy(1, 1.0, 2.0)
    assert RetryPolicy.from_node({"id": "a", "retry": None}) == RetryPolicy(1, 1.0, 2.0)
    assert RetryPolicy.from_node({"id": "a", "retry": {"max_attempts": 2}}) == RetryPolicy(2)


def test_max_attempts_counts_the_first_attempt():
    policy = RetryPolicy(max_attempts=3)
    assert [should_retry(policy, a) for a in (1, 2, 3, 4)] == [True, True, False, False]


def test_a_single_attempt_policy_never_retries():
    assert not should_retry(RetryPolicy(max_attempts=1), 1)


def test_backoff_grows_exponentially_from_the_first_attempt():
    policy = RetryPolicy(max_attempts=5, backoff_s=1.0, backoff_factor=2.0)
    assert [backoff_seconds(policy, a) for a in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 8.0]
    assert backoff_seconds(RetryPolicy(3, 0.5, 3.0), 3) == pytest.approx(4.5)


def test_backoff_is_capped_at_an_hour():
    policy = RetryPolicy(max_attempts=100, backoff_s=10.0, backoff_factor=10.0)
    assert backoff_seconds(policy, 4) == MAX_BACKOFF_S == 3600.0
    assert backoff_seconds(policy, 5000) == 3600.0  # no OverflowError


def test_a_zero_backoff_retries_at_once():
    assert backoff_seconds(RetryPolicy(3, 0.0, 2.0), 2) == 0.0
