"""The benchmark harness: side-by-side runs, statistics, results files.

Every claim about Dockyard's speed is a ratio measured against a peer on
the same machine in the same run.  A benchmark gives the harness one
callable per engine; the harness warms each up, then runs them alternately
(A B A B ...) so that drift in the machine's state hits both equally, and
reports median, min and max per engine and the ratio Dockyard/peer.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

RESULTS_DIR = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Summary:
    median: float
    min: float
    max: float
    n: int

    @classmethod
    def of(cls, values: list[float]) -> "Summary":
        return cls(statistics.median(values), min(values), max(values), len(values))


@dataclass
class Row:
    """One comparison: Dockyard against one peer on one workload."""

    bench: str
    unit: str
    dockyard_engine: str
    peer_engine: str
    dockyard: Summary | None
    peer: Summary | None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if not self.dockyard or not self.peer or self.peer.median == 0:
            return None
        return self.dockyard.median / self.peer.median


def alternate(cases: dict[str, Callable[[], float | None]], reps: int, warmup: int = 1,
              ) -> dict[str, list[float]]:
    """Run each case ``warmup`` times, then ``reps`` rounds of all cases in
    turn (the order rotating each round).  A case returns the measured value
    or None to have its wall time used."""
    names = list(cases)
    for _ in range(warmup):
        for name in names:
            cases[name]()
    samples: dict[str, list[float]] = {n: [] for n in names}
    for i in range(reps):
        order = names[i % len(names):] + names[:i % len(names)]
        for name in order:
            t0 = time.perf_counter()
            value = cases[name]()
            elapsed = time.perf_counter() - t0
            samples[name].append(elapsed if value is None else value)
    return samples


def pss_kib(pid: int) -> int:
    """Proportional set size of one process in KiB (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return 0
    return 0


def rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except FileNotFoundError:
        return 0
    return 0


def pids_by_name(*names: str) -> list[int]:
    """Pids whose command (comm or argv[0] basename) is one of ``names``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            comm = Path(f"/proc/{entry}/comm").read_text().strip()
            argv0 = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
        except OSError:
            continue
        if comm in names or os.path.basename(argv0) in names:
            found.append(int(entry))
    return found


def _version(cmd: list[str]) -> str:
    if not shutil.which(cmd[0]):
        return "not installed"
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except (OSError, subprocess.TimeoutExpired, IndexError):
        return "unknown"


def machine() -> dict:
    """What the numbers were measured on."""
    mem_kib = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    os_name = ""
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                os_name = line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "os": os_name,
        "python": platform.python_version(),
        "versions": {
            "dockerd": _version(["dockerd", "--version"]),
            "docker-cli": _version(["docker", "--version"]),
            "containerd": _version(["containerd", "--version"]),
            "runc": _version(["runc", "--version"]),
            "crun": _version(["crun", "--version"]),
            "podman": _version(["podman", "--version"]),
        },
    }


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    if unit == "s":
        return f"{value * 1000:.1f} ms" if value < 10 else f"{value:.1f} s"
    if unit == "KiB":
        return f"{value / 1024:.1f} MiB" if value >= 1024 else f"{value:.0f} KiB"
    return f"{value:.3g} {unit}"


@dataclass
class Report:
    title: str
    rows: list[Row] = field(default_factory=list)
    unavailable: dict[str, str] = field(default_factory=dict)

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        print(self.format_row(row), flush=True)
        return row

    @staticmethod
    def format_row(row: Row) -> str:
        d, p = row.dockyard, row.peer
        ratio = f"{row.ratio:.2f}x" if row.ratio is not None else "n/a"
        return (f"{row.bench:<44} {row.dockyard_engine:>10} {_fmt(d.median if d else None, row.unit):>11}"
                f"  {row.peer_engine:>10} {_fmt(p.median if p else None, row.unit):>11}  {ratio:>7}"
                + (f"  ({row.note})" if row.note else ""))

    def markdown(self, meta: dict) -> str:
        lines = [f"## {self.title}", "",
                 f"{meta['cores']} cores, {meta['memory_gib']} GiB, {meta['os']}, kernel {meta['kernel']}, "
                 f"Python {meta['python']}.", "",
                 "| benchmark | Dockyard | median (min–max) | peer | median (min–max) | ratio |",
                 "|---|---|---|---|---|---|"]
        for r in self.rows:
            def cell(s: Summary | None) -> str:
                return "n/a" if s is None else (f"{_fmt(s.median, r.unit)} "
                                                f"({_fmt(s.min, r.unit)}–{_fmt(s.max, r.unit)})")
            ratio = f"{r.ratio:.2f}x" if r.ratio is not None else "n/a"
            name = r.bench + (f" — {r.note}" if r.note else "")
            lines.append(f"| {name} | {r.dockyard_engine} | {cell(r.dockyard)} | {r.peer_engine} | "
                         f"{cell(r.peer)} | {ratio} |")
        if self.unavailable:
            lines += ["", "Peers that could not run:"]
            lines += [f"- {k}: {v}" for k, v in self.unavailable.items()]
        lines += ["", "Versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()), ""]
        return "\n".join(lines)

    def write(self, directory: Path = RESULTS_DIR, stem: str | None = None) -> tuple[Path, Path]:
        directory.mkdir(parents=True, exist_ok=True)
        meta = machine()
        stem = stem or time.strftime("%Y%m%d-%H%M%S")
        doc = {
            "title": self.title,
            "machine": meta,
            "unavailable": self.unavailable,
            "rows": [dict(asdict(r), ratio=r.ratio) for r in self.rows],
        }
        json_path = directory / f"{stem}.json"
        md_path = directory / f"{stem}.md"
        for path, text in ((json_path, json.dumps(doc, indent=2)), (md_path, self.markdown(meta))):
            tmp = path.with_suffix(path.suffix + ".tmp")
            tmp.write_text(text)
            os.replace(tmp, path)
        return json_path, md_path
