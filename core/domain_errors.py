"""The errors services raise: an API.md code, a sentence for a person, fields keyed by JSON path.

Nothing of HTTP here, so beat tasks, the admin, pages and management commands catch the same
errors the API answers with; `core.errors.exception_handler` maps each code to its status.
"""

from __future__ import annotations

from typing import ClassVar


def summarize(fields: dict[str, list[str]]) -> str:
    """One sentence for `detail` out of the fields: the first problem, and how many more."""
    if not fields:
        return "The request is invalid."
    path, messages = next(iter(fields.items()))
    first = messages[0] if path == "$" else f"{path}: {messages[0]}"
    count = sum(len(m) for m in fields.values())
    return first if count == 1 else f"{first} (and {count - 1} more problems, see fields)"


class DomainError(Exception):
    """A request the domain refuses; subclasses set the code (API.md's error table)."""

    code: ClassVar[str] = "validation_error"
    default_detail: ClassVar[str] = "The request is invalid."

    def __init__(
        self, detail: str | None = None, *, fields: dict[str, list[str]] | None = None
    ) -> None:
        self.detail: str = detail or self.default_detail
        self.fields: dict[str, list[str]] | None = fields
        super().__init__(self.detail)


class InvalidRequest(DomainError):
    pass


class TriggerMismatch(DomainError):
    code = "trigger_mismatch"
    default_detail = "The run input does not match the declared inputs."


class Forbidden(DomainError):
    code = "forbidden"
    default_detail = "Your role does not allow this action."


class NotFound(DomainError):
    code = "not_found"
    default_detail = "Not found in this organization."


class Conflict(DomainError):
    code = "conflict"
    default_detail = "The request conflicts with the current state."


class OrchestrationNotActive(DomainError):
    code = "orchestration_not_active"
    default_detail = "The orchestration is not active."


class VersionConflict(DomainError):
    code = "version_conflict"
    default_detail = (
        "If-Match does not match the current ETag: someone changed it since you read it."
    )


class PreconditionRequired(DomainError):
    code = "precondition_required"
    default_detail = "Send If-Match with the ETag you last read, to avoid overwriting changes."


class PayloadTooLarge(DomainError):
    code = "payload_too_large"
    default_detail = "The request body is too large."
