"""Issue an API token. The raw token is the last line of the output, for scripts to capture."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from core.choices import Role
from orchestrator.models import ApiToken, Membership, Organization


class Command(BaseCommand):
    help = "Create an API token for an organization, for a user or a service account."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--org", required=True, help="Organization slug.")
        parser.add_argument("--role", required=True, choices=[r.value for r in Role])
        parser.add_argument("--user", help="Username; made a member with this role if not one.")
        parser.add_argument("--service-account", help="Name of a service account (no user).")
        parser.add_argument("--create-org", action="store_true", help="Create the org if missing.")
        parser.add_argument("--name", default="", help="A label for the token.")

    @transaction.atomic
    def handle(self, *args, **options) -> None:
        if bool(options["user"]) == bool(options["service_account"]):
            raise CommandError("Give exactly one of --user or --service-account.")
        slug = options["org"]
        organization = Organization.objects.filter(slug=slug).first()
        if organization is None:
            if not options["create_org"]:
                raise CommandError(f"No organization '{slug}'. Add --create-org to create it.")
            organization = Organization.objects.create(
                slug=slug, name=slug.replace("-", " ").title()
            )
            self.stdout.write(f"Created organization {slug}")

        user = None
        if options["user"]:
            user, created = get_user_model().objects.get_or_create(username=options["user"])
            if created:
                user.set_unusable_password()
                user.save()
                self.stdout.write(f"Created user {user.username}")
            _, joined = Membership.objects.get_or_create(
                user=user,
                organization=organization,
                defaults={
                    "role": options["role"],
                    "is_default": not user.memberships.exists(),
                },
            )
            if joined:
                self.stdout.write(f"Made {user.username} a member of {slug} as {options['role']}")

        token, raw = ApiToken.issue(
            organization,
            options["role"],
            user=user,
            service_account=options["service_account"] or "",
            name=options["name"],
        )
        self.stdout.write(f"Token for {token.holder} in {slug} with role {token.role}:")
        self.stdout.write(raw)
