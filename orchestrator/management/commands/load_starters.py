"""Load the starter template catalog from `orchestrator/starters/` (idempotent).

Run by `make run` on every start, so editing a starter file and restarting is enough.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from orchestrator.services.starters import StarterError, load_starters


class Command(BaseCommand):
    help = "Compile, validate and upsert the starter templates; remove those whose file is gone."

    def handle(self, *args, **options) -> None:
        try:
            counts = load_starters()
        except StarterError as exc:
            raise CommandError(f"Starter templates not loaded:\n{exc}") from None
        summary = ", ".join(f"{count} {what}" for what, count in counts.items())
        self.stdout.write(f"Starter templates: {summary}.")
