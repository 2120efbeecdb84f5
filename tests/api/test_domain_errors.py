"""Services raise domain errors; the API's handler answers each with API.md's status and body."""

from __future__ import annotations

import pytest

from core import domain_errors
from core.errors import HTTP_STATUS, exception_handler


def _domain_error_classes() -> list[type[domain_errors.DomainError]]:
    found: list[type[domain_errors.DomainError]] = []
    pending = [domain_errors.DomainError]
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return found


@pytest.mark.parametrize("cls", _domain_error_classes(), ids=lambda cls: cls.__name__)
def test_every_domain_error_is_answered_with_its_code_and_a_status(cls) -> None:
    response = exception_handler(cls("Something is off.", fields={"name": ["too long"]}), {})

    assert response.status_code == HTTP_STATUS[cls.code]
    assert response.data == {
        "error": cls.code,
        "detail": "Something is off.",
        "fields": {"name": ["too long"]},
    }


def test_the_statuses_are_those_of_the_api_contract() -> None:
    assert HTTP_STATUS == {
        "validation_error": 400,
        "trigger_mismatch": 400,
        "forbidden": 403,
        "not_found": 404,
        "orchestration_not_active": 409,
        "conflict": 409,
        "version_conflict": 412,
        "payload_too_large": 413,
        "precondition_required": 428,
    }


def test_a_domain_error_without_fields_has_no_fields_key() -> None:
    response = exception_handler(domain_errors.Conflict(), {})

    assert response.data == {
        "error": "conflict",
        "detail": "The request conflicts with the current state.",
    }
