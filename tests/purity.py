"""Which modules a package pulls in when every one of its submodules is imported.

Importing only the package's `__init__` would miss a submodule that nothing imports at start-up
(a node executor, a tool, a compiler step), so the walk imports them all, in a fresh interpreter
that has loaded nothing of Django yet.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Frameworks and this project's app code: what the pure packages must never import.
FRAMEWORKS = ("django", "rest_framework", "celery", "channels", "kombu")
APPS = ("config", "core", "orchestrator", "runs", "approvals", "gallery")
# The pure packages may use each other (the engine reads definitions), and nothing else of the apps.
PURE = ("runs.engine", "orchestrator.definition")

WALK = """
import importlib, json, pkgutil, sys
package = importlib.import_module(sys.argv[1])
walked = [package.__name__]
for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
    importlib.import_module(info.name)
    walked.append(info.name)
print(json.dumps({"walked": walked, "loaded": sorted(sys.modules)}))
"""


def imports_of(package: str) -> tuple[list[str], list[str]]:
    """The submodules walked and every module loaded once they all were imported."""
    result = subprocess.run(
        [sys.executable, "-c", WALK, package],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout.strip().splitlines()[-1])
    return found["walked"], found["loaded"]


def forbidden_imports(package: str) -> list[str]:
    """Modules of a framework, or of the apps outside the pure packages, that it loaded."""
    _, loaded = imports_of(package)
    return [name for name in loaded if _forbidden(name)]


def _forbidden(name: str) -> bool:
    top = name.split(".")[0]
    if top in FRAMEWORKS:
        return True
    if top not in APPS or name in {pure.split(".")[0] for pure in PURE}:
        return False  # the standard library, a library, or an app's empty __init__
    return not any(name == pure or name.startswith(pure + ".") for pure in PURE)
