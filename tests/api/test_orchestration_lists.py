from __future__ import annotations

import base64
from urllib.parse import urlencode

import pytest
from django.contrib.auth import get_user_model

from orchestrator.models import Group, Membership
from tests.api.helpers import two_step

pytestmark = pytest.mark.django_db

URL = "/api/v1/orchestrations"


def names(response) -> list[str]:
    assert response.status_code == 200, response.json()
    return sorted(item["name"] for item in response.json()["items"])


@pytest.fixture
def catalog(editor, org):
    group = Group.objects.create(organization=org, name="Ops")
    alice = get_user_model().objects.create(username="alice")
    Membership.objects.create(user=alice, organization=org, role="editor")
    rows = [
        two_step(
            name="Alpha",
            zone="growth",
            tags=["daily", "seo"],
            metadata={"team": "red", "tier": "1"},
        ),
        two_step(
            name="Beta",
            zone="growth",
            tags=["weekly"],
            metadata={"team": "red"},
            status="active",
            description="finds leads",
        ),
        two_step(
            name="Gamma",
            zone="ops",
            tags=["daily"],
            metadata={"team": "blue", "tier": "1"},
            group=str(group.id),
            owner="alice",
            is_public=True,
        ),
    ]
    for row in rows:
        assert editor.post(URL, row, format="json").status_code == 201
    return group


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("zone=growth", ["Alpha", "Beta"]),
        ("tag=daily", ["Alpha", "Gamma"]),
        ("status=active", ["Beta"]),
        ("status=draft", ["Alpha", "Gamma"]),
        ("q=leads", ["Beta"]),
        ("q=gam", ["Gamma"]),
        ("metadata=team:red", ["Alpha", "Beta"]),
        ("metadata=team:red&metadata=tier:1", ["Alpha"]),
        ("metadata=tier:1", ["Alpha", "Gamma"]),
        ("owner=alice", ["Gamma"]),
        ("is_public=true", ["Gamma"]),
        ("zone=growth&tag=daily", ["Alpha"]),
    ],
)
def test_list_filters(editor, catalog, query, expected):
    assert names(editor.get(f"{URL}?{query}")) == expected


def test_filter_by_group(editor, catalog):
    assert names(editor.get(f"{URL}?group={catalog.id}")) == ["Gamma"]


def test_list_items_omit_the_definition(editor, catalog):
    item = editor.get(URL).json()["items"][0]
    assert "definition" not in item
    assert "triggers" not in item
    assert item["steps"] == 2


def test_cursor_pagination_walks_every_item_once_newest_first(editor):
    for index in range(7):
        editor.post(URL, two_step(name=f"Flow {index}"), format="json")
    seen, cursor = [], None
    while True:
        query = f"?limit=3&cursor={cursor}" if cursor else "?limit=3"
        page = editor.get(URL + query).json()
        seen.extend(item["name"] for item in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"Flow {index}" for index in reversed(range(7))]


def test_the_list_costs_the_same_queries_for_10_or_30_items(editor, django_assert_max_num_queries):
    for index in range(30):
        editor.post(URL, two_step(name=f"Flow {index}", tags=["a", "b"]), format="json")
    with django_assert_max_num_queries(6):
        assert len(editor.get(URL + "?limit=30").json()["items"]) == 30
    with django_assert_max_num_queries(6):
        assert len(editor.get(URL + "?limit=10").json()["items"]) == 10


def forged(**tokens: str) -> str:
    """A cursor as a client can write one: base64 of the query string the pagination reads."""
    return base64.b64encode(urlencode(tokens).encode()).decode()


@pytest.mark.parametrize(
    ("path", "position"),
    [
        ("/api/v1/runs", "2026"),  # ordered by created_at
        ("/api/v1/runs", "2026-13-45T99:00:00"),
        (URL, "yesterday"),
        ("/api/v1/gallery", "2026"),
        ("/api/v1/approvals", "2026"),
        ("/api/v1/orchestrations/{id}/triggers", "soon"),
        ("/api/v1/orchestrations/{id}/versions", "two"),  # ordered by -version
        ("/api/v1/orchestrations/{id}/versions", "99999999999999999999"),  # past the column
        ("/api/v1/orchestrations/{id}/versions", "-1"),
    ],
)
def test_a_forged_cursor_position_is_a_400_naming_the_cursor(editor, path, position):
    flow = editor.post(URL, two_step(), format="json").json()
    response = editor.get(path.format(id=flow["id"]), {"cursor": forged(p=position)})
    assert response.status_code == 400, response.content
    assert response.json()["fields"] == {"cursor": ["invalid cursor"]}


def test_a_cursor_the_list_gave_still_walks_it(editor):
    flow = editor.post(URL, two_step(), format="json").json()
    for index in range(3):
        changed = editor.patch(
            f"{URL}/{flow['id']}",
            {"description": f"v{index}"},
            format="json",
            HTTP_IF_MATCH=f'"{flow["etag"]}"',
        )
        assert changed.status_code == 200, changed.json()
        flow = changed.json()
    first = editor.get(f"{URL}/{flow['id']}/versions", {"limit": 2}).json()
    rest = editor.get(
        f"{URL}/{flow['id']}/versions", {"limit": 2, "cursor": first["next_cursor"]}
    ).json()
    assert [v["version"] for v in first["items"] + rest["items"]] == [4, 3, 2, 1]
