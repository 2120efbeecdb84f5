"""Share links and the public page at /s/<token>."""

from __future__ import annotations

import re

import pytest

from runs.models import ShareLink

pytestmark = pytest.mark.django_db

TOKEN = re.compile(r"^http://testserver/s/([A-Za-z0-9_-]{43,})$")


def share(client, run):
    return client.post(f"/api/v1/runs/{run.pk}/share")


def token_of(response) -> str:
    match = TOKEN.match(response.json()["share_url"])
    assert match, response.json()
    return match[1]


def test_sharing_twice_answers_the_same_url(editor, finished_run):
    run = finished_run()
    first = share(editor, run)
    assert first.status_code == 201, first.json()
    again = share(editor, run)
    assert again.status_code == 200
    assert again.json() == first.json()
    assert ShareLink.objects.filter(run=run).count() == 1


def test_tokens_are_long_url_safe_and_never_repeat(editor, finished_run):
    tokens = {token_of(share(editor, finished_run(f"run {i}"))) for i in range(5)}
    assert len(tokens) == 5
    # token_urlsafe(32): 32 random bytes, 43 characters of the URL-safe alphabet.
    assert all(len(token) >= 43 for token in tokens)


def test_the_page_shows_the_rendered_output_without_login(client, editor, finished_run):
    run = finished_run("# Quarterly report\n\nRevenue is **up**.")
    page = client.get(f"/s/{token_of(share(editor, run))}")
    assert page.status_code == 200
    html = page.content.decode()
    assert "Weekly digest" in html
    assert "<h1>Quarterly report</h1>" in html
    assert "<strong>up</strong>" in html
    assert run.finished_at.strftime("%Y-%m-%d %H:%M") in html
    assert '<meta name="robots" content="noindex">' in html
    assert page["Referrer-Policy"] == "no-referrer"
    assert "no-store" in page["Cache-Control"]


def test_revoking_makes_the_page_404_and_sharing_again_makes_a_new_token(
    client, editor, finished_run
):
    run = finished_run()
    old = token_of(share(editor, run))
    assert editor.delete(f"/api/v1/runs/{run.pk}/share").status_code == 204
    assert client.get(f"/s/{old}").status_code == 404
    assert editor.delete(f"/api/v1/runs/{run.pk}/share").status_code == 204

    response = share(editor, run)
    assert response.status_code == 201
    new = token_of(response)
    assert new != old
    assert client.get(f"/s/{new}").status_code == 200
    assert client.get(f"/s/{old}").status_code == 404


def test_unsharing_a_run_never_shared_is_204(editor, finished_run):
    assert editor.delete(f"/api/v1/runs/{finished_run().pk}/share").status_code == 204


def test_an_unknown_token_is_404(client):
    assert client.get("/s/not-a-token").status_code == 404
    assert client.get("/s/" + "A" * 43).status_code == 404


def test_the_page_of_a_deleted_orchestration_is_404(client, editor, finished_run):
    run = finished_run()
    token = token_of(share(editor, run))
    assert editor.delete(f"/api/v1/orchestrations/{run.orchestration_id}").status_code == 204
    assert client.get(f"/s/{token}").status_code == 404


def test_scripts_and_javascript_links_in_the_output_are_neutralised(client, editor, finished_run):
    hostile = (
        "# Hi\n\n<script>alert(1)</script>\n\n<img src=x onerror=alert(1)>\n\n"
        "[x](javascript:alert(1)) [y](<javascript:alert(2)>) [ok](https://example.com)\n"
    )
    run = finished_run(hostile)
    html = client.get(f"/s/{token_of(share(editor, run))}").content.decode()
    output = html.split('class="prose">', 1)[1]
    assert "<script>" not in output
    assert "<img" not in output
    assert "onerror=" not in output.replace("&lt;img src=x onerror=alert(1)&gt;", "")
    assert 'href="javascript' not in output.lower()
    assert '<a href="https://example.com" rel="noopener noreferrer">ok</a>' in output


def test_a_hostile_orchestration_name_is_escaped_on_the_shared_page(client, editor, finished_run):
    run = finished_run("Fine.", name="<script>alert(1)</script><img src=x onerror=alert(2)>")
    html = client.get(f"/s/{token_of(share(editor, run))}").content.decode()
    assert "<script>alert(1)" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;" in html


def test_a_json_output_is_shown_escaped_and_pretty(client, editor, finished_run):
    run = finished_run('{"title": "<script>alert(1)</script>", "n": 1}', output_type="json")
    assert run.output == {"title": "<script>alert(1)</script>", "n": 1}
    html = client.get(f"/s/{token_of(share(editor, run))}").content.decode()
    assert "<script>alert(1)" not in html
    # Indented JSON (key order is the database's: jsonb sorts keys, SQLite keeps them).
    assert "\n  &quot;title&quot;: &quot;&lt;script&gt;alert(1)&lt;/script&gt;&quot;" in html
    assert "\n  &quot;n&quot;: 1" in html
    assert '<pre class="mono">' in html


def test_a_viewer_cannot_share_or_unshare(viewer, finished_run):
    run = finished_run()
    assert share(viewer, run).status_code == 403
    assert viewer.delete(f"/api/v1/runs/{run.pk}/share").status_code == 403
