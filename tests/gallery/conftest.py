from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from core import crypto
from core.choices import Role
from orchestrator.models import Agent, Credential, Membership, Organization
from orchestrator.services.orchestrations import create_orchestration

SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(1)>"


def definition(credential_id: str) -> dict:
    """Uses a library agent, a credential on an inline agent and on an http step, and a
    secret header: everything a public copy must not carry away."""
    return {
        "inputs": [{"name": "topic", "type": "string", "required": True}],
        "agents": [
            {"name": "declared", "model": "builtin/echo", "credential": credential_id},
        ],
        "nodes": [
            {
                "id": "research",
                "type": "agent",
                "name": "Research",
                "config": {"agent": "writer", "prompt": "Research {{ input.topic }}"},
            },
            {
                "id": "check",
                "type": "agent",
                "config": {
                    "agent": {"model": "builtin/echo", "credential": credential_id},
                    "prompt": "Check {{ steps.research.output }}",
                },
            },
            {
                "id": "notify",
                "type": "http",
                "on_error": "continue",
                "config": {
                    "method": "POST",
                    "url": "http://127.0.0.1:9/hook",
                    "credential": credential_id,
                    "headers": {"Authorization": "Bearer sk-live-SECRET", "X-Team": "growth"},
                },
            },
            {
                "id": "report",
                "type": "transform",
                "config": {"output": "{{ steps.check.output }}"},
            },
        ],
        "edges": [
            {"source": "research", "target": "check"},
            {"source": "research", "target": "notify", "condition": "true"},
            {"source": "check", "target": "report"},
            {"source": "notify", "target": "report"},
        ],
    }


@pytest.fixture
def publish(org):
    """`publish(name, public_definition=True, **fields)`: a public orchestration of `org`, with a
    library agent, a credential and a webhook trigger (its token and secret on `.secrets`)."""
    credential = Credential.objects.create(
        organization=org, name="prod-key", kind="bearer", encrypted_value=crypto.encrypt("sk-1")
    )
    Agent.objects.get_or_create(
        organization=org,
        name="writer",
        defaults={"model": "builtin/echo", "system_prompt": "You write.", "credential": credential},
    )

    def make(name: str = "Lead router", *, public_definition: bool = True, **fields):
        orchestration = create_orchestration(
            org,
            {
                "name": name,
                "description": fields.pop("description", "Routes **leads** to the right team."),
                "tags": fields.pop("tags", ["sales", "routing"]),
                "definition": definition(str(credential.pk)),
                "is_public": fields.pop("is_public", True),
                "public_definition": public_definition,
                "triggers": [{"kind": "webhook"}],
                **fields,
            },
        )
        trigger = orchestration.triggers.get()
        orchestration.secrets = [
            trigger.webhook_token,
            orchestration.new_trigger_secrets[str(trigger.pk)],
            trigger.encrypted_signing_secret,
            str(credential.pk),
            "sk-live-SECRET",
        ]
        return orchestration

    return make


@pytest.fixture
def browser(org, other_org):
    """`browser(role, org=...)`: a Django test client signed in as a member with that role."""

    def make(role: str = Role.EDITOR, organization: Organization | None = None) -> Client:
        organization = organization or other_org
        user = get_user_model().objects.create_user(
            f"{role}-{organization.slug}", password="pw-12345678"
        )
        Membership.objects.create(user=user, organization=organization, role=role, is_default=True)
        client = Client()
        client.force_login(user)
        return client

    return make
