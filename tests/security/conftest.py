"""The security tests reuse the run fixtures: `make_flow` creates an active orchestration."""

from __future__ import annotations

from tests.runs.conftest import make_flow  # noqa: F401
