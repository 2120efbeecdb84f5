"""Role checks: reading needs viewer, changing needs editor, destroying for good needs admin."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.http import Http404
from rest_framework.exceptions import NotFound
from rest_framework.permissions import SAFE_METHODS, BasePermission

from core import domain_errors
from core.choices import Role
from core.tenancy import Tenant

if TYPE_CHECKING:  # rest_framework.views loads the permission classes: no import of it at run time
    from rest_framework.request import Request
    from rest_framework.views import APIView


def required_role(request: Request, view: APIView) -> str:
    explicit = getattr(view, "required_role", None)
    if callable(explicit):
        asked: str = explicit(request)
        return asked
    if explicit:
        role: str = explicit
        return role
    return Role.VIEWER if request.method in SAFE_METHODS else Role.EDITOR


class HasTenantRole(BasePermission):
    def has_permission(self, request: Request, view: APIView) -> bool:
        tenant = request.auth
        if not request.user or not request.user.is_authenticated:
            return False
        if not isinstance(tenant, Tenant):
            self.message = "You are not a member of any organization."
            return False
        if getattr(view, (request.method or "").lower(), None) is None:
            return True  # a method the view does not take: dispatch answers 405, for any role
        role = required_role(request, view)
        if not tenant.allows(role):
            _not_found_first(view)
            self.message = f"This needs the {role} role; your role here is {tenant.role}."
            return False
        return True


def _not_found_first(view: APIView) -> None:
    """A foreign or unknown id answers 404 before any role check: API.md's "never 403" for
    another organization's objects, whatever the caller's role."""
    finder = getattr(view, "get_object", None)
    if finder is None or not getattr(view, "kwargs", None):
        return
    try:
        finder()
    except (Http404, NotFound, domain_errors.NotFound):
        raise NotFound("No such object in this organization.") from None
    except Exception:  # views whose lookup is not get_object keep the 403
        return
