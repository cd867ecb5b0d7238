"""``python -m bench``: every benchmark, Dockyard against its peers, in one run.

    sudo .venv/bin/python -m bench [--quick] [--only run,exec] [--reps N] [--out DIR]

Runs as root from the repository with the project's virtualenv.  Installs
missing peers from Debian, starts private engines (own data roots,
sockets, cgroup parent), measures, prints a row per comparison as it goes
and the whole table at the end, writes bench/results/<timestamp>.{json,md}
and latest.{json,md}, and tears every engine down, on failure and Ctrl-C
too.  See bench/README.md.
"""

from __future__ import annotations

import argparse
import atexit
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

from .context import Context
from .engines import DOCKER_CLI, BenchFailure, busybox_rootfs_tar, ensure_peers, run_cmd
from .harness import RESULTS_DIR, Report, Row

#: In the order they run: the runtime first (no engines), memory while the
#: shared daemons are fresh, the image benchmark last (its own engines).
BENCHMARKS: dict[str, str] = {
    "runtime": "runtime only: create+start+wait+delete with dockyard-runtime, crun, runc",
    "memory": "daemon idle memory, per-container memory at 1, 10, 50 containers",
    "run": "run --rm busybox true, end to end",
    "exec": "exec latency into a running container",
    "api": "GET /containers/json with 200 containers",
    "parallel": "20 and 100 containers run -d in parallel, then stop and remove",
    "image": "load and save of a >= 100 MB image, commit of 50 MB of changes",
}


def _runner(name: str) -> Callable[[Context], None]:
    if name == "runtime":
        from .runtime import bench_runtime
        return bench_runtime
    if name == "memory":
        from .memory import bench_memory
        return bench_memory
    if name == "image":
        from .images import bench_images
        return bench_images
    from . import containers
    return {"run": containers.bench_run, "exec": containers.bench_exec, "api": containers.bench_api,
            "parallel": containers.bench_parallel}[name]


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0],
                                     epilog="benchmarks: " + "; ".join(f"{k}: {v}" for k, v in BENCHMARKS.items()))
    parser.add_argument("--quick", action="store_true", help="fewer repetitions and sizes (a few minutes)")
    parser.add_argument("--only", action="append", default=[], metavar="NAMES",
                        help="comma-separated benchmarks to run (repeatable); default all")
    parser.add_argument("--reps", type=int, help="repetitions for every timed benchmark")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help=f"results directory (default {RESULTS_DIR})")
    parser.add_argument("--no-install", action="store_true", help="do not apt-get install missing peers")
    args = parser.parse_args(argv)
    names = [n.strip() for item in args.only for n in item.split(",") if n.strip()]
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)} (choose from {', '.join(BENCHMARKS)})")
    args.selected = [n for n in BENCHMARKS if not names or n in names]
    if args.reps is not None and args.reps < 1:
        parser.error("--reps must be at least 1")
    return args


def _crun_works(work: Path) -> str:
    """'' if crun can run a container on this host as it is, else why not."""
    from .runtime import make_bundle

    base = work / "crun-probe"
    base.mkdir(parents=True)
    try:
        bundle = make_bundle(base, "probe", False, f"/dybench-probe-{os.getpid()}")
        proc = run_cmd(["crun", "--root", str(base / "state"), "run", "--bundle", str(bundle), "probe"],
                       timeout=60, check=False)
    except BenchFailure as e:
        return str(e)
    finally:
        from .engines import remove_cgroups
        remove_cgroups(f"/dybench-probe-{os.getpid()}")
    if proc.returncode != 0:
        return proc.stderr.decode(errors="replace").strip().splitlines()[-1][:300]
    return ""


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if os.geteuid() != 0:
        print("python -m bench: run as root (engines need namespaces, cgroups and mounts)", file=sys.stderr)
        return 2
    title = "Dockyard vs Docker, podman, runc, crun" + (" (--quick)" if args.quick else "")
    report = Report(title)
    report.start()
    run_id = secrets.token_hex(3)
    work = Path(tempfile.mkdtemp(prefix=f"dyb-{run_id}-", dir="/tmp"))
    ctx: Context | None = None
    completed = False

    def cleanup() -> None:
        nonlocal ctx
        if ctx is not None:
            problems = ctx.close()
            ctx = None
            for problem in problems:
                print(f"cleanup: {problem}", file=sys.stderr)

    def on_signal(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    atexit.register(cleanup)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    try:
        if not args.no_install:
            ensure_peers(report.unavailable)
        tar = busybox_rootfs_tar(work / "busybox.tar")
        crun_problem = _crun_works(work) if shutil.which("crun") else "not installed"
        podman_runtime = "crun" if not crun_problem else "runc"
        if crun_problem:
            report.unavailable["crun (as is, on this host)"] = (
                f"{crun_problem}; runtime rows run crun in a private mount namespace, podman uses runc")
        ctx = Context(report, work, run_id, args.quick, tar, args.reps, podman_runtime)
        report.notes += [
            "All containers run with --network none on every engine (dockerd is started with --bridge none "
            "--iptables=false, so the host network is untouched) and under the run's own cgroup parent.",
            f"Same client binary against both daemons: {DOCKER_CLI}; podman uses {podman_runtime}, "
            "cgroupfs, file events, a private root; dockyardd runs its default runtime (native).",
            "Engines: private dockerd (+ its containerd), private dockyardd, podman on a private root; "
            "the same busybox rootfs tar imported into each.",
        ]
        ctx.log(f"benchmarks: {', '.join(args.selected)}; work dir {work}")
        for name in args.selected:
            if name == "image":
                ctx.stop_shared()  # its own engines; idle shared daemons only add noise
            t0 = time.monotonic()
            ctx.log(f"== {name}: {BENCHMARKS[name]}")
            try:
                _runner(name)(ctx)
            except (BenchFailure, OSError) as e:
                # A benchmark that cannot go on is a row that says so; the
                # run continues with the next one.
                report.add(Row(f"{name}: benchmark failed", "s", "dockyard", "peer", None, None, group=name,
                               error=str(e)))
            ctx.log(f"== {name} done in {time.monotonic() - t0:.0f}s")
        completed = True
    except KeyboardInterrupt:
        print("\ninterrupted: cleaning up", file=sys.stderr)
    finally:
        cleanup()
        if report.rows:
            print("\n" + report.table())
            if report.unavailable:
                print("\nCould not run:")
                for k, v in report.unavailable.items():
                    print(f"  {k}: {v}")
            if not completed:
                report.title += " (interrupted)"
            # Only a complete full run replaces latest.*; quick, partial
            # and interrupted runs get their timestamped files only.
            full = completed and not args.quick and len(args.selected) == len(BENCHMARKS)
            stem = time.strftime("%Y%m%d-%H%M%S") + ("-quick" if args.quick else "") + (
                "" if len(args.selected) == len(BENCHMARKS) else "-" + "-".join(args.selected))
            json_path, md_path = report.write(args.out, stem=stem, latest=full)
            print(f"\nwrote {json_path} and {md_path}" + (" (and latest.*)" if full else ""))
    return 0 if completed else 130


if __name__ == "__main__":
    sys.exit(main())
