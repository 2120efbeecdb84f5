"""Credentials: the one place a secret value is checked against its kind and encrypted.

The API and the admin both call it, so a value either way is held to the same rules and is
never stored in the clear.
"""

from __future__ import annotations

from core import crypto
from core.domain_errors import InvalidRequest
from orchestrator.choices import CredentialKind
from orchestrator.models import Credential, Organization

# The kinds whose value has a shape: what an http step splits it into.
SHAPES: dict[str, str] = {
    CredentialKind.BASIC: "basic credentials are user:password",
    CredentialKind.HEADER: "header credentials are Name: value",
}


def check_value(kind: str, value: str) -> None:
    """A value the step can use for its kind (InvalidRequest naming `value` otherwise)."""
    if kind in SHAPES and ":" not in value:
        raise InvalidRequest(SHAPES[kind].capitalize() + ".", fields={"value": [SHAPES[kind]]})


def set_value(credential: Credential, value: str) -> None:
    """Check `value` and keep it encrypted on the row; the caller saves the row."""
    check_value(credential.kind, value)
    credential.encrypted_value = crypto.encrypt(value)


def create_credential(
    organization: Organization, *, name: str, kind: str, value: str
) -> Credential:
    credential = Credential(organization=organization, name=name, kind=kind)
    set_value(credential, value)
    credential.save()
    return credential
