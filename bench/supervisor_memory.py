"""Benchmark: memory per running container of Dockyard's supervisors
against conmon (podman) and containerd-shim-runc-v2 (dockerd).

N idle containers (`sleep`) are started by each engine, then the PSS
(proportional set size, /proc/<pid>/smaps_rollup) of each engine's
per-container process is read.  PSS splits shared pages among the
processes sharing them, so a supervisor forked from the zygote pays for
the pages it wrote plus a 1/(N+1) share of the zygote's.  Reported:

- per-container process PSS (median over the N processes);
- per container, all told: (zygote + all supervisors) / N for Dockyard,
  the same sum of shims or conmons / N for the peers (their daemons are
  not counted on either side).

    .venv/bin/python bench/supervisor_memory.py [-n 20] [--runtime runc|native] [--skip-peers]

Needs root, runc, busybox-static; docker.io and podman for the peers.
Prints the numbers and ratios Dockyard/peer and writes bench/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))

from harness import Report, Row, Summary, pids_by_name, pss_kib  # noqa: E402

from dockyard.runtime.supervisor import SupervisorClient, SupervisorSpec  # noqa: E402

BUSYBOX = shutil.which("busybox") or "/bin/busybox"


def busybox_rootfs(dest: Path) -> Path:
    (dest / "bin").mkdir(parents=True)
    shutil.copy2(BUSYBOX, dest / "bin" / "busybox")
    for applet in ("sh", "sleep", "true", "echo", "cat"):
        (dest / "bin" / applet).symlink_to("busybox")
    for d in ("proc", "dev", "tmp", "etc", "sys"):
        (dest / d).mkdir()
    return dest


def bundle(dest: Path, rootfs: Path, args: list[str]) -> Path:
    dest.mkdir(parents=True)
    config = {
        "ociVersion": "1.0.2",
        "process": {"terminal": False, "user": {"uid": 0, "gid": 0}, "args": args, "cwd": "/",
                    "env": ["PATH=/bin"], "noNewPrivileges": True},
        "root": {"path": str(rootfs), "readonly": True},
        "hostname": "bench",
        "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"},
                   {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755"]}],
        "linux": {"namespaces": [{"type": t} for t in ("pid", "ipc", "uts", "mount", "network")]},
    }
    (dest / "config.json").write_text(json.dumps(config))
    return dest


def per_container(values: list[int]) -> Summary:
    return Summary.of([float(v) for v in values])


def measure_dockyard(base: Path, rootfs: Path, n: int, runtime: str) -> tuple[list[int], int, float]:
    """(supervisor PSS each, zygote PSS, median spawn seconds)."""
    client = SupervisorClient(base / "supervisors")
    b = bundle(base / "bundle", rootfs, ["sleep", "100000"])
    ids, spawn_times = [], []
    try:
        for i in range(n):
            cid = f"mem{i}"
            t0 = time.perf_counter()
            client.spawn(cid, SupervisorSpec(bundle=str(b), runtime=runtime, runtime_root=str(base / "rt"),
                                             log_driver="json-file",
                                             log_path=str(base / "supervisors" / cid / f"{cid}-json.log")))
            spawn_times.append(time.perf_counter() - t0)
            ids.append(cid)
        time.sleep(1.0)
        infos = [client.connect(cid).status() for cid in ids]
        pss = [pss_kib(info.supervisor_pid) for info in infos]
        zygote = pss_kib(client.zygote_pid() or 0)
        return pss, zygote, sorted(spawn_times)[len(spawn_times) // 2]
    finally:
        for cid in ids:
            try:
                client.connect(cid).kill(signal.SIGKILL)
            except Exception:  # noqa: BLE001 - best-effort teardown
                pass
        for cid in ids:
            try:
                client.connect(cid).wait(timeout=30)
            except Exception:  # noqa: BLE001
                pass
        client.stop_zygote()


def import_image(run, tar: Path, ref: str) -> None:
    run("import", str(tar), ref)


def measure_dockerd(base: Path, tar: Path, n: int) -> list[int]:
    """PSS of each containerd-shim-runc-v2 with n containers running."""
    base.mkdir(parents=True, exist_ok=True)
    sock = base / "docker.sock"
    env = {**os.environ, "DOCKER_HOST": f"unix://{sock}"}
    log = open(base / "dockerd.log", "wb")
    proc = subprocess.Popen(["dockerd", "--data-root", str(base / "data"), "--exec-root", str(base / "exec"),
                             "-H", f"unix://{sock}", "--pidfile", str(base / "dockerd.pid"), "--bridge", "none",
                             "--iptables=false", "--ip6tables=false"],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def docker(*args: str) -> str:
        out = subprocess.run(["docker", *args], env=env, capture_output=True, text=True)
        if out.returncode:
            raise RuntimeError(f"docker {' '.join(args)}: {out.stderr.strip()}")
        return out.stdout

    try:
        deadline = time.monotonic() + 60
        while subprocess.run(["docker", "version"], env=env, capture_output=True).returncode:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("dockerd did not start")
            time.sleep(0.3)
        before = set(pids_by_name("containerd-shim-runc-v2"))
        docker("import", str(tar), "bench-busybox:1")
        for i in range(n):
            docker("run", "-d", "--network", "none", "--name", f"mem{i}", "bench-busybox:1", "sleep", "100000")
        time.sleep(1.0)
        shims = [p for p in pids_by_name("containerd-shim-runc-v2") if p not in before]
        return [pss_kib(p) for p in shims]
    finally:
        try:
            ids = docker("ps", "-aq").split()
            if ids:
                docker("rm", "-f", *ids)
        except RuntimeError:
            pass
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
        subprocess.run(["umount", "-R", "-l", str(base / "exec")], capture_output=True)
        subprocess.run(["umount", "-R", "-l", str(base / "data")], capture_output=True)


def measure_podman(base: Path, tar: Path, n: int) -> list[int]:
    """PSS of each conmon with n containers running (podman, runc, private
    storage, cgroupfs)."""
    common = ["podman", "--root", str(base / "root"), "--runroot", str(base / "run"), "--runtime", "runc",
              "--cgroup-manager", "cgroupfs", "--events-backend", "file", "--storage-driver", "overlay"]

    def podman(*args: str) -> str:
        out = subprocess.run([*common, *args], capture_output=True, text=True)
        if out.returncode:
            raise RuntimeError(f"podman {' '.join(args)}: {out.stderr.strip()}")
        return out.stdout

    before = set(pids_by_name("conmon"))
    try:
        podman("import", str(tar), "localhost/bench-busybox:1")
        for i in range(n):
            # podman's default limits exceed the hard limits this host lets runc set.
            podman("run", "-d", "--network", "none", "--ulimit", "nofile=1024:1024", "--ulimit",
                   "nproc=1024:1024", "--name", f"mem{i}",
                   "localhost/bench-busybox:1",
                   "sleep", "100000")
        time.sleep(1.0)
        conmons = [p for p in pids_by_name("conmon") if p not in before]
        return [pss_kib(p) for p in conmons]
    finally:
        try:
            podman("rm", "-f", "-a", "-t", "0")
        except RuntimeError:
            pass
        subprocess.run([*common, "system", "reset", "-f"], capture_output=True)
        subprocess.run(["umount", "-R", "-l", str(base / "run")], capture_output=True)
        subprocess.run(["umount", "-R", "-l", str(base / "root")], capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=20, help="containers per engine")
    parser.add_argument("--runtime", default="runc", help="Dockyard's runtime: runc, crun or native")
    parser.add_argument("--skip-peers", action="store_true")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root")
    report = Report(f"Per-container supervisor memory, {args.n} idle containers")
    work = Path(tempfile.mkdtemp(prefix="dy-bench-mem-"))
    try:
        rootfs = busybox_rootfs(work / "rootfs")
        tar = work / "busybox.tar"
        subprocess.run(["tar", "-C", str(rootfs), "--numeric-owner", "-cf", str(tar), "."], check=True)

        pss, zygote, spawn = measure_dockyard(work / "dockyard", rootfs, args.n, args.runtime)
        total = (zygote + sum(pss)) / len(pss)
        print(f"dockyard ({args.runtime}): supervisor PSS median {sorted(pss)[len(pss) // 2]} KiB, "
              f"zygote {zygote} KiB, all told {total:.0f} KiB per container; "
              f"spawn (create+start) median {spawn * 1000:.1f} ms", flush=True)
        mine = per_container(pss)
        mine_total = Summary(total, total, total, len(pss))
        peers = {}
        if not args.skip_peers:
            for name, tool, fn in (("containerd-shim", "dockerd", measure_dockerd),
                                   ("conmon", "podman", measure_podman)):
                if not shutil.which(tool):
                    report.unavailable[name] = f"{tool} is not installed"
                    continue
                try:
                    values = fn(work / name, tar, args.n)
                except (RuntimeError, OSError) as e:
                    report.unavailable[name] = str(e)[:300]
                    continue
                if not values:
                    report.unavailable[name] = f"no {name} processes found"
                    continue
                peers[name] = values
                print(f"{name}: PSS median {sorted(values)[len(values) // 2]} KiB over {len(values)} processes",
                      flush=True)
        if not peers:
            report.add(Row("supervisor PSS per container", "KiB", f"dockyard/{args.runtime}", "-", mine, None,
                           note=f"zygote {zygote} KiB"))
            report.add(Row("all told per container (zygote shared)", "KiB", f"dockyard/{args.runtime}", "-",
                           mine_total, None))
        for name, values in peers.items():
            theirs = per_container(values)
            report.add(Row("per-container process PSS", "KiB", f"dockyard/{args.runtime}", name, mine, theirs))
            their_total = sum(values) / len(values)
            report.add(Row("all told per container (zygote shared)", "KiB", f"dockyard/{args.runtime}", name,
                           mine_total, Summary(their_total, their_total, their_total, len(values))))
        for path in report.write(stem=time.strftime("%Y%m%d-%H%M%S") + "-supervisor-memory"):
            print(f"wrote {path}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
