"""Memory: each daemon idle, and what each engine adds per running idle
container, against dockerd+containerd+shims and podman+conmon.

Measured as PSS (proportional set size, /proc/<pid>/smaps_rollup), which
splits pages shared between processes among them: a supervisor forked from
Dockyard's zygote pays for the pages it wrote plus its share of the
zygote's, a shim for its private pages plus its share of the Go binary.
RSS is shown for the idle daemons too (it counts shared pages in full).

Per container, two numbers:

- the per-container process (Dockyard's supervisor, containerd-shim-runc-v2,
  conmon): median PSS over the N processes;
- all told: (engine PSS with N containers - engine PSS idle) / N, where the
  engine is every process it runs outside the containers (daemon(s),
  zygote, supervisors; dockerd, containerd, shims; conmons).  This counts
  the daemon's own growth per container too.

Containers' own processes (in their own pid namespaces) are never counted:
they are the same busybox ``sleep`` on every engine.  The counts are
cumulative (1, then 9 more, then 40 more) on one engine instance each.
"""

from __future__ import annotations

import time

from .context import Context
from .engines import BenchFailure, Daemon, Podman, memory
from .harness import Row, Summary, pss_kib

GROUP = "memory"
SLEEP = ["sleep", "100000"]
PEER_LABELS = {"dockerd": ("dockerd+containerd", "containerd-shim", "dockerd+containerd+shims"),
               "podman": ("-", "conmon", "podman (conmon)")}


def _engine_pids(engine: Daemon | Podman) -> list[int]:
    return engine.daemon_pids() + engine.shared_pids() + engine.container_pids()


def _grow(ctx: Context, kind: str, engine: Daemon | Podman, have: int, want: int) -> None:
    """Start idle containers on ``engine`` until it runs ``want`` (untimed)."""
    for _ in range(have, want):
        if isinstance(engine, Podman):
            engine.cli().run("run", "-d", "--network", "none", "--cgroup-parent", ctx.cgroup_parent,
                             engine.cli().image, *SLEEP, timeout=60)
        else:
            cid = engine.api.create(SLEEP, ctx.cgroup_parent)
            engine.api.start(cid)


def _teardown(engine: Daemon | Podman) -> None:
    if isinstance(engine, Podman):
        engine.cli().run("rm", "-a", "-f", "-t", "0", timeout=300, check=False)
    else:
        engine.api.remove_all()


def bench_memory(ctx: Context) -> None:
    engines: dict[str, Daemon | Podman] = {}
    errors: dict[str, str] = {}
    for kind in ("dockyardd", "dockerd", "podman"):
        try:
            engines[kind] = ctx.engine(kind)
        except BenchFailure as e:
            errors[kind] = str(e)

    # Idle: fresh daemons with the busybox image imported, nothing running.
    time.sleep(2.0)
    idle: dict[str, tuple[int, int]] = {kind: memory(e.daemon_pids()) for kind, e in engines.items()}
    for metric, unit_index in (("PSS", 0), ("RSS", 1)):
        d = idle.get("dockyardd")
        p = idle.get("dockerd")
        ctx.report.add(Row(f"daemon idle {metric}", "KiB", "dockyardd", "dockerd+containerd",
                           Summary.single(d[unit_index]) if d else None, Summary.single(p[unit_index]) if p else None,
                           note="after start and one image import", group=GROUP,
                           error="; ".join(f"{k}: {errors[k]}" for k in ("dockyardd", "dockerd") if k in errors)))
    idle_pss = {kind: value[0] for kind, value in idle.items()}

    sizes = (1, 10) if ctx.quick else (1, 10, 50)
    running = {kind: 0 for kind in engines}
    try:
        for n in sizes:
            per_process: dict[str, list[int]] = {}
            all_told: dict[str, float] = {}
            shared_note = ""
            for kind, engine in list(engines.items()):
                try:
                    ctx.log(f"memory: {n} idle container(s) on {kind}")
                    _grow(ctx, kind, engine, running[kind], n)
                    running[kind] = n
                except BenchFailure as e:
                    errors[kind] = f"starting container {running[kind] + 1} of {n}: {e}"
                    engines.pop(kind)
                    continue
            time.sleep(1.5)  # let the new processes settle (lazy faults, GC)
            for kind, engine in engines.items():
                helpers = engine.container_pids()
                per_process[kind] = [pss_kib(p) for p in helpers]
                total, _ = memory(_engine_pids(engine))
                all_told[kind] = (total - idle_pss.get(kind, 0)) / n
                if len(helpers) != n:
                    errors.setdefault(kind + f"@{n}", f"{kind}: found {len(helpers)} per-container processes "
                                                      f"for {n} containers")
                if kind == "dockyardd":
                    shared = [pss_kib(p) for p in engine.shared_pids()]
                    shared_note = f"zygote {shared[0]} KiB" if shared else "no zygote"
            _rows(ctx, n, per_process, all_told, errors, shared_note)
    finally:
        for kind, engine in engines.items():
            try:
                _teardown(engine)
            except BenchFailure as e:
                ctx.log(f"memory: removing {kind}'s containers: {e}")


def _rows(ctx: Context, n: int, per_process: dict[str, list[int]], all_told: dict[str, float],
          errors: dict[str, str], shared_note: str) -> None:
    mine = per_process.get("dockyardd")
    for peer in ("dockerd", "podman"):
        _, process_label, total_label = PEER_LABELS[peer]
        theirs = per_process.get(peer)
        err = "; ".join(f"{k}: {errors[k]}" for k in ("dockyardd", peer) if k in errors)
        warn = "; ".join(errors[k] for k in (f"dockyardd@{n}", f"{peer}@{n}") if k in errors)
        ctx.report.add(Row(f"per-container process PSS, {n} running", "KiB", "supervisor", process_label,
                           Summary.of([float(v) for v in mine]) if mine else None,
                           Summary.of([float(v) for v in theirs]) if theirs else None,
                           note="; ".join(x for x in (f"target <= 2 MiB, {shared_note}", warn) if x),
                           group=GROUP, error=err))
        ctx.report.add(Row(f"added PSS per container, all told, {n} running", "KiB", "dockyardd", total_label,
                           Summary.single(all_told["dockyardd"]) if "dockyardd" in all_told else None,
                           Summary.single(all_told[peer]) if peer in all_told else None,
                           note="(engine PSS - idle) / N", group=GROUP, error=err))
