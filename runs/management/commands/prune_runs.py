"""Delete finished runs past their retention now, as beat's hourly task does."""

from __future__ import annotations

from argparse import ArgumentTypeError

from django.core.management.base import BaseCommand

from runs.services import retention


def _batch_size(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ArgumentTypeError(f"must be a whole number, not {raw!r}") from None
    if value < 1:
        raise ArgumentTypeError(f"must be at least 1, not {value}")
    return value


class Command(BaseCommand):
    help = (
        "Delete finished runs past their organization's retention (RUN_RETENTION_DAYS), with "
        "their steps, events, approvals and output versions, and old webhook deliveries."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--dry-run", action="store_true", help="Count what would be deleted; delete nothing."
        )
        parser.add_argument(
            "--batch-size",
            type=_batch_size,
            help="Fired runs per transaction (RETENTION_BATCH_SIZE).",
        )

    def handle(self, *args, dry_run: bool, batch_size: int | None, **options) -> None:
        counts = retention.prune(dry_run=dry_run, batch_size=batch_size)
        verb = "would delete" if dry_run else "deleted"
        for kind, count in counts.items():
            self.stdout.write(f"{verb} {count} {kind.replace('_', ' ')}")
