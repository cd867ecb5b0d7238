"""The engines under test, each private to one benchmark run.

Everything an engine keeps lives under the run's work directory (data
root, exec root, socket, pid file, podman's root/runroot/tmp) and every
container is put under the run's own cgroup parent, so a run never touches
the host's engines or another run's, and teardown knows exactly what is
its own:

1. polite: remove the containers through the engine, stop the daemon;
2. firm: kill what is left of the processes that name the work directory
   on their command line (dockerd, containerd, shims, conmon, Dockyard's
   zygote and supervisors), then every process in the run's cgroups;
3. unmount whatever is mounted under the work directory, remove the
   cgroups and the directory.

Docker and Dockyard run with ``--network none`` everywhere (dockerd is
started with ``--bridge none --iptables=false``), so the host network is
left alone and both sides do the same network work (none).
"""

from __future__ import annotations

import http.client
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Iterable

from .harness import CaseFailed, pss_kib, rss_kib

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
#: The one docker client used against both daemons.
DOCKER_CLI = "/usr/local/bin/docker" if os.path.exists("/usr/local/bin/docker") else (
    shutil.which("docker") or "docker")
#: API version both daemons serve (dockerd 20.10 tops out at 1.41).
API = "/v1.41"
IMAGE = "bench-busybox:latest"
PODMAN_IMAGE = "localhost/bench-busybox:latest"
#: Debian package that provides each peer's command.
PEER_PACKAGES = {"dockerd": "docker.io", "podman": "podman", "runc": "runc", "crun": "crun"}


class BenchFailure(CaseFailed):
    """An engine failed; the message says what was attempted."""


# -- processes ---------------------------------------------------------------

def run_cmd(argv: list[str], *, env: dict[str, str] | None = None, timeout: float = 120.0,
            input: bytes | None = None, check: bool = True, quiet: bool = False) -> subprocess.CompletedProcess:
    """Run a command with a timeout; a failure raises BenchFailure carrying
    the command and the tail of its stderr.  ``quiet`` sends stdout to
    /dev/null (what the timing loops want: no pipe to drain)."""
    try:
        proc = subprocess.run(argv, env=env, timeout=timeout, input=input,
                              stdin=None if input is not None else subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL if quiet else subprocess.PIPE, stderr=subprocess.PIPE)
    except subprocess.TimeoutExpired:
        raise BenchFailure(f"`{_short(argv)}` timed out after {timeout:.0f}s") from None
    except OSError as e:
        raise BenchFailure(f"`{_short(argv)}`: {e.strerror}") from None
    if check and proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip().splitlines()
        raise BenchFailure(f"`{_short(argv)}` exited {proc.returncode}: {' / '.join(err[-3:])[:400]}")
    return proc


def _short(argv: list[str]) -> str:
    text = shlex.join([os.path.basename(argv[0])] + argv[1:])
    return text if len(text) < 160 else text[:157] + "..."


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def all_pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def pids_mentioning(text: str) -> list[int]:
    """Processes whose command line contains ``text`` (a path unique to one
    run), excluding this process."""
    me = os.getpid()
    return [p for p in all_pids() if p != me and text in cmdline(p)]


def children(pid: int) -> list[int]:
    found = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            text = Path(f"/proc/{pid}/task/{tid}/children").read_text()
            found += [int(c) for c in text.split()]
    except OSError:
        pass
    return found


HOST_PIDNS = os.readlink("/proc/self/ns/pid")


def in_host_pidns(pid: int) -> bool:
    """False for container processes (their own pid namespace): what an
    engine adds per container is its own processes, not the workload."""
    try:
        return os.readlink(f"/proc/{pid}/ns/pid") == HOST_PIDNS
    except OSError:
        return False


def tree(roots: Iterable[int]) -> list[int]:
    """``roots`` and their descendants that live in the host pid namespace."""
    seen: list[int] = []
    stack = [p for p in roots if p]
    while stack:
        pid = stack.pop()
        if pid in seen or not in_host_pidns(pid):
            continue
        seen.append(pid)
        stack.extend(children(pid))
    return seen


def kill_pids(pids: Iterable[int], sig: int = signal.SIGKILL) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def wait_gone(pids: list[int], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not [p for p in pids if os.path.exists(f"/proc/{p}")]:
            return True
        time.sleep(0.05)
    return False


def memory(pids: Iterable[int]) -> tuple[int, int]:
    """(PSS, RSS) in KiB summed over ``pids``."""
    pids = list(pids)
    return sum(pss_kib(p) for p in pids), sum(rss_kib(p) for p in pids)


# -- mounts and cgroups ------------------------------------------------------

def mounts_under(path: Path) -> list[str]:
    prefix = str(path.resolve())
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mnt = line.split()[4].encode().decode("unicode_escape")
            if mnt == prefix or mnt.startswith(prefix + "/"):
                found.append(mnt)
    return sorted(found, key=lambda m: m.count("/"), reverse=True)


def unmount_under(path: Path) -> None:
    for mnt in mounts_under(path):
        subprocess.run(["umount", "-l", mnt], capture_output=True, timeout=30)


CGROUP_ROOT = Path("/sys/fs/cgroup")


def cgroup_dirs(parent: str) -> list[Path]:
    """The run's cgroup directory in every mounted hierarchy (v1
    controllers and the v2 unified tree)."""
    name = parent.strip("/")
    found = []
    if (CGROUP_ROOT / "cgroup.controllers").exists():
        candidates = [CGROUP_ROOT / name]
    else:
        candidates = [d / name for d in CGROUP_ROOT.iterdir() if d.is_dir() and not d.is_symlink()]
    for d in candidates:
        if d.is_dir():
            found.append(d)
    return found


def cgroup_pids(parent: str) -> list[int]:
    pids: set[int] = set()
    for top in cgroup_dirs(parent):
        for procs in top.rglob("cgroup.procs"):
            try:
                pids.update(int(p) for p in procs.read_text().split())
            except OSError:
                pass
    return sorted(pids)


def remove_cgroups(parent: str) -> list[str]:
    """Kill every process in the run's cgroups and remove them, deepest
    first; returns what could not be removed."""
    for _ in range(3):
        pids = cgroup_pids(parent)
        if not pids:
            break
        kill_pids(pids)
        wait_gone(pids, 5)
    left = []
    for top in cgroup_dirs(parent):
        dirs = sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True)
        for d in dirs + [top]:
            for _ in range(20):
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.05)
            else:
                left.append(str(d))
    return left


# -- the Engine API over a unix socket ---------------------------------------

class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


@dataclass(frozen=True)
class ApiClient:
    """A minimal Engine API client (the same one for every daemon, so API
    timings compare daemons, not clients).  One connection per request, as
    the docker CLI makes."""

    sock: Path
    timeout: float = 120.0

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        conn = _UnixConnection(str(self.sock), self.timeout)
        try:
            headers = {"Host": "docker"}
            data = None
            if body is not None:
                data = json.dumps(body).encode()
                headers["Content-Type"] = "application/json"
            conn.request(method, API + path, body=data, headers=headers)
            response = conn.getresponse()
            return response.status, response.read()
        except (OSError, http.client.HTTPException) as e:
            raise BenchFailure(f"{method} {path} on {self.sock}: {e}") from None
        finally:
            conn.close()

    def call(self, method: str, path: str, body: Any = None, ok: tuple[int, ...] = (200, 201, 204, 304)) -> Any:
        status, data = self.request(method, path, body)
        if status not in ok:
            raise BenchFailure(f"{method} {path}: HTTP {status}: {data[:300].decode(errors='replace').strip()}")
        return json.loads(data) if data.strip() else None

    def ping(self) -> bool:
        try:
            status, _ = self.request("GET", "/_ping")
        except BenchFailure:
            return False
        return status == 200

    def create(self, cmd: list[str], cgroup_parent: str, name: str | None = None) -> str:
        body = {"Image": IMAGE, "Cmd": cmd, "HostConfig": {"NetworkMode": "none", "CgroupParent": cgroup_parent}}
        path = "/containers/create" + (f"?name={name}" if name else "")
        return self.call("POST", path, body)["Id"]

    def start(self, cid: str) -> None:
        self.call("POST", f"/containers/{cid}/start")

    def stop(self, cid: str, timeout: int = 10) -> None:
        self.call("POST", f"/containers/{cid}/stop?t={timeout}")

    def remove(self, cid: str, force: bool = False) -> None:
        self.call("DELETE", f"/containers/{cid}?force={int(force)}", ok=(200, 204, 404))

    def container_ids(self) -> list[str]:
        return [c["Id"] for c in self.call("GET", "/containers/json?all=1")]

    def remove_all(self) -> None:
        from concurrent.futures import ThreadPoolExecutor

        ids = self.container_ids()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda cid: self.remove(cid, force=True), ids))


# -- engines -----------------------------------------------------------------

@dataclass(frozen=True)
class Cli:
    """A command line client aimed at one engine: ``argv`` prefix and
    environment.  The docker CLI aimed at dockerd and at dockyardd differs
    only in DOCKER_HOST."""

    label: str
    argv: tuple[str, ...]
    env: dict[str, str]
    image: str = IMAGE

    def run(self, *args: str, timeout: float = 120.0, quiet: bool = False,
            check: bool = True) -> subprocess.CompletedProcess:
        return run_cmd([*self.argv, *args], env=self.env, timeout=timeout, quiet=quiet, check=check)

    def out(self, *args: str, timeout: float = 120.0) -> str:
        return self.run(*args, timeout=timeout).stdout.decode(errors="replace").strip()


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "DOCKYARD_", "CONTAINERS_"))}
    env.update(extra)
    return env


@dataclass
class Daemon:
    """What dockerd and dockyardd share: a process we started, a socket,
    an API client and the docker CLI aimed at it."""

    name: ClassVar[str] = "daemon"
    base: Path
    cgroup_parent: str
    proc: subprocess.Popen | None = None
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        self.log_path = self.base / f"{self.name}.log"

    @property
    def sock(self) -> Path:
        return self.base / "api.sock"

    @property
    def api(self) -> ApiClient:
        return ApiClient(self.sock)

    def docker_cli(self, label: str) -> Cli:
        return Cli(label, (DOCKER_CLI,), _clean_env(DOCKER_HOST=f"unix://{self.sock}",
                                                    DOCKER_CONFIG=str(self.base / "docker-config")))

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self, timeout: float = 90.0) -> "Daemon":
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         start_new_session=True, env=_clean_env())
        except OSError as e:
            raise BenchFailure(f"starting {self.name}: {e.strerror}") from None
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchFailure(f"{self.name} exited with {self.proc.returncode} while starting: "
                                   f"{self.log_tail()}")
            if self.sock.exists() and self.api.ping():
                return self
            time.sleep(0.05)
        raise BenchFailure(f"{self.name} did not answer /_ping within {timeout:.0f}s: {self.log_tail()}")

    def log_tail(self, lines: int = 5) -> str:
        try:
            return " / ".join(self.log_path.read_text(errors="replace").strip().splitlines()[-lines:])[-800:]
        except OSError:
            return ""

    @property
    def pid(self) -> int:
        return self.proc.pid if self.proc else 0

    def daemon_pids(self) -> list[int]:
        """The daemon's own processes (no per-container ones)."""
        return [self.pid] if self.pid else []

    def container_pids(self) -> list[int]:
        """The processes the engine adds per container (shims, supervisors),
        not the containers' own."""
        return []

    def shared_pids(self) -> list[int]:
        """Helpers shared by all containers but not part of the idle daemon
        (Dockyard's zygote)."""
        return []

    def stop(self, timeout: float = 30.0) -> None:
        """Remove the containers, stop the daemon; tolerant of a daemon that
        is already dead."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                self.api.remove_all()
            except BenchFailure:
                pass
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.proc = None
        self.after_stop()

    def after_stop(self) -> None:
        pass

    def destroy(self) -> None:
        """Stop and remove everything of this daemon's, whatever state it is in."""
        try:
            self.stop()
        finally:
            leftovers = pids_mentioning(str(self.base))
            kill_pids(leftovers)
            wait_gone(leftovers, 10)
            unmount_under(self.base)
            shutil.rmtree(self.base, ignore_errors=True)


@dataclass
class Dockerd(Daemon):
    """A private dockerd (and the containerd it starts)."""

    name: ClassVar[str] = "dockerd"

    def command(self) -> list[str]:
        return ["dockerd", "--data-root", str(self.base / "data"), "--exec-root", str(self.base / "exec"),
                "-H", f"unix://{self.sock}", "--pidfile", str(self.base / "dockerd.pid"),
                "--bridge", "none", "--iptables=false", "--ip6tables=false",
                "--cgroup-parent", self.cgroup_parent]

    def daemon_pids(self) -> list[int]:
        if not self.pid:
            return []
        return [self.pid] + [p for p in children(self.pid) if "containerd" in cmdline(p).split(" ")[0]]

    def container_pids(self) -> list[int]:
        # containerd-shim-runc-v2 detaches from containerd; its command line
        # names our containerd's socket, under our exec root.
        shims = [p for p in pids_mentioning(str(self.base / "exec"))
                 if "containerd-shim" in cmdline(p).split(" ")[0]]
        return tree(shims)


@dataclass
class Dockyardd(Daemon):
    """A private dockyardd.  Containers outlive it (live-restore, always),
    so stop() removes them first and after_stop() ends the zygote."""

    name: ClassVar[str] = "dockyardd"

    def command(self) -> list[str]:
        config = self.base / "daemon.json"
        if not config.exists():
            config.write_text("{}\n")  # never the host's /etc/dockyard/daemon.json
        return [str(VENV_BIN / "dockyardd"), "-H", f"unix://{self.sock}", "--data-root", str(self.base / "data"),
                "--exec-root", str(self.base / "exec"), "--pidfile", str(self.base / "dockyardd.pid"),
                "--config-file", str(config)]

    def dockyard_cli(self, label: str = "dockyard") -> Cli:
        return Cli(label, (str(VENV_BIN / "dockyard"),), _clean_env(DOCKYARD_HOST=f"unix://{self.sock}"))

    def zygote_pid(self) -> int:
        try:
            doc = json.loads((self.base / "exec" / "supervisors" / "zygote.lock").read_text() or "{}")
        except (OSError, ValueError):
            return 0
        pid = int(doc.get("pid") or 0)
        return pid if pid and str(self.base) in cmdline(pid) else 0

    def container_pids(self) -> list[int]:
        zygote = self.zygote_pid()
        return [p for p in tree([zygote]) if p != zygote] if zygote else []

    def shared_pids(self) -> list[int]:
        zygote = self.zygote_pid()
        return [zygote] if zygote else []

    def after_stop(self) -> None:
        # The zygote outlives the daemon by design; a benchmark run must not.
        zygote = self.zygote_pid()
        if zygote:
            kill_pids([zygote], signal.SIGTERM)
            if not wait_gone([zygote], 5):
                kill_pids([zygote])


@dataclass
class Podman:
    """podman on a private root/runroot/tmp with cgroupfs, file events and
    runc (crun 1.8 refuses this host's hybrid cgroups; see runtime.py)."""

    base: Path
    cgroup_parent: str
    runtime: str = "runc"

    def __post_init__(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        (self.base / "tmp").mkdir(exist_ok=True)
        # podman's default ulimits (the host's hard nofile/nproc, raised) are
        # refused here; Docker's containers get 1048576 from dockerd's own
        # limits.  A private containers.conf also keeps host config out.
        (self.base / "containers.conf").write_text(
            "[containers]\n"
            'default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]\n'
            "[engine]\n"
            'cgroup_manager = "cgroupfs"\n'
            'events_logger = "file"\n'
            f'events_logfile_path = "{self.base}/tmp/events.log"\n'
            f'runtime = "{self.runtime}"\n'
            f'tmp_dir = "{self.base}/tmp"\n')

    def cli(self, label: str = "podman") -> Cli:
        argv = ("podman", "--root", str(self.base / "root"), "--runroot", str(self.base / "run"),
                "--storage-driver", "overlay")
        return Cli(label, argv, _clean_env(CONTAINERS_CONF=str(self.base / "containers.conf")), PODMAN_IMAGE)

    def daemon_pids(self) -> list[int]:
        return []  # podman has no daemon

    def container_pids(self) -> list[int]:
        conmons = [p for p in pids_mentioning(str(self.base)) if os.path.basename(cmdline(p).split(" ")[0])
                   == "conmon"]
        return tree(conmons)

    def shared_pids(self) -> list[int]:
        return []

    def destroy(self) -> None:
        try:
            self.cli().run("rm", "-a", "-f", "-t", "0", timeout=180, check=False)
            self.cli().run("system", "reset", "-f", timeout=180, check=False)
        except BenchFailure:
            pass
        finally:
            leftovers = pids_mentioning(str(self.base))
            kill_pids(leftovers)
            wait_gone(leftovers, 10)
            unmount_under(self.base)
            shutil.rmtree(self.base, ignore_errors=True)


# -- peers -------------------------------------------------------------------

def ensure_peers(unavailable: dict[str, str], log=print) -> None:
    """Install missing peers from Debian (apt); a peer that cannot be
    installed is recorded in ``unavailable``, never skipped silently."""
    missing = [pkg for cmd, pkg in PEER_PACKAGES.items() if not shutil.which(cmd)]
    if not os.path.exists(DOCKER_CLI) and not shutil.which("docker"):
        missing.append("docker.io")
    missing = sorted(set(missing))
    if not missing:
        return
    log(f"installing peers from Debian: {' '.join(missing)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    # A policy-rc.d that says no keeps docker.io's postinst from starting a
    # system dockerd we did not ask for (only if the host has none).
    policy = Path("/usr/sbin/policy-rc.d")
    ours = not policy.exists()
    try:
        if ours:
            policy.write_text("#!/bin/sh\nexit 101\n")
            policy.chmod(0o755)
        run_cmd(["apt-get", "update", "-q"], env=env, timeout=600, check=False)
        for pkg in missing:
            try:
                run_cmd(["apt-get", "install", "-y", "-q", "--no-install-recommends", pkg], env=env, timeout=900)
            except BenchFailure as e:
                unavailable[pkg] = f"could not be installed: {e}"
    except OSError as e:
        for pkg in missing:
            unavailable.setdefault(pkg, f"could not be installed: {e}")
    finally:
        if ours:
            policy.unlink(missing_ok=True)


def busybox_rootfs_tar(dest: Path) -> Path:
    """The busybox rootfs tar every engine imports (the same bytes)."""
    from dockyard.image.bootstrap import write_busybox_rootfs

    with open(dest, "wb") as f:
        write_busybox_rootfs(f)
    return dest
