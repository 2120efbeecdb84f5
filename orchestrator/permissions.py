"""Role checks: reading needs viewer, changing needs editor, destroying for good needs admin."""

from __future__ import annotations

from rest_framework.permissions import SAFE_METHODS, BasePermission

from orchestrator.choices import Role
from orchestrator.tenancy import Tenant


def required_role(request, view) -> str:
    explicit = getattr(view, "required_role", None)
    if callable(explicit):
        return explicit(request)
    if explicit:
        return explicit
    return Role.VIEWER if request.method in SAFE_METHODS else Role.EDITOR


class HasTenantRole(BasePermission):
    def has_permission(self, request, view) -> bool:
        tenant = request.auth
        if not request.user or not request.user.is_authenticated:
            return False
        if not isinstance(tenant, Tenant):
            self.message = "You are not a member of any organization."
            return False
        role = required_role(request, view)
        if not tenant.allows(role):
            self.message = f"This needs the {role} role; your role here is {tenant.role}."
            return False
        return True
