"""API tokens: issuing and revoking them, and listing the ones that still work.

What a token may do (its holder's membership, the role cap) is decided by
`ApiToken.effective_role`; this module is the one way a token is issued or revoked, for the API,
the settings page and the admin alike.
"""

from __future__ import annotations

from django.contrib.auth.models import User
from django.db.models import QuerySet
from django.utils import timezone

from core.domain_errors import InvalidRequest
from orchestrator.models import ApiToken, Organization


def live_tokens(organization: Organization) -> QuerySet[ApiToken]:
    """The organization's tokens not revoked, with what `effective_role` needs loaded."""
    return ApiToken.objects.usable().with_standing().filter(organization=organization)


def issue_token(
    organization: Organization,
    role: str,
    *,
    user: User | None = None,
    service_account: str = "",
    name: str = "",
) -> tuple[ApiToken, str]:
    """A new token and its raw value, which is never stored and cannot be shown again.

    A person's token is issued only while they are a member: one issued to anyone else would
    be refused on its first use, and the caller would not learn why.
    """
    if user is not None and not user.memberships.filter(organization=organization).exists():
        raise InvalidRequest(
            f"{user.get_username()} is not a member of this organization.",
            fields={"user": ["not a member of this organization"]},
        )
    return ApiToken.issue(organization, role, user=user, service_account=service_account, name=name)


def revoke(tokens: QuerySet[ApiToken]) -> int:
    """Revoke the tokens in `tokens` that still work; how many that was. A revoked token
    answers 401 on its next request, wherever it was sent from."""
    return tokens.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
