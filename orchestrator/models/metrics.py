"""Counters that no run row can tell afterwards, kept in the database so that every web process
adds to the same number and a scrape of any one of them sees the total."""

from __future__ import annotations

from django.db import models

from orchestrator.models.tenancy import Organization


class WebhookOutcome(models.TextChoices):
    ACCEPTED = "accepted", "Accepted: a run was started"
    DUPLICATE = "duplicate", "Duplicate: a replayed signature, nothing started"
    UNAUTHORIZED = "unauthorized", "Unauthorized: bad token, signature or timestamp"
    TOO_LARGE = "too_large", "Too large: the body is over the limit"
    BAD_REQUEST = "bad_request", "Bad request: malformed JSON or a body the schema refuses"
    THROTTLED = "throttled", "Throttled: over the webhook rate limit"
    REJECTED = "rejected", "Rejected: any other refusal, e.g. a paused orchestration"
    ERROR = "error", "Error: an unexpected failure on our side"


class WebhookRequestCount(models.Model):
    """How many inbound webhook requests ended with one outcome, since the table was created."""

    outcome = models.CharField(max_length=20, choices=WebhookOutcome.choices, unique=True)
    count = models.PositiveBigIntegerField(default=0)

    class Meta:
        ordering = ["outcome"]

    def __str__(self) -> str:
        return f"{self.outcome}: {self.count}"


class PrunedSample(models.Model):
    """What the runs deleted by retention had added to one counter sample of an organization.

    Counters are read from the rows at scrape time; without this, deleting old runs would lower
    them, and Prometheus would take each drop for a restart from zero (a spike in `rate()`).
    """

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="pruned_samples"
    )
    name = models.CharField(max_length=100, help_text="The sample, e.g. orchestrator_runs_total.")
    labels = models.CharField(max_length=300, help_text="Its labels, as sorted JSON.")
    value = models.FloatField(default=0)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "name", "labels"], name="pruned_sample_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.name}{self.labels} += {self.value}"
