"""mypy over the project, held to a baseline that can only shrink (`make lint` runs it).

The pure packages and the services are checked strictly (pyproject's `[tool.mypy]`) and have no
entry here. The rest of the code is checked with mypy's default rules, and the errors it had when
mypy came in are listed in `mypy-baseline.txt`, one a line as `path: message [code]`, without the
line number so that editing a file does not move its entries. Then:

- an error that is not in the baseline fails the check (fix it; the baseline never takes it);
- an entry whose error is gone fails the check too, until `--shrink` removes it, so the file only
  ever gets shorter. `--shrink` only removes: nothing writes a new entry into it.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASELINE = ROOT / "mypy-baseline.txt"
ERROR = re.compile(r"^(?P<path>[^:\s]+\.py):\d+(?::\d+)?: error: (?P<message>.*)$")
LINE_NUMBER = re.compile(r"\bline \d+\b")


def entry(path: str, message: str) -> str:
    """An error as the baseline lists it: a line number inside the message is left out too."""
    return f"{path}: {LINE_NUMBER.sub('line N', message)}"


def run_mypy() -> tuple[Counter[str], dict[str, list[str]]]:
    """The errors mypy reports now, counted by entry, and the full lines of each entry."""
    done = subprocess.run(
        [sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    if done.returncode not in (0, 1):  # 2: mypy itself failed (a bad config, a crash)
        sys.stdout.write(done.stdout + done.stderr)
        raise SystemExit(done.returncode)
    found: Counter[str] = Counter()
    lines: dict[str, list[str]] = {}
    for line in done.stdout.splitlines():
        match = ERROR.match(line)
        if match:
            key = entry(match["path"], match["message"])
            found[key] += 1
            lines.setdefault(key, []).append(line)
    return found, lines


def read_baseline() -> Counter[str]:
    if not BASELINE.exists():
        return Counter()
    return Counter(line for line in BASELINE.read_text().splitlines() if line.strip())


def main(argv: list[str]) -> int:
    shrink = "--shrink" in argv
    found, lines = run_mypy()
    baseline = read_baseline()
    new = found - baseline
    gone = baseline - found
    if new:
        print(f"mypy: {sum(new.values())} error(s) not in {BASELINE.name}; fix them:")
        for key in sorted(new):
            more = f" ({new[key]} more than the baseline's)" if baseline[key] else ""
            print(f"  {key}{more}")
            for line in lines[key]:
                print(f"    {line}")
    if gone and shrink:
        kept = baseline - gone
        BASELINE.write_text("".join(f"{key}\n" for key in sorted(kept.elements())))
        print(f"mypy: {sum(gone.values())} fixed error(s) removed from {BASELINE.name}")
    elif gone:
        print(
            f"mypy: {sum(gone.values())} error(s) in {BASELINE.name} are fixed; remove them with "
            f"`python tools/mypy_baseline.py --shrink`:"
        )
        for key in sorted(gone):
            print(f"  {key}")
    if new or (gone and not shrink):
        return 1
    print(f"mypy: no new errors ({sum(baseline.values()) - sum(gone.values())} in the baseline)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
