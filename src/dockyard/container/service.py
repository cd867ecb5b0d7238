"""The container service: Docker's container operations over the store,
the runtime and per-container supervisors.

Concurrency model.  The service is asyncio-native: every operation is a
coroutine to be awaited on the daemon's loop, and blocking work (mounts,
snapshot I/O, runtime calls) runs in the default executor.  Records are
only mutated on the loop thread, under a per-container ``asyncio.Lock`` for
lifecycle operations; long waits (``wait``, log follow, stats streams, exit
monitoring) hold no lock and no thread (exits are watched through pidfds).
The few synchronous methods (``counts``, ``image_ids_in_use``,
``disk_usage``, ``resolve``) only read, and are safe from any thread.

Persistence.  Each record change is written to the metadata DB in one
transaction before the service acts on it or reports it, so a daemon that
dies at any point comes back (``open``) to a record that is at most one
step behind the kernel, and reconciliation closes that step: containers
are never killed when the service closes (live-restore, always).

Layout under ``<data_root>/containers/<id>/``: ``config.json`` (the OCI
bundle, with ``rootfs/`` as the mount point of the container's snapshot),
``hostname``, ``hosts``, ``resolv.conf``, the log file(s), ``shm/`` for a
shareable IPC namespace and ``supervisor/`` for the supervisor's files.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import os
import shutil
import signal as signal_mod
import functools
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Mapping

from ..errors import (AlreadyExists, DockyardError, FailedPrecondition, Internal, InvalidArgument, NotFound,
                      Unavailable)
from . import archive as archive_mod
from . import stats as stats_mod
from .config import (container_ref, health_settings, merge_image_config, network_mode, normalize_host_config,
                     parse_restart_policy, validate_config, validate_resources)
from .db import ContainerDB
from .etcfiles import etc_files_intact, write_etc_files
from .fsutil import atomic_write, content_size, make_init_files
from .hostinfo import HostInfo, probe_host
from .images import ImageBackend
from .model import (CREATED, DEAD, EXITED, PAUSED, REMOVING, RESTARTING, RUNNING, ZERO_TIME, Container, Health,
                    State, check_name, format_time, new_id, parse_time, timestamp_ns)
from .mounts import parse_host_mounts
from .names import generate_name
from .execs import (DetachScanner, ExecRecord, exec_process, new_exec_id, parse_detach_keys,
                    validate_exec_config)
from .process import ExitStatus, LogSpec, ProcessBackend, SpawnRequest
from .signals import parse_signal
from .spec import SpecContext, build_spec, cgroups_path
from .views import PRUNE_FILTERS, ListFilter, inspect_json, match_labels, normalize_filters, parse_until, summary_json

log = logging.getLogger("dockyard.container")

Publisher = Callable[..., None]

DEFAULT_STOP_TIMEOUT = 10
#: Docker's restart back-off: first delay, factor, cap; reset after a run this long.
BACKOFF_START = 0.1
BACKOFF_MAX = 60.0
BACKOFF_RESET_AFTER = 10.0
#: How long a SIGKILLed container may take to be reported gone.
KILL_WAIT = 30.0
#: How long a finished exec can still be inspected (Docker's exec GC
#: drops them after about this long) and how many finished ones a
#: container keeps meanwhile, whatever their age.
EXEC_RECORD_TTL = 300.0
EXEC_HISTORY_LIMIT = 100
#: Files bind-mounted over the image's from the container's directory.


def _find_init_binary() -> str | None:
    for candidate in ("/usr/bin/docker-init", "/usr/libexec/docker/docker-init", "/usr/bin/tini-static",
                      "/usr/bin/tini", "/usr/sbin/docker-init"):
        if os.access(candidate, os.X_OK):
            return os.path.realpath(candidate)
    return None


def _default_seccomp(caps: list[str]) -> dict[str, Any] | None:
    try:
        from ..runtime.native.seccomp_profile import default_profile
    except ImportError:  # the runtime layer always ships it; be explicit if not
        raise Unavailable("the default seccomp profile (dockyard.runtime) is not available") from None
    return default_profile(caps)


def _console_size(value: Any) -> tuple[int, int] | None:
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(n, int) and n > 0 for n in value):
        return int(value[0]), int(value[1])
    return None


def _exit_code_for(exc: DockyardError) -> int:
    # Docker's convention for a process that could not be started: 127 not
    # found, 126 not executable, 128 anything else.
    if isinstance(exc, NotFound):
        return 127
    if isinstance(exc, FailedPrecondition):
        return 126
    return 128


def _start_error(exc: DockyardError) -> DockyardError:
    """dockerd's answer when a container's task cannot be made: containerd's
    words around the runtime's cause.  A command that is missing or not
    executable is the caller's mistake, a bad parameter (400; the docker
    CLI then exits 127 or 126); other causes keep their kind."""
    message = f"failed to create task for container: {exc.message}: unknown"
    if isinstance(exc, (NotFound, FailedPrecondition)):
        return InvalidArgument(message)
    try:
        return type(exc)(message)
    except TypeError:
        return Internal(message)


@dataclass(frozen=True)
class ContainerCounts:
    running: int = 0
    paused: int = 0
    stopped: int = 0

    @property
    def total(self) -> int:
        return self.running + self.paused + self.stopped


class ContainerService:
    """See the module docstring.  Construct, ``await open()``, use,
    ``await close()``."""

    def __init__(self, *, data_root: Path | str, store: Any, processes: ProcessBackend | None = None,
                 images: Any = None, publish: Publisher | None = None,
                 runtime_root: Path | str | None = None, default_runtime: str = "native",
                 default_log_driver: str = "json-file", default_log_options: Mapping[str, str] | None = None,
                 cgroup_parent: str = "/dockyard", host: HostInfo | None = None,
                 init_binary: str | None = "auto", supervisor_root: Path | str | None = None) -> None:
        self.data_root = Path(data_root)
        self.containers_dir = self.data_root / "containers"
        self.containers_dir.mkdir(parents=True, exist_ok=True, mode=0o710)
        self.store = store
        self.db = ContainerDB(store.db)
        if images is None:
            from ..image.service import ImageService
            images = ImageService(store)
        #: dockyard.image's ImageService (commit, changes, export go through it)
        self.image_service = images
        self.images = ImageBackend(images)
        self._publish = publish
        self.runtime_root = Path(runtime_root) if runtime_root else Path("/run/dockyard/runtime")
        if processes is None:
            from .supervised import SupervisorBackend
            processes = SupervisorBackend(Path(supervisor_root) if supervisor_root
                                          else self.runtime_root.parent / "supervisors")
        self.processes = processes
        self.default_runtime = default_runtime
        self.default_log_driver = default_log_driver
        self.default_log_options = dict(default_log_options or {})
        self.cgroup_parent = cgroup_parent
        self.host = host or probe_host()
        self.init_binary = _find_init_binary() if init_binary == "auto" else init_binary
        self._records: dict[str, Container] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._exit_waiters: dict[str, list[asyncio.Future]] = {}
        self._removal_waiters: dict[str, list[asyncio.Future]] = {}
        self._tasks: dict[tuple[str, str], asyncio.Task] = {}
        self._backoff: dict[str, float] = {}
        self._runtimes: dict[str, Any] = {}
        self._execs: dict[str, ExecRecord] = {}
        self.exec_record_ttl = EXEC_RECORD_TTL
        self.exec_history_limit = EXEC_HISTORY_LIMIT
        #: attach sessions waiting for a container's next start (docker run
        #: and start -a attach first, then start)
        self._pending_attaches: dict[str, list[_PendingAttach]] = {}
        #: log followers to wake when a container's run ends or it is
        #: removed (a follow then ends without waiting out its poll)
        self._log_followers: dict[str, set[threading.Event]] = {}
        #: containers whose exit is being recorded (see _settle_exit)
        self._exiting: set[str] = set()
        #: how often a log follow looks for new output
        self.log_poll_interval = 0.05
        # Blocking work runs on the service's own pools, never the loop's
        # default executor: short lifecycle steps on one, and the threads
        # that live as long as a stream (log follow, export, cp) on another,
        # so a crowd of `logs -f` clients cannot starve start/stop.
        self._pool = ThreadPoolExecutor(max_workers=32, thread_name_prefix="dockyard-container")
        self._stream_pool = ThreadPoolExecutor(max_workers=256, thread_name_prefix="dockyard-stream")
        self._closed = False
        self._opened = False
        from ..runtime.cgroups import warmup
        self._cgroup_warmer = warmup.shared()
        #: pidfds of the inits of the runs started here, and the unmounts
        #: begun when one died (see _watch_init)
        self._init_watches: dict[str, int] = {}
        self._early_unmounts: dict[str, asyncio.Future] = {}

    # ------------------------------------------------------------------ plumbing

    def _emit(self, c: Container, action: str, **attrs: Any) -> None:
        if self._publish is None:
            return
        try:
            self._publish("container", action, c.id, c.event_attributes(**attrs))
        except Exception:  # noqa: BLE001 - an event subscriber must not break a lifecycle step
            log.exception("publishing %s event for %s", action, c.id)

    def _lock(self, cid: str) -> asyncio.Lock:
        lock = self._locks.get(cid)
        if lock is None:
            lock = self._locks[cid] = asyncio.Lock()
        return lock

    def _io(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> asyncio.Future:
        """Run a blocking step on the service's pool."""
        return asyncio.get_running_loop().run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))

    def _runtime(self, name: str) -> Any:
        rt = self._runtimes.get(name)
        if rt is None:
            from ..runtime.registry import get_runtime
            rt = self._runtimes[name] = get_runtime(name, self.runtime_root / name)
        return rt

    def _dir(self, c: Container | str) -> Path:
        return self.containers_dir / (c if isinstance(c, str) else c.id)

    def _rootfs(self, c: Container) -> Path:
        return self._dir(c) / "rootfs"

    def _save(self, c: Container) -> None:
        self.db.save(c)

    def _set_state(self, c: Container, **changes: Any) -> None:
        c.state = c.state.replace(**changes)
        self._save(c)

    def _start_task(self, cid: str, kind: str, coro) -> asyncio.Task:
        self._cancel_task(cid, kind)
        task = asyncio.get_running_loop().create_task(coro, name=f"container-{kind}-{cid[:12]}")
        self._tasks[(cid, kind)] = task
        task.add_done_callback(lambda t, key=(cid, kind): self._task_done(key, t))
        return task

    def _task_done(self, key: tuple[str, str], task: asyncio.Task) -> None:
        if self._tasks.get(key) is task:
            del self._tasks[key]
        if not task.cancelled() and task.exception() is not None:
            log.error("container task %s failed", key, exc_info=task.exception())

    def _cancel_task(self, cid: str, kind: str) -> None:
        task = self._tasks.pop((cid, kind), None)
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()

    def _notify(self, waiters: dict[str, list[asyncio.Future]], cid: str, value: Any) -> None:
        for fut in waiters.pop(cid, []):
            if not fut.done():
                fut.set_result(value)

    def _wake_log_followers(self, cid: str) -> None:
        """The run's output is all in the log (the supervisor reports an
        exit only after it logged everything): followers may finish now."""
        for event in list(self._log_followers.get(cid, ())):
            event.set()

    # ------------------------------------------------------------------ lookup

    def resolve(self, ref: str) -> Container:
        """A container by full ID, name, or unique ID prefix (Docker's order).
        NotFound ``No such container: <ref>``."""
        if not ref:
            raise NotFound("No such container: ")
        c = self._records.get(ref)
        if c is not None:
            return c
        name = ref if ref.startswith("/") else "/" + ref
        for c in self._records.values():
            if c.name == name:
                return c
        if all(ch in "0123456789abcdef" for ch in ref):
            found = [c for cid, c in self._records.items() if cid.startswith(ref)]
            if len(found) == 1:
                return found[0]
            if len(found) > 1:
                raise InvalidArgument(f"multiple IDs found with provided prefix: {ref}")
        raise NotFound(f"No such container: {ref}")

    def counts(self) -> ContainerCounts:
        """Running/paused/stopped numbers for ``/info``."""
        running = paused = stopped = 0
        for c in list(self._records.values()):
            if c.state.status == PAUSED:
                paused += 1
            elif c.state.status in (RUNNING, RESTARTING):
                running += 1
            else:
                stopped += 1
        return ContainerCounts(running=running, paused=paused, stopped=stopped)

    def image_ids_in_use(self) -> set[str]:
        return {c.image_id for c in list(self._records.values())}

    def disk_usage(self) -> list[dict[str, Any]]:
        records = list(self._records.values())
        shown = self._shown_images(records)
        result = []
        for c in records:
            size_rw, size_root = self._sizes(c)
            result.append(summary_json(c, size_rw=size_rw, size_root_fs=size_root, image=shown[c.id]))
        return result

    def _shown_images(self, records: list[Container]) -> dict[str, str]:
        """Container ID -> the Image a listing shows: the name it was
        created from while that still names its image, else its image ID
        (retagged or untagged since), as dockerd lists it.  Each name is
        resolved once."""
        resolved: dict[str, str | None] = {}
        shown = {}
        for c in records:
            if c.image != c.image_id and c.image not in resolved:
                try:
                    resolved[c.image] = str(self.image_service.resolve(c.image))
                except DockyardError:
                    resolved[c.image] = None
            same = c.image == c.image_id or resolved[c.image] == c.image_id
            shown[c.id] = c.image if same else c.image_id
        return shown

    # ------------------------------------------------------------------ open / close

    async def open(self) -> None:
        """Load every record and reconcile it with supervisors and the kernel
        (live-restore): re-adopt running containers, record exits that
        happened while no daemon watched, restart what policies say, clean
        up what removed containers left."""
        if self._opened:
            return
        self._opened = True
        records = await self._io(lambda: list(self.db.all()))
        for c in records:
            self._records[c.id] = c
        for c in records:
            try:
                await self._reconcile(c)
            except DockyardError as exc:
                log.error("reconciling container %s: %s", c.id, exc)
        await self._io(self._clean_orphans)
        for c in list(self._records.values()):
            if c.state.status not in (EXITED, CREATED) or not c.has_been_started:
                continue
            # Docker: on daemon start, "always" brings a container back even
            # after a manual stop; "unless-stopped" only if it was not stopped
            # by hand.
            policy = parse_restart_policy(c.host_config.get("RestartPolicy"))
            if policy.name == "always" or (policy.name == "unless-stopped" and not c.manually_stopped):
                c.manually_stopped = False
                self._start_task(c.id, "restart", self._restart_later(c.id, 0.0))

    async def close(self) -> None:
        """Stop watching; leave every container running (live-restore)."""
        self._closed = True
        for cid in list(self._init_watches):
            self._unwatch_init(cid)
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        self._pool.shutdown(wait=False)
        self._stream_pool.shutdown(wait=False)

    async def _reconcile(self, c: Container) -> None:
        status = c.state.status
        if status == REMOVING:
            await self._remove_locked(c, force=True)
            return
        if status in (RUNNING, PAUSED) or (status == RESTARTING and c.supervisor):
            handle = c.supervisor
            exit_status = self.processes.exit_status(handle) if handle else None
            if handle and exit_status is None and self.processes.alive(handle):
                # Still running: watch it again (and give the host side its
                # rootfs mount back if it was lost, e.g. after a host-side
                # unmount; the container's own view never depended on it).
                await self._io(self._ensure_rootfs_mounted, c)
                self._start_task(c.id, "monitor", self._monitor(c.id, dict(handle)))
                hc = health_settings(c.config.get("Healthcheck"))
                if hc is not None:
                    self._start_task(c.id, "health", self._health_loop(c.id))
                log.info("re-adopted container %s (pid %s)", c.id, self.processes.pid(handle))
                return
            if exit_status is None:
                exit_status = ExitStatus(exit_code=255, finished_at=format_time(),
                                         error="the container's supervisor is gone; exit status unknown")
            await self._handle_exit(c.id, exit_status, handle)
            return
        if status == RESTARTING:
            self._start_task(c.id, "restart", self._restart_later(c.id, 0.0))
            return
        # Stopped containers keep no mounts.
        await self._io(self._unmount_rootfs, c)

    def _clean_orphans(self) -> None:
        """Mounts, snapshots and directories of containers that have no
        record (removed while a daemon crashed half-way)."""
        from ..linux.mount import mounts_under, unmount_all
        known = set(self._records)
        for mountpoint in mounts_under(self.containers_dir):
            rel = os.path.relpath(mountpoint, self.containers_dir).split("/")[0]
            if rel not in known:
                with contextlib.suppress(OSError):
                    unmount_all(self.containers_dir / rel)
        for entry in self.containers_dir.iterdir():
            if entry.name not in known and len(entry.name) == 64:
                shutil.rmtree(entry, ignore_errors=True)
        sn = self.store.snapshotter
        for info in list(sn.walk(label=("dockyard/container", None))):
            if info.labels.get("dockyard/container") not in known:
                with contextlib.suppress(DockyardError):
                    sn.remove(info.name)

    # ------------------------------------------------------------------ create

    async def create(self, config: Mapping[str, Any], host_config: Mapping[str, Any] | None = None,
                     networking_config: Mapping[str, Any] | None = None, *, name: str | None = None,
                     platform: str | None = None) -> dict[str, Any]:
        """``POST /containers/create``: returns ``{"Id", "Warnings"}``."""
        if not isinstance(config, Mapping):
            raise InvalidArgument("invalid container config: expected an object")
        image_ref = config.get("Image") or ""
        if not image_ref:
            raise InvalidArgument("Config.Image is required")
        if name:
            name = check_name(name)
        hc, warnings = normalize_host_config(dict(host_config or {}), self.host,
                                             default_log_driver=self.default_log_driver,
                                             default_runtime=self.default_runtime)
        from .. import logs
        log_config = hc["LogConfig"]
        if log_config["Type"] == self.default_log_driver and not log_config["Config"]:
            log_config["Config"] = dict(self.default_log_options)
        if log_config["Type"] not in logs.DRIVERS:
            # dockerd looks an unknown driver up as a plugin, and says so
            raise InvalidArgument(f"error looking up logging plugin {log_config['Type']}: "
                                  f"plugin \"{log_config['Type']}\" not found")
        logs.validate(log_config["Type"], log_config["Config"])
        if platform and platform.split("/", 1)[0] != "linux":
            raise InvalidArgument(f"invalid platform {platform!r}: only linux containers run here")
        try:
            self._runtime(hc["Runtime"])
        except Unavailable as exc:
            raise InvalidArgument(f"unknown or invalid runtime name: {hc['Runtime']}: {exc}") from None
        endpoints = (networking_config or {}).get("EndpointsConfig") or {}
        if isinstance(endpoints, Mapping) and len(endpoints) > 1:
            # `docker run --network none --network host`: one network only
            # (there are no user-defined networks to join several of)
            raise InvalidArgument(f"Container cannot be connected to network endpoints: {', '.join(endpoints)}")
        image = await self._io(self.images.resolve, image_ref)
        merged = merge_image_config(dict(config), image.config)
        merged = validate_config(merged, hc)
        for ref_mode in (hc.get("NetworkMode"), hc.get("IpcMode"), hc.get("PidMode")):
            ref = container_ref(ref_mode or "")
            if ref:
                # Must exist (Docker checks at create).  A 400, not a 404 as
                # dockerd answers: the docker CLI reads a 404 from create as
                # "image not found" and tries to pull the image.
                try:
                    self.resolve(ref)
                except NotFound as exc:
                    raise InvalidArgument(exc.message) from None
        image_volumes = sorted((image.config.get("Volumes") or {}).keys())
        if image_volumes:
            # TODO(volume issue): anonymous volumes for the image's VOLUMEs.
            warnings.append(f"the image declares volumes ({', '.join(image_volumes)}); volumes are not "
                            f"available yet, so these paths stay in the container's writable layer")
        if network_mode(hc) == "bridge":
            warnings.append("bridge networking is not available yet: the container gets a private network "
                            "namespace with only a loopback interface")

        cid = new_id()
        c = Container(id=cid, name=name or "", created=format_time(), image_id=image.id, image=image_ref,
                      config=merged, host_config=hc,
                      networking_config=dict(networking_config) if networking_config else None,
                      snapshot_key=f"container-{cid}", runtime=hc["Runtime"])
        cdir = self._dir(cid)
        c.root_dir = str(cdir)
        path = logs.log_path(log_config["Type"], cdir, cid)
        c.log_path = str(path) if path else ""
        c.extra = {"hostname_path": str(cdir / "hostname"), "hosts_path": str(cdir / "hosts"),
                   "resolv_conf_path": str(cdir / "resolv.conf"), "image_top_layer": image.top_layer}
        # The record goes in first: a name conflict is found before anything
        # is made on disk.
        if name:
            self.db.insert(c)
        else:
            for attempt in range(10):
                c.name = "/" + generate_name(attempt)
                try:
                    self.db.insert(c)
                    break
                except AlreadyExists:
                    if attempt == 9:
                        raise
        try:
            await self._io(self._make_container_files, c, image.top_layer)
        except BaseException:
            await self._io(self._remove_files, c)
            self.db.delete(cid)
            raise
        self._records[cid] = c
        self._emit(c, "create")
        return {"Id": cid, "Warnings": warnings}

    def _make_container_files(self, c: Container, parent: str | None) -> None:
        cdir = self._dir(c)
        cdir.mkdir(mode=0o710)
        (cdir / "rootfs").mkdir()
        for point in parse_host_mounts(c.host_config):
            if point.type == "bind" and not os.path.exists(point.source):
                if point.create_source:
                    os.makedirs(point.source, mode=0o755, exist_ok=True)
                else:
                    raise InvalidArgument(f"invalid mount config for type \"bind\": bind source path does "
                                          f"not exist: {point.source}")
        write_etc_files(cdir, c.config, c.host_config, c.id)
        with self.store.gc_lock.shared():
            self.store.snapshotter.prepare(c.snapshot_key, parent, labels={"dockyard/container": c.id})
        workdir = c.config.get("WorkingDir") or ""
        if workdir.strip("/"):
            self._make_workdir(c, workdir)

    def _make_workdir(self, c: Container, workdir: str) -> None:
        """The working directory made at create, as dockerd makes it (diff
        shows it at once; a file in the way refuses the create).  Only for
        a WorkingDir other than /: the rootfs is mounted for it."""
        from .fsutil import resolve_in_root
        self._ensure_rootfs_mounted(c)
        try:
            host = resolve_in_root(self._rootfs(c), workdir)
            try:
                os.makedirs(host, 0o755, exist_ok=True)
            except OSError as exc:
                if exc.errno in (errno.ENOTDIR, errno.EEXIST):
                    raise Internal(f"Cannot mkdir: {workdir} is not a directory") from None
                raise Internal(f"Cannot mkdir: {workdir}: {exc.strerror}") from None
        finally:
            self._unmount_rootfs(c)

    def _remove_files(self, c: Container) -> None:
        from ..linux.mount import unmount_all
        cdir = self._dir(c)
        with contextlib.suppress(OSError):
            unmount_all(cdir)
        with contextlib.suppress(NotFound):
            self.store.snapshotter.remove(c.snapshot_key)
        # Renamed away at once (the id is free again), deleted behind the
        # answer on the store's reaper thread: rmtree of the log and the
        # bundle was the largest step between an exit and its removal.
        self.store.discard(cdir)

    # ------------------------------------------------------------------ mounts

    def _ensure_rootfs_mounted(self, c: Container) -> None:
        from ..linux.mount import is_mountpoint
        from ..store.mounting import mount_all
        target = self._rootfs(c)
        target.mkdir(parents=True, exist_ok=True)
        if is_mountpoint(target):
            return
        try:
            mount_all(self.store.snapshotter.mounts(c.snapshot_key), target)
        except DockyardError as exc:
            if c.state.running:
                # An overlay whose upper dir is still used by the running
                # container's own mount may refuse a second mount; the
                # container is fine, host-side access goes through
                # /proc/<pid>/root instead.
                log.warning("container %s: could not remount its rootfs: %s", c.id, exc)
                return
            raise
        marker = self._dir(c) / "init-layer"
        if marker.exists():
            return
        try:
            # Docker makes these at create in its init layer; here at the
            # first mount (a start, or cp of a created container), once.
            make_init_files(target)
            marker.touch()
        except OSError as exc:
            self._unmount_rootfs(c)
            raise Internal(f"container {c.id}: making /.dockerenv and /etc/mtab: {exc}") from None

    def _unmount_rootfs(self, c: Container) -> None:
        """Unmount the rootfs and shm/ (all the host mounts under the
        container's directory: one walk of mountinfo)."""
        from ..linux.mount import unmount_all
        with contextlib.suppress(OSError):
            unmount_all(self._dir(c))

    def _ensure_shm(self, c: Container) -> Path:
        from ..linux.mount import MS_NODEV, MS_NOEXEC, MS_NOSUID, is_mountpoint, mount
        shm = self._dir(c) / "shm"
        shm.mkdir(exist_ok=True)
        if not is_mountpoint(shm):
            size = int(c.host_config.get("ShmSize") or 64 << 20)
            mount("shm", shm, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, f"mode=1777,size={size}")
        return shm

    # ------------------------------------------------------------------ start

    async def _settle_exit(self, c: Container) -> None:
        """If the current run has ended but its exit is not recorded yet,
        wait until the monitor has recorded it.  A client that saw the end
        of an attach stream (the supervisor writes the exit status before
        it ends the streams) and starts or attaches again at once must find
        the container exited, not running with a supervisor that is gone."""
        handle = c.supervisor
        if c.state.status not in (RUNNING, PAUSED) or not handle:
            return
        if c.id not in self._exiting:
            recorded = await self._io(self.processes.exit_status, handle)
            # (The exit may have begun to be recorded, and its file removed,
            # while we read.)
            if recorded is None and c.id not in self._exiting and c.supervisor == handle:
                return
        deadline = time.monotonic() + KILL_WAIT
        while c.supervisor == handle and c.id in self._records:
            if c.id in self._exiting:
                async with self._lock(c.id):
                    pass  # _handle_exit records the exit under the lock
            elif time.monotonic() > deadline:
                raise Internal(f"container {c.id} exited, but its exit was not recorded within {KILL_WAIT:.0f}s")
            else:
                await asyncio.sleep(0.005)  # the monitor is about to hear of it

    async def start(self, ref: str) -> bool:
        """``POST /containers/{id}/start``.  False when it already runs
        (Docker's 304)."""
        c = self.resolve(ref)
        await self._settle_exit(c)
        async with self._lock(c.id):
            if c.state.status == PAUSED:
                raise FailedPrecondition("cannot start a paused container, try unpause instead")
            if c.state.status in (RUNNING,):
                return False
            if c.state.status == REMOVING:
                raise FailedPrecondition("container is marked for removal and cannot be started")
            if c.state.status == DEAD:
                raise FailedPrecondition(f"cannot start a dead container: {c.id}")
            self._cancel_task(c.id, "restart")
            c.manually_stopped = False
            c.restart_count = 0
            self._backoff.pop(c.id, None)
            try:
                await self._start_locked(c)
            except DockyardError:
                if c.host_config.get("AutoRemove"):
                    # As dockerd: a container that was to be removed at its
                    # exit is removed when it cannot start at all (`docker
                    # run --rm` waits for that removal, then reports).
                    try:
                        await self._remove_locked(c, force=True)
                    except DockyardError as exc:
                        log.error("removing container %s after its start failed: %s", c.id, exc)
                raise
        return True

    def _namespace_joins(self, c: Container) -> tuple[dict[str, str], Path | None]:
        paths: dict[str, str] = {}
        shm: Path | None = None
        hc = c.host_config
        for key, kind, ns, what in (("NetworkMode", "network", "net", "network"), ("IpcMode", "ipc", "ipc", "IPC"),
                                    ("PidMode", "pid", "pid", "PID")):
            ref = container_ref(hc.get(key) or "")
            if not ref:
                continue
            try:
                other = self.resolve(ref)
            except NotFound:
                raise NotFound(f"No such container: {ref}") from None
            if other.id == c.id:
                raise InvalidArgument(f"cannot join own {what} namespace")
            if other.state.status not in (RUNNING, PAUSED):
                raise FailedPrecondition(f"cannot join {what} of a non running container: {other.id}")
            pid = self.processes.pid(other.supervisor)
            paths[kind] = f"/proc/{pid}/ns/{ns}"
            if kind == "ipc":
                if other.host_config.get("IpcMode") != "shareable":
                    raise FailedPrecondition("non-shareable IPC (hint: use IpcMode:shareable for the donor "
                                             "container)")
                shm = self._dir(other) / "shm"
        return paths, shm

    def _prepare_bundle(self, c: Container) -> tuple[Path, dict[str, Any]]:
        """Mount the rootfs and write config.json; return (bundle, spec)."""
        paths, shm = self._namespace_joins(c)
        cdir = self._dir(c)
        if not etc_files_intact(cdir):
            write_etc_files(cdir, c.config, c.host_config, c.id)
        self._ensure_rootfs_mounted(c)
        try:
            if c.host_config.get("IpcMode") == "shareable":
                shm = self._ensure_shm(c)
            annotations = {"org.dockyard.container.name": c.bare_name}
            init_binary = self.init_binary
            if c.host_config.get("Init") and not init_binary:
                if c.runtime != "native":
                    raise FailedPrecondition("Init needs docker-init (tini) on the host; none was found")
                # The native runtime's own init (an opt-in annotation).
                annotations["org.dockyard.init"] = "true"
            config = c.config
            etc_dir = cdir
            donor_ref = container_ref(network_mode(c.host_config))
            if donor_ref:
                # Sharing a network namespace means sharing its name and its
                # /etc/hosts and resolv.conf (Docker does the same).
                donor = self.resolve(donor_ref)
                etc_dir = self._dir(donor)
                config = dict(c.config, Hostname=donor.config.get("Hostname") or donor.short_id,
                              Domainname=donor.config.get("Domainname") or "")
            ctx = SpecContext(
                container_id=c.id, rootfs=self._rootfs(c), host=self.host,
                hostname_path=etc_dir / "hostname", hosts_path=etc_dir / "hosts",
                resolv_conf_path=etc_dir / "resolv.conf",
                cgroup_parent=self.cgroup_parent, namespace_paths=paths, shm_path=shm,
                default_seccomp=_default_seccomp, init_binary=init_binary, annotations=annotations)
            spec = build_spec(config, c.host_config, ctx)
            # Rebuilt at every start: no fsync.
            atomic_write(cdir / "config.json", json.dumps(spec, separators=(",", ":")), durable=False)
        except BaseException:
            self._unmount_rootfs(c)
            raise
        return cdir, spec

    async def _start_locked(self, c: Container) -> None:
        # The runtime's move of the init into its cgroup waits for an RCU
        # grace period unless one passed just before: let that wait run
        # beside the bundle's preparation and the supervisor's spawn.
        with self._cgroup_warmer.held():
            await self._spawn_locked(c)

    async def _spawn_locked(self, c: Container) -> None:
        log_config = c.host_config.get("LogConfig") or {}
        pending = [p for p in self._pending_attaches.pop(c.id, []) if not p.closed]
        tty = bool(c.config.get("Tty"))
        # The bundle is made (rootfs mounted, config.json written) by the
        # backend's call of prepare, while the supervisor is forked and set
        # up: the two overlap.
        bundle_error: list[DockyardError] = []

        def prepare() -> None:
            try:
                self._prepare_bundle(c)
            except DockyardError as exc:
                bundle_error.append(exc)
                raise

        request = SpawnRequest(
            container_id=c.id, bundle=self._dir(c), runtime=c.runtime, runtime_root=self.runtime_root / c.runtime,
            state_dir=self._dir(c) / "supervisor",
            log=self._log_spec(c, log_config),
            tty=tty, open_stdin=bool(c.config.get("OpenStdin")),
            # As dockerd: a TTY's input is never closed when a client lets
            # go (StdinOnce applies without a TTY only), so `run -it`
            # survives a detach.
            stdin_once=bool(c.config.get("StdinOnce")) and not tty,
            console_size=_console_size(c.host_config.get("ConsoleSize")),
            cgroups_path=cgroups_path(c.host_config, self.cgroup_parent, c.id), start=not pending)
        handle: dict[str, Any] | None = None
        try:
            handle = await self._io(self.processes.spawn, request, prepare)
            if pending:
                await self._connect_pending(handle, pending)
        except DockyardError as exc:
            if bundle_error:
                # Nothing ran: the sessions wait for the next start, as
                # before a start that fails this early.
                self._pending_attaches[c.id] = pending + self._pending_attaches.get(c.id, [])
                self._set_state(c, error=str(bundle_error[0]))
                raise bundle_error[0] from None
            for p in pending:
                p.fail()
            if handle is not None:
                await self._abandon(c, handle)
            await self._io(self._unmount_rootfs, c)
            error = _start_error(exc)
            self._set_state(c, status=EXITED if c.has_been_started else CREATED, error=error.message,
                            exit_code=_exit_code_for(exc), pid=0)
            raise error from None
        c.supervisor = handle
        c.has_been_started = True
        health = Health() if health_settings(c.config.get("Healthcheck")) is not None else None
        c.state = State(status=RUNNING, pid=self.processes.pid(handle), started_at=format_time(), health=health)
        self._save(c)
        self._emit(c, "start")
        self._watch_init(c)
        self._start_task(c.id, "monitor", self._monitor(c.id, dict(handle)))
        if health is not None:
            self._start_task(c.id, "health", self._health_loop(c.id))

    def _watch_init(self, c: Container) -> None:
        """Unmount the rootfs as soon as the container's init dies, beside
        the supervisor's own work at the exit (the runtime's delete, the
        exit record): recording the exit then finds it done or under way.
        The host's mount of the rootfs serves no process of a dead
        container (they see their own mount namespace's)."""
        pid = c.state.pid
        try:
            fd = os.pidfd_open(pid)
        except OSError:
            return  # gone already: the exit's record unmounts
        loop = asyncio.get_running_loop()

        def died() -> None:
            self._unwatch_init(c.id)
            if self._closed:
                return
            if c.id not in self._early_unmounts and c.state.pid == pid and c.id in self._records:
                self._early_unmounts[c.id] = self._io(self._unmount_rootfs, c)

        self._unwatch_init(c.id)
        self._init_watches[c.id] = fd
        loop.add_reader(fd, died)

    def _unwatch_init(self, cid: str) -> None:
        fd = self._init_watches.pop(cid, None)
        if fd is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(fd)
            os.close(fd)

    async def _abandon(self, c: Container, handle: dict[str, Any]) -> None:
        """Undo a spawn whose start did not follow (connecting an attach or
        the start itself failed): kill the created container, let its
        supervisor record that, forget it."""
        await self._io(self._signal, c, signal_mod.SIGKILL, all_processes=True)
        try:
            await asyncio.wait_for(self.processes.wait_exit(handle), KILL_WAIT)
        except (asyncio.TimeoutError, DockyardError, OSError) as exc:
            log.error("container %s: its half-started run did not end: %s", c.id, exc)
            return
        with contextlib.suppress(DockyardError, OSError):
            await self._io(self.processes.release, handle)

    async def _connect_pending(self, handle: dict[str, Any], pending: list[_PendingAttach]) -> None:
        """Connect the sessions waiting for this run and start it: the last
        one's attach carries the start (one round trip fewer on the path of
        every `docker run`); with none left, the start goes alone."""
        from .supervised import open_async
        live = [p for p in pending if not p.closed]
        for i, p in enumerate(live):
            stream = await self._io(self.processes.attach, handle, stdin=p.stdin, stdout=p.stdout,
                                    stderr=p.stderr, start=i == len(live) - 1)
            p.connect(open_async(stream))
        if not live:
            await self._io(self.processes.start, handle)

    # ------------------------------------------------------------------ exits

    async def _monitor(self, cid: str, handle: dict[str, Any]) -> None:
        status = await self.processes.wait_exit(handle)
        await self._handle_exit(cid, status, handle)

    async def _handle_exit(self, cid: str, status: ExitStatus, handle: dict[str, Any] | None) -> None:
        c = self._records.get(cid)
        if c is None:
            return
        self._exiting.add(cid)
        try:
            await self._record_exit(c, status, handle)
        finally:
            self._exiting.discard(cid)

    async def _record_exit(self, c: Container, status: ExitStatus, handle: dict[str, Any] | None) -> None:
        cid = c.id
        async with self._lock(cid):
            if handle is not None and c.supervisor and c.supervisor != handle:
                return  # an older run's exit, already handled
            self._cancel_task(cid, "health")
            c.supervisor = {}
            self._unwatch_init(cid)
            early = self._early_unmounts.pop(cid, None)
            if early is not None:
                with contextlib.suppress(Exception):
                    await early  # the unmount below then finds nothing left
            await self._io(self._release_run, c, handle)
            # The supervisor's clock for both ends of the run: the daemon
            # notes the start after the runtime's answer, which a short
            # command can already have outlived.
            started_at = status.started_at or c.state.started_at
            started = parse_time(started_at)
            ran_for = time.time() - started if started else 0.0
            finished = status.finished_at or format_time()
            policy = parse_restart_policy(c.host_config.get("RestartPolicy"))
            restart = False
            removing = c.state.status == REMOVING
            if not c.manually_stopped and not removing and not self._closed:
                if policy.name in ("always", "unless-stopped"):
                    restart = True
                elif policy.name == "on-failure" and status.exit_code != 0:
                    restart = policy.maximum_retry_count == 0 or c.restart_count < policy.maximum_retry_count
            # The health log stays for inspect; the probe stops with the run.
            health = c.state.health
            c.state = State(status=RESTARTING if restart else (REMOVING if removing else EXITED),
                            exit_code=status.exit_code, oom_killed=status.oom_killed, error=status.error,
                            started_at=started_at, finished_at=finished, health=health)
            self._save(c)
            if status.oom_killed:
                self._emit(c, "oom")
            self._emit(c, "die", exitCode=str(status.exit_code),
                       execDuration=str(int(ran_for)))
            self._notify(self._exit_waiters, cid, c.state)
            self._wake_log_followers(cid)
            if restart:
                if ran_for >= BACKOFF_RESET_AFTER or cid not in self._backoff:
                    delay = BACKOFF_START
                else:
                    delay = min(self._backoff[cid] * 2, BACKOFF_MAX)
                self._backoff[cid] = delay
                self._start_task(cid, "restart", self._restart_later(cid, delay))
                return
        if c.host_config.get("AutoRemove") and not removing:
            self._start_task(cid, "autoremove", self._auto_remove(cid))

    def _release_run(self, c: Container, handle: dict[str, Any] | None) -> None:
        """The blocking part of recording an exit, in one trip to the pool:
        forget the supervisor's files, unmount the rootfs."""
        if handle:
            with contextlib.suppress(DockyardError, OSError):
                self.processes.release(handle)
        self._unmount_rootfs(c)

    async def _auto_remove(self, cid: str) -> None:
        c = self._records.get(cid)
        if c is None:
            return
        async with self._lock(cid):
            if c.state.status in (EXITED, CREATED, DEAD):
                await self._remove_locked(c, force=False)

    async def _restart_later(self, cid: str, delay: float) -> None:
        await asyncio.sleep(delay)
        c = self._records.get(cid)
        if c is None:
            return
        async with self._lock(cid):
            if c.manually_stopped or c.state.status not in (RESTARTING, EXITED, CREATED):
                return
            c.restart_count += 1
            try:
                await self._start_locked(c)
            except DockyardError as exc:
                log.error("restarting container %s: %s", cid, exc)
                policy = parse_restart_policy(c.host_config.get("RestartPolicy"))
                retry = policy.name in ("always", "unless-stopped") or (
                    policy.name == "on-failure" and (policy.maximum_retry_count == 0
                                                     or c.restart_count < policy.maximum_retry_count))
                if retry and not self._closed:
                    delay = min(self._backoff.get(cid, BACKOFF_START) * 2, BACKOFF_MAX)
                    self._backoff[cid] = delay
                    self._set_state(c, status=RESTARTING)
                    self._start_task(cid, "restart", self._restart_later(cid, delay))
                else:
                    self._set_state(c, status=EXITED)

    async def _wait_exit(self, c: Container, timeout: float | None) -> bool:
        """Wait until the current run of ``c`` is recorded as exited; False
        on timeout.  The caller registers before signalling (see
        ``_exit_future``)."""
        fut = self._exit_future(c)
        return await self._await_future(fut, timeout)

    def _exit_future(self, c: Container) -> asyncio.Future:
        fut = asyncio.get_running_loop().create_future()
        if not c.state.running or c.state.status == RESTARTING and not c.supervisor:
            fut.set_result(c.state)
        else:
            self._exit_waiters.setdefault(c.id, []).append(fut)
        return fut

    @staticmethod
    async def _await_future(fut: asyncio.Future, timeout: float | None) -> bool:
        try:
            await asyncio.wait_for(asyncio.shield(fut), timeout)
            return True
        except asyncio.TimeoutError:
            return False

    # ------------------------------------------------------------------ stop / kill / restart

    def _signal(self, c: Container, sig: int, *, all_processes: bool = False) -> None:
        rt = self._runtime(c.runtime)
        try:
            rt.kill(c.id, sig, all=all_processes)
        except NotFound:
            pass  # already gone: the monitor records the exit
        except FailedPrecondition:
            pass

    def _thaw(self, c: Container) -> None:
        with contextlib.suppress(DockyardError):
            self._runtime(c.runtime).resume(c.id)

    async def _kill_and_wait(self, c: Container, sig: int, timeout: float) -> None:
        fut = self._exit_future(c)
        if fut.done():
            return
        paused = c.state.status == PAUSED
        await self._io(self._signal, c, sig)
        if paused:
            await self._io(self._thaw, c)
        if await self._await_future(fut, None if timeout < 0 else timeout):
            return
        await self._io(self._signal, c, signal_mod.SIGKILL, all_processes=True)
        if not await self._await_future(fut, KILL_WAIT):
            raise Internal(f"container {c.id} did not exit {KILL_WAIT:.0f}s after SIGKILL")

    async def stop(self, ref: str, *, timeout: int | None = None, signal: str | int | None = None) -> bool:
        """``POST /containers/{id}/stop``.  False when not running (304)."""
        c = self.resolve(ref)
        sig = parse_signal(signal) if signal not in (None, "") else parse_signal(
            c.config.get("StopSignal") or "SIGTERM")
        async with self._lock(c.id):
            if c.state.status == RESTARTING and not c.supervisor:
                # Waiting to be restarted: cancelling the restart is the stop.
                self._cancel_task(c.id, "restart")
                c.manually_stopped = True
                self._set_state(c, status=EXITED)
                self._emit(c, "stop")
                return True
            if not c.state.running:
                return False
            c.manually_stopped = True
            self._save(c)
        t = timeout if timeout is not None else c.config.get("StopTimeout")
        t = DEFAULT_STOP_TIMEOUT if t is None else t
        self._emit(c, "kill", signal=str(sig))
        await self._kill_and_wait(c, sig, float(t))
        self._emit(c, "stop")
        return True

    async def kill(self, ref: str, signal: str | int = "SIGKILL") -> None:
        """``POST /containers/{id}/kill``."""
        # The signal first: dockerd refuses a bad one before it looks the
        # container up (so a bad signal to a missing container is a 400).
        sig = parse_signal(signal or "SIGKILL")
        c = self.resolve(ref)
        async with self._lock(c.id):
            if not c.state.running or (c.state.status == RESTARTING and not c.supervisor):
                raise FailedPrecondition(f"Container {c.id} is not running")
            stop_signal = parse_signal(c.config.get("StopSignal") or "SIGTERM")
            if sig in (signal_mod.SIGKILL, stop_signal):
                c.manually_stopped = True
                self._save(c)
            paused = c.state.status == PAUSED
        self._emit(c, "kill", signal=str(sig))
        await self._io(self._signal, c, sig, all_processes=sig == signal_mod.SIGKILL)
        if paused and sig in (signal_mod.SIGKILL, stop_signal):
            await self._io(self._thaw, c)

    async def restart(self, ref: str, *, timeout: int | None = None, signal: str | int | None = None) -> None:
        """``POST /containers/{id}/restart``."""
        c = self.resolve(ref)
        if c.state.running:
            await self.stop(ref, timeout=timeout, signal=signal)
        await self.start(c.id)
        self._emit(c, "restart")

    async def wait(self, ref: str, condition: str = "not-running") -> dict[str, Any]:
        """``POST /containers/{id}/wait``: ``{"StatusCode", "Error"}``."""
        if condition in ("", None):
            condition = "not-running"
        if condition not in ("not-running", "next-exit", "removed"):
            raise InvalidArgument(f"invalid condition: \"{condition}\"")
        c = self.resolve(ref)
        loop = asyncio.get_running_loop()
        if condition == "removed":
            fut = loop.create_future()
            self._removal_waiters.setdefault(c.id, []).append(fut)
            state = await fut
        elif condition == "next-exit" or c.state.running:
            fut = loop.create_future()
            self._exit_waiters.setdefault(c.id, []).append(fut)
            state = await fut
        else:
            return {"StatusCode": c.state.exit_code,
                    "Error": {"Message": c.state.error} if c.state.error else None}
        # A wait that blocked is answered without the start error dockerd
        # keeps in State.Error: `docker run --rm` with a missing command
        # would otherwise log "Error waiting for container: ..." beside
        # the start's own error, which dockerd's answer does not make it do.
        return {"StatusCode": state.exit_code, "Error": None}

    # ------------------------------------------------------------------ remove

    async def remove(self, ref: str, *, force: bool = False, volumes: bool = False, link: bool = False) -> None:
        """``DELETE /containers/{id}``."""
        if link:
            raise InvalidArgument("Conflict, cannot remove the default link name of the container")
        c = self.resolve(ref)
        if c.state.status in (RUNNING, PAUSED, RESTARTING):
            if not force:
                what = {PAUSED: "paused", RESTARTING: "restarting"}.get(c.state.status, "running")
                hint = "unpause the container before stopping or force remove" if what == "paused" else \
                    "stop the container before removing or force remove"
                raise FailedPrecondition(f"cannot remove container \"{c.name}\": container is {what}: {hint}")
            async with self._lock(c.id):
                c.manually_stopped = True
                self._cancel_task(c.id, "restart")
                self._save(c)
            if c.supervisor:
                await self._kill_and_wait(c, signal_mod.SIGKILL, 0)
        async with self._lock(c.id):
            if c.id not in self._records:
                return  # AutoRemove got there first
            if c.state.status == REMOVING and not force:
                raise FailedPrecondition(f"removal of container {c.id} is already in progress")
            await self._remove_locked(c, force=force)

    async def _remove_locked(self, c: Container, *, force: bool) -> None:
        self._cancel_task(c.id, "restart")
        self._cancel_task(c.id, "health")
        c.state = c.state.replace(status=REMOVING)
        self._save(c)
        if c.supervisor:
            with contextlib.suppress(DockyardError, OSError):
                await self._io(self.processes.release, c.supervisor)
        await self._io(self._remove_runtime_state_and_files, c)
        self.db.delete(c.id)
        self._records.pop(c.id, None)
        self._locks.pop(c.id, None)
        for exec_id in [e.id for e in self._execs.values() if e.container_id == c.id]:
            del self._execs[exec_id]
        for p in self._pending_attaches.pop(c.id, []):
            p.fail()
        self._backoff.pop(c.id, None)
        for key in [k for k in self._tasks if k[0] == c.id and k[1] != "autoremove"]:
            self._cancel_task(*key)
        self._emit(c, "destroy")
        self._notify(self._exit_waiters, c.id, c.state)
        self._notify(self._removal_waiters, c.id, c.state)
        self._wake_log_followers(c.id)

    def _remove_runtime_state_and_files(self, c: Container) -> None:
        with contextlib.suppress(DockyardError):
            self._runtime(c.runtime).delete(c.id, force=True)
        self._remove_files(c)

    # ------------------------------------------------------------------ pause / rename / update

    async def pause(self, ref: str) -> None:
        c = self.resolve(ref)
        async with self._lock(c.id):
            if c.state.status == PAUSED:
                raise FailedPrecondition(f"Container {c.id} is already paused")
            if c.state.status == RESTARTING:
                raise FailedPrecondition(f"Container {c.id} is restarting, wait until the container is running")
            if c.state.status != RUNNING:
                raise FailedPrecondition(f"Container {c.id} is not running")
            await self._io(self._runtime(c.runtime).pause, c.id)
            self._set_state(c, status=PAUSED)
            self._emit(c, "pause")

    async def unpause(self, ref: str) -> None:
        c = self.resolve(ref)
        async with self._lock(c.id):
            if c.state.status != PAUSED:
                raise FailedPrecondition(f"Container {c.id} is not paused")
            await self._io(self._runtime(c.runtime).resume, c.id)
            self._set_state(c, status=RUNNING)
            self._emit(c, "unpause")

    async def rename(self, ref: str, new_name: str) -> None:
        # dockerd's order and words: empty, then lookup, then same name, then
        # the name's validity as its name reservation words it ("/x").
        if not new_name or not ref:
            raise InvalidArgument("Neither old nor new names may be empty")
        c = self.resolve(ref)
        wanted = new_name if new_name.startswith("/") else "/" + new_name
        async with self._lock(c.id):
            if wanted == c.name:
                raise InvalidArgument("Renaming a container with the same name as its current name")
            try:
                new = check_name(new_name)
            except InvalidArgument:
                raise InvalidArgument(f"Error when allocating new name: Invalid container name ({wanted}), "
                                      f"only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed") from None
            old = c.name
            try:
                self.db.rename(c, new)
            except AlreadyExists as exc:
                raise AlreadyExists(f"Error when allocating new name: {exc}") from None
            self._emit(c, "rename", oldName=old)

    async def update(self, ref: str, resources: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /containers/{id}/update``: resources live through the
        cgroup, and RestartPolicy."""
        c = self.resolve(ref)
        body = dict(resources or {})
        warnings: list[str] = []
        allowed = {"BlkioWeight", "CpuShares", "CpuPeriod", "CpuQuota", "CpuRealtimePeriod", "CpuRealtimeRuntime",
                   "CpusetCpus", "CpusetMems", "Memory", "MemoryReservation", "MemorySwap", "NanoCpus",
                   "PidsLimit", "KernelMemory", "RestartPolicy", "BlkioWeightDevice", "BlkioDeviceReadBps",
                   "BlkioDeviceWriteBps", "BlkioDeviceReadIOps", "BlkioDeviceWriteIOps", "MemorySwappiness",
                   "OomKillDisable", "Ulimits", "Devices", "DeviceCgroupRules", "DeviceRequests", "CgroupParent",
                   "CpuCount", "CpuPercent", "IOMaximumIOps", "IOMaximumBandwidth"}
        for key in body:
            if key not in allowed:
                raise InvalidArgument(f"Cannot update container {c.id}: unknown field {key!r}")
        async with self._lock(c.id):
            hc = dict(c.host_config)
            changed = {k: v for k, v in body.items() if k != "RestartPolicy" and v not in (None, 0, "", [])
                       or k == "PidsLimit" and v is not None}
            new_hc = dict(hc)
            new_hc.update(changed)
            # Checked before the container is looked at, so worded as
            # dockerd's create checks (no "Cannot update container" prefix).
            validate_resources(new_hc, self.host, warnings, update=True)
            # dockerd compares a new Memory with the MemorySwap already set,
            # also when that is 0 (never set) or -1: `update --memory` alone
            # on a container created without a limit is refused (409), and
            # `--memory-swap -1` (or a value) is the way through.
            if "Memory" in changed and not body.get("MemorySwap") \
                    and changed["Memory"] > (hc.get("MemorySwap") or 0):
                raise FailedPrecondition(f"Cannot update container {c.id}: Memory limit should be smaller than "
                                         f"already set memoryswap limit, update the memoryswap at the same time")
            # The docker CLI always sends a RestartPolicy, with an empty
            # Name when --restart is not given: that keeps the policy set
            # (dockerd changes it only for a named one).
            wanted_policy = body.get("RestartPolicy")
            if wanted_policy is not None and not (isinstance(wanted_policy, dict) and not wanted_policy.get("Name")):
                policy = parse_restart_policy(body["RestartPolicy"])
                if new_hc.get("AutoRemove") and not policy.is_none:
                    raise InvalidArgument("Restart policy cannot be updated because AutoRemove is enabled for "
                                          "the container")
                new_hc["RestartPolicy"] = policy.to_json()
            if c.state.running and c.state.status != RESTARTING:
                from .spec import _resources
                res = _resources(new_hc, [])
                res.pop("devices", None)
                if new_hc.get("PidsLimit") == -1:
                    res["pids"] = {"limit": -1}
                await self._io(self._apply_resources, c, res)
            c.host_config = new_hc
            self._save(c)
            self._emit(c, "update")
        # null when there is nothing to say, as dockerd's update answers
        return {"Warnings": warnings or None}

    def _cgroup(self, c: Container):
        from ..runtime.cgroups import open_cgroup
        parent = c.host_config.get("CgroupParent") or self.cgroup_parent
        return open_cgroup(f"/{parent.strip('/')}/{c.id}", c.id)

    def _apply_resources(self, c: Container, resources: dict[str, Any]) -> None:
        try:
            self._cgroup(c).set(resources)
        except DockyardError as exc:
            raise type(exc)(f"Cannot update container {c.id}: {exc}") from None

    # ------------------------------------------------------------------ inspect / list / prune

    def _sizes(self, c: Container) -> tuple[int | None, int | None]:
        upper = None
        with contextlib.suppress(DockyardError):
            upper = next((m.option("upperdir") for m in self.store.snapshotter.mounts(c.snapshot_key)
                          if m.option("upperdir")), None)
        if upper:
            # dockerd's rule (files' sizes, directories not counted), not
            # the snapshotter's disk usage
            from ..image.diff import mount_point_stubs
            size_rw = content_size(upper, mount_point_stubs(upper))
        else:
            try:
                usage = self.store.snapshotter.usage(c.snapshot_key)
            except DockyardError:
                return None, None
            size_rw = int(getattr(usage, "size", 0))
        try:
            image_size = self.images.get(c.image_id).size
        except DockyardError:
            image_size = 0
        return size_rw, size_rw + image_size

    def _exec_ids(self, c: Container) -> list[str]:
        """Docker's ExecIDs: the container's execs that have not finished."""
        return [e.id for e in self._execs.values() if e.container_id == c.id and e.finished_at is None]

    async def inspect(self, ref: str, *, size: bool = False) -> dict[str, Any]:
        c = self.resolve(ref)
        size_rw = size_root = None
        if size:
            size_rw, size_root = await self._io(self._sizes, c)
        graph = await self._io(self._graph_driver, c)
        return inspect_json(c, exec_ids=self._exec_ids(c), graph_driver=graph, size_rw=size_rw,
                            size_root_fs=size_root)

    def _graph_driver(self, c: Container) -> dict[str, Any]:
        data: dict[str, str] = {}
        sn = self.store.snapshotter
        with contextlib.suppress(Exception):
            for m in sn.mounts(c.snapshot_key):
                for key in ("lowerdir", "upperdir", "workdir"):
                    value = m.option(key)
                    if value:
                        data[{"lowerdir": "LowerDir", "upperdir": "UpperDir", "workdir": "WorkDir"}[key]] = value
        data["MergedDir"] = str(self._rootfs(c))
        return {"Name": "overlay2", "Data": data}

    def _image_matches(self, c: Container, ref: str) -> bool:
        try:
            image = self.images.resolve(ref)
        except DockyardError:
            return False
        seen = set()
        current: str | None = c.image_id
        while current and current not in seen:
            if current == image.id:
                return True
            seen.add(current)
            try:
                current = self.images.get(current).parent
            except DockyardError:
                break
        return False

    async def list(self, *, all: bool = False, limit: int = -1, size: bool = False,
                   filters: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """``GET /containers/json``."""
        flt = ListFilter(filters, resolve=self.resolve, image_matches=self._image_matches)
        show_all = all or flt.wants_all or (limit is not None and limit > 0)
        records = sorted(self._records.values(), key=lambda c: parse_time(c.created), reverse=True)
        listed = []
        for c in records:
            if not show_all and not c.state.running:
                continue
            # The ancestor filter reads image records: off the loop.
            matched = await self._io(flt.matches, c) if "ancestor" in flt.filters else flt.matches(c)
            if not matched:
                continue
            listed.append(c)
            if limit is not None and limit > 0 and len(listed) >= limit:
                break
        shown = await self._io(self._shown_images, listed) if listed else {}
        result = []
        for c in listed:
            size_rw = size_root = None
            if size:
                size_rw, size_root = await self._io(self._sizes, c)
            result.append(summary_json(c, size_rw=size_rw, size_root_fs=size_root, image=shown[c.id]))
        return result

    async def prune(self, filters: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """``POST /containers/prune``: remove stopped containers."""
        f = normalize_filters(filters)
        for key in f:
            if key not in PRUNE_FILTERS:
                raise InvalidArgument(f"invalid filter '{key}'")
        until = min((parse_until(v) for v in f.get("until", [])), default=None)
        deleted, reclaimed = [], 0
        for c in list(self._records.values()):
            if c.state.status not in (EXITED, CREATED, DEAD):
                continue
            if until is not None and parse_time(c.created) >= until:
                continue
            if "label" in f and not match_labels(c.labels, f["label"]):
                continue
            if "label!" in f and any(match_labels(c.labels, [item]) for item in f["label!"]):
                continue
            size_rw, _ = await self._io(self._sizes, c)
            try:
                await self.remove(c.id)
            except DockyardError as exc:
                log.warning("prune: removing %s: %s", c.id, exc)
                continue
            deleted.append(c.id)
            reclaimed += size_rw or 0
        return {"ContainersDeleted": deleted or None, "SpaceReclaimed": reclaimed}

    # ------------------------------------------------------------------ top / stats

    def _running(self, ref: str) -> Container:
        c = self.resolve(ref)
        if not c.state.running or (c.state.status == RESTARTING and not c.supervisor):
            raise FailedPrecondition(f"Container {c.id} is not running")
        return c

    def _pids(self, c: Container) -> list[int]:
        try:
            return self._runtime(c.runtime).ps(c.id)
        except DockyardError:
            return self._cgroup(c).procs()

    async def top(self, ref: str, ps_args: str = "") -> dict[str, Any]:
        """``GET /containers/{id}/top``."""
        from .top import top
        c = self._running(ref)
        if c.state.status == RESTARTING:
            raise FailedPrecondition(f"Container {c.id} is restarting, wait until the container is running")
        pids = await self._io(self._pids, c)
        result = await self._io(top, pids, ps_args)
        self._emit(c, "top")
        return result

    def _stats_sample(self, c: Container):
        try:
            return self._cgroup(c).stats()
        except DockyardError:
            return None

    async def stats(self, ref: str, *, stream: bool = True, one_shot: bool = False) -> AsyncIterator[dict[str, Any]]:
        """``GET /containers/{id}/stats``: an async iterator of Docker stats
        documents, one per second while ``stream``; ends when the container
        stops."""
        c = self.resolve(ref)
        if not c.state.running:
            yield stats_mod.zero_document(c.id, c.name)
            return
        previous: dict[str, Any] | None = None
        preread = ZERO_TIME
        if not stream and not one_shot:
            # Docker's non-stream answer carries a real precpu sample taken
            # a second before.
            sample = await self._io(self._stats_sample, c)
            doc = stats_mod.stats_document(container_id=c.id, name=c.name, read=format_time(), preread=preread,
                                           sample=sample, system_usage=stats_mod.system_cpu_usage(),
                                           previous=None)
            previous, preread = doc["cpu_stats"], doc["read"]
            await asyncio.sleep(1.0)
        while True:
            if c.id not in self._records or not c.state.running:
                return
            sample = await self._io(self._stats_sample, c)
            now = format_time()
            doc = stats_mod.stats_document(container_id=c.id, name=c.name, read=now, preread=preread,
                                           sample=sample, system_usage=stats_mod.system_cpu_usage(),
                                           previous=previous)
            yield doc
            if not stream:
                return
            previous, preread = doc["cpu_stats"], now
            await asyncio.sleep(1.0)

    # ------------------------------------------------------------------ logs

    def _log_spec(self, c: Container, log_config: Mapping[str, Any]) -> LogSpec:
        """The log driver and options for the supervisor; json-file's also
        carry the container's extra attributes (labels/env chosen by the
        options), which dockerd writes into each entry."""
        from .. import logs as logs_mod
        driver = log_config.get("Type") or self.default_log_driver
        options = dict(log_config.get("Config") or {})
        if driver == "json-file":
            attrs = logs_mod.extra_attributes(options, c.config.get("Labels"), c.config.get("Env"))
            if attrs:
                options[logs_mod.ATTRS_OPTION] = json.dumps(attrs)
        return LogSpec(driver, c.log_path or None, options)

    async def logs(self, ref: str, *, follow: bool = False, stdout: bool = True, stderr: bool = True,
                   since: float | str = 0, until: float | str = 0, timestamps: bool = False,
                   tail: str | int = "all", details: bool = False) -> AsyncIterator[tuple[str, bytes]]:
        """``GET /containers/{id}/logs``: ``(stream, bytes)`` pairs, each a
        log line as ``docker logs`` prints it (with its timestamp prefix
        when asked, and its attributes with ``details``).  With ``follow``,
        ends when the container stops.
        ``since``/``until``: unix seconds (a string keeps nanoseconds
        exact) or RFC 3339; ``tail``: a count or "all"."""
        from .. import logs as logs_mod
        c = self.resolve(ref)
        if not (stdout or stderr):
            raise InvalidArgument("Bad parameters: you must choose at least one stream")
        log_config = c.host_config.get("LogConfig") or {}
        driver = log_config.get("Type") or self.default_log_driver
        if driver == "none" or not c.log_path:
            raise FailedPrecondition("configured logging driver does not support reading")
        if tail in (None, "", "all"):
            tail_n = None
        else:
            try:
                tail_n = int(tail)
            except (TypeError, ValueError):
                # dockerd reads a tail it cannot parse as "all", and so do
                # the scripts written against it (`logs --tail x` works).
                tail_n = -1
            if tail_n < 0:
                tail_n = None
        reader = logs_mod.open_reader(driver, c.log_path, dict(log_config.get("Config") or {}))
        since_ns = timestamp_ns(since)
        until_ns = timestamp_ns(until)
        wanted = {s for s, on in (("stdout", stdout), ("stderr", stderr)) if on}
        stop_flag = {"stop": False}
        run_id = c.state.started_at
        # Set at the run's end, at removal, or when our consumer goes: the
        # reader's wait between polls returns then.
        wake = threading.Event()

        def should_stop() -> bool:
            cur = self._records.get(c.id)
            return stop_flag["stop"] or cur is None or not cur.state.running or cur.state.started_at != run_id \
                or self._closed

        following = follow and c.state.running
        if following:
            self._log_followers.setdefault(c.id, set()).add(wake)

        def pump(put: Callable[[Any], None]) -> None:
            for entry in reader.read(since=since_ns, until=until_ns, tail=tail_n, follow=following,
                                     stop=should_stop, poll_interval=self.log_poll_interval, wait=wake.wait):
                if entry.stream in wanted:
                    put((entry.stream, entry.render(timestamps, details)))

        def consumer_gone() -> None:
            stop_flag["stop"] = True
            wake.set()
            followers = self._log_followers.get(c.id)
            if followers is not None:
                followers.discard(wake)
                if not followers:
                    del self._log_followers[c.id]

        # Closed with this generator, not when the collector finds it.
        async with contextlib.aclosing(_thread_items(pump, self._stream_pool, maxsize=256,
                                                     on_close=consumer_gone)) as items:
            async for item in items:
                yield item

    # ------------------------------------------------------------------ attach / exec

    async def attach(self, ref: str, *, stdin: bool = False, stdout: bool = True, stderr: bool = True,
                     stream: bool = True, logs: bool = False, detach_keys: str | None = None) -> StdioSession:
        """``POST /containers/{id}/attach``: a session whose ``output()``
        yields ``(1|2, bytes)`` (the log first with ``logs``, then live
        output with ``stream``) and whose ``write()`` feeds stdin until the
        detach keys are typed."""
        c = self.resolve(ref)
        keys = parse_detach_keys(detach_keys)
        if not (stdout or stderr or stdin):
            raise InvalidArgument("Bad parameters: you must choose at least one stream")
        if c.state.status == PAUSED:
            raise FailedPrecondition(f"container {c.id} is paused, unpause the container before attach")
        want_stdin = stdin and bool(c.config.get("OpenStdin"))
        live: Any = None
        if stream:
            await self._settle_exit(c)
        if stream and c.state.running and c.supervisor:
            from .supervised import open_async
            live = open_async(await self._io(self.processes.attach, c.supervisor, stdin=want_stdin,
                                             stdout=stdout, stderr=stderr))
        elif stream:
            # Not running: the session joins the next start, from its first byte.
            live = _PendingAttach(want_stdin, stdout, stderr)
            self._pending_attaches.setdefault(c.id, []).append(live)
        replay = None
        if logs and c.log_path and (c.host_config.get("LogConfig") or {}).get("Type", "") != "none":
            replay = self.logs(c.id, stdout=stdout, stderr=stderr)
        self._emit(c, "attach")
        return StdioSession(tty=bool(c.config.get("Tty")), live=live, replay=replay, detach_keys=keys,
                            stdin=want_stdin)

    async def resize(self, ref: str, height: int, width: int) -> None:
        """``POST /containers/{id}/resize``."""
        c = self._running(ref)
        if height < 0 or width < 0:
            raise InvalidArgument("invalid terminal size")
        await self._io(self.processes.resize, c.supervisor, height, width)
        self._emit(c, "resize", height=str(height), width=str(width))

    def _container_process(self, c: Container) -> dict[str, Any]:
        try:
            with open(self._dir(c) / "config.json") as f:
                return json.load(f).get("process") or {}
        except (OSError, ValueError):
            raise Internal(f"container {c.id}: its config.json is unreadable") from None

    def _check_exec_target(self, c: Container, ref: str | None = None) -> None:
        if c.state.status == PAUSED:
            # dockerd names the container as the client did here (only here)
            raise FailedPrecondition(f"Container {ref or c.id} is paused, unpause the container before exec")
        if c.state.status == RESTARTING or (c.state.running and not c.supervisor):
            raise FailedPrecondition(f"Container {c.id} is restarting, wait until the container is running")
        if not c.state.running:
            raise FailedPrecondition(f"Container {c.id} is not running")

    async def exec_create(self, ref: str, config: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /containers/{id}/exec``: ``{"Id"}``."""
        c = self.resolve(ref)
        self._check_exec_target(c, ref)
        validated = validate_exec_config(dict(config or {}))
        record = ExecRecord(id=new_exec_id(), container_id=c.id, config=validated)
        self._forget_finished_execs()
        self._execs[record.id] = record
        self._emit(c, f"exec_create: {record.command_line}", execID=record.id)
        return {"Id": record.id}

    def _forget_finished_execs(self, container_id: str | None = None) -> None:
        """Drop the records of execs that finished more than
        ``exec_record_ttl`` ago, and beyond the newest
        ``exec_history_limit`` finished ones of ``container_id``; running
        and not yet started execs stay."""
        horizon = time.monotonic() - self.exec_record_ttl
        finished_here = []
        for record in list(self._execs.values()):
            if record.finished_at is None:
                continue
            if record.finished_at < horizon:
                del self._execs[record.id]
            elif record.container_id == container_id:
                finished_here.append(record)
        finished_here.sort(key=lambda r: r.finished_at)
        for record in finished_here[:max(0, len(finished_here) - self.exec_history_limit)]:
            del self._execs[record.id]

    def _exec_finished(self, record: ExecRecord, exit_code: int | None) -> None:
        record.finish(exit_code)
        self._forget_finished_execs(record.container_id)

    def _exec(self, exec_id: str) -> ExecRecord:
        record = self._execs.get(exec_id)
        if record is None:
            raise NotFound(f"No such exec instance: {exec_id}")
        return record

    async def exec_inspect(self, exec_id: str) -> dict[str, Any]:
        """``GET /exec/{id}/json``."""
        record = self._exec(exec_id)
        if record.running and record.extra.get("detached"):
            await self._refresh_detached(record)
        return record.to_json()

    async def exec_start(self, exec_id: str, *, detach: bool = False, tty: bool | None = None,
                         console_size: list[int] | tuple[int, int] | None = None) -> StdioSession | None:
        """``POST /exec/{id}/start``: the I/O session, or None when detached
        (``exec_inspect`` then tracks it)."""
        record = self._exec(exec_id)
        if record.running:
            raise FailedPrecondition(f"Error: Exec command {exec_id} is already running")
        if record.started:
            raise FailedPrecondition(f"Error: Exec command {exec_id} has already run")
        c = self._records.get(record.container_id)
        if c is None:
            raise NotFound(f"No such container: {record.container_id}")
        self._check_exec_target(c)
        config = record.config
        use_tty = bool(config.get("Tty")) if tty is None else bool(tty)
        size = _console_size(list(console_size) if console_size else config.get("ConsoleSize"))
        fs_root = self._fs_root(c)
        try:
            process = await self._io(exec_process, self._container_process(c), config, fs_root,
                                     self.host.available_capabilities())
        except DockyardError:
            # e.g. an unknown user: the exec has run and failed, 126 as
            # dockerd reports it (the docker CLI exits with it)
            record.started = True
            self._exec_finished(record, 126)
            raise
        record.started = True
        want_stdin = bool(config.get("AttachStdin")) and not detach
        try:
            result = await self._io(self.processes.exec, c.supervisor, process, exec_id=record.id,
                                             tty=use_tty, stdin=want_stdin, detach=detach, console_size=size)
        except DockyardError as exc:
            self._exec_finished(record, 126)
            # containerd's and runc's words around the cause, as dockerd
            # passes them on
            message = f"OCI runtime exec failed: exec failed: unable to start container process: {exc.message}: unknown"
            if "not a directory" in exc.message:
                # dockerd's hint, appended to the runtime's words (its
                # translateContainerdStartErr); wording only, not a class
                message += (": Are you trying to mount a directory onto a file (or vice-versa)? "
                            "Check if the specified host path exists and is the expected type")
            raise type(exc)(message) from None
        record.running = True
        self._emit(c, f"exec_start: {record.command_line}", execID=record.id)
        if detach:
            record.pid = int(result)
            record.extra["detached"] = True
            self._start_task(record.id, "exec", self._watch_detached(record))
            return None
        from .supervised import open_async
        live = open_async(result)
        record.pid = int(live.header.get("pid") or 0)

        def finished(code: int | None) -> None:
            self._exec_finished(record, code)
            cur = self._records.get(record.container_id)
            if cur is not None:
                self._emit(cur, "exec_die", execID=record.id, exitCode=str(record.exit_code))

        def detached() -> None:
            # The client let go; the exec runs on and is tracked as detached.
            record.extra["detached"] = True
            self._start_task(record.id, "exec", self._watch_detached(record))

        return StdioSession(tty=use_tty, live=live, replay=None,
                            detach_keys=parse_detach_keys(config.get("DetachKeys")), stdin=want_stdin,
                            on_end=finished, on_detach=detached)

    async def _refresh_detached(self, record: ExecRecord) -> None:
        c = self._records.get(record.container_id)
        if c is None or not c.supervisor:
            self._exec_finished(record, None)
            return
        try:
            doc = await self._io(self.processes.exec_inspect, c.supervisor, record.id)
        except DockyardError:
            return
        if not doc.get("running", True):
            self._exec_finished(record, doc.get("exit_code"))

    async def _watch_detached(self, record: ExecRecord) -> None:
        while record.running:
            await asyncio.sleep(0.2)
            await self._refresh_detached(record)
        c = self._records.get(record.container_id)
        if c is not None:
            self._emit(c, "exec_die", execID=record.id, exitCode=str(record.exit_code))

    async def exec_resize(self, exec_id: str, height: int, width: int) -> None:
        """``POST /exec/{id}/resize``."""
        record = self._exec(exec_id)
        if not record.running:
            raise FailedPrecondition(f"Exec {exec_id} is not running")
        c = self._running(record.container_id)
        await self._io(self.processes.resize, c.supervisor, height, width, record.id)

    async def _exec_probe(self, cid: str, argv: list[str], timeout: float) -> tuple[int, str]:
        """Run a healthcheck probe: (exit code, combined output).  Raises
        asyncio.TimeoutError when it outlives ``timeout`` (it is killed)."""
        import signal as sig_mod
        c = self._records.get(cid)
        if c is None or not c.supervisor:
            raise FailedPrecondition(f"Container {cid} is not running")
        process = await self._io(exec_process, self._container_process(c), {"Cmd": argv},
                                          self._fs_root(c))
        stream = await self._io(self.processes.exec, c.supervisor, process, exec_id=new_exec_id(),
                                tty=False, stdin=False, detach=False, record=False)
        from .supervised import open_async
        live = open_async(stream)
        chunks: list[bytes] = []

        async def collect() -> int | None:
            while (frame := await live.read()) is not None:
                chunks.append(frame[1])
            return live.exit_code

        try:
            code = await asyncio.wait_for(collect(), timeout)
        except asyncio.TimeoutError:
            pid = int(live.header.get("pid") or 0)
            if pid:
                with contextlib.suppress(OSError):
                    os.kill(pid, sig_mod.SIGKILL)
            raise
        finally:
            live.close()
        return (code if code is not None else -1), b"".join(chunks).decode(errors="replace")

    # ------------------------------------------------------------------ health

    async def _health_loop(self, cid: str) -> None:
        settings = None
        c = self._records.get(cid)
        if c is not None:
            settings = health_settings(c.config.get("Healthcheck"))
        if settings is None:
            return
        from .health import run_health_checks
        await run_health_checks(self, cid, settings)

    # ------------------------------------------------------------------ filesystem

    def _fs_root(self, c: Container) -> Path:
        """A host path showing the container's filesystem: its mount
        namespace's root while running (bind mounts included), else the
        mounted rootfs (the caller holds the lock and mounted it)."""
        if c.state.running and c.supervisor:
            pid = self.processes.pid(c.supervisor)
            root = Path(f"/proc/{pid}/root")
            if os.path.exists(root):
                return root
        return self._rootfs(c)

    @contextlib.asynccontextmanager
    async def _filesystem(self, c: Container) -> AsyncIterator[Path]:
        """The container's filesystem for a cp operation: live while running,
        mounted for the operation while stopped."""
        async with self._lock(c.id):
            if c.state.running and c.supervisor:
                yield self._fs_root(c)
                return
            from ..linux.mount import is_mountpoint
            already = await self._io(is_mountpoint, self._rootfs(c))
            if not already:
                await self._io(self._ensure_rootfs_mounted, c)
            try:
                yield self._rootfs(c)
            finally:
                if not already:
                    await self._io(self._unmount_rootfs, c)

    # The archive calls name the container in their errors as the client
    # did (ID or name), as dockerd does: "Could not find the file /x in
    # container <ref>".
    def _etc_overlays(self, c: Container, root: Path) -> dict[str, str]:
        """For a stopped container's rootfs: its own /etc/hostname, hosts
        and resolv.conf in place of the empty mount points, as it sees
        them while running (and as dockerd serves them), unless a user
        mount covers the path.  A container never started shows the empty
        mount points, as dockerd's (its files are made at the start)."""
        if c.state.running or c.state.started_at == ZERO_TIME:
            return {}
        from .fsutil import resolve_in_root
        taken = {point.destination for point in parse_host_mounts(c.host_config)}
        cdir = self._dir(c)
        overlays = {}
        for name in ("hostname", "hosts", "resolv.conf"):
            dest = f"/etc/{name}"
            if dest in taken or not (cdir / name).is_file():
                continue
            overlays[os.fspath(resolve_in_root(root, dest))] = str(cdir / name)
        return overlays

    async def archive_stat(self, ref: str, path: str) -> archive_mod.PathStat:
        """``HEAD /containers/{id}/archive``."""
        c = self.resolve(ref)
        async with self._filesystem(c) as root:
            return await self._io(archive_mod.stat_path, root, path, ref, self._etc_overlays(c, root))

    async def archive_get(self, ref: str, path: str) -> tuple[archive_mod.PathStat, AsyncIterator[bytes]]:
        """``GET /containers/{id}/archive``: the path's stat and the tar
        stream (the filesystem stays available until the stream ends)."""
        c = self.resolve(ref)
        ctx = self._filesystem(c)
        root = await ctx.__aenter__()
        try:
            overlays = self._etc_overlays(c, root)
            stat = await self._io(archive_mod.stat_path, root, path, ref, overlays)
        except BaseException:
            await ctx.__aexit__(None, None, None)
            raise

        async def chunks() -> AsyncIterator[bytes]:
            try:
                async for chunk in _thread_stream(lambda out: archive_mod.write_archive(root, path, out, ref, overlays),
                                                 self._stream_pool):
                    yield chunk
            finally:
                await ctx.__aexit__(None, None, None)

        return stat, chunks()

    async def archive_put(self, ref: str, path: str, source: Any, *, no_overwrite_dir_non_dir: bool = False,
                          copy_uid_gid: bool = False) -> None:
        """``PUT /containers/{id}/archive``: extract a tar (a file object,
        bytes, or an async iterator of bytes) into the directory ``path``."""
        c = self.resolve(ref)
        async with self._filesystem(c) as root:
            reader = await _as_reader(source)
            try:
                await self._io(archive_mod.extract_archive, root, path, reader.file, ref,
                                        read_only=bool(c.host_config.get("ReadonlyRootfs")),
                                        copy_uid_gid=copy_uid_gid,
                                        no_overwrite_dir_non_dir=no_overwrite_dir_non_dir)
            finally:
                await reader.close()

    async def changes(self, ref: str) -> list[dict[str, Any]]:
        """``GET /containers/{id}/changes``: ``[{"Path", "Kind"}]`` with Kind
        0 modified, 1 added, 2 deleted."""
        c = self.resolve(ref)
        found = await self._io(self.image_service.changes, c.snapshot_key)
        return [{"Path": ch.path if isinstance(ch.path, str) else os.fsdecode(ch.path), "Kind": int(ch.kind)}
                for ch in found]

    async def export(self, ref: str) -> AsyncIterator[bytes]:
        """``GET /containers/{id}/export``: the flattened filesystem as a tar."""
        c = self.resolve(ref)
        self._emit(c, "export")
        async for chunk in _thread_stream(lambda out: self.image_service.export(c.snapshot_key, out),
                                         self._stream_pool):
            yield chunk

    async def commit(self, ref: str, *, repo: str = "", tag: str = "", comment: str = "", author: str = "",
                     changes: list[str] | tuple[str, ...] = (), pause: bool = True,
                     config: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """``POST /commit``: the container's writable layer as a new image
        over its own image; ``{"Id": image_id}``."""
        from ..oci.image import ContainerConfig
        c = self.resolve(ref)
        keys = ("User", "ExposedPorts", "Env", "Entrypoint", "Cmd", "Volumes", "WorkingDir", "Labels",
                "StopSignal", "Healthcheck", "OnBuild", "Shell")
        doc = {k: v for k, v in c.config.items() if k in keys and v not in (None, "", {}, [])}
        for key, value in (config or {}).items():
            if key in keys and value not in (None, "", {}, []):
                doc[key] = value
        if isinstance(changes, str):
            changes = [changes]
        reference = None
        if repo:
            reference = f"{repo}:{tag}" if tag else repo
        elif tag:
            raise InvalidArgument("tag requires a repository name (repo)")
        new_config = ContainerConfig.from_json(doc)
        paused_here = False
        async with self._lock(c.id):
            if pause and c.state.status == RUNNING:
                await self._io(self._runtime(c.runtime).pause, c.id)
                paused_here = True
            try:
                image_id = await self._io(
                    self.image_service.commit, c.snapshot_key, base_image=c.image_id, config=new_config,
                    changes=list(changes), author=author, comment=comment, container_id=c.id,
                    reference=reference, created_by=" ".join(c.config.get("Cmd") or ()))
            finally:
                if paused_here:
                    await self._io(self._runtime(c.runtime).resume, c.id)
        if reference:
            from ..oci.reference import parse_reference
            reference = parse_reference(reference).tagged_or_latest().familiar
            # dockerd announces the new name first, then the commit
            if self._publish is not None:
                self._publish("image", "tag", str(image_id), {"name": reference})
        self._emit(c, "commit", comment=comment, imageID=str(image_id), imageRef=reference or "")
        return {"Id": str(image_id)}

    def image_users(self, image_id: Any) -> list[Any]:
        """The ``in_use`` feed for ImageService.remove: containers using
        ``image_id``."""
        from ..image.service import ImageUser
        key = str(image_id)
        return [ImageUser(container_id=c.id, running=c.state.running)
                for c in list(self._records.values()) if c.image_id == key]


# ---------------------------------------------------------------------- stream helpers

class _Cancelled(Exception):
    """The consumer of a thread stream went away."""


async def _thread_items(produce: Callable[[Callable[[Any], None]], None], executor: ThreadPoolExecutor, *,
                        maxsize: int, on_close: Callable[[], None] | None = None) -> AsyncIterator[Any]:
    """Run ``produce(put)`` in a thread of ``executor``; yield each item it
    puts as it puts it, and re-raise what it raises.  The producer waits
    while the consumer is behind (back-pressure); the consumer waits on the
    loop, holding no thread.  When the consumer stops, ``on_close`` runs
    (to wake a producer that waits for something else) and the producer's
    next ``put`` ends it."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue(maxsize=maxsize)
    done = object()
    state = {"cancelled": False}

    def put(item: Any) -> None:
        if state["cancelled"]:
            raise _Cancelled()
        asyncio.run_coroutine_threadsafe(queue.put(item), loop).result()

    def run() -> None:
        try:
            produce(put)
            put(done)
        except _Cancelled:
            pass
        except BaseException as exc:  # noqa: BLE001 - re-raised in the consumer
            with contextlib.suppress(_Cancelled, RuntimeError):
                put(exc)

    worker = loop.run_in_executor(executor, run)
    try:
        while True:
            item = await queue.get()
            if item is done:
                break
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        state["cancelled"] = True
        if on_close is not None:
            on_close()
        # Drain so a producer blocked on a full queue can finish.
        while not worker.done():
            with contextlib.suppress(asyncio.QueueEmpty):
                queue.get_nowait()
            await asyncio.sleep(0.01)


async def _thread_stream(produce: Callable[[Any], Any], executor: ThreadPoolExecutor,
                         chunk_size: int = 256 * 1024) -> AsyncIterator[bytes]:
    """Run ``produce(out)`` in a thread of ``executor``, writing to a
    file-like ``out``; yield what it writes, in chunks, as it writes it
    (see :func:`_thread_items`)."""

    class _Out:
        def __init__(self, put: Callable[[Any], None]) -> None:
            self.put = put
            self.buf = bytearray()

        def write(self, data: bytes) -> int:
            self.buf += data
            if len(self.buf) >= chunk_size:
                self.put(bytes(self.buf))
                self.buf.clear()
            return len(data)

        def flush(self) -> None:
            pass

    def run(put: Callable[[Any], None]) -> None:
        out = _Out(put)
        produce(out)
        if out.buf:
            put(bytes(out.buf))

    async with contextlib.aclosing(_thread_items(run, executor, maxsize=8)) as chunks:
        async for chunk in chunks:
            yield chunk


class _Reader:
    def __init__(self, file: Any, closer: Callable[[], Any] | None = None) -> None:
        self.file = file
        self._closer = closer

    async def close(self) -> None:
        if self._closer is not None:
            result = self._closer()
            if asyncio.iscoroutine(result):
                await result


async def _as_reader(source: Any) -> _Reader:
    """A blocking file object over ``source``: bytes, a file object, or an
    async iterator of bytes (spooled to a temporary file first)."""
    import io
    import tempfile
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _Reader(io.BytesIO(bytes(source)))
    if hasattr(source, "read"):
        return _Reader(source)
    if hasattr(source, "__aiter__"):
        spool = tempfile.SpooledTemporaryFile(max_size=8 << 20)
        async for chunk in source:
            spool.write(chunk)  # memory until 8 MiB, then a temp file write
        spool.seek(0)
        return _Reader(spool, spool.close)
    raise InvalidArgument("archive body must be bytes, a file or a stream of bytes")


class _PendingAttach:
    """An attach waiting for the container's next start; becomes the live
    stream when the service connects it (or ends if the start fails or the
    container goes)."""

    def __init__(self, stdin: bool, stdout: bool, stderr: bool) -> None:
        self.stdin, self.stdout, self.stderr = stdin, stdout, stderr
        self.future: asyncio.Future = asyncio.get_running_loop().create_future()
        self.closed = False

    def connect(self, stream: Any) -> None:
        if self.future.done():
            stream.close()
        else:
            self.future.set_result(stream)

    def fail(self) -> None:
        if not self.future.done():
            self.future.set_result(None)


class StdioSession:
    """A live connection to a container's (attach) or an exec's stdio.

    ``output()`` yields ``(stream, bytes)`` with stream 1 (stdout) or 2
    (stderr; with a tty everything is 1) until the process ends or the
    session is closed; ``write()`` feeds stdin and returns False once the
    detach keys were typed (the session is then detached: output stops,
    the process keeps running); ``exit_code`` is set at the end of an exec.
    """

    def __init__(self, *, tty: bool, live: Any, replay: AsyncIterator[tuple[str, bytes]] | None,
                 detach_keys: bytes, stdin: bool, on_end: Callable[[int | None], None] | None = None,
                 on_detach: Callable[[], None] | None = None) -> None:
        self.tty = tty
        self._on_detach = on_detach
        self.stdin = stdin
        self._live = live
        self._replay = replay
        self._scanner = DetachScanner(detach_keys)
        self._on_end = on_end
        self.detached = False
        self.exit_code: int | None = None
        self._ended = False
        #: the client ended its stdin before the container started: the
        #: end goes to the container once the session is connected
        self._stdin_ended_early = False

    async def _resolve(self) -> Any:
        """The live stream, once a pending attach is connected."""
        if isinstance(self._live, _PendingAttach):
            pending = self._live
            self._live = await pending.future
            if self._stdin_ended_early and self._live is not None:
                self._stdin_ended_early = False
                await self._live.close_stdin()
        return self._live

    async def output(self) -> AsyncIterator[tuple[int, bytes]]:
        if self._replay is not None:
            async for stream, data in self._replay:
                yield (2 if stream == "stderr" and not self.tty else 1), data
        await self._resolve()
        if self._live is None:
            self._end(None)
            return
        while not self.detached:
            frame = await self._live.read()
            if frame is None:
                break
            yield frame
        self._end(self._live.exit_code)

    def _end(self, code: int | None) -> None:
        if self._ended:
            return
        self._ended = True
        self.exit_code = code
        if self._on_end is not None and not self.detached:
            self._on_end(code)

    async def write(self, data: bytes) -> bool:
        if not self.stdin:
            return not self.detached
        await self._resolve()
        if self._live is None:
            return not self.detached
        passed, detached = self._scanner.feed(data)
        if passed:
            await self._live.write(passed)
        if detached:
            self.detached = True
            self._live.close()
            if self._on_detach is not None:
                self._on_detach()
            return False
        return True

    async def close_stdin(self) -> None:
        if not self.stdin:
            return
        if isinstance(self._live, _PendingAttach):
            # Not started yet; waiting here would keep a client that leaves
            # before the start attached to the next run.
            self._stdin_ended_early = True
            return
        if self._live is not None:
            await self._live.close_stdin()

    async def resize(self, height: int, width: int) -> None:
        if not isinstance(self._live, _PendingAttach) and self._live is not None:
            await self._live.resize(height, width)

    async def close(self) -> None:
        if isinstance(self._live, _PendingAttach):
            self._live.closed = True
            self._live.fail()
            self._live = None
        elif self._live is not None:
            self._live.close()
