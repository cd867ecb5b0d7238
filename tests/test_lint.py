"""pyflakes over the package, the tests and the benchmarks: unused imports,
undefined names and the like are bugs or rot, and cheap to keep at zero.

A line may opt out with ``# noqa: F<code>`` and a reason (pyflakes itself
does not read noqa comments, so the rule is applied here)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pyflakes_api = pytest.importorskip("pyflakes.api", reason="pyflakes is in the test extra (scripts/install --test)")
from pyflakes import reporter as pyflakes_reporter  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TREES = ("src/dockyard", "tests", "bench")
NOQA = re.compile(r"#\s*noqa(?::\s*(?P<codes>[A-Z0-9, ]+))?")
# pyflakes messages carry no codes; the few we allow to be waived by a
# noqa, by the flake8 code the comment names.
CODES = {"UndefinedName": "F821", "ImportStarUsed": "F403", "ImportStarUsage": "F405",
         "UnusedImport": "F401", "UnusedVariable": "F841", "RedefinedWhileUnused": "F811"}


class _Collect(pyflakes_reporter.Reporter):
    def __init__(self) -> None:
        self.found: list = []

    def unexpectedError(self, filename, msg) -> None:  # noqa: N802 - pyflakes' API
        self.found.append(f"{filename}: {msg}")

    def syntaxError(self, filename, msg, lineno, offset, text) -> None:  # noqa: N802
        self.found.append(f"{filename}:{lineno}: syntax error: {msg}")

    def flake(self, message) -> None:
        self.found.append(message)


def _waived(message) -> bool:
    lines = Path(message.filename).read_text().splitlines()
    match = NOQA.search(lines[message.lineno - 1]) if message.lineno <= len(lines) else None
    if not match:
        return False
    codes = match.group("codes")
    return codes is None or CODES.get(type(message).__name__, "?") in codes


@pytest.mark.parametrize("tree", TREES)
def test_pyflakes_clean(tree):
    collect = _Collect()
    files = sorted(str(p) for p in (ROOT / tree).rglob("*.py"))
    for name in files:
        pyflakes_api.checkPath(name, collect)
    problems = [str(m) for m in collect.found if isinstance(m, str) or not _waived(m)]
    assert not problems, "pyflakes:\n" + "\n".join(problems)
