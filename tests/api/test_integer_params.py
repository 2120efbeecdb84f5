"""Integers in paths, query parameters and headers: anything but plain ASCII digits in range is a
400 naming the parameter (a webhook's signature a 401), never a 500 nor a different request."""

from __future__ import annotations

import json
import time

import pytest
from rest_framework.test import APIClient

from orchestrator.services.webhooks import sign
from runs.models import Run
from tests.api.helpers import two_step

pytestmark = pytest.mark.django_db

URL = "/api/v1/orchestrations"
NOT_INTEGERS = {
    "past int()'s 4,300 digits": "1" * 5000,
    "past 64 bits": "9" * 20,
    "negative": "-1",
    "exponent": "1e3",
    "arabic-indic digit": "\u0663",
    "superscript digit": "\u00b2",
    "fullwidth digit": "\uff11",
    "leading space": " 1",
    "trailing space": "1 ",
    "plus sign": "+1",
    "underscore": "1_0",
    "empty": "",
}
IN_PATH = {name: value for name, value in NOT_INTEGERS.items() if value.strip()}


@pytest.fixture
def flow(editor) -> dict:
    response = editor.post(URL, two_step(status="active"), format="json")
    assert response.status_code == 201
    return response.json()


@pytest.fixture
def run(editor, flow) -> dict:
    response = editor.post(f"{URL}/{flow['id']}/runs", {"input": {"topic": "x"}}, format="json")
    assert response.status_code == 202
    return response.json()


def refused(response, parameter: str) -> None:
    assert response.status_code == 400, response.content[:200]
    body = response.json()
    assert body["error"] == "validation_error"
    assert list(body["fields"]) == [parameter]


@pytest.mark.parametrize("case", NOT_INTEGERS)
def test_a_limit_that_is_not_an_integer_is_a_400(editor, flow, case):
    refused(editor.get(URL, {"limit": NOT_INTEGERS[case]}), "limit")


@pytest.mark.parametrize("case", IN_PATH)
def test_a_version_number_that_is_not_an_integer_is_a_400(editor, flow, case):
    number = IN_PATH[case]
    base = f"{URL}/{flow['id']}/versions"
    refused(editor.get(f"{base}/{number}"), "number")
    refused(editor.get(f"{base}/{number}/diff/1"), "a")
    refused(editor.get(f"{base}/1/diff/{number}"), "b")
    refused(editor.post(f"{base}/{number}/restore"), "number")


def test_version_numbers_in_ascii_digits_still_work(editor, flow):
    base = f"{URL}/{flow['id']}/versions"
    assert editor.get(f"{base}/1").json()["version"] == 1
    assert editor.get(f"{base}/1/diff/1").status_code == 200
    assert editor.post(f"{base}/1/restore").json()["version"] == 2
    assert editor.get(f"{base}/99").status_code == 404


@pytest.mark.parametrize("case", NOT_INTEGERS)
def test_an_events_after_that_is_not_an_integer_is_a_400(editor, run, case):
    refused(editor.get(f"/api/v1/runs/{run['id']}/events", {"after": NOT_INTEGERS[case]}), "after")


@pytest.mark.parametrize("case", IN_PATH)
def test_a_last_event_id_that_is_not_an_integer_is_a_400(editor, run, case):
    stream = f"/api/v1/runs/{run['id']}/events/stream"
    value = IN_PATH[case]
    refused(editor.get(stream, HTTP_LAST_EVENT_ID=value), "Last-Event-ID")
    refused(editor.get(stream, {"after": value}), "after")


@pytest.mark.parametrize("case", IN_PATH)
def test_an_output_version_number_that_is_not_an_integer_is_a_400(editor, run, case):
    refused(editor.get(f"/api/v1/runs/{run['id']}/versions/{IN_PATH[case]}"), "number")


def test_events_after_a_seq_in_ascii_digits_still_work(editor, run):
    response = editor.get(f"/api/v1/runs/{run['id']}/events", {"after": "0"})
    assert response.status_code == 200
    assert response.json()["items"][0]["seq"] == 1


@pytest.mark.parametrize("case", IN_PATH)
def test_a_content_length_that_is_not_an_integer_is_a_400(editor, case):
    response = editor.generic(
        "POST", URL, b"{}", content_type="application/json", CONTENT_LENGTH=IN_PATH[case]
    )
    assert response.status_code == 400
    assert response.json()["error"] == "validation_error"


@pytest.mark.parametrize("case", IN_PATH)
def test_a_webhook_timestamp_that_is_not_an_integer_is_refused_and_starts_nothing(editor, case):
    created = editor.post(
        URL, two_step(status="active", trigger={"kind": "webhook"}), format="json"
    )
    hook = created.json()["triggers"][0]
    body = json.dumps({"topic": "x"}).encode()
    signature = sign(hook["signing_secret"], int(time.time()), body).lower()
    # The HMAC is of the timestamp as sent; only its reading as an integer is in question.
    header = f"t={IN_PATH[case]},v1={signature}"
    response = APIClient().generic(
        "POST",
        hook["webhook_url"],
        body,
        content_type="application/json",
        HTTP_X_ORCHESTRATOR_SIGNATURE=header,
    )
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"
    assert Run.objects.count() == 0
