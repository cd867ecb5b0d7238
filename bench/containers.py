"""Container benchmarks through the daemons: ``run --rm``, many containers
at once, ``exec``, and the container list API.

The docker CLI (one binary, /usr/local/bin/docker) is aimed at dockyardd
and at dockerd, so those rows compare daemons; ``dockyard`` is compared
with ``podman`` (both daemon-less from the user's seat: a CLI process per
command).  Every container runs with ``--network none`` and the run's own
cgroup parent, on every engine.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from .context import Context, failing_case
from .engines import ApiClient, BenchFailure, Cli
from .harness import CaseResult, alternate, compare

NETWORK_NOTE = "--network none"
#: An idle container that stops at once on SIGTERM (a shell as PID 1 ignores
#: SIGTERM unless it traps it; ``wait`` returns as soon as the trap fires).
IDLE_CMD = ["sh", "-c", "trap 'exit 0' TERM; sleep 100000 & wait"]


def _clis(ctx: Context) -> dict[str, Cli | str]:
    """The four command-line clients, or why one cannot be had."""
    found: dict[str, Cli | str] = {}
    for key, make in (("docker>dockyardd", lambda: ctx.dockyardd().docker_cli("docker>dockyardd")),
                      ("docker>dockerd", lambda: ctx.dockerd().docker_cli("docker>dockerd")),
                      ("dockyard", lambda: ctx.dockyardd().dockyard_cli("dockyard")),
                      ("podman", lambda: ctx.podman().cli("podman"))):
        try:
            found[key] = make()
        except BenchFailure as e:
            found[key] = str(e)
    return found


def _cli_rows(ctx: Context, measured, group: str, bench: str, note: str) -> None:
    ctx.report.add(compare(measured, group=group, bench=f"{bench} (docker CLI)", unit="s",
                           dockyard=("docker>dockyardd", "dockyardd"), peer=("docker>dockerd", "dockerd"),
                           note=note))
    ctx.report.add(compare(measured, group=group, bench=f"{bench} (own CLI)", unit="s",
                           dockyard=("dockyard", "dockyard"), peer=("podman", "podman"), note=note))


# -- 1. run --rm busybox true ------------------------------------------------

def bench_run(ctx: Context) -> None:
    clis = _clis(ctx)
    cases: dict[str, Callable[[], CaseResult]] = {}
    for key, cli in clis.items():
        if isinstance(cli, str):
            cases[key] = failing_case(cli)
            continue

        def case(cli: Cli = cli) -> None:
            cli.run("run", "--rm", "--network", "none", "--cgroup-parent", ctx.cgroup_parent, cli.image, "true",
                    quiet=True, timeout=60)
        cases[key] = case
    reps = ctx.reps(30, 5)
    ctx.log(f"run --rm busybox true: {reps} reps x {len(cases)} engines")
    measured = alternate(cases, reps, warmup=2, log=ctx.log)
    _cli_rows(ctx, measured, "run", "run --rm busybox true", NETWORK_NOTE)
    ctx.report.add(compare(measured, group="run", bench="run --rm busybox true (dockyard CLI vs docker CLI)",
                           unit="s", dockyard=("dockyard", "dockyard"), peer=("docker>dockerd", "docker>dockerd"),
                           note=NETWORK_NOTE))


# -- 3. exec -----------------------------------------------------------------

def _start_idle(ctx: Context, key: str, cli: Cli) -> tuple[str, Callable[[], None]]:
    """An idle running container on the engine ``cli`` drives (untimed), and
    how to remove it (through the engine's API or podman: ``dockyard rm``
    is not what is being measured)."""
    if key == "podman":
        cid = cli.out("run", "-d", "--network", "none", "--cgroup-parent", ctx.cgroup_parent, cli.image,
                      *IDLE_CMD)

        def remove() -> None:
            cli.run("rm", "-f", "-t", "0", cid, check=False, timeout=60)
        return cid, remove
    daemon = ctx.dockyardd() if "dockyardd" in key or key == "dockyard" else ctx.dockerd()
    cid = daemon.api.create(IDLE_CMD, ctx.cgroup_parent)
    daemon.api.start(cid)
    return cid, lambda: daemon.api.remove(cid, force=True)


def bench_exec(ctx: Context) -> None:
    clis = _clis(ctx)
    cases: dict[str, Callable[[], CaseResult]] = {}
    removers: list[Callable[[], None]] = []
    try:
        for key, cli in clis.items():
            if isinstance(cli, str):
                cases[key] = failing_case(cli)
                continue
            try:
                cid, remove = _start_idle(ctx, key, cli)
            except BenchFailure as e:
                cases[key] = failing_case(f"starting the container to exec into: {e}")
                continue
            removers.append(remove)

            def case(cli: Cli = cli, cid: str = cid) -> None:
                cli.run("exec", cid, "true", quiet=True, timeout=60)
            cases[key] = case
        reps = ctx.reps(40, 8)
        ctx.log(f"exec true into a running container: {reps} reps x {len(cases)} engines")
        measured = alternate(cases, reps, warmup=2, log=ctx.log)
        _cli_rows(ctx, measured, "exec", "exec <running container> true", NETWORK_NOTE)
    finally:
        for remove in removers:
            try:
                remove()
            except BenchFailure as e:
                ctx.log(f"exec: removing a container: {e}")


# -- 2. many containers at once ----------------------------------------------

def _parallel_case(api: ApiClient, n: int, cgroup_parent: str) -> Callable[[], CaseResult]:
    """n threads create+start one container each (what ``docker run -d``
    asks of the daemon), then stop all, then remove all; each phase timed
    from the first request to the last answer."""
    def case() -> CaseResult:
        with ThreadPoolExecutor(n) as pool:
            def run_one(_: int) -> str:
                cid = api.create(IDLE_CMD, cgroup_parent)
                api.start(cid)
                return cid
            ids: list[str] = []
            try:
                t0 = time.perf_counter()
                ids = list(pool.map(run_one, range(n)))
                t_start = time.perf_counter() - t0
                running = api.call("GET", "/containers/json")
                if len(running) != n:
                    raise BenchFailure(f"{len(running)} of {n} containers running after start")
                # Untimed: let the last shells reach their `trap` (a SIGTERM
                # that beats it is ignored by PID 1, and stop then waits the
                # full timeout: a race of the workload, not of the engine).
                time.sleep(0.5)
                t0 = time.perf_counter()
                list(pool.map(lambda cid: api.stop(cid, 10), ids))
                t_stop = time.perf_counter() - t0
                t0 = time.perf_counter()
                list(pool.map(api.remove, ids))
                t_remove = time.perf_counter() - t0
            except BenchFailure:
                api.remove_all()
                raise
        return {"start": t_start, "stop": t_stop, "remove": t_remove}
    return case


def bench_parallel(ctx: Context) -> None:
    sizes = (20,) if ctx.quick else (20, 100)
    for n in sizes:
        cases: dict[str, Callable[[], CaseResult]] = {}
        for key, get in (("dockyardd", ctx.dockyardd), ("dockerd", ctx.dockerd)):
            try:
                cases[key] = _parallel_case(get().api, n, ctx.cgroup_parent)
            except BenchFailure as e:
                cases[key] = failing_case(str(e))
        reps = ctx.reps(7, 2) if n <= 20 else ctx.reps(3, 1)
        ctx.log(f"{n} containers in parallel (create+start, stop, remove): {reps} reps")
        measured = alternate(cases, reps, warmup=1 if n <= 20 else 0, log=ctx.log)
        for phase, what in (("start", f"{n} x run -d in parallel, until all running"),
                            ("stop", f"stop {n} running containers in parallel"),
                            ("remove", f"remove {n} stopped containers in parallel")):
            ctx.report.add(compare(measured, group="parallel", bench=what, unit="s",
                                   dockyard=(f"dockyardd/{phase}", "dockyardd"), peer=(f"dockerd/{phase}", "dockerd"),
                                   note=f"API, {n} client threads, {NETWORK_NOTE}"))


# -- 7. GET /containers/json with 200 containers -----------------------------

def bench_api(ctx: Context) -> None:
    count = 200
    cases: dict[str, Callable[[], CaseResult]] = {}
    apis: list[ApiClient] = []
    try:
        for key, get in (("dockyardd", ctx.dockyardd), ("dockerd", ctx.dockerd)):
            try:
                api = get().api
                apis.append(api)
                expected = len(api.container_ids()) + count
                ctx.log(f"creating {count} containers on {key}")
                with ThreadPoolExecutor(8) as pool:
                    list(pool.map(lambda i, api=api: api.create(["true"], ctx.cgroup_parent), range(count)))
            except BenchFailure as e:
                cases[key] = failing_case(str(e))
                continue

            def case(api: ApiClient = api, expected: int = expected) -> None:
                listed = api.call("GET", "/containers/json?all=1")
                if len(listed) != expected:
                    raise BenchFailure(f"GET /containers/json?all=1 listed {len(listed)} of {expected} containers")
            cases[key] = case
        reps = ctx.reps(100, 10)
        ctx.log(f"GET /containers/json?all=1 with {count} containers: {reps} reps")
        measured = alternate(cases, reps, warmup=3, log=ctx.log)
        ctx.report.add(compare(measured, group="api", bench=f"GET /containers/json?all=1, {count} created",
                               unit="s", dockyard=("dockyardd", "dockyardd"), peer=("dockerd", "dockerd"),
                               note="raw HTTP over the unix socket, same client"))
    finally:
        for api in apis:
            try:
                api.remove_all()
            except BenchFailure as e:
                ctx.log(f"removing the API benchmark's containers: {e}")
