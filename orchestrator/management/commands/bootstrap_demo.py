"""Create the demo organization, a user who can log in, and an API token, then print them.

Run by `make run` on every start: it is idempotent. Only a token's hash is stored, so to print
the same token again (and keep a `$TOKEN` the user exported working across restarts) the raw
value is kept in VAR_DIR/demo-token, readable by its owner only; a new one is issued when that
file is missing or its token was revoked.
"""

from __future__ import annotations

import os

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from core.choices import Role
from core.tenancy import hash_token
from orchestrator.models import ApiToken, Membership, Organization

DEMO_ORG = "demo"
DEMO_USER = "demo"
DEMO_PASSWORD = "demo-password"


class Command(BaseCommand):
    help = "Create the demo organization, user and an API token (idempotent)."

    @transaction.atomic
    def handle(self, *args, **options) -> None:
        organization, _ = Organization.objects.get_or_create(
            slug=DEMO_ORG, defaults={"name": "Demo"}
        )
        user, created = get_user_model().objects.get_or_create(
            username=DEMO_USER, defaults={"is_staff": True, "is_superuser": True}
        )
        if created:
            user.set_password(DEMO_PASSWORD)
            user.save()
        Membership.objects.get_or_create(
            user=user,
            organization=organization,
            defaults={"role": Role.ADMIN, "is_default": True},
        )
        raw = demo_token(organization, user)
        base = f"http://{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
        self.stdout.write("")
        self.stdout.write(f"  Open:       {base}/login/")
        self.stdout.write(f"  Log in:     user {DEMO_USER}, password {DEMO_PASSWORD}")
        self.stdout.write(f"  API token:  {raw}")
        self.stdout.write(
            f"  Try:        curl -H 'Authorization: Bearer {raw}' {base}/api/v1/orchestrations"
        )
        self.stdout.write("")
        self.stdout.write(raw)


def demo_token(organization: Organization, user) -> str:
    """The raw demo token of the last start while it still works, else a new one."""
    kept = settings.VAR_DIR / "demo-token"
    raw = kept.read_text().strip() if kept.exists() else ""
    tokens = ApiToken.objects.filter(user=user, name="make run", organization=organization)
    if raw and tokens.usable().filter(token_hash=hash_token(raw)).exists():
        return raw
    tokens.usable().delete()
    _, raw = ApiToken.issue(organization, Role.ADMIN, user=user, name="make run")
    kept.touch(mode=0o600)
    kept.write_text(raw + "\n")
    return raw
