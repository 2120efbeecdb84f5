"""Create the demo organization, a user who can log in, and an API token, then print them.

Run by `make run` on every start: it is idempotent, and issues a fresh token each time because
the raw value of an old one cannot be shown again.
"""

from __future__ import annotations

import os

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from orchestrator.choices import Role
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
        ApiToken.objects.filter(user=user, name="make run", revoked_at__isnull=True).delete()
        _, raw = ApiToken.issue(organization, Role.ADMIN, user=user, name="make run")
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
