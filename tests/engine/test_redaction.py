"""Masking the secrets a step was given, and refusing a credential that cannot be a header value:
the pure pieces under tests/security/test_credential_canaries.py, without a database."""

from __future__ import annotations

import base64

import pytest

from runs.engine.nodes.base import AgentSpec, Credential, StepFailed, header_value
from runs.engine.redaction import MASK, Redactor


def test_every_string_at_any_depth_is_masked_keys_included():
    hide = Redactor(["s3cret-value"])
    got = hide({"s3cret-value": ["a s3cret-value b", ("x", {"y": "s3cret-values"})], "n": 3})
    assert got == {MASK: [f"a {MASK} b", ["x", {"y": f"{MASK}s"}]], "n": 3}


def test_the_longest_secret_goes_first_so_none_survives_half_masked():
    hide = Redactor(["abcdef", "abcdef-ghijkl"])
    assert hide("<abcdef-ghijkl>") == f"<{MASK}>"


def test_short_and_empty_secrets_are_left_alone():
    assert not Redactor(["", "ab", "12345"])
    assert Redactor(["12345"])("a 12345 b") == "a 12345 b"


def test_a_credential_lists_every_form_it_can_come_back_in():
    basic = Credential("basic", "someone:pass-word-1\n")
    token = base64.b64encode(b"someone:pass-word-1\n").decode()
    assert {token, "pass-word-1\n", "someone:pass-word-1"} <= set(basic.secrets())
    assert "value-of-it" in Credential("header", "X-Key:  value-of-it ").secrets()
    assert AgentSpec(name="a", model="openai/x", api_key=" key-123456\n").secrets() == (
        " key-123456\n",
        "key-123456",
    )
    assert AgentSpec(name="a", model="openai/x").secrets() == ()


def test_a_pasted_trailing_newline_is_trimmed_off_the_header():
    assert Credential("bearer", "tok-123456\n").headers() == {"Authorization": "Bearer tok-123456"}
    assert Credential("api_key", " tok-123456\r\n").headers() == {"X-API-Key": "tok-123456"}


@pytest.mark.parametrize("kind", ["bearer", "api_key", "header"])
def test_a_line_break_inside_is_refused_without_quoting_the_value(kind):
    value = "X-Key: tok-123456\r\nX-Injected: yes" if kind == "header" else "tok\nX-Injected: yes"
    with pytest.raises(StepFailed) as refused:
        Credential(kind, value).headers()
    assert "tok" not in refused.value.message
    assert not refused.value.retryable


def test_header_value_names_what_it_refused():
    with pytest.raises(StepFailed, match="the API key holds a line break"):
        header_value("abc\x00def", "API key")
