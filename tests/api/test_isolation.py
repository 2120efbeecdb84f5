"""Nothing of another organization is ever visible: every foreign id answers 404."""

from __future__ import annotations

import pytest

from orchestrator.models import Agent, Credential, Group
from tests.api.helpers import two_step

pytestmark = pytest.mark.django_db


@pytest.fixture
def owned(editor, org):
    orchestration = editor.post("/api/v1/orchestrations", two_step(), format="json").json()
    return {
        "orchestration": orchestration,
        "agent": Agent.objects.create(organization=org, name="a", model="builtin/echo"),
        "group": Group.objects.create(organization=org, name="g"),
        "credential": Credential.objects.create(
            organization=org, name="c", kind="api_key", encrypted_value="x"
        ),
    }


def orchestration_routes(o: dict) -> list[tuple[str, str]]:
    base = f"/api/v1/orchestrations/{o['id']}"
    return [
        ("get", base),
        ("get", f"/api/v1/orchestrations/{o['slug']}"),
        ("put", base),
        ("patch", base),
        ("delete", base),
        ("delete", base + "?purge=true"),
        ("post", base + "/activate"),
        ("post", base + "/pause"),
        ("get", base + "/versions"),
        ("get", base + "/versions/1"),
        ("get", base + "/versions/1/diff/1"),
        ("post", base + "/versions/1/restore"),
    ]


def test_every_orchestration_route_answers_404_to_another_org(owned, outsider):
    for method, url in orchestration_routes(owned["orchestration"]):
        response = getattr(outsider, method)(
            url, two_step(), format="json", HTTP_IF_MATCH=owned["orchestration"]["etag"]
        )
        assert response.status_code == 404, (method, url, response.status_code)
        assert response.json()["error"] == "not_found"


@pytest.mark.parametrize("kind", ["agent", "group", "credential"])
def test_every_library_route_answers_404_to_another_org(owned, outsider, kind):
    url = f"/api/v1/{kind}s/{owned[kind].id}"
    for method in ("get", "put", "patch", "delete"):
        response = getattr(outsider, method)(url, {"name": "stolen"}, format="json")
        assert response.status_code in (404, 405), (method, url)
        if response.status_code == 405:
            assert method in ("put", "patch")  # credentials have no update
        else:
            assert response.json()["error"] == "not_found"


def test_lists_never_show_another_orgs_objects(owned, outsider):
    for path in ("orchestrations", "agents", "groups", "credentials"):
        assert outsider.get(f"/api/v1/{path}").json()["items"] == [], path


def test_another_orgs_agent_cannot_be_used_by_name(owned, outsider):
    definition = two_step()["definition"]
    definition["nodes"][0]["config"]["agent"] = "a"
    response = outsider.post(
        "/api/v1/orchestrations", {"name": "x", "definition": definition}, format="json"
    )
    assert response.status_code == 400


def test_another_orgs_group_cannot_be_assigned(owned, outsider):
    response = outsider.post(
        "/api/v1/orchestrations", two_step(group=str(owned["group"].id)), format="json"
    )
    assert response.status_code == 400
    assert response.json()["fields"] == {"group": ["no such group in this organization"]}
