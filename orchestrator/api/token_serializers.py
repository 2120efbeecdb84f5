"""API tokens as the API shows them: never the hash, never the raw value after creation."""

from __future__ import annotations

from rest_framework import serializers

from core.choices import Role
from orchestrator.api.fields import StrictCharField, StrictSerializer
from orchestrator.models import ApiToken

ROLE_HELP = (
    "A person's token never acts above their current role in the organization, and stops "
    "working when they leave it or are deactivated."
)


class TokenSerializer(serializers.ModelSerializer):
    user = serializers.SerializerMethodField(
        help_text="The holder's username; null for a service account."
    )
    service_account = serializers.SerializerMethodField(
        help_text="The service account's name; null for a person's token."
    )
    effective_role = serializers.SerializerMethodField(
        help_text="What the token may do now: its role, capped by its holder's current role; "
        "null when it is refused (the holder left the organization or was deactivated)."
    )

    class Meta:
        model = ApiToken
        fields = [
            "id",
            "name",
            "prefix",
            "role",
            "effective_role",
            "user",
            "service_account",
            "created_at",
            "last_used_at",
        ]
        extra_kwargs = {
            "prefix": {"help_text": "The first characters of the token, to recognise it."},
            "role": {"help_text": "The role it was issued with. " + ROLE_HELP},
        }

    def get_user(self, token: ApiToken) -> str | None:
        return token.user.get_username() if token.user_id else None

    def get_service_account(self, token: ApiToken) -> str | None:
        return None if token.user_id else token.service_account

    def get_effective_role(self, token: ApiToken) -> str | None:
        return token.effective_role


class IssuedTokenSerializer(TokenSerializer):
    token = serializers.SerializerMethodField(
        help_text="The raw token: shown in this answer only, never again."
    )

    class Meta(TokenSerializer.Meta):
        fields = [*TokenSerializer.Meta.fields, "token"]

    def get_token(self, token: ApiToken) -> str:
        return self.context["raw"]


class TokenCreateSerializer(StrictSerializer):
    role = serializers.ChoiceField(choices=Role.choices, help_text=ROLE_HELP)
    name = StrictCharField(max_length=100, required=False, default="", allow_blank=True)
    service_account = StrictCharField(
        max_length=100,
        required=False,
        help_text="Issue a service-account token (no person) with this name. Without it, the "
        "token is the caller's own: a service-account caller must name one.",
    )
