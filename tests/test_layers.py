"""The layers of shared/DESIGN.md, enforced: each package imports only the
packages below it (statically; the supervisor's by-name import of a log
driver is the documented exception that keeps this true)."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "dockyard"

# Lower number = lower layer.  Packages on one level may not import each other
# unless listed in ALLOWED.
RANK = {
    "errors": -1, "units": -1, "oci": 0,
    "linux": 1,
    "runtime": 2,
    "store": 3,
    "image": 4,
    "logs": 5, "secrets": 5, "volume": 5, "network": 5,
    "container": 6, "distribution": 6,
    "build": 7,
    "daemon": 8,
    "client": 9,
    "cli": 10,
}
# runtime (kernel layer) and linux may use the pure oci types.
ALLOWED: set[tuple[str, str]] = set()


def imported_packages(path: Path) -> list[tuple[int, str]]:
    parts = path.relative_to(SRC).parts
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(parts[:-1])[: max(0, len(parts) - node.level)]
                module = ".".join(base + ([node.module] if node.module else []))
            elif node.module and node.module.startswith("dockyard."):
                module = node.module[len("dockyard."):]
            else:
                continue
            found.append((node.lineno, module.split(".")[0]))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name.split(".")[1]) for a in node.names if a.name.startswith("dockyard.")]
    return found


def test_every_package_has_a_rank():
    packages = {p.name for p in SRC.iterdir() if p.is_dir() and not p.name.startswith("__")}
    assert packages <= set(RANK), f"add {packages - set(RANK)} to RANK (and to shared/DESIGN.md)"


def test_no_upward_imports():
    violations = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).parts
        if len(rel) < 2:
            continue
        layer = rel[0]
        for lineno, target in imported_packages(path):
            if target in RANK and target != layer and RANK[target] >= RANK[layer] \
                    and (layer, target) not in ALLOWED:
                violations.append(f"{path.relative_to(SRC.parent)}:{lineno}: {layer} imports {target}")
    assert not violations, "imports against the layering:\n" + "\n".join(violations)
