"""A URL holding a NUL character (`%00`) is answered as a client's mistake, never a 500:
PostgreSQL refuses the character in any query parameter, so every lookup by slug or token with
one failed."""

from __future__ import annotations

import pytest

from tests.api.helpers import two_step

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/orchestrations/a%00b",
        "/api/v1/orchestrations/a%00b/runs",
        "/api/v1/orchestrations/a%00b/versions",
        "/api/v1/templates/a%00b",
    ],
)
def test_an_api_path_with_a_nul_is_not_found(editor, path):
    response = editor.get(path)
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_a_page_or_share_link_with_a_nul_is_the_not_found_page(client):
    for path in ("/s/a%00b", "/orchestrations/a%00b/"):
        page = client.get(path, HTTP_ACCEPT="text/html")
        assert page.status_code == 404
        assert b"<h1>Not found</h1>" in page.content


def test_a_query_parameter_with_a_nul_is_refused_naming_it(editor):
    editor.post("/api/v1/orchestrations", two_step(), format="json")
    response = editor.get("/api/v1/orchestrations?q=a%00b")
    assert response.status_code == 400
    assert response.json()["fields"] == {"q": ["must not contain the NUL character (\\u0000)"]}
    assert editor.get("/api/v1/orchestrations?q=Research").json()["items"]
