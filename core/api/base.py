"""Base views: every queryset is scoped to the caller's organization; foreign ids answer 404."""

from __future__ import annotations

import uuid

from rest_framework import viewsets
from rest_framework.exceptions import NotFound


class TenantScopedMixin:
    """`queryset` is narrowed to `request.auth.organization` through `tenant_field`."""

    tenant_field = "organization"
    noun = "object"

    @property
    def organization(self):
        return self.request.auth.organization

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return super().get_queryset().none()
        return super().get_queryset().filter(**{self.tenant_field: self.organization})

    def get_object(self):
        key = self.kwargs[self.lookup_url_kwarg or self.lookup_field]
        try:
            uuid.UUID(str(key))
        except ValueError:
            raise NotFound(f"No {self.noun} '{key}' in this organization.") from None
        obj = self.get_queryset().filter(pk=key).first()
        if obj is None:
            raise NotFound(f"No {self.noun} '{key}' in this organization.")
        self.check_object_permissions(self.request, obj)
        return obj


class TenantModelViewSet(TenantScopedMixin, viewsets.ModelViewSet):
    def perform_create(self, serializer):
        serializer.save(organization=self.organization)
