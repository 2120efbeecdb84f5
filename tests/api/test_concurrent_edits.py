"""Optimistic locking under a real race: 50 editors PUT the same orchestration at the same moment
with the same If-Match, and exactly one of them wins.

Each editor is a user of its own with its own token, in a thread of its own, so each has its own
database connection (Django gives every thread one), and a barrier releases them together. The
update service must compare the ETag after it has locked the row: a comparison made before the
lock lets every request that read the old row pass it, and they all write a version.

Each editor first reads the orchestration, as the editor page does, and keeps the ETag it got: the
PUTs then have nothing to write before the update itself (a token's first use records its
`last_used_at`, a write that would queue the requests one behind the other on SQLite).

On PostgreSQL the requests overlap in the database: the losers wait on the row lock and then see
the winner's ETag. On SQLite the same test runs as it is: the reads overlap (WAL), and the writers
queue at BEGIN (IMMEDIATE transactions, config/settings.py), each one reading the row again only
once the one before has committed. A comparison made before the lock fails this test on both.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from rest_framework.test import APIClient

from core.choices import Role
from orchestrator.models import ApiToken, Membership, Orchestration, OrchestrationVersion

pytestmark = pytest.mark.django_db(transaction=True)

URL = "/api/v1/orchestrations"
EDITORS = 50


def definition(author: str) -> dict:
    """A definition that says who wrote it, so the stored one names the winner."""
    return {
        "inputs": [],
        "nodes": [{"id": "sign", "type": "transform", "config": {"output": f"by {author}"}}],
        "edges": [],
    }


@dataclass
class Answer:
    editor: str
    status: int
    body: dict
    etag: str | None
    started: float
    finished: float


def editors(org, count: int) -> list[tuple[str, str]]:
    """`count` users, each an editor member of `org` with a token of their own."""
    users = get_user_model()
    made = []
    for index in range(count):
        name = f"editor-{index:02d}"
        user = users.objects.create_user(username=name)
        Membership.objects.create(user=user, organization=org, role=Role.EDITOR)
        _, raw = ApiToken.issue(org, Role.EDITOR, user=user, name=name)
        made.append((name, raw))
    return made


def peak_overlap(answers: list[Answer]) -> int:
    """The most requests that were in flight at one instant."""
    moments = sorted(
        [(a.started, 1) for a in answers] + [(a.finished, -1) for a in answers],
        key=lambda moment: (moment[0], moment[1]),
    )
    peak = current = 0
    for _, change in moments:
        current += change
        peak = max(peak, current)
    return peak


def test_fifty_editors_with_the_same_etag_give_one_200_and_forty_nine_412(org, editor):
    created = editor.post(
        URL, {"name": "Shared", "definition": definition("nobody")}, format="json"
    ).json()
    pk, etag = created["id"], created["etag"]
    team = editors(org, EDITORS)
    barrier = threading.Barrier(EDITORS)
    answers: list[Answer] = []
    lock = threading.Lock()

    def put(name: str, raw: str) -> None:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
        try:
            read = client.get(f"{URL}/{pk}")
            assert read["ETag"] == f'"{etag}"'
            barrier.wait(timeout=30)
            started = time.monotonic()
            response = client.put(
                f"{URL}/{pk}",
                {
                    "name": f"Edited by {name}",
                    "description": f"{name} was here",
                    "definition": definition(name),
                },
                format="json",
                HTTP_IF_MATCH=read["ETag"],
            )
            finished = time.monotonic()
            answer = Answer(
                name, response.status_code, response.json(), response.get("ETag"), started, finished
            )
            with lock:
                answers.append(answer)
        finally:
            # Each thread opened its own connection: close it, or the test database stays in use.
            connection.close()

    threads = [threading.Thread(target=put, args=member) for member in team]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    elapsed = time.monotonic() - began

    assert len(answers) == EDITORS, "every editor got an answer"
    statuses = sorted(answer.status for answer in answers)
    assert statuses == [200] + [412] * (EDITORS - 1), statuses
    (winner,) = [answer for answer in answers if answer.status == 200]
    for loser in (answer for answer in answers if answer.status == 412):
        assert set(loser.body) == {"error", "detail"}, loser.body
        assert loser.body["error"] == "version_conflict"
        assert isinstance(loser.body["detail"], str) and loser.body["detail"]

    stored = Orchestration.objects.get(pk=pk)
    assert stored.version == 2
    assert stored.name == f"Edited by {winner.editor}"
    assert stored.description == f"{winner.editor} was here"
    assert stored.definition["nodes"][0]["config"]["output"] == f"by {winner.editor}"
    assert winner.body["version"] == 2
    assert winner.etag == f'"{stored.etag}"' != f'"{etag}"'

    versions = OrchestrationVersion.objects.filter(orchestration_id=pk).order_by("version")
    assert [v.version for v in versions] == [1, 2], "exactly one new version row"
    latest = versions.last()
    assert latest.created_by.username == winner.editor
    assert latest.definition == stored.definition
    assert latest.etag == stored.etag

    overlap = peak_overlap(answers)
    assert overlap > 1, "the requests were in flight together"
    print(
        f"\nconcurrent edits ({connection.vendor}): {EDITORS} editors, 1 x 200, "
        f"{EDITORS - 1} x 412, 1 new version, up to {overlap} requests in flight, "
        f"{elapsed:.1f} s"
    )
