"""Benchmark: create+start+wait+delete of /bin/true in a busybox bundle.

Dockyard's native runtime as a library call (NativeRuntime in this
process, a child subreaper that waitpid()s the init) and as a command
(``dockyard-runtime run``), against ``crun run`` and ``runc run``, on the
same bundle (Docker's defaults from ``dockyard-runtime spec``: six
namespaces, masked/read-only paths, read-only root, a cgroup), with and
without Docker's default seccomp profile.  Runs alternate between
runtimes after a warm-up; medians and ratios are printed and written to
bench/results/.

    .venv/bin/python bench/runtime.py [--reps 30]

Needs root, busybox-static, runc and crun.  Target: the library call
within 3x of crun.

crun 1.8 refuses hybrid cgroup hosts whose cgroup2 mount has controllers
enabled; the benchmark runs in a private mount namespace where that file
reads empty (bind of /dev/null), which changes nothing for the others.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from harness import Report, Row, Summary, alternate  # noqa: E402

from dockyard.linux import mount as m  # noqa: E402
from dockyard.linux import namespaces as ns  # noqa: E402
from dockyard.linux.capabilities import DOCKER_DEFAULT_CAPS  # noqa: E402
from dockyard.linux.process import set_child_subreaper  # noqa: E402
from dockyard.runtime.native import NativeRuntime  # noqa: E402
from dockyard.runtime.native.seccomp_profile import default_profile  # noqa: E402
from dockyard.runtime.native.spec import default_spec  # noqa: E402

BUSYBOX = shutil.which("busybox") or "/bin/busybox"


def make_rootfs(dest: Path) -> Path:
    (dest / "bin").mkdir(parents=True)
    shutil.copy2(BUSYBOX, dest / "bin" / "busybox")
    applets = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True, check=True).stdout.split()
    for applet in applets:
        if applet != "busybox":
            (dest / "bin" / applet).symlink_to("busybox")
    for d in ("etc", "tmp", "proc", "sys", "dev", "root"):
        (dest / d).mkdir(exist_ok=True)
    return dest


def make_bundle(base: Path, name: str, seccomp: bool) -> Path:
    bundle = base / name
    bundle.mkdir()
    make_rootfs(bundle / "rootfs")
    spec = default_spec(["/bin/true"], terminal=False)
    spec["linux"]["cgroupsPath"] = f"/dockyard-bench/{name}"
    if seccomp:
        spec["linux"]["seccomp"] = default_profile(DOCKER_DEFAULT_CAPS)
    (bundle / "config.json").write_text(json.dumps(spec))
    return bundle


def private_mount_namespace() -> None:
    """Our own mount namespace, cgroup2 controllers hidden for crun."""
    ns.unshare(ns.CLONE_NEWNS)
    m.mount(None, "/", None, m.MS_SLAVE | m.MS_REC)
    controllers = "/sys/fs/cgroup/unified/cgroup.controllers"
    if os.path.exists(controllers) and open(controllers).read().strip():
        m.mount("/dev/null", controllers, None, m.MS_BIND)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="print only; do not write bench/results")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("needs root", file=sys.stderr)
        return 1
    # An installed package has its bytecode cached; make sure ours does, so
    # the CLI rows measure running, not compiling (PYTHONDONTWRITEBYTECODE
    # may be set in the environment).
    import compileall
    compileall.compile_dir(str(Path(__file__).resolve().parent.parent / "src" / "dockyard"), quiet=1)
    private_mount_namespace()
    set_child_subreaper()
    base = Path(tempfile.mkdtemp(prefix="dockyard-bench-runtime-"))
    devnull = os.open(os.devnull, os.O_RDWR)
    cli = [str(Path(sys.executable).parent / "dockyard-runtime")]
    if not os.path.exists(cli[0]):
        cli = [sys.executable, "-m", "dockyard.runtime.cli"]
    report = Report("Runtime: create+start+wait+delete of /bin/true (busybox bundle)")
    counter = [0]

    def next_id() -> str:
        counter[0] += 1
        return f"b{os.getpid()}x{counter[0]}"

    try:
        for seccomp in (False, True):
            label = "with Docker's seccomp profile" if seccomp else "no seccomp"
            bundle = make_bundle(base, "seccomp" if seccomp else "plain", seccomp)
            native = NativeRuntime(base / "state-native")
            from dockyard.runtime.base import Stdio

            def lib() -> None:
                cid = next_id()
                pid = native.create(cid, bundle, stdio=Stdio(devnull, devnull, devnull))
                native.start(cid)
                _, status = os.waitpid(pid, 0)
                native.delete(cid)
                if os.waitstatus_to_exitcode(status) != 0:
                    raise SystemExit(f"native: /bin/true exited {status}")

            def command(argv: list[str], root: str):
                def run() -> None:
                    proc = subprocess.run([*argv, "--root", str(base / root), "run", "--bundle", str(bundle),
                                           next_id()], stdin=devnull, stdout=devnull, stderr=subprocess.PIPE)
                    if proc.returncode != 0:
                        raise SystemExit(f"{argv[0]}: exit {proc.returncode}: {proc.stderr.decode()}")
                return run

            cases = {"dockyard-lib": lib, "dockyard-cli": command(cli, "state-cli")}
            for peer in ("crun", "runc"):
                if shutil.which(peer):
                    cases[peer] = command([peer], f"state-{peer}")
                else:
                    report.unavailable[peer] = "not installed"
            samples = alternate(cases, args.reps, warmup=args.warmup)
            summaries = {name: Summary.of(values) for name, values in samples.items()}
            for engine in ("dockyard-lib", "dockyard-cli"):
                for peer in ("crun", "runc"):
                    if peer in summaries:
                        report.add(Row(f"run /bin/true ({label})", "s", engine, peer, summaries[engine],
                                       summaries[peer]))
        if not args.no_write:
            json_path, md_path = report.write(stem=f"runtime-{__import__('time').strftime('%Y%m%d-%H%M%S')}")
            print(f"wrote {json_path} and {md_path}")
    finally:
        os.close(devnull)
        m.unmount_all(base)
        shutil.rmtree(base, ignore_errors=True)
        for d in Path("/sys/fs/cgroup").glob("*/dockyard-bench"):
            try:
                d.rmdir()
            except OSError:
                pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
