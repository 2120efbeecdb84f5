"""Nothing of a run's outputs is reachable from another organization."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_another_org_gets_404_from_every_output_endpoint(editor, outsider, finished_run, refines):
    run = finished_run()
    editor.post(f"/api/v1/runs/{run.pk}/share")
    for method, url, body in [
        ("post", f"/api/v1/runs/{run.pk}/share", None),
        ("delete", f"/api/v1/runs/{run.pk}/share", None),
        ("post", f"/api/v1/runs/{run.pk}/refine", {"prompt": "Mine now."}),
        ("get", f"/api/v1/runs/{run.pk}/versions", None),
        ("get", f"/api/v1/runs/{run.pk}/versions/1", None),
    ]:
        response = getattr(outsider, method)(url, body, format="json")
        assert response.status_code == 404, (method, url, response.status_code)
        assert response.json()["error"] == "not_found"
    run.refresh_from_db()
    assert run.refine_status == "idle"
    assert run.share_links.filter(revoked_at__isnull=True).count() == 1
    assert refines.queued == []
