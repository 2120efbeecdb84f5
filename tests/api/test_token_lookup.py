"""The bearer-token lookup every API request makes: one statement written once per process, which
must answer exactly what the ORM query it replaces answers, in every standing a token can have."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from core.choices import Role
from core.tenancy import hash_token
from orchestrator.models import ApiToken, Membership

pytestmark = pytest.mark.django_db


def orm_lookup(raw: str) -> ApiToken | None:
    return ApiToken.objects.usable().with_standing().filter(token_hash=hash_token(raw)).first()


def same_standing(raw: str) -> None:
    expected = orm_lookup(raw)
    with CaptureQueriesContext(connection) as queries:
        found = ApiToken.objects.usable_by_hash(hash_token(raw))
    assert len(queries) == 1
    if expected is None:
        assert found is None
        return
    for field in ApiToken._meta.concrete_fields:
        assert getattr(found, field.attname) == getattr(expected, field.attname), field.name
    assert found.member_role == expected.member_role
    assert found.effective_role == expected.effective_role
    assert found.organization == expected.organization
    assert found.organization.slug == expected.organization.slug
    assert found.user == expected.user
    if found.user is not None:
        assert (found.user.username, found.user.is_active) == (
            expected.user.username,
            expected.user.is_active,
        )


def test_the_lookup_answers_as_the_orm_query_in_every_standing(org, other_org):
    alice = get_user_model().objects.create_user("alice")
    membership = Membership.objects.create(user=alice, organization=org, role=Role.ADMIN)
    _, person = ApiToken.issue(org, Role.ADMIN, user=alice, name="laptop")
    _, service = ApiToken.issue(org, Role.EDITOR, service_account="ci")
    _, foreign = ApiToken.issue(other_org, Role.VIEWER, user=alice)
    tokens = [person, service, foreign, "orc_never-issued"]

    for raw in tokens:  # a member, a service account, a non-member, an unknown token
        same_standing(raw)
    membership.role = Role.VIEWER  # demoted
    membership.save()
    same_standing(person)
    alice.is_active = False
    alice.save()
    same_standing(person)
    membership.delete()
    same_standing(person)
    ApiToken.objects.filter(token_hash=hash_token(service)).update(revoked_at=timezone.now())
    assert ApiToken.objects.usable_by_hash(hash_token(service)) is None
    same_standing(service)
