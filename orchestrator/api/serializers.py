"""Request validation and response shapes for orchestrations, versions, triggers, agents,
groups and credentials. Serializers validate; services change state."""

from __future__ import annotations

from cron_descriptor import FormatException, get_description
from django.conf import settings
from django.contrib.auth import get_user_model
from rest_framework import serializers

from core.domain_errors import InvalidRequest
from orchestrator.api.fields import (
    BlankAsNullField,
    CredentialField,
    CronField,
    JSONObjectField,
    JSONSchemaField,
    MoneyField,
    StrictBooleanField,
    StrictCharField,
    StrictFloatField,
    StrictIntegerField,
    StrictModelSerializer,
    StrictSerializer,
    StringMapField,
    TenantSerializerMixin,
    TimezoneField,
)
from orchestrator.choices import (
    TRIGGER_ROW_CHOICES,
    BudgetAction,
    OrchestrationStatus,
    ScheduleCatchup,
    ScheduleOverlap,
    TriggerKind,
)
from orchestrator.definition.checks import IDENTIFIER
from orchestrator.definition.nodes import MAX_TOKENS_CEILING, PRICE_PER_1K_CEILING, model_problem
from orchestrator.models import (
    Agent,
    Credential,
    Group,
    Orchestration,
    OrchestrationVersion,
    Trigger,
)
from orchestrator.services import credentials, mcp_refs
from orchestrator.services import triggers as trigger_service

# --- Triggers ------------------------------------------------------------------------------


ENTRY_HELP = (
    "Optional entry node: a run this trigger starts begins at this step (its incoming edges "
    "ignored), what it feeds runs as usual, and every other step is `skipped`. It must name a "
    "step of the current definition (400 `validation_error`). If a later version drops the "
    "step, firing is refused with 409 `conflict` (a schedule's slot is recorded as an error "
    "and the trigger's `state` becomes `error`) until the trigger or the definition is fixed."
)


class TriggerSerializer(serializers.ModelSerializer):
    state_detail = BlankAsNullField(
        read_only=True,
        allow_null=True,
        help_text=(
            "Why `state` is `error`: what firing the last slot was refused with (an input that "
            "no longer fits the declared inputs, an entry step the definition dropped). Null "
            "otherwise; saving the trigger or the orchestration clears it."
        ),
    )
    webhook_url = serializers.SerializerMethodField()
    signing_secret = serializers.SerializerMethodField()
    cron_description = serializers.SerializerMethodField()

    class Meta:
        model = Trigger
        fields = [
            "id",
            "kind",
            "node_id",
            "is_active",
            "state",
            "state_detail",
            "input_schema",
            "input",
            "cron_expression",
            "cron_description",
            "timezone",
            "overlap",
            "catchup",
            "webhook_url",
            "signing_secret",
            "last_run_at",
            "next_run_at",
            "trigger_count",
            "created_at",
            "updated_at",
        ]
        extra_kwargs = {"node_id": {"help_text": ENTRY_HELP + " Empty: no entry node."}}

    def get_webhook_url(self, trigger: Trigger) -> str | None:
        if trigger.kind != TriggerKind.WEBHOOK:
            return None
        return f"/api/v1/webhooks/{trigger.orchestration_id}/{trigger.webhook_token}"

    def get_cron_description(self, trigger: Trigger) -> str | None:
        """The schedule in words, as the editor's trigger panel shows it."""
        if not trigger.cron_expression:
            return None
        try:
            return get_description(trigger.cron_expression)
        except (FormatException, ValueError, IndexError):
            return None

    def get_signing_secret(self, trigger: Trigger) -> str | None:
        """Only set right after creation or rotation; never readable afterwards."""
        return getattr(trigger, "signing_secret", None)


class TriggerWriteSerializer(StrictSerializer):
    kind = serializers.ChoiceField(choices=TRIGGER_ROW_CHOICES)
    node_id = serializers.RegexField(
        IDENTIFIER,
        required=False,
        allow_blank=True,
        allow_null=True,
        help_text=ENTRY_HELP + " Empty or null: start at the steps with no incoming edge.",
    )
    is_active = StrictBooleanField(required=False)
    input_schema = JSONSchemaField(required=False, allow_null=True)
    input = JSONObjectField(required=False)
    cron_expression = CronField(required=False, allow_blank=True)
    timezone = TimezoneField(required=False)
    overlap = serializers.ChoiceField(choices=ScheduleOverlap.choices, required=False)
    catchup = serializers.ChoiceField(choices=ScheduleCatchup.choices, required=False)

    def validate(self, attrs):
        if "node_id" in attrs and attrs["node_id"] is None:
            attrs["node_id"] = ""
        problem = trigger_service.kind_problem(attrs["kind"], attrs.get("cron_expression", ""))
        if problem:
            raise serializers.ValidationError({"cron_expression": [problem]})
        return attrs


# --- Orchestrations ------------------------------------------------------------------------


class SettingsSerializer(StrictSerializer):
    max_concurrent_runs = StrictIntegerField(
        min_value=1, max_value=10_000, required=False, allow_null=True
    )
    run_timeout_s = StrictIntegerField(
        min_value=1, max_value=30 * 86400, required=False, allow_null=True
    )
    max_subflow_depth = StrictIntegerField(min_value=1, max_value=20, required=False)
    # Null: the instance's MAX_RUNS_PER_ROOT / MAX_STEPS_PER_ROOT.
    max_runs_per_root = StrictIntegerField(
        min_value=1, max_value=100_000, required=False, allow_null=True
    )
    max_steps_per_root = StrictIntegerField(
        min_value=1, max_value=1_000_000, required=False, allow_null=True
    )
    budget_action = serializers.ChoiceField(choices=BudgetAction.choices, required=False)


class OrchestrationSerializer(serializers.ModelSerializer):
    tags = serializers.SerializerMethodField()
    owner = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    steps = serializers.IntegerField(source="step_count", read_only=True)
    members = serializers.JSONField(source="member_ids", read_only=True)
    credit_limit = MoneyField(allow_null=True, read_only=True)

    class Meta:
        model = Orchestration
        fields = [
            "id",
            "slug",
            "name",
            "description",
            "icon",
            "icon_color",
            "zone",
            "tags",
            "group",
            "owner",
            "metadata",
            "status",
            "is_public",
            "public_definition",
            "credit_limit",
            "settings",
            "version",
            "etag",
            "steps",
            "members",
            "created_at",
            "updated_at",
        ]

    def to_representation(self, orchestration: Orchestration) -> dict:
        """The declared fields, written out. DRF's field-by-field walk cost more than the queries
        of a list page; tests/api/test_list_performance.py checks that both give the same."""
        credit_limit = orchestration.credit_limit
        return {
            "id": str(orchestration.id),
            "slug": orchestration.slug,
            "name": orchestration.name,
            "description": orchestration.description,
            "icon": orchestration.icon,
            "icon_color": orchestration.icon_color,
            "zone": orchestration.zone,
            "tags": self.get_tags(orchestration),
            "group": orchestration.group_id,
            "owner": _owner_username(orchestration),
            "metadata": orchestration.metadata,
            "status": orchestration.status,
            "is_public": orchestration.is_public,
            "public_definition": orchestration.public_definition,
            "credit_limit": None if credit_limit is None else float(credit_limit),
            "settings": orchestration.settings,
            "version": orchestration.version,
            "etag": orchestration.etag,
            "steps": orchestration.step_count,
            "members": orchestration.member_ids,
            "created_at": _time(orchestration.created_at),
            "updated_at": _time(orchestration.updated_at),
        }

    def get_tags(self, orchestration: Orchestration) -> list[str]:
        names = getattr(orchestration, "tag_names", None)  # attached by the list
        if names is not None:
            return names
        rows = getattr(orchestration, "tag_list", None)  # prefetched by the views
        if rows is None:
            rows = orchestration.tag_rows.all()
        return [tag.name for tag in rows]


def _owner_username(orchestration: Orchestration) -> str | None:
    """The list annotates `owner_username` rather than loading each owner's user row."""
    if hasattr(orchestration, "owner_username"):
        return orchestration.owner_username
    return orchestration.owner.username if orchestration.owner_id else None


def _time(value) -> str | None:
    """As DRF writes a datetime with DATETIME_FORMAT; stored times are UTC."""
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if value else None


class OrchestrationDetailSerializer(OrchestrationSerializer):
    triggers = TriggerSerializer(many=True, read_only=True)

    class Meta(OrchestrationSerializer.Meta):
        fields = [*OrchestrationSerializer.Meta.fields, "definition", "triggers", "markdown"]

    def to_representation(self, orchestration: Orchestration) -> dict:
        # One orchestration at a time: DRF's own walk over every declared field.
        return serializers.ModelSerializer.to_representation(self, orchestration)


class OrchestrationWriteSerializer(TenantSerializerMixin, StrictSerializer):
    """Everything a client may send to create or change an orchestration."""

    ignored_read_only = (
        "id",
        "version",
        "etag",
        "steps",
        "members",
        "created_at",
        "updated_at",
    )

    name = StrictCharField(max_length=200, required=False)
    slug = serializers.SlugField(max_length=120, required=False)
    description = StrictCharField(allow_blank=True, max_length=10_000, required=False)
    icon = StrictCharField(allow_blank=True, max_length=64, required=False)
    icon_color = StrictCharField(allow_blank=True, max_length=32, required=False)
    zone = StrictCharField(allow_blank=True, max_length=100, required=False)
    tags = serializers.ListField(
        child=StrictCharField(max_length=64), max_length=30, required=False
    )
    group = serializers.UUIDField(allow_null=True, required=False)
    owner = StrictCharField(allow_null=True, required=False)
    metadata = StringMapField(required=False)
    status = serializers.ChoiceField(choices=OrchestrationStatus.choices, required=False)
    is_public = StrictBooleanField(required=False)
    public_definition = StrictBooleanField(required=False)
    credit_limit = MoneyField(allow_null=True, required=False)
    settings = SettingsSerializer(required=False)
    definition = serializers.JSONField(required=False)
    markdown = StrictCharField(allow_blank=True, trim_whitespace=False, required=False)
    nodes = serializers.JSONField(required=False)
    edges = serializers.JSONField(required=False)
    inputs = serializers.JSONField(required=False)
    agents = serializers.JSONField(required=False)
    output = serializers.JSONField(required=False)
    output_type = serializers.JSONField(required=False)
    trigger = serializers.DictField(required=False)
    triggers = TriggerWriteSerializer(many=True, required=False)

    def validate_tags(self, tags: list[str]) -> list[str]:
        return list(dict.fromkeys(tag.strip() for tag in tags if tag.strip()))

    def validate_group(self, value):
        if value is None:
            return None
        group = Group.objects.filter(organization=self.tenant.organization, pk=value).first()
        if group is None:
            raise serializers.ValidationError("no such group in this organization")
        return group

    def validate_owner(self, value):
        if value is None:
            return None
        user = (
            get_user_model()
            .objects.filter(username=value, memberships__organization=self.tenant.organization)
            .first()
        )
        if user is None:
            raise serializers.ValidationError("no member of this organization has that username")
        return user

    def validate_trigger(self, value):
        serializer = TriggerWriteSerializer(data=value)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data

    def validate(self, attrs):
        if "trigger" in attrs:
            attrs["triggers"] = [attrs.pop("trigger"), *attrs.get("triggers", [])]
        if "edges" in attrs and "nodes" not in attrs:
            raise serializers.ValidationError({"nodes": ["edges were given without nodes"]})
        return attrs


class OrchestrationUpdateSerializer(OrchestrationWriteSerializer):
    """PUT and PATCH. Triggers have their own routes (secrets shown once, beat's tasks kept in
    step), so `trigger` and `triggers` are refused by name rather than dropped in silence."""

    trigger = None
    triggers = None

    def to_internal_value(self, data):
        if isinstance(data, dict):
            given = [key for key in ("trigger", "triggers") if key in data]
            if given:
                where = f"/api/v1/orchestrations/{self.context['orchestration_id']}/triggers"
                message = (
                    f"PUT and PATCH do not change triggers: use {where} (POST to add one, "
                    "PATCH or DELETE /api/v1/triggers/{id} to change or remove one)"
                )
                raise serializers.ValidationError({key: [message] for key in given})
        return super().to_internal_value(data)


class VersionSerializer(serializers.ModelSerializer):
    created_by = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )

    class Meta:
        model = OrchestrationVersion
        fields = ["version", "etag", "created_at", "created_by", "summary"]


class VersionDetailSerializer(VersionSerializer):
    class Meta(VersionSerializer.Meta):
        fields = [
            *VersionSerializer.Meta.fields,
            "name",
            "description",
            "settings",
            "metadata",
            "definition",
            "markdown",
        ]


class CompileSerializer(StrictSerializer):
    markdown = StrictCharField(allow_blank=True, trim_whitespace=False)


class RenderMarkdownSerializer(StrictSerializer):
    name = StrictCharField(allow_blank=True, required=False, default="")
    description = StrictCharField(allow_blank=True, required=False, default="")
    definition = serializers.JSONField()


# --- Agents, groups, credentials ------------------------------------------------------------


class NameUniqueInTenantMixin(TenantSerializerMixin):
    def validate_name(self, name: str) -> str:
        model = self.Meta.model
        clash = model.objects.filter(organization=self.tenant.organization, name=name)
        if self.instance is not None:
            clash = clash.exclude(pk=self.instance.pk)
        if clash.exists():
            raise serializers.ValidationError(
                f"'{name}' is taken: another {model._meta.verbose_name} of this organization "
                "has that name"
            )
        return name


class GroupSerializer(NameUniqueInTenantMixin, StrictModelSerializer):
    class Meta:
        model = Group
        fields = ["id", "name", "description", "created_at", "updated_at"]


class PriceSerializer(StrictSerializer):
    input_per_1k = StrictFloatField(min_value=0, max_value=PRICE_PER_1K_CEILING, default=0)
    output_per_1k = StrictFloatField(min_value=0, max_value=PRICE_PER_1K_CEILING, default=0)


class AgentSerializer(NameUniqueInTenantMixin, StrictModelSerializer):
    tools = serializers.JSONField(
        required=False,
        help_text='Items: "http_get", {"mcp": server, "tools": [names]}, {"orchestration": '
        'slug, "name", "description"}; any object item may add "approval".',
    )
    temperature = StrictFloatField(min_value=0, max_value=2, allow_null=True, required=False)
    max_turns = StrictIntegerField(min_value=1, max_value=50, allow_null=True, required=False)
    max_tokens = StrictIntegerField(
        min_value=1,
        max_value=MAX_TOKENS_CEILING,
        allow_null=True,
        required=False,
        help_text="The most tokens one model call may answer with; null: the provider's default.",
    )
    credential = CredentialField(
        help_text="An org credential (id or name) holding the provider's API key; null: the "
        "provider's key setting."
    )
    price = PriceSerializer(
        required=False,
        allow_null=True,
        help_text="USD per 1,000 tokens; null: the price table's figure for the model.",
    )
    script = serializers.ListField(required=False)
    output_schema = JSONSchemaField(
        required=False,
        allow_null=True,
        help_text="JSON Schema the final answer must validate against (a step's own overrides "
        "it); null: a text answer.",
    )

    class Meta:
        model = Agent
        fields = [
            "id",
            "name",
            "description",
            "model",
            "system_prompt",
            "tools",
            "temperature",
            "max_turns",
            "max_tokens",
            "credential",
            "base_url",
            "price",
            "script",
            "output_schema",
            "created_at",
            "updated_at",
        ]

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({key: ["unknown field"] for key in unknown})
        return super().to_internal_value(data)

    def to_representation(self, agent: Agent) -> dict:
        data = super().to_representation(agent)
        data["price"] = (
            {"input_per_1k": 0, "output_per_1k": 0, **agent.price} if agent.price else None
        )
        return data

    def validate(self, attrs):
        attrs = super().validate(attrs)
        if "tools" in attrs:
            try:
                attrs["tools"] = mcp_refs.validated_tools(self.tenant.organization, attrs["tools"])
            except InvalidRequest as exc:
                raise serializers.ValidationError(exc.fields) from None
        return attrs

    def validate_price(self, price: dict | None) -> dict:
        return price or {}  # stored as {}: no price of its own

    def validate_model(self, model: str) -> str:
        problem = model_problem(model, settings.MODEL_ALIASES)
        if problem:
            raise serializers.ValidationError(problem)
        return model


class CredentialSerializer(NameUniqueInTenantMixin, StrictModelSerializer):
    value = StrictCharField(write_only=True, max_length=10_000, trim_whitespace=False)

    class Meta:
        model = Credential
        fields = ["id", "name", "kind", "value", "created_at", "updated_at"]

    def validate(self, attrs):
        try:
            credentials.check_value(attrs.get("kind", ""), attrs.get("value", ""))
        except InvalidRequest as exc:
            raise serializers.ValidationError(exc.fields) from None
        return attrs
