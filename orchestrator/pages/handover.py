"""Webhook signing secrets are shown once, by whatever created the trigger. A template used from
its page creates triggers and then redirects to the editor: the secrets ride along in the
(server-side) session and the editor shows them on its first load, then they are gone."""

from __future__ import annotations

from django.http import HttpRequest

from orchestrator.models import Orchestration

SESSION_KEY = "new_trigger_secrets"


def hand_over_secrets(request: HttpRequest, orchestration: Orchestration) -> None:
    secrets = getattr(orchestration, "new_trigger_secrets", None)
    if secrets:
        waiting = request.session.get(SESSION_KEY, {})
        waiting[str(orchestration.pk)] = secrets
        request.session[SESSION_KEY] = waiting


def take_secrets(request: HttpRequest, orchestration: Orchestration) -> dict[str, str]:
    waiting = request.session.get(SESSION_KEY)
    if not waiting or str(orchestration.pk) not in waiting:
        return {}
    secrets = waiting.pop(str(orchestration.pk))
    request.session[SESSION_KEY] = waiting
    return secrets
