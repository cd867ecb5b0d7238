"""NativeRuntime: the OCI runtime as a library (see ..base for the contract)."""

from __future__ import annotations

import errno
import json
import os
import select
import signal
import socket
import time
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...errors import (AlreadyExists, DockyardError, FailedPrecondition, Internal, InvalidArgument, NotFound,
                       Unavailable)
from ...linux import capabilities as caps_mod
from ...linux import namespaces as ns
from ...linux import process as lp
from ...linux.seccomp import FILTER_FLAGS, Program, SeccompError, compile_filter
from .state import CREATED, CREATING, PAUSED, RUNNING, STOPPED
from ..cgroups import open_cgroup
from ..lazylog import LazyLogger
from . import child as child_mod
from . import hooks as hook_mod
from .config import Config, Process, _parse_hooks, load_bundle, parse_process
from .rootfs import plan_rootfs
from .state import EXEC_FIFO, SECCOMP_FILE, StateStore, rfc3339_now, write_atomic

if TYPE_CHECKING:
    from ..base import State, Stdio

try:
    # CPython's own SHA-256 (3.11: _sha256, 3.12+: _sha2): the cache key
    # needs no OpenSSL, and hashlib would map libcrypto into the zygote
    # and every supervisor forked from it.
    from _sha256 import sha256 as _sha256
except ImportError:  # pragma: no cover - other Pythons
    try:
        from _sha2 import sha256 as _sha256
    except ImportError:
        from hashlib import sha256 as _sha256

log = LazyLogger("dockyard.runtime.native")

#: How long create/exec wait for the container process to report.
SETUP_TIMEOUT = 60.0
#: How long delete waits for a killed init to go away.
KILL_TIMEOUT = 10.0

_ERROR_KINDS: dict[str, type[DockyardError]] = {
    "NotFound": NotFound, "FailedPrecondition": FailedPrecondition, "InvalidArgument": InvalidArgument,
    "AlreadyExists": AlreadyExists, "Unavailable": Unavailable, "Internal": Internal,
}

#: Device cgroup rules every container gets after its own (runc does the
#: same): mknod of anything, and the devices the runtime puts in /dev.
DEFAULT_DEVICE_RULES: tuple[dict[str, Any], ...] = (
    {"allow": True, "type": "c", "access": "m"},
    {"allow": True, "type": "b", "access": "m"},
    {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},    # null
    {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rwm"},    # zero
    {"allow": True, "type": "c", "major": 1, "minor": 7, "access": "rwm"},    # full
    {"allow": True, "type": "c", "major": 1, "minor": 8, "access": "rwm"},    # random
    {"allow": True, "type": "c", "major": 1, "minor": 9, "access": "rwm"},    # urandom
    {"allow": True, "type": "c", "major": 5, "minor": 0, "access": "rwm"},    # tty
    {"allow": True, "type": "c", "major": 5, "minor": 1, "access": "rwm"},    # console
    {"allow": True, "type": "c", "major": 5, "minor": 2, "access": "rwm"},    # ptmx
    {"allow": True, "type": "c", "major": 136, "access": "rwm"},              # pts/*
    {"allow": True, "type": "c", "major": 10, "minor": 200, "access": "rwm"},  # net/tun
)


def cgroup_resources(config: Config) -> dict[str, Any]:
    """linux.resources with the default device rules appended, and an allow
    rule for each linux.devices entry (the runtime creates those nodes)."""
    resources = dict(config.resources)
    rules = list(resources.get("devices") or ())
    rules.extend(DEFAULT_DEVICE_RULES)
    for dev in config.devices:
        rules.append({"allow": True, "type": "c" if dev.type == "u" else dev.type, "major": dev.major,
                      "minor": dev.minor, "access": "rwm"})
    resources["devices"] = rules
    return resources


_DEFAULT_PATH = b"/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _lsm_enabled(name: str) -> bool:
    if name == "apparmor":
        try:
            with open("/sys/module/apparmor/parameters/enabled") as f:
                return f.read().strip() == "Y"
        except OSError:
            return False
    return os.path.exists("/sys/fs/selinux/enforce")


def build_process_plan(proc: Process, seccomp: Program | None) -> child_mod.ProcessPlan:
    """Encode an OCI process for the child: bytes, masks and ctypes structs
    made here, so the child only makes syscalls."""
    env: dict[bytes, bytes] = {}
    for item in proc.env:
        key, _, value = item.partition("=")
        env[os.fsencode(key)] = os.fsencode(value)
    path_value = env.get(b"PATH", _DEFAULT_PATH)
    cap_state = None
    if proc.capabilities is not None:
        c = proc.capabilities
        cap_state = caps_mod.CapabilityState(
            bounding=caps_mod.mask_of(c.bounding), effective=caps_mod.mask_of(c.effective),
            permitted=caps_mod.mask_of(c.permitted), inheritable=caps_mod.mask_of(c.inheritable),
            ambient=caps_mod.mask_of(c.ambient))
    apparmor = None
    if proc.apparmor_profile:
        if _lsm_enabled("apparmor"):
            apparmor = proc.apparmor_profile.encode()
        else:
            log.warning("apparmor is not enabled on this host; ignoring profile %r", proc.apparmor_profile)
    selinux = None
    if proc.selinux_label:
        if _lsm_enabled("selinux"):
            selinux = proc.selinux_label.encode()
        else:
            log.warning("selinux is not enabled on this host; ignoring label %r", proc.selinux_label)
    return child_mod.ProcessPlan(
        argv=tuple(os.fsencode(a) for a in proc.args),
        env=env,
        path_dirs=tuple(path_value.split(b":")),
        cwd=os.fsencode(proc.cwd),
        uid=proc.user.uid,
        gid=proc.user.gid,
        additional_gids=proc.user.additional_gids,
        umask=0o022 if proc.user.umask is None else proc.user.umask,
        caps=cap_state,
        no_new_privs=proc.no_new_privileges,
        seccomp=seccomp.prepare() if seccomp is not None else None,
        rlimits=tuple((lp.RLIMITS[r.type], r.soft, r.hard) for r in proc.rlimits),
        oom_score_adj=None if proc.oom_score_adj is None else str(proc.oom_score_adj).encode(),
        apparmor=apparmor,
        selinux=selinux,
        terminal=proc.terminal,
        console_size=proc.console_size,
    )


def _write_maps(pid: int, config: Config) -> None:
    for name, maps in (("uid_map", config.uid_mappings), ("gid_map", config.gid_mappings)):
        text = "".join(f"{m.container_id} {m.host_id} {m.size}\n" for m in maps)
        fd = os.open(f"/proc/{pid}/{name}", os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, text.encode())
        except OSError as exc:
            raise InvalidArgument(f"config.json: linux.{'uid' if name[0] == 'u' else 'gid'}Mappings: "
                                  f"the kernel refused {text.strip()!r}: {exc.strerror}") from None
        finally:
            os.close(fd)


def _connect_console(path: Path) -> int:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(os.fspath(path))
    except OSError as exc:
        sock.close()
        raise InvalidArgument(f"console socket {str(path)!r}: {exc.strerror}") from None
    return sock.detach()


class _Sync:
    """The runtime end of the sync socketpair."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._poll = select.poll()
        self._poll.register(fd, select.POLLIN)

    def send(self, msg: bytes) -> None:
        os.write(self.fd, msg)

    def recv(self, what: str) -> bytes:
        """Next message; b"" when the child side is closed (all children
        exited or exec'd)."""
        if not self._poll.poll(SETUP_TIMEOUT * 1000):
            raise Internal(f"{what}: the container process did not report within {SETUP_TIMEOUT:g}s")
        try:
            return os.read(self.fd, 1 << 16)
        except ConnectionResetError:
            return b""


def _raise_child_error(msg: bytes, what: str | None) -> None:
    kind, _, text = msg[1:].partition(b"\0")
    cls = _ERROR_KINDS.get(kind.decode(), Internal)
    shown = text.decode("utf-8", "replace")
    raise cls(f"{what}: {shown}" if what else shown)


def _gone(pid: int, start_time: int | None) -> bool:
    """True if the process is no longer the one we started (exited, a
    zombie, or the pid reused)."""
    found = lp.process_stat(pid)
    if found is None or (start_time is not None and found[1] != start_time):
        return True
    return found[0] in ("Z", "X")


class NativeRuntime:
    """Dockyard's own OCI runtime.  ``root`` holds one state directory per
    container.  ``no_pivot`` uses MS_MOVE+chroot instead of pivot_root (for
    a rootfs on ramfs, like runc --no-pivot)."""

    name = "native"

    def __init__(self, root: Path, *, no_pivot: bool = False) -> None:
        self.root = Path(root)
        self.no_pivot = no_pivot
        self._store = StateStore(self.root)

    def __repr__(self) -> str:
        return f"NativeRuntime({str(self.root)!r})"

    # -- helpers -------------------------------------------------------------

    def _seccomp(self, spec: dict[str, Any]) -> Program:
        """Compile (or fetch from the cache under root) a seccomp profile."""
        flags = 0
        for flag in spec.get("flags") or ():
            flags |= FILTER_FLAGS.get(flag, 0)
        key = _sha256(json.dumps(spec, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
        cache = self.root / ".seccomp-cache" / f"{key}.bpf"
        try:
            with open(cache, "rb") as f:
                return Program(f.read(), flags)
        except FileNotFoundError:
            pass
        try:
            program = compile_filter(spec)
        except SeccompError as exc:
            raise InvalidArgument(f"config.json: {exc}") from None
        try:
            os.makedirs(cache.parent, 0o700, exist_ok=True)
            write_atomic(cache, program.bpf)
        except OSError as exc:  # a cache, not a requirement
            log.warning("seccomp cache %s: %s", cache, exc.strerror)
        return program

    def _state_of(self, doc: dict[str, Any], status: str | None = None) -> State:
        from ..base import State  # only state()/list() need it: not imported on the create path

        return State(id=doc["id"], status=status or self._status(doc), pid=doc["pid"], bundle=doc["bundle"],
                     annotations=doc.get("annotations") or {}, created=doc.get("created"))

    def _status(self, doc: dict[str, Any]) -> str:
        if _gone(doc["pid"], doc.get("pid_start")):
            return STOPPED
        if os.path.exists(self._store.dir(doc["id"]) / EXEC_FIFO):
            return CREATED
        if self._cgroup(doc).is_frozen():
            return PAUSED
        return RUNNING

    def _cgroup(self, doc: dict[str, Any]):
        return open_cgroup(doc.get("cgroups_path", ""), doc["id"])

    def _hook_state(self, container_id: str, status: str, pid: int, config: Config | dict) -> bytes:
        if isinstance(config, Config):
            bundle, annotations = str(config.bundle), config.annotations
        else:
            bundle, annotations = config["bundle"], config.get("annotations") or {}
        from ..base import State  # hooks are rare: not imported on the common path

        state = State(id=container_id, status=status, pid=pid, bundle=bundle, annotations=annotations)
        return json.dumps(state.to_json()).encode()

    # -- lifecycle -------------------------------------------------------------

    def create(self, container_id: str, bundle: Path, *, stdio: Stdio | None = None,
               console_socket: Path | None = None, pid_file: Path | None = None) -> int:
        config = load_bundle(Path(bundle))
        if config.process.terminal and console_socket is None:
            raise InvalidArgument("config.json: process.terminal is true but no console socket was given")
        if not config.process.terminal and console_socket is not None:
            raise InvalidArgument("a console socket was given but config.json: process.terminal is false")
        seccomp = self._seccomp(config.seccomp) if config.seccomp is not None else None
        state_dir = self._store.make(container_id)
        with ExitStack() as undo, ExitStack() as fds:
            undo.callback(self._store.remove, container_id)
            cgroup = open_cgroup(config.cgroups_path, container_id)
            cgroup.create()
            undo.callback(self._destroy_cgroup, cgroup)
            cgroup.set(cgroup_resources(config))
            if seccomp is not None:
                write_atomic(state_dir / SECCOMP_FILE, seccomp.bpf, durable=False)
            init_pid = self._spawn_init(container_id, config, cgroup, seccomp, state_dir, stdio, console_socket,
                                        fds, undo)
            start_time = lp.process_start_time(init_pid)
            doc = {
                "id": container_id, "pid": init_pid, "pid_start": start_time, "bundle": str(config.bundle),
                "rootfs": str(config.root_path), "created": rfc3339_now(), "annotations": config.annotations,
                "cgroups_path": config.cgroups_path, "init": config.wants_init,
                "seccomp_flags": seccomp.flags if seccomp else 0, "config": config.raw,
            }
            self._store.save(container_id, doc)
            if pid_file is not None:
                write_atomic(os.path.abspath(pid_file), str(init_pid).encode(), 0o644, durable=False)
            undo.pop_all()
            return init_pid

    @staticmethod
    def _destroy_cgroup(cgroup) -> None:
        try:
            cgroup.kill_all(signal.SIGKILL)
            cgroup.destroy()
        except DockyardError as exc:
            log.warning("cleanup of cgroup %s: %s", getattr(cgroup, "path", "?"), exc)

    def _spawn_init(self, container_id: str, config: Config, cgroup, seccomp: Program | None, state_dir: Path,
                    stdio: Stdio | None, console_socket: Path | None, fds: ExitStack, undo: ExitStack) -> int:
        user_ns = config.namespace("user")
        join = []
        for kind in ns.JOIN_ORDER:
            spec_ns = config.namespace(kind)
            if spec_ns is not None and spec_ns.path:
                try:
                    fd = os.open(spec_ns.path, os.O_RDONLY | os.O_CLOEXEC)
                except OSError as exc:
                    raise InvalidArgument(f"config.json: linux.namespaces: {kind} path {spec_ns.path!r}: "
                                          f"{exc.strerror}") from None
                fds.callback(os.close, fd)
                join.append((fd, ns.NAMESPACE_FLAGS[kind], kind))
        unshare = 0
        for spec_ns in config.namespaces:
            if not spec_ns.path and spec_ns.type != "user":
                unshare |= ns.NAMESPACE_FLAGS[spec_ns.type]
        rootfs = plan_rootfs(config, cgroup.path, no_pivot=self.no_pivot)
        fifo = state_dir / EXEC_FIFO
        os.mkfifo(fifo, 0o600)
        # O_RDWR never blocks on a FIFO and keeps a writer, so the init's read
        # blocks until start writes (start sees ENXIO if the init is gone).
        fifo_fd = os.open(fifo, os.O_RDWR | os.O_CLOEXEC)
        fds.callback(os.close, fifo_fd)
        console_fd = -1
        if console_socket is not None:
            console_fd = _connect_console(console_socket)
            fds.callback(os.close, console_fd)
        runtime_hooks = hook_mod.prepare("prestart", config.hooks.get("prestart", ())) + \
            hook_mod.prepare("createRuntime", config.hooks.get("createRuntime", ()))
        container_hooks = hook_mod.prepare("createContainer", config.hooks.get("createContainer", ()))
        start_hooks = hook_mod.prepare("startContainer", config.hooks.get("startContainer", ()))
        what = f"creating container {container_id!r}"

        def on_message(sync: _Sync, pid_a: int, init_pid: int, msg: bytes) -> bool:
            tag = msg[:1]
            if tag == b"U":
                _write_maps(pid_a, config)
                sync.send(b"u")
            elif tag == b"H":
                state = self._hook_state(container_id, CREATING, init_pid, config)
                error = hook_mod.run_all(runtime_hooks, state)
                if error:
                    raise Internal(f"{what}: {error}")
                sync.send(b"h" + self._hook_state(container_id, CREATED, init_pid, config))
            elif tag == b"R":
                return True
            return False

        init_pid = _launch(what, cgroup, fds, lambda child_fd, parent_fd: child_mod.InitPlan(
            sock=child_fd, parent_sock=parent_fd, join=tuple(join),
            new_user=user_ns is not None and not user_ns.path,
            user_ns=user_ns is not None, unshare_flags=unshare, rootfs=rootfs,
            hostname=config.hostname.encode() if config.hostname else None,
            domainname=config.domainname.encode() if config.domainname else None,
            sysctl=tuple((b"/proc/sys/" + k.replace(".", "/").encode(), v.encode())
                         for k, v in config.sysctl.items()),
            process=build_process_plan(config.process, seccomp),
            stdio=_stdio_fds(stdio), console_fd=console_fd, fifo_fd=fifo_fd,
            hooks_sync=bool(runtime_hooks or container_hooks or start_hooks),
            create_container_hooks=container_hooks, start_container_hooks=start_hooks,
            init=config.wants_init,
        ), on_message)
        undo.callback(_kill, init_pid)  # if saving the state fails
        return init_pid

    def start(self, container_id: str) -> None:
        doc = self._store.load(container_id)
        status = self._status(doc)
        if status != CREATED:
            raise FailedPrecondition(f"cannot start container {container_id!r}: it is {status}, not created")
        fifo = self._store.dir(container_id) / EXEC_FIFO
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            if exc.errno in (errno.ENXIO, errno.ENOENT):
                raise FailedPrecondition(f"cannot start container {container_id!r}: its init has exited") from None
            raise
        try:
            os.write(fd, b"0")
        finally:
            os.close(fd)
        try:
            os.unlink(fifo)
        except FileNotFoundError:
            pass
        poststart = hook_mod.prepare("poststart", _hooks_of(doc, "poststart"))
        if poststart:
            state = self._hook_state(container_id, RUNNING, doc["pid"], doc)
            for hook in poststart:
                error = hook_mod.run_hook(hook, state)
                if error:
                    log.warning("container %s: %s", container_id, error)

    def state(self, container_id: str) -> State:
        return self._state_of(self._store.load(container_id))

    def list(self) -> list[State]:
        states = []
        for cid in self._store.ids():
            try:
                states.append(self.state(cid))
            except NotFound:
                continue  # deleted meanwhile
        return states

    def kill(self, container_id: str, sig: int = signal.SIGTERM, *, all: bool = False) -> None:
        doc = self._store.load(container_id)
        status = self._status(doc)
        if status == STOPPED:
            raise FailedPrecondition(f"cannot kill container {container_id!r}: it is not running")
        if all:
            self._cgroup(doc).kill_all(sig)
            return
        try:
            os.kill(doc["pid"], sig)
        except ProcessLookupError:
            raise FailedPrecondition(f"cannot kill container {container_id!r}: it is not running") from None

    def delete(self, container_id: str, *, force: bool = False) -> None:
        doc = self._store.load(container_id)
        status = self._status(doc)
        if status in (RUNNING, PAUSED) and not force:
            raise FailedPrecondition(f"cannot delete container {container_id!r} that is not stopped: {status}")
        cgroup = self._cgroup(doc)
        if status != STOPPED:
            try:
                cgroup.kill_all(signal.SIGKILL)
            except DockyardError:
                pass
            _kill(doc["pid"])
            if status == PAUSED:
                cgroup.thaw()
            deadline = time.monotonic() + KILL_TIMEOUT
            while not _gone(doc["pid"], doc.get("pid_start")):
                if time.monotonic() > deadline:
                    raise Unavailable(f"container {container_id!r}: init {doc['pid']} did not die")
                time.sleep(0.001)
        try:
            cgroup.kill_all(signal.SIGKILL)  # exec'd processes outside the init's pid namespace
        except DockyardError:
            pass
        cgroup.destroy()
        poststop = hook_mod.prepare("poststop", _hooks_of(doc, "poststop"))
        if poststop:
            state = self._hook_state(container_id, STOPPED, doc["pid"], doc)
            for hook in poststop:
                error = hook_mod.run_hook(hook, state)
                if error:
                    log.warning("container %s: %s", container_id, error)
        self._store.remove(container_id)

    def exec(self, container_id: str, process: dict[str, Any], *, stdio: Stdio | None = None,
             console_socket: Path | None = None, pid_file: Path | None = None) -> int:
        proc = parse_process(process, "process")
        doc = self._store.load(container_id)
        status = self._status(doc)
        if status not in (RUNNING, CREATED):
            raise FailedPrecondition(f"cannot exec in container {container_id!r}: it is {status}")
        if proc.terminal and console_socket is None:
            raise InvalidArgument("process.terminal is true but no console socket was given")
        init_pid = doc["pid"]
        seccomp = None
        try:
            with open(self._store.dir(container_id) / SECCOMP_FILE, "rb") as f:
                seccomp = Program(f.read(), doc.get("seccomp_flags", 0))
        except FileNotFoundError:
            pass
        spec_types = {n.get("type") for n in (doc["config"].get("linux") or {}).get("namespaces") or ()}
        with ExitStack() as fds, ExitStack() as undo:
            join = []
            for kind in ns.JOIN_ORDER:
                if kind not in spec_types:
                    continue
                name = ns.PROC_NS_NAMES[kind]
                try:
                    fd = os.open(f"/proc/{init_pid}/ns/{name}", os.O_RDONLY | os.O_CLOEXEC)
                except FileNotFoundError:
                    raise FailedPrecondition(f"cannot exec in container {container_id!r}: it is not running") from None
                fds.callback(os.close, fd)
                if os.fstat(fd).st_ino == os.stat(f"/proc/self/ns/{name}").st_ino:
                    continue  # already there (setns into our own user ns is refused)
                join.append((fd, ns.NAMESPACE_FLAGS[kind], kind))
            root_fd = os.open(f"/proc/{init_pid}/root", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            fds.callback(os.close, root_fd)
            console_fd = -1
            if console_socket is not None:
                console_fd = _connect_console(console_socket)
                fds.callback(os.close, console_fd)
            what = f"exec in container {container_id!r}"

            def on_message(sync: _Sync, pid_a: int, pid: int, msg: bytes) -> bool:
                return False  # read on until EOF: the process exec'd

            pid = _launch(what, self._cgroup(doc), fds, lambda child_fd, parent_fd: child_mod.InitPlan(
                sock=child_fd, parent_sock=parent_fd, join=tuple(join), new_user=False,
                user_ns="user" in spec_types, unshare_flags=0, rootfs=None, hostname=None, domainname=None,
                sysctl=(), process=build_process_plan(proc, seccomp), stdio=_stdio_fds(stdio),
                console_fd=console_fd, fifo_fd=-1, hooks_sync=False, root_fd=root_fd,
            ), on_message, bare_child_errors=True)  # runc's exec errors name no container
            if pid_file is not None:
                write_atomic(os.path.abspath(pid_file), str(pid).encode(), 0o644, durable=False)
            undo.pop_all()
            return pid

    def ps(self, container_id: str) -> list[int]:
        doc = self._store.load(container_id)
        return self._cgroup(doc).procs()

    def pause(self, container_id: str) -> None:
        doc = self._store.load(container_id)
        status = self._status(doc)
        if status != RUNNING:
            raise FailedPrecondition(f"cannot pause container {container_id!r}: it is {status}")
        self._cgroup(doc).freeze()

    def resume(self, container_id: str) -> None:
        doc = self._store.load(container_id)
        status = self._status(doc)
        if status != PAUSED:
            raise FailedPrecondition(f"cannot resume container {container_id!r}: it is {status}, not paused")
        self._cgroup(doc).thaw()

    def config(self, container_id: str) -> dict[str, Any]:
        """The config.json the container was created from (for exec defaults)."""
        return self._store.load(container_id)["config"]


def _stdio_fds(stdio: Stdio | None) -> tuple[int, int, int] | None:
    if stdio is None:
        return None
    return tuple(-1 if fd is None else fd for fd in (stdio.stdin, stdio.stdout, stdio.stderr))


def _launch(what: str, cgroup, fds: ExitStack, make_plan, on_message, *, bare_child_errors: bool = False) -> int:
    """Fork stage A with the plan, put it in the cgroup, say go, and feed
    the child's messages to ``on_message(sync, pid_a, pid_b, msg)`` until it
    returns True or the child side closes.  Returns the container process's
    pid (stage B), which stage A reports; since B may report before A has
    (they are separate processes), messages other than A's own ("U") wait
    until B's pid is known.  Errors from the child are raised as their
    kind; on any failure both stages are stopped, and reaped where they are
    ours to reap (stage B is, when the caller is its child subreaper)."""
    parent_sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    parent_fd, child_fd = parent_sock.detach(), child_sock.detach()
    fds.callback(os.close, child_fd)
    pid_b = 0
    try:
        plan = make_plan(child_fd, parent_fd)
        pid_a = os.fork()
        if pid_a == 0:
            child_mod.run_stage_a(plan)  # never returns
            os._exit(1)
        fds.close()  # the child holds its copies; ours must go (EOF, fifo readers)
        sync = _Sync(parent_fd)
        held: list[bytes] = []
        try:
            cgroup.add(pid_a)
            sync.send(b"G")
            finished = False
            while not finished:
                msg = held.pop(0) if held and pid_b else sync.recv(what)
                if not msg:
                    break
                tag = msg[:1]
                if tag == b"E":
                    _raise_child_error(msg, None if bare_child_errors else what)
                if tag == b"P":
                    pid_b = int(msg[1:])
                    continue
                if tag != b"U" and not pid_b:
                    held.append(msg)
                    continue
                finished = on_message(sync, pid_a, pid_b, msg)
        except BaseException as exc:
            # Stop A without killing it mid-way (it may be about to report
            # B's pid): end of stream makes a waiting A exit; A does nothing
            # else that can block.
            try:
                _shutdown_write(parent_fd)
            except OSError:
                pass
            _reap(pid_a)
            pid_b = pid_b or _pending_pid(parent_fd)
            if pid_b:
                _kill(pid_b)
                _reap_if_ours(pid_b)
            if isinstance(exc, BrokenPipeError):
                raise Internal(f"{what}: the container process exited during setup") from None
            raise
        status = _reap(pid_a)
        if not pid_b:
            raise Internal(f"{what}: the container process exited during setup ({_describe_status(status)})")
        return pid_b
    finally:
        os.close(parent_fd)


def _shutdown_write(fd: int) -> None:
    sock = socket.socket(fileno=fd)
    try:
        sock.shutdown(socket.SHUT_WR)
    finally:
        sock.detach()


def _pending_pid(fd: int) -> int:
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    while poller.poll(0):
        try:
            msg = os.read(fd, 1 << 16)
        except OSError:
            return 0
        if not msg:
            return 0
        if msg[:1] == b"P":
            return int(msg[1:])
    return 0


def _reap_if_ours(pid: int) -> None:
    """Reap ``pid`` if it was re-parented to us (we are a subreaper)."""
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def _hooks_of(doc: dict[str, Any], kind: str):
    return _parse_hooks((doc.get("config") or {}).get("hooks")).get(kind, ())


def _reap(pid: int) -> int | None:
    try:
        return os.waitpid(pid, 0)[1]
    except ChildProcessError:
        return None


def _describe_status(status: int | None) -> str:
    if status is None:
        return "status unknown"
    code = os.waitstatus_to_exitcode(status)
    return f"exit status {code}" if code >= 0 else f"killed by signal {-code}"


def _kill(pid: int) -> None:
    if pid:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
