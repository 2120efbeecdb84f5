"""Serves the few browser files the UI takes from npm packages, under `vendor/`.

Pointing STATICFILES_DIRS at whole packages would collect hundreds of files nobody loads
(lodash alone ships 600); this finder exposes only the listed ones, at their package paths.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal, overload

from django.conf import settings
from django.contrib.staticfiles.finders import BaseFinder
from django.core.checks import CheckMessage
from django.core.checks import Warning as CheckWarning
from django.core.files.storage import FileSystemStorage, Storage

PREFIX = "vendor"
FILES = [
    "cytoscape/dist/cytoscape.min.js",
    "dagre/dist/dagre.min.js",
    "cytoscape-dagre/dist/cytoscape-dagre.js",
    "lodash/lodash.min.js",
    "cytoscape-edgehandles/cytoscape-edgehandles.js",
]


class NpmFinder(BaseFinder):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.root = Path(settings.NODE_MODULES_DIR)
        self.storage = FileSystemStorage(location=str(self.root))
        # collectstatic reads a storage's `prefix` if it has one; django-stubs does not declare it.
        self.storage.prefix = PREFIX  # type: ignore[attr-defined]

    def check(self, **kwargs: Any) -> list[CheckMessage]:
        missing = [name for name in FILES if not (self.root / name).is_file()]
        if not missing:
            return []
        return [
            CheckWarning(
                f"UI assets missing from {self.root}: {', '.join(missing)}.",
                hint="Run `npm ci` (make install does) to install the editor's packages.",
                id="orchestrator.W001",
            )
        ]

    def files(self) -> list[str]:
        """The listed files and their source maps (which the manifest storage follows)."""
        maps = [f"{name}.map" for name in FILES if (self.root / f"{name}.map").is_file()]
        return [name for name in FILES if (self.root / name).is_file()] + maps

    @overload
    def find(self, path: str, find_all: Literal[False] = False, **kwargs: Any) -> str | None: ...

    @overload
    def find(self, path: str, find_all: Literal[True], **kwargs: Any) -> list[str]: ...

    def find(self, path: str, find_all: bool = False, **kwargs: Any) -> str | list[str] | None:
        name = path.removeprefix(f"{PREFIX}/")
        if name not in self.files() or not path.startswith(f"{PREFIX}/"):
            return [] if find_all else None
        full = self.root / name
        if not full.is_file():
            return [] if find_all else None
        return [str(full)] if find_all else str(full)

    def list(self, ignore_patterns: Iterable[str] | None) -> Iterator[tuple[str, Storage]]:
        for name in self.files():
            yield name, self.storage
