"""The cgroup interface, the values it returns, and the cgroupfs file I/O
both backends share.

Terms:

cgroup path
    The container's place in the hierarchy, as OCI ``linux.cgroupsPath``
    names it, normalised to an absolute path relative to the hierarchy root
    (``/dockyard/<id>``).  On cgroup v1 the same path exists once in every
    controller hierarchy; on cgroup v2 once in the unified hierarchy.
hierarchy root
    Where cgroupfs is mounted.  v1: a directory holding one mount per
    controller (``/sys/fs/cgroup/memory``, ...); v2: the cgroup2 mount.
setting
    One write of one value to one control file, planned from OCI
    ``linux.resources`` by :mod:`.resources`.

Lifecycle, as the runtime drives it::

    cg = open_cgroup(spec["linux"].get("cgroupsPath", ""), container_id)
    with provision(cg):            # create(); on error: kill_all + destroy
        cg.set(spec["linux"].get("resources", {}))
        cg.add(init_pid)
    ...
    cg.add(exec_pid)               # exec joins the same cgroup
    cg.freeze(); cg.thaw()         # pause / resume
    cg.stats()                     # docker stats
    cg.kill_all(signal.SIGKILL); cg.destroy()   # delete

Control files are written with one ``write(2)`` each, because the kernel
parses each write as one value.  Nothing here is atomic in the
temp-file-and-rename sense: cgroupfs files are not files on a disk.
"""

from __future__ import annotations

import errno
import os
import signal
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from types import MappingProxyType
from typing import Any, Literal, NamedTuple, Protocol, runtime_checkable

from dockyard.errors import FailedPrecondition, Internal, InvalidArgument, NotFound, Unavailable
from dockyard.runtime.lazylog import LazyLogger

log = LazyLogger("dockyard.runtime.cgroups")

Version = Literal["v1", "v2"]

#: Parent of containers whose cgroupsPath is empty or relative.
DEFAULT_PARENT = "dockyard"

#: How long destroy() keeps retrying rmdir while exiting tasks drain.
DESTROY_TIMEOUT = 2.0
#: How long freeze() waits for the kernel to report the cgroup frozen.
FREEZE_TIMEOUT = 5.0


# --------------------------------------------------------------------------
# Values
#
# NamedTuples rather than dataclasses: building a dataclass compiles its
# generated methods at import (~0.3 ms each), which every dockyard-runtime
# start and the supervisor zygote would pay.

#: the default of mapping fields: shared, so it must not be mutable
_EMPTY: Mapping = MappingProxyType({})


class CpuStats(NamedTuple):
    """CPU accounting of the cgroup and its descendants.

    All times are nanoseconds.  ``per_cpu`` is v1 only (cpuacct); on v2 it
    is empty.  Throttling fields stay 0 when the cpu controller is absent.
    """

    usage_total: int
    usage_user: int
    usage_system: int
    per_cpu: tuple[int, ...] = ()
    nr_periods: int = 0
    nr_throttled: int = 0
    throttled_time: int = 0


class MemoryStats(NamedTuple):
    """Memory accounting; all sizes in bytes.

    ``limit``/``swap_limit`` are ``None`` when unlimited.  ``swap_usage`` and
    ``swap_limit`` count swap alone (v1's memsw counters minus memory), and
    are ``None`` when the host does not account swap.  ``max_usage`` is the
    high-water mark (v1 max_usage_in_bytes, v2 memory.peak; ``None`` when the
    kernel lacks it).  ``failcnt`` counts hits of the limit (v1 failcnt, v2
    memory.events "max").  ``stat`` is memory.stat as read, for Docker's
    ``memory_stats.stats``.
    """

    usage: int
    max_usage: int | None
    limit: int | None
    swap_usage: int | None
    swap_limit: int | None
    failcnt: int
    oom_kill_count: int
    stat: Mapping[str, int] = _EMPTY


class PidsStats(NamedTuple):
    current: int
    limit: int | None  # None: no limit ("max")


class BlkioEntry(NamedTuple):
    """One per-device counter.  ``op`` is one of Read, Write, Sync, Async,
    Discard, Total (v1's names; v2's io.stat gives Read, Write, Discard and
    their Total)."""

    major: int
    minor: int
    op: str
    value: int


class BlkioStats(NamedTuple):
    io_service_bytes: tuple[BlkioEntry, ...] = ()  # bytes transferred
    io_serviced: tuple[BlkioEntry, ...] = ()       # I/O operations
    #: which hierarchy the numbers came from: v1's blkio controller has
    #: more counters (queued, merged, times) than v2's io.stat
    cgroup_version: int = 1


class HugetlbStats(NamedTuple):
    usage: int
    max_usage: int | None
    failcnt: int


class CgroupStats(NamedTuple):
    """What Docker's stats API needs.  A section is ``None`` when its
    controller is not available for this cgroup."""

    cpu: CpuStats | None
    memory: MemoryStats | None
    pids: PidsStats | None
    blkio: BlkioStats | None
    hugetlb: Mapping[str, HugetlbStats] = _EMPTY  # by page size ("2MB")


# --------------------------------------------------------------------------
# Interface


@runtime_checkable
class Cgroup(Protocol):
    """A container's cgroup on one host.  Implementations: ``CgroupV1`` and
    ``CgroupV2``; obtain one with ``open_cgroup``.

    Errors: ``InvalidArgument`` for bad resource values (the message names
    the OCI field), ``NotFound`` when adding to a cgroup that does not exist
    or a pid that is gone, ``FailedPrecondition`` when destroying a cgroup
    that still has processes, ``Unavailable`` when a needed controller is
    missing (the freezer) or the kernel does not finish freezing in time.
    A resource the host cannot enforce (a controller not mounted, a
    deprecated knob) is logged as a warning and skipped.
    """

    #: normalised cgroup path, e.g. "/dockyard/<id>"
    path: str
    version: Version
    #: this cgroup's directory in every hierarchy it spans (v1: one per
    #: mounted controller hierarchy, plus cgroup2 on hybrid hosts; v2: one)
    all_dirs: tuple[str, ...]

    def create(self) -> None:
        """Make the cgroup directory in every hierarchy; idempotent."""
        ...

    def set(self, resources: Mapping[str, Any]) -> None:
        """Apply OCI ``linux.resources``; validated entirely before any write."""
        ...

    def add(self, pid: int) -> None:
        """Move process ``pid`` (all its threads) into the cgroup."""
        ...

    def procs(self) -> list[int]:
        """Pids in the cgroup and its descendants, sorted."""
        ...

    def freeze(self) -> None: ...

    def thaw(self) -> None: ...

    def is_frozen(self) -> bool: ...

    def stats(self) -> CgroupStats: ...

    def oom_kill_count(self) -> int:
        """OOM kills in this cgroup since it was created."""
        ...

    def oom_event_fd(self) -> int | None:
        """An fd (close-on-exec, non-blocking; the caller closes it) that
        polls readable (POLLIN) when the cgroup may have seen an OOM kill;
        drain it with ``os.read(fd, 4096)`` and check ``oom_kill_count()``.
        v1: an eventfd registered on memory.oom_control (it also fires once
        when the cgroup is removed); v2: inotify on memory.events.  ``None``
        when the memory controller is not available."""
        ...

    def kill_all(self, sig: int) -> None:
        """Signal every process in the cgroup; does not wait for them."""
        ...

    def destroy(self) -> None:
        """Remove the cgroup everywhere (children first).  A missing
        cgroup is fine; remaining processes raise ``FailedPrecondition``."""
        ...

    def exists(self) -> bool: ...


@contextmanager
def provision(cgroup: Cgroup) -> Iterator[Cgroup]:
    """Create ``cgroup``; if the block raises, kill whatever was put in it
    and remove it, so a failed container create leaves no cgroup behind."""
    cgroup.create()
    try:
        yield cgroup
    except BaseException:
        try:
            cgroup.kill_all(signal.SIGKILL)
            cgroup.destroy()
        except Exception as cleanup_error:  # keep the original error; say what was left
            log.warning("cgroup %s: cleanup after failed create: %s", cgroup.path, cleanup_error)
        raise


# --------------------------------------------------------------------------
# Paths


def resolve_path(cgroups_path: str, container_id: str) -> str:
    """OCI ``linux.cgroupsPath`` -> a normalised absolute cgroup path.

    Absolute paths are taken relative to the hierarchy root; relative ones
    and the empty path go under ``/dockyard`` (the empty path becomes
    ``/dockyard/<container_id>``).  The systemd ``slice:prefix:name`` form
    is not supported.
    """
    if not isinstance(cgroups_path, str):
        raise InvalidArgument(f"linux.cgroupsPath must be a string, got {type(cgroups_path).__name__}")
    if ":" in cgroups_path:
        raise InvalidArgument(
            f"linux.cgroupsPath {cgroups_path!r}: the systemd slice:prefix:name form is not supported "
            "(use a cgroupfs path such as /dockyard/<id>)"
        )
    if "\0" in cgroups_path or "\n" in cgroups_path:
        raise InvalidArgument(f"linux.cgroupsPath {cgroups_path!r} contains a NUL or newline")
    if not cgroups_path:
        if not container_id or "/" in container_id or container_id in (".", ".."):
            raise InvalidArgument(f"container id {container_id!r} cannot name a cgroup")
        raw = f"/{DEFAULT_PARENT}/{container_id}"
    elif cgroups_path.startswith("/"):
        raw = cgroups_path
    else:
        raw = f"/{DEFAULT_PARENT}/{cgroups_path}"
    parts = [p for p in raw.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise InvalidArgument(f"linux.cgroupsPath {cgroups_path!r} must not contain '..'")
    if not parts:
        raise InvalidArgument(f"linux.cgroupsPath {cgroups_path!r} names the hierarchy root")
    return "/" + "/".join(parts)


# --------------------------------------------------------------------------
# cgroupfs file I/O


def read_text(path: str) -> str:
    """The whole file.  A cgroup removed between open and read answers
    ENODEV; that is reported as FileNotFoundError, which every caller
    already treats as "the cgroup is gone"."""
    try:
        # os.open/os.read: open() costs four more syscalls per file
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            data = os.read(fd, 1 << 16)
            if len(data) == 1 << 16:  # memory.stat and friends can be long
                chunks = [data]
                while chunk := os.read(fd, 1 << 16):
                    chunks.append(chunk)
                data = b"".join(chunks)
        finally:
            os.close(fd)
        return data.decode()
    except OSError as err:
        if err.errno == errno.ENODEV:
            raise FileNotFoundError(errno.ENOENT, "cgroup removed", path) from err
        raise


def read_int(path: str) -> int:
    return int(read_text(path).strip())


def read_optional(path: str) -> str | None:
    try:
        return read_text(path)
    except FileNotFoundError:
        return None


def write_text(path: str, value: str) -> None:
    """One write(2) of ``value``; cgroupfs parses each write as one value.
    O_TRUNC keeps plain-file stand-ins (test trees) exact; cgroupfs ignores it."""
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    except OSError as err:
        if err.errno == errno.ENODEV:  # removed after open: as read_text
            raise FileNotFoundError(errno.ENOENT, "cgroup removed", path) from err
        raise
    finally:
        os.close(fd)


def parse_flat_keyed(text: str) -> dict[str, int]:
    """``key value`` lines (memory.stat, cpu.stat, memory.events)."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                out[parts[0]] = int(parts[1])
            except ValueError:
                continue
    return out


def read_pids(path: str) -> list[int]:
    try:
        text = read_text(path)
    except FileNotFoundError:
        return []
    return [int(p) for p in text.split()]


def tree_procs(top: str) -> list[int]:
    """cgroup.procs of ``top`` and every cgroup below it."""
    pids: set[int] = set()
    stack = [top]
    while stack:
        d = stack.pop()
        pids.update(read_pids(d + "/cgroup.procs"))
        try:
            with os.scandir(d) as it:
                stack.extend(e.path for e in it if e.is_dir(follow_symlinks=False))
        except FileNotFoundError:
            continue
    return sorted(pids)


def _subdirs_bottom_up(top: str) -> list[str]:
    """``top`` and its descendants, deepest first (rmdir order)."""
    order: list[str] = []
    stack = [top]
    while stack:
        d = stack.pop()
        order.append(d)
        try:
            with os.scandir(d) as it:
                stack.extend(e.path for e in it if e.is_dir(follow_symlinks=False))
        except FileNotFoundError:
            continue
    order.sort(key=lambda p: p.count("/"), reverse=True)
    return order


def remove_tree(top: str, cgroup_path: str, deadline: float) -> None:
    """rmdir ``top`` and its children, retrying on EBUSY until ``deadline``
    (tasks that just exited keep a cgroup busy for a moment)."""
    # The common case, a leaf whose tasks are gone, needs one rmdir; the
    # walk is for children and tasks still exiting.
    try:
        os.rmdir(top)
        return
    except FileNotFoundError:
        return
    except OSError as err:
        if err.errno not in (errno.EBUSY, errno.ENOTEMPTY):
            raise Internal(f"removing cgroup {cgroup_path}: rmdir {top}: {err.strerror}") from err
    delay = 0.002
    for d in _subdirs_bottom_up(top):
        while True:
            try:
                os.rmdir(d)
                break
            except FileNotFoundError:
                break
            except OSError as err:
                if err.errno != errno.EBUSY:
                    raise Internal(f"removing cgroup {cgroup_path}: rmdir {d}: {err.strerror}") from err
                if time.monotonic() >= deadline:
                    left = tree_procs(d)
                    if left:
                        raise FailedPrecondition(
                            f"cgroup {cgroup_path} still has processes {left[:10]}; kill them before removing it"
                        ) from err
                    raise Unavailable(f"removing cgroup {cgroup_path}: {d} stays busy") from err
                time.sleep(delay)
                delay = min(delay * 2, 0.05)


# --------------------------------------------------------------------------
# Applying planned settings

#: How a kernel rejection of a write is reported, by errno.
_REJECTION: dict[int, type] = {
    errno.EINVAL: InvalidArgument,
    errno.ERANGE: InvalidArgument,
    errno.ENODEV: InvalidArgument,   # throttle/weight for a device that does not exist
    errno.ENXIO: InvalidArgument,
    errno.EBUSY: FailedPrecondition,  # v1 memory limit below current usage
    errno.ENOSPC: FailedPrecondition,
    errno.EPERM: FailedPrecondition,  # parent forbids (devices, rt runtime)
    errno.EACCES: FailedPrecondition,
}

#: errnos meaning "this host does not support that knob".
_UNSUPPORTED = {errno.ENOENT, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS}


def apply_settings(settings, dir_for: Callable[[str], str | None], cgroup_path: str) -> None:
    """Write planned settings in order.

    ``dir_for(controller)`` gives the directory holding that controller's
    files for this cgroup, or ``None`` when the controller is not there.
    Of a setting's alternative files the first that exists is written.
    """
    for s in settings:
        base = dir_for(s.controller)
        written = False
        if base is not None:
            for file, value in s.choices:
                path = f"{base}/{file}"
                if callable(value):
                    current = read_optional(path)
                    if current is None:
                        continue
                    value = value(current)
                try:
                    write_text(path, value)
                    written = True
                    break
                except OSError as err:
                    if err.errno in _UNSUPPORTED:
                        continue
                    if not s.strict:
                        log.warning("cgroup %s: linux.resources.%s: %s rejected %r (%s); ignored",
                                    cgroup_path, s.field, file, value, err.strerror)
                        written = True
                        break
                    kind = _REJECTION.get(err.errno, Internal)
                    raise kind(f"linux.resources.{s.field}: writing {value!r} to {file} of cgroup "
                               f"{cgroup_path}: {err.strerror}") from err
        if written:
            continue
        files = " or ".join(f for f, _ in s.choices)
        if s.missing == "error":
            raise InvalidArgument(f"linux.resources.{s.field}: {files} does not exist in cgroup {cgroup_path} "
                                  f"(controller {s.controller!r} not available or not enabled)")
        if s.missing == "warn":
            log.warning("cgroup %s: linux.resources.%s not applied: no %s here (the %s controller is not "
                        "available to this cgroup)", cgroup_path, s.field, files, s.controller)


def signal_each(cgroup: Cgroup, sig: int, *, has_freezer: bool, thaw_to_kill: bool) -> None:
    """Send ``sig`` to every process of ``cgroup`` one by one (where no
    ``cgroup.kill`` does it at once), frozen meanwhile when it has a
    freezer, so that no process forks past the loop.  It is thawed after,
    unless it was frozen before (a paused container stays paused), or
    always after a SIGKILL when ``thaw_to_kill`` (a task frozen by the v1
    freezer dies only once thawed)."""
    was_frozen = cgroup.is_frozen() if has_freezer else False
    froze = False
    if has_freezer:
        try:
            cgroup.freeze()
            froze = True
        except (Unavailable, NotFound):
            pass
    try:
        for pid in cgroup.procs():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
    finally:
        if froze and (not was_frozen or (thaw_to_kill and sig == signal.SIGKILL)):
            try:
                cgroup.thaw()
            except NotFound:
                pass
