"""Response and request shapes of the starter templates API."""

from __future__ import annotations

from rest_framework import serializers

from orchestrator.api.fields import StrictCharField, StrictSerializer
from orchestrator.models import StarterTemplate


class StarterTemplateSerializer(serializers.ModelSerializer):
    steps = serializers.IntegerField(source="step_count", read_only=True)
    tags = serializers.ListField(child=serializers.CharField(), read_only=True)
    inputs = serializers.JSONField(read_only=True)

    class Meta:
        model = StarterTemplate
        fields = ["id", "name", "description", "category", "tags", "steps", "inputs"]


class StarterTemplateDetailSerializer(StarterTemplateSerializer):
    """Adds what an instance is made from: the definition, its markdown source, its triggers."""

    definition = serializers.JSONField(read_only=True)
    triggers = serializers.JSONField(read_only=True)

    class Meta(StarterTemplateSerializer.Meta):
        fields = [*StarterTemplateSerializer.Meta.fields, "definition", "markdown", "triggers"]


class InstantiateSerializer(StrictSerializer):
    name = StrictCharField(max_length=200, required=False, allow_blank=True)
