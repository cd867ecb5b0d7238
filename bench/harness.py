"""The benchmark harness: side-by-side runs, statistics, results files.

Every claim about Dockyard's speed is a ratio measured against a peer on
the same machine in the same run.  A benchmark gives the harness one
callable per engine; the harness warms each up, then runs them alternately
(A B A B ..., the order rotating each round) so that drift in the
machine's state hits every engine alike, and reports median, min and max
per engine and the ratio Dockyard/peer.

This module is pure bookkeeping (no engines, no root): statistics,
alternation, rows and the results files.  ``tests/bench`` covers it.
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
from typing import Callable, Mapping

RESULTS_DIR = Path(__file__).resolve().parent / "results"
REPO = Path(__file__).resolve().parent.parent


class CaseFailed(RuntimeError):
    """One engine failed one measurement.  The harness records the message
    and keeps measuring the other engines; the message says what was
    attempted (``docker run --rm ...: exit 125: ...``)."""


@dataclass(frozen=True)
class Summary:
    median: float
    min: float
    max: float
    n: int

    @classmethod
    def of(cls, values: list[float]) -> "Summary":
        if not values:
            raise ValueError("no samples to summarise")
        return cls(statistics.median(values), min(values), max(values), len(values))

    @classmethod
    def single(cls, value: float) -> "Summary":
        """A quantity measured once (a memory total), not a distribution."""
        return cls(value, value, value, 1)


#: What a case returns: None to have its wall time used, a number, or named
#: numbers (the phases of one run, e.g. {"start": s, "remove": s}).
CaseResult = float | None | Mapping[str, float]


@dataclass
class Measured:
    """Samples per case (``name`` or ``name/phase``), and the error of each
    case that failed (it is dropped from later rounds)."""

    samples: dict[str, list[float]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    def summary(self, key: str) -> Summary | None:
        values = self.samples.get(key)
        return Summary.of(values) if values else None

    def error(self, key: str) -> str:
        return self.errors.get(key.split("/", 1)[0], "")

    def _record(self, name: str, value: CaseResult, elapsed: float) -> None:
        if isinstance(value, Mapping):
            for phase, v in value.items():
                self.samples.setdefault(f"{name}/{phase}", []).append(float(v))
        else:
            self.samples.setdefault(name, []).append(elapsed if value is None else float(value))


def alternate(cases: Mapping[str, Callable[[], CaseResult]], reps: int, warmup: int = 1,
              log: Callable[[str], None] | None = None) -> Measured:
    """Run each case ``warmup`` times (not recorded), then ``reps`` rounds of
    all cases in turn, the order rotating each round so that no engine
    always goes first.  A case that raises :class:`CaseFailed` is recorded
    as failed and left out from then on; the others carry on."""
    names = list(cases)
    measured = Measured()
    live = list(names)

    def call(name: str) -> tuple[CaseResult, float] | None:
        t0 = time.perf_counter()
        try:
            value = cases[name]()
        except CaseFailed as e:
            measured.errors[name] = str(e)
            live.remove(name)
            if log:
                log(f"  {name} failed: {e}")
            return None
        return value, time.perf_counter() - t0

    for _ in range(warmup):
        for name in list(live):
            call(name)
    for i in range(reps):
        order = names[i % len(names):] + names[:i % len(names)]
        for name in order:
            if name not in live:
                continue
            result = call(name)
            if result is not None:
                measured._record(name, *result)
    return measured


# -- /proc readings ----------------------------------------------------------

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
    except (FileNotFoundError, ProcessLookupError):
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


# -- the machine -------------------------------------------------------------

def _version(cmd: list[str]) -> str:
    if not shutil.which(cmd[0]):
        return "not installed"
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except (OSError, subprocess.TimeoutExpired, IndexError):
        return "unknown"


def git_revision() -> str:
    try:
        rev = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no", "src"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return rev + (" (src/ modified)" if dirty else "") if rev else "unknown"


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
    docker_cli = "/usr/local/bin/docker" if os.path.exists("/usr/local/bin/docker") else "docker"
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "os": os_name,
        "python": platform.python_version(),
        "loadavg": os.getloadavg()[0],
        "dockyard": git_revision(),
        "versions": {
            "dockerd": _version(["dockerd", "--version"]),
            "docker-cli": f"{_version([docker_cli, '--version'])} ({docker_cli})",
            "containerd": _version(["containerd", "--version"]),
            "runc": _version(["runc", "--version"]),
            "crun": _version(["crun", "--version"]),
            "podman": _version(["podman", "--version"]),
            "conmon": _version(["conmon", "--version"]),
        },
    }


# -- rows and the report -----------------------------------------------------

def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    if unit == "s":
        if value < 0.001:
            return f"{value * 1e6:.0f} µs"
        return f"{value * 1000:.1f} ms" if value < 10 else f"{value:.1f} s"
    if unit == "KiB":
        return f"{value / 1024:.1f} MiB" if value >= 1024 else f"{value:.0f} KiB"
    return f"{value:.3g} {unit}"


@dataclass
class Row:
    """One comparison: Dockyard against one peer on one workload.  Lower is
    better for every unit used (seconds, KiB), so a ratio above 1 means
    Dockyard is slower or bigger."""

    bench: str
    unit: str
    dockyard_engine: str
    peer_engine: str
    dockyard: Summary | None
    peer: Summary | None
    note: str = ""
    group: str = ""
    #: Why a side has no numbers (the engine failed, or cannot run here).
    error: str = ""

    @property
    def ratio(self) -> float | None:
        if not self.dockyard or not self.peer or self.peer.median == 0:
            return None
        return self.dockyard.median / self.peer.median


def compare(measured: Measured, *, group: str, bench: str, unit: str, dockyard: tuple[str, str],
            peer: tuple[str, str], note: str = "") -> Row:
    """A row from two cases of one alternation: ``dockyard`` and ``peer`` are
    (sample key, engine label)."""
    errors = [f"{label}: {measured.error(key)}" for key, label in (dockyard, peer) if measured.error(key)]
    return Row(bench, unit, dockyard[1], peer[1], measured.summary(dockyard[0]), measured.summary(peer[0]),
               note=note, group=group, error="; ".join(errors))


@dataclass
class Report:
    title: str
    rows: list[Row] = field(default_factory=list)
    #: peer (or Dockyard piece) -> why it could not run
    unavailable: dict[str, str] = field(default_factory=dict)
    #: conditions that hold for the whole run (network mode, runtimes)
    notes: list[str] = field(default_factory=list)
    #: taken when the run starts (see :meth:`start`): the Dockyard revision
    #: measured and the machine's load then
    started: dict = field(default_factory=dict)

    def start(self) -> None:
        self.started = {"dockyard": git_revision(), "loadavg": os.getloadavg()[0],
                        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        print(self.format_row(row), flush=True)
        return row

    @staticmethod
    def format_row(row: Row) -> str:
        d, p = row.dockyard, row.peer
        ratio = f"{row.ratio:.2f}x" if row.ratio is not None else "n/a"
        line = (f"{row.bench:<46} {row.dockyard_engine:>16} {fmt(d.median if d else None, row.unit):>10}"
                f"  {row.peer_engine:>16} {fmt(p.median if p else None, row.unit):>10}  {ratio:>7}")
        if row.note:
            line += f"  ({row.note})"
        if row.error:
            line += f"  FAILED: {row.error}"
        return line

    def table(self) -> str:
        header = (f"{'benchmark':<46} {'dockyard':>16} {'median':>10}  {'peer':>16} {'median':>10}  "
                  f"{'ratio':>7}")
        return "\n".join([header, "-" * len(header)] + [self.format_row(r) for r in self.rows])

    def markdown(self, meta: dict) -> str:
        started = self.started or {"dockyard": meta["dockyard"], "loadavg": None}
        load = f"{meta['loadavg']:.2f} at the end"
        if started.get("loadavg") is not None:
            load = f"{started['loadavg']:.2f} at the start, {load}"
        lines = [f"## {self.title}", "",
                 f"{meta['cores']} cores ({meta['cpu']}), {meta['memory_gib']} GiB, {meta['os']}, "
                 f"kernel {meta['kernel']}, Python {meta['python']}, Dockyard {started['dockyard']}"
                 + (f", started {started['time']}" if started.get("time") else "") + f"; load average {load}.", ""]
        lines += [f"- {note}" for note in self.notes]
        if self.notes:
            lines.append("")
        lines += ["Ratio = Dockyard / peer (medians); below 1 Dockyard is faster or smaller.", ""]
        groups: dict[str, list[Row]] = {}
        for r in self.rows:
            groups.setdefault(r.group or "results", []).append(r)
        for group, rows in groups.items():
            lines += [f"### {group}", "",
                      "| benchmark | Dockyard | median (min–max) | peer | median (min–max) | ratio |",
                      "|---|---|---|---|---|---|"]
            for r in rows:
                def cell(s: Summary | None) -> str:
                    if s is None:
                        return "n/a"
                    if s.n == 1:
                        return fmt(s.median, r.unit)
                    return f"{fmt(s.median, r.unit)} ({fmt(s.min, r.unit)}–{fmt(s.max, r.unit)}, n={s.n})"
                ratio = f"**{r.ratio:.2f}x**" if r.ratio is not None and r.ratio > 1 else (
                    f"{r.ratio:.2f}x" if r.ratio is not None else "n/a")
                name = r.bench + (f" — {r.note}" if r.note else "")
                if r.error:
                    name += f" — FAILED: {_md_escape(r.error)}"
                lines.append(f"| {name} | {r.dockyard_engine} | {cell(r.dockyard)} | {r.peer_engine} | "
                             f"{cell(r.peer)} | {ratio} |")
            lines.append("")
        if self.unavailable:
            lines += ["Could not run (reported, not skipped silently):", ""]
            lines += [f"- {k}: {_md_escape(v)}" for k, v in self.unavailable.items()]
            lines.append("")
        lines += ["Versions: " + "; ".join(f"{k} {v}" for k, v in meta["versions"].items()), ""]
        return "\n".join(lines)

    def document(self, meta: dict) -> dict:
        return {
            "title": self.title,
            "machine": meta,
            "started": self.started,
            "notes": self.notes,
            "unavailable": self.unavailable,
            "rows": [dict(asdict(r), ratio=r.ratio) for r in self.rows],
        }

    def write(self, directory: Path = RESULTS_DIR, stem: str | None = None,
              latest: bool = True) -> tuple[Path, Path]:
        """Write ``<stem>.json`` and ``<stem>.md`` (stem: a timestamp by
        default) and, with ``latest``, the same as latest.json/latest.md.
        Each file is written to a temporary name, fsync'd and renamed, so a
        reader never sees half a file."""
        directory.mkdir(parents=True, exist_ok=True)
        meta = machine()
        stem = stem or time.strftime("%Y%m%d-%H%M%S")
        texts = {"json": json.dumps(self.document(meta), indent=2) + "\n", "md": self.markdown(meta)}
        paths = []
        for name in ([stem, "latest"] if latest else [stem]):
            for suffix, text in texts.items():
                path = directory / f"{name}.{suffix}"
                _atomic_write(path, text)
                paths.append(path)
        return paths[0], paths[1]


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
