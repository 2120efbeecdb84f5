"""Names for the types that the apps' signatures share. Annotations only: nothing here runs, so
the auth models are imported for the type checker alone (importing them early would need the
app registry ready)."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeAlias
from uuid import UUID

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User

    from core.tenancy import ServiceAccount

# A primary key as a row holds it (UUID), or as a task, a URL or an event carries it (str).
Pk: TypeAlias = UUID | str
# Who asks: a signed-in user, the stand-in of a service account's token, a request's anonymous
# user, or nobody (a schedule, a webhook).
Actor: TypeAlias = "User | ServiceAccount | AnonymousUser | None"
