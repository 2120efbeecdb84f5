"""Serializer building blocks shared by the apps' APIs."""

from __future__ import annotations

from decimal import Decimal

from django.db import models
from rest_framework import serializers

from core.lookups import by_id_or_name
from core.tenancy import Tenant
from orchestrator.definition.jsonschemas import schema_problem
from orchestrator.models import Credential
from orchestrator.services.schedules import cron_problem, normalize_cron, zone_problem


class StrictSerializer(serializers.Serializer):
    """Rejects keys it does not know, so a typo is an error rather than a silently lost field.

    Read-only fields that a client copied from a GET are accepted and ignored, so a client can
    PUT back what it read.
    """

    ignored_read_only: tuple[str, ...] = ()

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            raise serializers.ValidationError(
                {"non_field_errors": [f"Expected a JSON object, got {type(data).__name__}."]}
            )
        known = set(self.fields) | set(self.ignored_read_only)
        unknown = sorted(key for key in data if key not in known)
        if unknown:
            raise serializers.ValidationError({key: ["unknown field"] for key in unknown})
        return super().to_internal_value(data)


class TenantSerializerMixin:
    @property
    def tenant(self) -> Tenant:
        return self.context["request"].auth


class StrictCharField(serializers.CharField):
    """Text, and only text: DRF's CharField turns `5` into "5" and `1.5` into "1.5", so a client
    that sent a number where text belongs would never hear of its mistake."""

    default_error_messages = {"invalid": "Not a valid string: send text, in quotes."}

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class BlankAsNullField(serializers.CharField):
    """A string column where empty means "none": null in the API, as clients expect."""

    # CharField's stubs promise a str; null is this field's point.
    def to_representation(self, value: str) -> str | None:  # type: ignore[override]
        return value or None


class CredentialField(StrictCharField):
    """An organization's credential, named by its id or its name (as a step's `credential` is):
    the row, or None for null or "". Reads back as the credential's id."""

    default_error_messages = {"missing": "no such credential in this organization"}

    def __init__(self, **kwargs) -> None:
        super().__init__(allow_null=True, allow_blank=True, required=False, **kwargs)

    def to_internal_value(self, data):
        ref = super().to_internal_value(data)
        if not ref:
            return None
        tenant: Tenant = self.context["request"].auth
        found = by_id_or_name(Credential.objects.filter(organization=tenant.organization), ref)
        if found is None:
            self.fail("missing")
        return found

    def to_representation(self, value) -> str:
        return str(value.pk)


class JSONNumberOnly:
    """A number field's mixin: a JSON number, and only that. DRF's number fields take "12" as
    12 and `true` as 1."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int | float):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictIntegerField(JSONNumberOnly, serializers.IntegerField):
    pass


class StrictFloatField(JSONNumberOnly, serializers.FloatField):
    pass


class StrictBooleanField(serializers.BooleanField):
    """`true` or `false`, and only that: DRF's BooleanField takes "yes", "off", 1 and 0."""

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class StrictModelSerializer(serializers.ModelSerializer):
    """A ModelSerializer whose text columns take only text (see StrictCharField), and whose
    number and boolean columns only JSON numbers and booleans."""

    serializer_field_mapping = {
        **serializers.ModelSerializer.serializer_field_mapping,
        models.CharField: StrictCharField,
        models.TextField: StrictCharField,
        models.IntegerField: StrictIntegerField,
        models.PositiveIntegerField: StrictIntegerField,
        models.PositiveSmallIntegerField: StrictIntegerField,
        models.SmallIntegerField: StrictIntegerField,
        models.BigIntegerField: StrictIntegerField,
        models.FloatField: StrictFloatField,
        models.BooleanField: StrictBooleanField,
    }


class StringMapField(serializers.DictField):
    """A flat object of strings (orchestration metadata)."""

    def __init__(self, **kwargs):
        super().__init__(child=StrictCharField(allow_blank=True, max_length=2000), **kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        for key in value:
            if not key or len(key) > 100:
                raise serializers.ValidationError("keys must be 1 to 100 characters long")
        return value


class JSONObjectField(serializers.JSONField):
    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if not isinstance(value, dict):
            raise serializers.ValidationError("must be a JSON object")
        return value


class JSONSchemaField(JSONObjectField):
    """A JSON Schema, refused when invalid or when a pattern in it is not one RE2 can run (see
    `orchestrator.definition.jsonschemas`); the error names the path inside the schema."""

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        problem = schema_problem(value)
        if problem is not None:
            where, message = problem
            message = f"not a valid JSON Schema: {message}"
            raise serializers.ValidationError({where: [message]} if where != "$" else message)
        return value


class CronField(serializers.CharField):
    """Five fields that celery beat and croniter read alike (see `schedules.cron_problem`)."""

    def to_internal_value(self, data):
        value = normalize_cron(str(super().to_internal_value(data)))
        problem = cron_problem(value)
        if problem:
            raise serializers.ValidationError(problem)
        return value


class TimezoneField(serializers.CharField):
    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        problem = zone_problem(value)
        if problem:
            raise serializers.ValidationError(problem)
        return value


class MoneyField(JSONNumberOnly, serializers.DecimalField):
    """USD amounts: JSON numbers in and out, never strings."""

    def __init__(self, **kwargs):
        kwargs.setdefault("max_digits", 12)
        kwargs.setdefault("decimal_places", 4)
        kwargs.setdefault("min_value", Decimal("0"))
        kwargs.setdefault("coerce_to_string", False)
        super().__init__(**kwargs)

    def to_representation(self, value):
        return None if value is None else float(value)
