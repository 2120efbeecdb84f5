"""The starter template catalog, loaded from `orchestrator/starters/*.md`."""

from __future__ import annotations

from django.db import models


class StarterTemplate(models.Model):
    """One starter: its markdown source (the truth) and what it compiles to.

    Rows are written only by `services.starters.load_starters`; the files are the catalog.
    `tag_index` (",a,b,") keeps tag filtering a plain LIKE on SQLite and PostgreSQL alike.
    """

    id = models.SlugField(primary_key=True, max_length=100)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    category = models.CharField(max_length=60, db_index=True)
    tags = models.JSONField(default=list, blank=True)
    tag_index = models.CharField(max_length=1000, blank=True, editable=False)
    markdown = models.TextField()
    definition = models.JSONField(default=dict)
    step_count = models.PositiveIntegerField(default=0)
    inputs = models.JSONField(default=list, blank=True)
    triggers = models.JSONField(
        default=list, blank=True, help_text="Triggers an instance starts with (kind, cron)."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name
