"""What the gallery shows of a public orchestration: never triggers, runs or credentials."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from gallery.services import portable_definition, public_description
from orchestrator.models import Orchestration


class GalleryItemSerializer(serializers.ModelSerializer):
    """`organization` is the owner's display name only; `definition` only when the owner chose
    `public_definition`, and then in its portable form."""

    tags = serializers.SerializerMethodField()
    organization = serializers.CharField(source="organization.name", read_only=True)
    steps = serializers.IntegerField(source="step_count", read_only=True)
    forks = serializers.IntegerField(source="fork_count", read_only=True)
    description = serializers.SerializerMethodField()
    definition = serializers.SerializerMethodField()

    class Meta:
        model = Orchestration
        fields = [
            "id",
            "slug",
            "name",
            "description",
            "icon",
            "icon_color",
            "tags",
            "organization",
            "steps",
            "forks",
            "updated_at",
            "definition",
        ]

    def get_tags(self, orchestration: Orchestration) -> list[str]:
        return [tag.name for tag in orchestration.tag_rows.all()]

    def get_description(self, orchestration: Orchestration) -> str:
        return public_description(orchestration)

    @extend_schema_field({"type": "object", "description": "Only when public_definition."})
    def get_definition(self, orchestration: Orchestration) -> dict | None:
        if not orchestration.public_definition:
            return None
        library = self.context.get("library", {}).get(orchestration.organization_id)
        return portable_definition(orchestration, library)

    def to_representation(self, orchestration: Orchestration) -> dict:
        data = super().to_representation(orchestration)
        if not orchestration.public_definition:
            data.pop("definition")
        return data
