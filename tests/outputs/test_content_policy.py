"""The public pages (shared outputs, the gallery) send a Content-Security-Policy that keeps
their visitors' browsers on this site: no remote images, scripts or styles, no framing."""

from __future__ import annotations

import pytest

from orchestrator.services.orchestrations import create_orchestration
from runs.services import outputs

pytestmark = pytest.mark.django_db

REMOTE_IMAGE = "Look: ![pixel](https://evil.example/p.png)"


def directives(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    parts = (part.strip().split() for part in header.split(";") if part.strip())
    return {name: values for name, *values in parts}


def assert_public_policy(response) -> None:
    policy = directives(response)
    assert policy["default-src"] == ["'none'"]
    assert policy["img-src"] == ["'self'", "data:"]
    assert policy["script-src"] == ["'self'"]
    assert policy["style-src"] == ["'self'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["base-uri"] == ["'none'"]
    assert policy["form-action"] == ["'self'"]


def test_a_shared_output_with_a_remote_image_forbids_loading_it(client, finished_run):
    link, _ = outputs.share(finished_run(REMOTE_IMAGE))
    page = client.get(f"/s/{link.token}")
    assert page.status_code == 200
    assert 'src="https://evil.example/p.png"' in page.content.decode()  # markdown kept it
    assert_public_policy(page)
    assert "https://evil.example" not in page["Content-Security-Policy"]


def test_a_revoked_or_unknown_share_link_sends_the_policy_too(client):
    page = client.get("/s/not-a-token-at-all-but-long-enough-to-look-like-one")
    assert page.status_code == 404
    assert_public_policy(page)


@pytest.mark.parametrize("signed_in", [False, True])
def test_the_gallery_pages_send_the_policy(client, org, signed_in, django_user_model):
    orchestration = create_orchestration(
        org,
        {
            "name": "Public",
            "description": REMOTE_IMAGE,
            "is_public": True,
            "public_definition": True,
            "definition": {"nodes": [{"id": "a", "type": "transform", "config": {"output": 1}}]},
        },
    )
    if signed_in:
        client.force_login(django_user_model.objects.create_user("visitor", password="x" * 12))
    for path in ("/gallery/", f"/gallery/{orchestration.pk}/"):
        page = client.get(path)
        assert page.status_code == 200, path
        assert_public_policy(page)
