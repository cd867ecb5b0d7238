"""Runtime only: create+start+wait+delete of /bin/true in a busybox bundle.

Dockyard's native runtime as a library call (NativeRuntime in this
process, a child subreaper that waitpid()s the init) and as a command
(``dockyard-runtime run``), against ``crun run`` and ``runc run``, on the
same bundle (Docker's defaults from the native ``spec``: six namespaces,
masked/read-only paths, read-only root, a cgroup), with and without
Docker's default seccomp profile.  Target (issue 3): the library call
within 3x of crun.

crun 1.8 refuses hybrid cgroup hosts whose cgroup2 mount has controllers
enabled.  The measurement therefore runs in a child process
(``python -m bench.runtime``) in a private mount namespace where that
file reads empty (a bind of /dev/null), which changes nothing for the
others; the parent harness never enters that namespace, and mounts made
in it vanish with the child.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from .harness import CaseFailed, alternate, compare

BUSYBOX = shutil.which("busybox") or "/bin/busybox"
UNIFIED_CONTROLLERS = "/sys/fs/cgroup/unified/cgroup.controllers"
GROUP = "runtime"


# -- the child ---------------------------------------------------------------

def make_rootfs(dest: Path) -> Path:
    (dest / "bin").mkdir(parents=True)
    shutil.copy2(BUSYBOX, dest / "bin" / "busybox")
    applets = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True, check=True,
                             timeout=30).stdout.split()
    for applet in applets:
        if applet != "busybox":
            (dest / "bin" / applet).symlink_to("busybox")
    for d in ("etc", "tmp", "proc", "sys", "dev", "root"):
        (dest / d).mkdir(exist_ok=True)
    return dest


def make_bundle(base: Path, name: str, seccomp: bool, cgroup_parent: str) -> Path:
    from dockyard.linux.capabilities import DOCKER_DEFAULT_CAPS
    from dockyard.runtime.native.seccomp_profile import default_profile
    from dockyard.runtime.native.spec import default_spec

    bundle = base / name
    bundle.mkdir()
    make_rootfs(bundle / "rootfs")
    spec = default_spec(["/bin/true"], terminal=False)
    spec["linux"]["cgroupsPath"] = f"{cgroup_parent}/runtime-{name}"
    if seccomp:
        spec["linux"]["seccomp"] = default_profile(DOCKER_DEFAULT_CAPS)
    (bundle / "config.json").write_text(json.dumps(spec))
    return bundle


def private_mount_namespace() -> bool:
    """Our own mount namespace with cgroup2's controllers hidden for crun;
    True if there was anything to hide."""
    from dockyard.linux import mount as m
    from dockyard.linux import namespaces as ns

    ns.unshare(ns.CLONE_NEWNS)
    m.mount(None, "/", None, m.MS_SLAVE | m.MS_REC)
    if os.path.exists(UNIFIED_CONTROLLERS) and open(UNIFIED_CONTROLLERS).read().strip():
        m.mount("/dev/null", UNIFIED_CONTROLLERS, None, m.MS_BIND)
        return True
    return False


def child_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.runtime")
    parser.add_argument("--reps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--cgroup-parent", required=True)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    from dockyard.linux.process import set_child_subreaper
    from dockyard.runtime.base import Stdio
    from dockyard.runtime.native import NativeRuntime

    # An installed package has its bytecode cached; make sure ours does, so
    # the CLI rows measure running, not compiling.
    import compileall
    compileall.compile_dir(str(Path(__file__).resolve().parent.parent / "src" / "dockyard"), quiet=1)
    hidden = private_mount_namespace()
    set_child_subreaper()
    base = Path(tempfile.mkdtemp(prefix="rt-", dir=args.work))
    devnull = os.open(os.devnull, os.O_RDWR)
    cli = [str(Path(sys.executable).parent / "dockyard-runtime")]
    if not os.path.exists(cli[0]):
        cli = [sys.executable, "-m", "dockyard.runtime.cli"]
    counter = [0]
    result: dict = {"variants": {}, "unavailable": {},
                    "note": "crun and the others run in a private mount namespace where cgroup2's "
                            "cgroup.controllers reads empty" if hidden else ""}

    def next_id() -> str:
        counter[0] += 1
        return f"b{os.getpid()}x{counter[0]}"

    try:
        for seccomp in (False, True):
            label = "seccomp" if seccomp else "plain"
            bundle = make_bundle(base, label, seccomp, args.cgroup_parent)
            native = NativeRuntime(base / "state-native")

            def lib(bundle: Path = bundle, native: NativeRuntime = native) -> None:
                cid = next_id()
                try:
                    pid = native.create(cid, bundle, stdio=Stdio(devnull, devnull, devnull))
                    native.start(cid)
                    _, status = os.waitpid(pid, 0)
                    native.delete(cid)
                except OSError as e:
                    raise CaseFailed(f"NativeRuntime: {e}") from None
                if os.waitstatus_to_exitcode(status) != 0:
                    raise CaseFailed(f"NativeRuntime: /bin/true exited {os.waitstatus_to_exitcode(status)}")

            def command(argv: list[str], root: str, bundle: Path = bundle):
                def run() -> None:
                    try:
                        proc = subprocess.run([*argv, "--root", str(base / root), "run", "--bundle", str(bundle),
                                               next_id()], stdin=devnull, stdout=devnull, stderr=subprocess.PIPE,
                                              timeout=60)
                    except subprocess.TimeoutExpired:
                        raise CaseFailed(f"{os.path.basename(argv[0])} run: timed out") from None
                    if proc.returncode != 0:
                        raise CaseFailed(f"{os.path.basename(argv[0])} run: exit {proc.returncode}: "
                                         f"{proc.stderr.decode(errors='replace').strip()[-300:]}")
                return run

            cases = {"dockyard-lib": lib, "dockyard-cli": command(cli, "state-cli")}
            for peer in ("crun", "runc"):
                if shutil.which(peer):
                    cases[peer] = command([peer], f"state-{peer}")
                else:
                    result["unavailable"][peer] = "not installed"
            print(f"runtime ({label}): {args.reps} reps x {len(cases)} runtimes", flush=True)
            measured = alternate(cases, args.reps, warmup=args.warmup, log=print)
            result["variants"][label] = {"samples": measured.samples, "errors": measured.errors}
    finally:
        os.close(devnull)
        from dockyard.linux import mount as m

        m.unmount_all(base)
        shutil.rmtree(base, ignore_errors=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result))
    os.replace(tmp, args.out)
    return 0


# -- the parent --------------------------------------------------------------

def bench_runtime(ctx) -> None:
    from .engines import BenchFailure
    from .harness import Measured

    out = ctx.work / "runtime.json"
    reps = ctx.reps(50, 10)
    argv = [sys.executable, "-m", "bench.runtime", "--reps", str(reps), "--warmup", "3",
            "--cgroup-parent", ctx.cgroup_parent, "--work", str(ctx.work), "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parent.parent),
                                                        str(Path(__file__).resolve().parent.parent / "src")])}
    ctx.log(f"runtime: create+start+wait+delete of /bin/true, {reps} reps, in a child process")
    try:
        proc = subprocess.run(argv, env=env, timeout=1800, stderr=subprocess.PIPE)
    except subprocess.TimeoutExpired:
        raise BenchFailure("the runtime benchmark's child timed out after 1800s") from None
    if proc.returncode != 0 or not out.exists():
        raise BenchFailure(f"the runtime benchmark's child exited {proc.returncode}: "
                           f"{proc.stderr.decode(errors='replace').strip()[-600:]}")
    result = json.loads(out.read_text())
    for peer, why in result["unavailable"].items():
        ctx.report.unavailable[peer] = why
    if result["note"] and result["note"] not in ctx.report.notes:
        ctx.report.notes.append("runtime rows: " + result["note"])
    for label, variant in result["variants"].items():
        measured = Measured(variant["samples"], variant["errors"])
        what = "with Docker's seccomp profile" if label == "seccomp" else "no seccomp"
        for engine in ("dockyard-lib", "dockyard-cli"):
            for peer in ("crun", "runc"):
                ctx.report.add(compare(measured, group=GROUP, bench=f"run /bin/true ({what})", unit="s",
                                       dockyard=(engine, engine), peer=(peer, peer),
                                       note="target <= 3x crun" if engine == "dockyard-lib" and peer == "crun"
                                       else ""))


if __name__ == "__main__":
    sys.exit(child_main(sys.argv[1:]))
