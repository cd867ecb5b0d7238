"""Profiles behind bench/results/PROFILES.md: where Dockyard's time and
memory go on the rows where it is slower than a peer (or misses a target).

    .venv/bin/python -m bench.profiles NAME [--n N]

NAME is one of:

- ``trace-run``: ``docker run --rm busybox true`` against dockyardd and
  dockerd, and ``dockyard run --rm``, through a timestamping proxy on the API socket: when each request
  and answer crossed, and when each connection closed.
- ``cli-floor``: ``docker run --rm busybox true`` against a server that
  answers every request at once (no container): the docker CLI's own cost,
  which no daemon can save.
- ``cli-run``: ``dockyard run --rm`` and ``dockyard exec`` timed, their
  imports (``-X importtime``) and a cProfile of one call each.
- ``api-run``: the same sequence as bare API calls (create, wait, start),
  each call timed, medians for both daemons.
- ``spy-run`` / ``spy-remove`` / ``spy-commit``: py-spy samples of dockyardd
  (and, for run, of the supervisor zygote and its children) while the
  docker CLI runs containers, while 100 stopped containers are removed in
  parallel, or while containers with 50 MiB of changes are committed; the
  top frames by own and inclusive samples.
- ``runtime-lib``: py-spy (with subprocesses) of NativeRuntime
  create/start/wait/delete in a loop, plus the median of each phase.
- ``runtime-cli``: ``-X importtime`` and cProfile of one
  ``dockyard-runtime run``, and the interpreter's own start-up.
- ``smaps``: per-mapping PSS of one supervisor and of the zygote with N idle
  containers.

Needs root and py-spy (the project's ``bench`` extra).  Each profile
starts its own private engines and removes them afterwards.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .containers import IDLE_CMD
from .engines import DOCKER_CLI, IMAGE, VENV_BIN, Daemon, Dockerd, Dockyardd, busybox_rootfs_tar, remove_cgroups
from .images import WRITE_50MB

PY_SPY = str(VENV_BIN / "py-spy")
CGROUP = f"/dybench-profile-{os.getpid()}"


class Engines:
    """Private daemons for one profile, removed on exit."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.tar = busybox_rootfs_tar(work / "busybox.tar")
        self.daemons: list[Daemon] = []

    def start(self, cls: type[Dockerd] | type[Dockyardd]) -> Daemon:
        daemon = cls(self.work / cls.name, CGROUP)
        self.daemons.append(daemon)
        daemon.start()
        daemon.docker_cli("docker").run("import", str(self.tar), IMAGE)
        return daemon

    def __enter__(self) -> "Engines":
        return self

    def __exit__(self, *exc: object) -> None:
        for daemon in self.daemons:
            daemon.destroy()
        remove_cgroups(CGROUP)


def summarise(raw: Path, top: int = 20, match: str = "dockyard") -> str:
    """Top frames of py-spy's raw (collapsed stack) output: by own samples,
    and by inclusive samples among frames whose text contains ``match``."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [f for f in stack.split(";") if not f.startswith(("process ", "thread "))]
        total += int(count)
        if frames:
            own[frames[-1]] += int(count)
            for frame in set(frames):
                inclusive[frame] += int(count)
    lines = [f"{total} samples", "own:"]
    lines += [f"  {100 * n / total:5.1f}%  {f}" for f, n in own.most_common(top)] if total else []
    lines.append(f"inclusive ({match}):")
    lines += [f"  {100 * n / total:5.1f}%  {f}" for f, n in inclusive.most_common() if match in f][:top]
    return "\n".join(lines)


class Spy:
    """py-spy record of one process (and its children) as a context."""

    def __init__(self, pid: int, out: Path, subprocesses: bool = False, rate: int = 1000) -> None:
        argv = [PY_SPY, "record", "-p", str(pid), "-r", str(rate), "-f", "raw", "-o", str(out), "--nonblocking"]
        self.out = out
        self.proc = subprocess.Popen(argv + (["-s"] if subprocesses else []), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)

    def __enter__(self) -> "Spy":
        time.sleep(1.0)  # py-spy attaches
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# -- run --rm ------------------------------------------------------------------

def _proxy(listen: Path, target: Path, log: list[str], stop: threading.Event, t0: float) -> None:
    """Forward connections from ``listen`` to ``target``, noting request
    lines, status lines, final bytes and closes with their times (since
    ``t0``, on the caller's clock, so its own notes line up)."""
    pattern = re.compile(rb"(?:^|\r\n)((?:GET|POST|HEAD|DELETE|PUT) \S+|HTTP/1\.1 [^\r\n]*)")

    def note(text: str) -> None:
        log.append(f"{(time.perf_counter() - t0) * 1000:8.1f} ms  {text}")

    def pump(src: socket.socket, dst: socket.socket, label: str) -> None:
        try:
            while data := src.recv(65536):
                heads = [m.group(1).decode(errors="replace")[:100] for m in pattern.finditer(data[:4096])]
                note(f"{label} " + (" | ".join(heads) if heads else f"{len(data)} bytes"))
                dst.sendall(data)
        except OSError:
            pass
        finally:
            note(f"{label} closed")
            try:
                dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    server = socket.socket(socket.AF_UNIX)
    server.bind(str(listen))
    server.listen(16)
    server.settimeout(0.2)
    n = 0
    while not stop.is_set():
        try:
            client, _ = server.accept()
        except socket.timeout:
            continue
        n += 1
        upstream = socket.socket(socket.AF_UNIX)
        upstream.connect(str(target))
        note(f"c{n} connect")
        threading.Thread(target=pump, args=(client, upstream, f"c{n} >"), daemon=True).start()
        threading.Thread(target=pump, args=(upstream, client, f"c{n} <"), daemon=True).start()
    server.close()


def _traced(work: Path, label: str, daemon: Daemon, argv: list[str], env: dict[str, str]) -> None:
    """Run ``argv`` with ``env`` pointed at a timestamping proxy of
    ``daemon``'s socket; print its time and the proxy's log."""
    log: list[str] = []
    stop = threading.Event()
    listen = work / f"{label.replace(' ', '-')}-proxy.sock"
    origin = time.perf_counter()
    thread = threading.Thread(target=_proxy, args=(listen, daemon.sock, log, stop, origin), daemon=True)
    thread.start()
    time.sleep(0.3)
    env = {**env, "DOCKER_HOST": f"unix://{listen}", "DOCKYARD_HOST": f"unix://{listen}"}
    t0 = time.perf_counter()
    log.append(f"{(t0 - origin) * 1000:8.1f} ms  client started")
    subprocess.run(argv, env=env, check=True, timeout=60, stdout=subprocess.DEVNULL)
    elapsed = time.perf_counter() - t0
    log.append(f"{(t0 + elapsed - origin) * 1000:8.1f} ms  client exited")
    time.sleep(0.3)
    stop.set()
    thread.join()
    print(f"== {label}: {elapsed * 1000:.1f} ms")
    print("\n".join(log))


def trace_run(work: Path, n: int) -> None:
    run_args = ["run", "--rm", "--network", "none", "--cgroup-parent", CGROUP, IMAGE, "true"]
    with Engines(work) as engines:
        for cls in (Dockyardd, Dockerd):
            daemon = engines.start(cls)
            cli = daemon.docker_cli("docker")
            for _ in range(3):
                cli.run(*run_args)
            _traced(work, f"docker run --rm against {cls.name}", daemon, [DOCKER_CLI, *run_args], cli.env)
            if cls is Dockyardd:
                own = daemon.dockyard_cli()  # type: ignore[attr-defined]
                _traced(work, "dockyard run --rm", daemon, [*own.argv, *run_args], own.env)


_INSTANT = {  # the answers the docker CLI's run --rm needs, by method and path tail
    "HEAD /_ping": b"HTTP/1.1 200 OK\r\nApi-Version: 1.45\r\nOstype: linux\r\nContent-Length: 0\r\n\r\n",
    "GET /_ping": b"HTTP/1.1 200 OK\r\nApi-Version: 1.45\r\nOstype: linux\r\nContent-Length: 2\r\n\r\nOK",
    "create": b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 87\r\n\r\n"
              b'{"Id":"' + b"0" * 64 + b'","Warnings":[]}',
    "wait": b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 17\r\n\r\n"
            b'{"StatusCode":0}\n',
    "start": b"HTTP/1.1 204 No Content\r\n\r\n",
    "attach": b"HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\n"
              b"Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n",
}


def _instant_server(listen: Path, stop: threading.Event) -> None:
    """Answer each request of ``docker run --rm`` at once, on keep-alive
    connections; close an attach right after its 101 (no output)."""

    def serve(conn: socket.socket) -> None:
        buf = b""
        with conn:
            while True:
                while b"\r\n\r\n" not in buf:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                head, _, buf = buf.partition(b"\r\n\r\n")
                lines = head.decode().split("\r\n")
                method, target = lines[0].split()[:2]
                length = next((int(l.split(":", 1)[1]) for l in lines[1:] if l.lower().startswith("content-length:")), 0)
                while len(buf) < length:
                    buf += conn.recv(65536)
                buf = buf[length:]
                path = target.split("?")[0]
                key = f"{method} /_ping" if path.endswith("/_ping") else path.rsplit("/", 1)[-1]
                conn.sendall(_INSTANT.get(key, b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"))
                if key == "attach":
                    return

    server = socket.socket(socket.AF_UNIX)
    server.bind(str(listen))
    server.listen(16)
    server.settimeout(0.2)
    while not stop.is_set():
        try:
            conn, _ = server.accept()
        except socket.timeout:
            continue
        threading.Thread(target=serve, args=(conn,), daemon=True).start()
    server.close()


def cli_floor(work: Path, n: int) -> None:
    """The docker CLI's own share of ``run --rm``: the same command against
    a server that does nothing, beside ``docker --version`` (no server)."""
    stop = threading.Event()
    listen = work / "instant.sock"
    thread = threading.Thread(target=_instant_server, args=(listen, stop), daemon=True)
    thread.start()
    time.sleep(0.3)
    (work / "docker-config").mkdir()
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "DOCKER_HOST": f"unix://{listen}",
           "DOCKER_CONFIG": str(work / "docker-config")}
    cases = (("docker --version", [DOCKER_CLI, "--version"]),
             ("docker run --rm busybox true (instant server)",
              [DOCKER_CLI, "run", "--rm", "--network", "none", IMAGE, "true"]))
    try:
        times: dict[str, list[float]] = collections.defaultdict(list)
        for rep in range(n + 3):
            for label, argv in cases:
                t0 = time.perf_counter()
                subprocess.run(argv, env=env, check=True, timeout=30, stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL)
                if rep >= 3:
                    times[label].append(time.perf_counter() - t0)
        for label, values in times.items():
            print(f"{label:48} median {statistics.median(values) * 1000:6.1f} ms  min {min(values) * 1000:6.1f} ms")
    finally:
        stop.set()
        thread.join()



def cli_run(work: Path, n: int) -> None:
    """Where ``dockyard run --rm`` and ``dockyard exec`` spend their time:
    imports and a cProfile of one call each."""
    run_args = ["run", "--rm", "--network", "none", "--cgroup-parent", CGROUP, IMAGE, "true"]
    with Engines(work) as engines:
        daemon = engines.start(Dockyardd)
        own = daemon.dockyard_cli()  # type: ignore[attr-defined]
        cid = daemon.api.create(IDLE_CMD, CGROUP)
        daemon.api.start(cid)
        script = str(VENV_BIN / "dockyard")
        for args in (run_args, ["exec", cid, "true"]):
            for _ in range(3):
                own.run(*args)
            times = []
            for _ in range(n):
                t0 = time.perf_counter()
                own.run(*args, quiet=True)
                times.append(time.perf_counter() - t0)
            print(f"== dockyard {args[0]}: median {statistics.median(times) * 1000:.1f} ms over {n}")
            imports = subprocess.run([sys.executable, "-X", "importtime", script, *args], env=own.env,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     text=True, check=True, timeout=60).stderr
            _print_imports(imports, 12)
            profile = subprocess.run([sys.executable, "-m", "cProfile", "-s", "cumulative", script, *args],
                                     env=own.env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                     check=True, timeout=60).stdout
            print("\n".join(profile.splitlines()[:30]))


def _print_imports(stderr: str, top: int = 20) -> None:
    rows = []
    for line in stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \| (\s*)(\S+)", line)
        if m:
            rows.append((int(m.group(2)), len(m.group(3)) // 2, m.group(4)))  # two spaces a level
    print("imports, cumulative µs (indented by depth):")
    for cumulative, depth, name in sorted(rows, reverse=True)[:top]:
        print(f"  {cumulative:7}  {'  ' * depth}{name}")
    print(f"  all top-level imports: {sum(c for c, d, _ in rows if d == 0)} µs")


def api_run(work: Path, n: int) -> None:
    results: dict[tuple[str, str], list[float]] = collections.defaultdict(list)
    with Engines(work) as engines:
        daemons = [engines.start(Dockyardd), engines.start(Dockerd)]
        for rep in range(n + 3):
            for daemon in daemons:
                api = daemon.api
                t0 = time.perf_counter()
                cid = api.call("POST", "/containers/create", {
                    "Image": IMAGE, "Cmd": ["true"],
                    "HostConfig": {"NetworkMode": "none", "CgroupParent": CGROUP, "AutoRemove": True}})["Id"]
                t_create = time.perf_counter() - t0
                done: dict[str, float] = {}

                def wait(api=api, cid=cid) -> None:
                    api.call("POST", f"/containers/{cid}/wait?condition=removed")
                    done["at"] = time.perf_counter()
                waiter = threading.Thread(target=wait)
                waiter.start()
                time.sleep(0.02)  # the wait is registered before the start
                t0 = time.perf_counter()
                api.start(cid)
                t_start = time.perf_counter() - t0
                waiter.join()
                if rep >= 3:  # warm-up
                    results[(daemon.name, "create")].append(t_create)
                    results[(daemon.name, "start")].append(t_start)
                    results[(daemon.name, "start answered -> removed")].append(done["at"] - t0 - t_start)
    for (name, phase), values in sorted(results.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        print(f"{phase:28} {name:10} median {statistics.median(values) * 1000:7.1f} ms  "
              f"min {min(values) * 1000:7.1f} ms")


def spy_run(work: Path, n: int) -> None:
    with Engines(work) as engines:
        daemon = engines.start(Dockyardd)
        cli = daemon.docker_cli("docker")
        for _ in range(3):
            cli.run("run", "--rm", "--network", "none", IMAGE, "true")
        zygote = daemon.zygote_pid()  # type: ignore[attr-defined]
        with Spy(daemon.pid, work / "daemon.txt"), Spy(zygote, work / "zygote.txt", subprocesses=True):
            t0 = time.perf_counter()
            for _ in range(n):
                cli.run("run", "--rm", "--network", "none", "--cgroup-parent", CGROUP, IMAGE, "true", quiet=True)
            print(f"docker run --rm: {(time.perf_counter() - t0) / n * 1000:.1f} ms each over {n}")
    print("== dockyardd\n" + summarise(work / "daemon.txt"))
    print("== zygote and supervisors\n" + summarise(work / "zygote.txt"))


def spy_remove(work: Path, n: int) -> None:
    with Engines(work) as engines:
        for cls in (Dockyardd, Dockerd):
            daemon = engines.start(cls)
            api = daemon.api
            with ThreadPoolExecutor(n) as pool:
                ids = list(pool.map(lambda _: api.create(IDLE_CMD, CGROUP), range(n)))
                list(pool.map(api.start, ids))
                time.sleep(0.5)
                list(pool.map(lambda cid: api.stop(cid, 10), ids))
                with Spy(daemon.pid, work / "remove.txt") if cls is Dockyardd else contextlib.nullcontext():
                    t0 = time.perf_counter()
                    list(pool.map(api.remove, ids))
                    print(f"{cls.name}: remove {n} in parallel {(time.perf_counter() - t0) * 1000:.0f} ms")
    print(summarise(work / "remove.txt"))


def spy_commit(work: Path, n: int) -> None:
    with Engines(work) as engines:
        for cls in (Dockyardd, Dockerd):
            daemon = engines.start(cls)
            api, cli = daemon.api, daemon.docker_cli("docker")

            def commit_once(i: int) -> float:
                cid = api.create(["sleep", "100000"], CGROUP)
                try:
                    api.start(cid)
                    cli.run("exec", cid, "sh", "-c", WRITE_50MB, timeout=300)  # untimed (but sampled)
                    t0 = time.perf_counter()
                    cli.run("commit", cid, f"profile:{i}", quiet=True, timeout=600)
                    return time.perf_counter() - t0
                finally:
                    api.remove(cid, force=True)
            times = [commit_once(0)]
            with Spy(daemon.pid, work / "commit.txt", subprocesses=True) if cls is Dockyardd else \
                    contextlib.nullcontext():
                times += [commit_once(i) for i in range(1, n)]
            print(f"{cls.name}: commit of 50 MiB of changes, ms: {[round(t * 1000) for t in times]}")
    print(summarise(work / "commit.txt"))


# -- runtime -------------------------------------------------------------------

RUNTIME_LOOP = """
import os, sys, statistics, time
from pathlib import Path
from bench.runtime import make_bundle
from dockyard.linux.process import set_child_subreaper
from dockyard.runtime.base import Stdio
from dockyard.runtime.native import NativeRuntime
set_child_subreaper()
base = Path(sys.argv[1]); n = int(sys.argv[2])
bundle = make_bundle(base, "plain", False, sys.argv[3])
native = NativeRuntime(base / "state")
null = os.open(os.devnull, os.O_RDWR)
phases = {"create": [], "start": [], "wait": [], "delete": []}
for i in range(n):
    t = [time.perf_counter()]
    pid = native.create(f"p{i}", bundle, stdio=Stdio(null, null, null)); t.append(time.perf_counter())
    native.start(f"p{i}"); t.append(time.perf_counter())
    os.waitpid(pid, 0); t.append(time.perf_counter())
    native.delete(f"p{i}"); t.append(time.perf_counter())
    if i >= 5:
        for k, a, b in zip(phases, t, t[1:]):
            phases[k].append(b - a)
for k, v in phases.items():
    print(f"{k:7} median {statistics.median(v) * 1000:6.2f} ms")
"""


def _env() -> dict[str, str]:
    repo = Path(__file__).resolve().parent.parent
    # A PYTHONPATH given by the caller (e.g. a clean export of one commit's
    # src/) goes first, so a profile can measure a commit other than the
    # editable install's working tree.
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return {**os.environ, "PYTHONPATH": os.pathsep.join([*paths, str(repo), str(repo / "src")])}


def runtime_lib(work: Path, n: int) -> None:
    try:
        subprocess.run([PY_SPY, "record", "-s", "-r", "2000", "-f", "raw", "-o", str(work / "lib.txt"), "--",
                        sys.executable, "-c", RUNTIME_LOOP, str(work), str(n), CGROUP], env=_env(), check=True,
                       timeout=600)
    finally:
        from dockyard.linux.mount import unmount_all
        unmount_all(work)
        remove_cgroups(CGROUP)
    print(summarise(work / "lib.txt", top=25))


def runtime_cli(work: Path, n: int) -> None:
    from .runtime import make_bundle

    bundle = make_bundle(work, "plain", False, CGROUP)
    cli = [str(VENV_BIN / "dockyard-runtime"), "--root", str(work / "state"), "run", "--bundle", str(bundle)]
    try:
        for i in range(3):
            subprocess.run(cli + [f"warm{i}"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, check=True)
        times: dict[str, list[float]] = collections.defaultdict(list)
        for i in range(n):
            for label, argv in (("python -c pass", [sys.executable, "-c", "pass"]),
                                ("python -S -c pass", [sys.executable, "-S", "-c", "pass"]),
                                ("dockyard-runtime run", cli + [f"t{i}"])):
                t0 = time.perf_counter()
                subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, check=True)
                times[label].append(time.perf_counter() - t0)
        for label, values in times.items():
            print(f"{label:24} median {statistics.median(values) * 1000:6.1f} ms")
        imports = subprocess.run([sys.executable, "-X", "importtime", *cli[:1], *cli[1:], "imports"],
                                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                 text=True, check=True).stderr
        _print_imports(imports)
        profile = subprocess.run([sys.executable, "-m", "cProfile", "-s", "cumulative", *cli, "cprofile"],
                                 stdin=subprocess.DEVNULL, capture_output=True, text=True, check=True).stdout
        print("\n".join(profile.splitlines()[:40]))
    finally:
        from dockyard.linux.mount import unmount_all
        unmount_all(work)
        remove_cgroups(CGROUP)


# -- memory --------------------------------------------------------------------

def _smaps_by_mapping(pid: int) -> dict[str, collections.Counter[str]]:
    by_name: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    current = "?"
    header = re.compile(r"^[0-9a-f]+-[0-9a-f]+ ")
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            if header.match(line):
                parts = line.split()
                current = os.path.basename(parts[5]) if len(parts) > 5 else "[anon]"
                continue
            key, _, rest = line.partition(":")
            if key in ("Pss", "Private_Dirty", "Shared_Dirty", "Shared_Clean"):
                by_name[current][key] += int(rest.split()[0])
    return by_name


def smaps(work: Path, n: int) -> None:
    with Engines(work) as engines:
        daemon = engines.start(Dockyardd)
        for _ in range(n):
            cid = daemon.api.create(["sleep", "100000"], CGROUP)
            daemon.api.start(cid)
        time.sleep(2.0)
        supervisors = daemon.container_pids()
        for label, pid in (("supervisor", supervisors[len(supervisors) // 2]), ("zygote", daemon.zygote_pid())):  # type: ignore[attr-defined]
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
            fields = {line.split(":")[0]: line.split()[1] for line in rollup.splitlines()[1:]}
            print(f"== {label} (pid {pid}, {n} containers): Pss {fields['Pss']} KiB, Rss {fields['Rss']} KiB, "
                  f"Private_Dirty {fields['Private_Dirty']} KiB, Shared_Dirty {fields['Shared_Dirty']} KiB, "
                  f"Shared_Clean {fields['Shared_Clean']} KiB")
            mappings = sorted(_smaps_by_mapping(pid).items(), key=lambda kv: -kv[1]["Pss"])
            for name, c in mappings[:8]:
                print(f"   {name:42} Pss {c['Pss']:6}  Private_Dirty {c['Private_Dirty']:6}  "
                      f"Shared_Dirty {c['Shared_Dirty']:6}  Shared_Clean {c['Shared_Clean']:6}")


PROFILES = {"trace-run": (trace_run, 1), "cli-floor": (cli_floor, 30), "cli-run": (cli_run, 15), "api-run": (api_run, 25), "spy-run": (spy_run, 40),
            "spy-remove": (spy_remove, 100), "spy-commit": (spy_commit, 6), "runtime-lib": (runtime_lib, 200),
            "runtime-cli": (runtime_cli, 20), "smaps": (smaps, 10)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profiles", description=__doc__.split("\n")[0])
    parser.add_argument("name", choices=list(PROFILES))
    parser.add_argument("--n", type=int, help="repetitions / containers (default per profile)")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("needs root", file=sys.stderr)
        return 2
    func, default_n = PROFILES[args.name]
    work = Path(tempfile.mkdtemp(prefix="dyp-", dir="/tmp"))
    try:
        func(work, args.n or default_n)
    finally:
        import shutil

        from .engines import unmount_under
        unmount_under(work)
        shutil.rmtree(work, ignore_errors=True)
        remove_cgroups(CGROUP)
    return 0


if __name__ == "__main__":
    sys.exit(main())
