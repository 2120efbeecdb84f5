"""The mypy baseline only shrinks: a new error fails `make lint`, a fixed one must leave the file,
and `--shrink` removes entries without ever adding one."""

from __future__ import annotations

import importlib.util
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("mypy_baseline", ROOT / "tools/mypy_baseline.py")
assert _spec is not None and _spec.loader is not None
baseline_tool = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(baseline_tool)

pytestmark = pytest.mark.pure

OLD = "runs/admin.py: Incompatible types in assignment  [assignment]"
NEW = "core/pages.py: HttpRequest has no attribute _membership  [attr-defined]"


@pytest.fixture
def project(tmp_path, monkeypatch):
    """The tool pointed at a baseline file of its own, with mypy's report set by the test."""
    baseline = tmp_path / "mypy-baseline.txt"
    baseline.write_text(f"{OLD}\n{OLD}\n")
    monkeypatch.setattr(baseline_tool, "BASELINE", baseline)
    report: Counter[str] = Counter()

    def run_mypy():
        return report, {key: [f"{key.split(':')[0]}:1: error: ..."] for key in report}

    monkeypatch.setattr(baseline_tool, "run_mypy", run_mypy)
    return baseline, report


def test_the_errors_of_the_baseline_pass(project):
    _, report = project
    report[OLD] = 2
    assert baseline_tool.main([]) == 0


def test_a_new_error_fails_even_when_the_shrink_is_asked(project, capsys):
    baseline, report = project
    report.update({OLD: 2, NEW: 1})
    assert baseline_tool.main([]) == 1
    assert baseline_tool.main(["--shrink"]) == 1
    assert NEW in capsys.readouterr().out
    assert NEW not in baseline.read_text()


def test_one_more_of_a_known_error_fails(project):
    _, report = project
    report[OLD] = 3
    assert baseline_tool.main([]) == 1


def test_a_fixed_error_fails_until_shrink_removes_it(project):
    baseline, report = project
    report[OLD] = 1
    assert baseline_tool.main([]) == 1
    assert baseline_tool.main(["--shrink"]) == 0
    assert baseline.read_text() == f"{OLD}\n"
    assert baseline_tool.main([]) == 0


def test_entries_leave_line_numbers_out():
    assert baseline_tool.entry("a.py", 'Name "x" already defined on line 12') == (
        'a.py: Name "x" already defined on line N'
    )
