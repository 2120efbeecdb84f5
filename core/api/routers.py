"""The router every app's API registers its viewsets on."""

from __future__ import annotations

from rest_framework.routers import SimpleRouter


class OptionalSlashRouter(SimpleRouter):
    """API.md paths have no trailing slash; accept both rather than redirect a POST."""

    def __init__(self) -> None:
        super().__init__()
        self.trailing_slash = "/?"
