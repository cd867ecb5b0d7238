"""The container's filesystem: planned in the runtime, carried out in the
container's init before it execs.

:func:`plan_rootfs` turns the validated config into a :class:`RootfsPlan`
(flags parsed, device numbers computed, host cgroup paths found) in the
runtime process.  :func:`setup_rootfs` and :func:`finish_rootfs` run in
the forked init, inside its new mount namespace: they only call syscalls
and walk paths, never import or log.

Order (as runc does it): make ``/`` private (or what rootfsPropagation
says), bind the rootfs onto itself, each spec mount in order, default
devices and /dev symlinks when /dev is the runtime's own tmpfs; then,
after the createContainer hooks, pivot_root (or MS_MOVE+chroot), masked
and read-only paths, and a read-only root last.

Mount targets are resolved inside the rootfs: a symlink in the image is
followed as if the rootfs were ``/``, so ``/etc/x -> /../../host`` cannot
make a mount land outside it.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import NamedTuple

from ...linux import mount as m
from ...linux.mount import (MNT_DETACH, MS_BIND, MS_MOVE, MS_PRIVATE, MS_RDONLY, MS_REC, MS_REMOUNT, MS_SLAVE,
                            locked_flags, mount, parse_options, pivot_root, umount)
from .config import Config, Mount

#: Devices every container gets on its /dev tmpfs (name, major, minor).
DEFAULT_DEVICES: tuple[tuple[str, int, int], ...] = (
    ("/dev/null", 1, 3), ("/dev/zero", 1, 5), ("/dev/full", 1, 7),
    ("/dev/random", 1, 8), ("/dev/urandom", 1, 9), ("/dev/tty", 5, 0),
)

#: /dev symlinks: link -> target.
DEV_SYMLINKS: tuple[tuple[str, str], ...] = (
    ("/dev/fd", "/proc/self/fd"), ("/dev/stdin", "/proc/self/fd/0"),
    ("/dev/stdout", "/proc/self/fd/1"), ("/dev/stderr", "/proc/self/fd/2"),
)

_DEVICE_KINDS = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}
_MAX_SYMLINKS = 255


class MountStep(NamedTuple):
    """One spec mount, parsed: ``kind`` is "bind", "cgroup" or "fs"."""

    destination: str
    kind: str
    source: str
    fstype: str | None
    flags: int
    propagation: int
    data: str | None
    recursive: bool = False
    # cgroup v1 binds: (subdirectory name, host source directory)
    cgroup_binds: tuple[tuple[str, str], ...] = ()


class DeviceNode(NamedTuple):
    path: str
    mode: int      # S_IF* | permission bits
    rdev: int
    uid: int
    gid: int


class RootfsPlan(NamedTuple):
    rootfs: str
    propagation: int
    steps: tuple[MountStep, ...]
    setup_dev: bool
    devices: tuple[DeviceNode, ...]
    bind_devices: bool          # in a user namespace: bind host nodes, mknod is not allowed
    dev_core: bool
    no_pivot: bool
    masked_paths: tuple[str, ...]
    readonly_paths: tuple[str, ...]
    readonly_root: bool


# --------------------------------------------------------------------------
# planning (runtime side)


def _host_cgroup_v1_mounts() -> list[tuple[str, str]]:
    """(directory name under /sys/fs/cgroup, host mount point) of every
    cgroup v1 hierarchy, plus the unified one on a hybrid host."""
    found = []
    for info in m.mountinfo():
        if info.fstype == "cgroup":
            found.append((os.path.basename(info.mount_point), info.mount_point))
    return found


def _cgroup_step(mnt: Mount, cgroup_path: str) -> MountStep:
    parsed = parse_options(list(mnt.options))
    binds = tuple((name, f"{point}{cgroup_path}") for name, point in _host_cgroup_v1_mounts())
    if binds:
        # v1/hybrid: a tmpfs with one bind per hierarchy, each showing only
        # the container's own cgroup (what runc does without cgroupns).
        return MountStep(mnt.destination, "cgroup", "tmpfs", "tmpfs", parsed.flags,
                         parsed.propagation, "mode=755", cgroup_binds=binds)
    return MountStep(mnt.destination, "fs", "cgroup", "cgroup2", parsed.flags, parsed.propagation, None)


def plan_rootfs(config: Config, cgroup_path: str, *, no_pivot: bool = False) -> RootfsPlan:
    steps = []
    dev_bound = False
    for mnt in config.mounts:
        parsed = parse_options(list(mnt.options))
        if mnt.is_bind:
            source = mnt.source if mnt.source.startswith("/") else str(config.bundle / mnt.source)
            steps.append(MountStep(mnt.destination, "bind", source, None, parsed.flags & ~(MS_BIND | MS_REC),
                                   parsed.propagation, None, recursive="rbind" in mnt.options))
            if os.path.normpath(mnt.destination) == "/dev":
                dev_bound = True
        elif mnt.type == "cgroup":
            steps.append(_cgroup_step(mnt, cgroup_path))
        else:
            steps.append(MountStep(mnt.destination, "fs", mnt.source or mnt.type, mnt.type, parsed.flags,
                                   parsed.propagation, parsed.data or None))
    user_ns = config.namespace("user") is not None
    devices = [DeviceNode(path, stat.S_IFCHR | 0o666, os.makedev(major, minor), 0, 0)
               for path, major, minor in DEFAULT_DEVICES]
    defaults = {d.path for d in devices}
    for dev in config.devices:
        node = DeviceNode(dev.path, _DEVICE_KINDS[dev.type] | dev.file_mode, os.makedev(dev.major, dev.minor),
                          dev.uid, dev.gid)
        if dev.path in defaults:
            devices = [node if d.path == dev.path else d for d in devices]
        else:
            devices.append(node)
    return RootfsPlan(
        rootfs=str(config.root_path.resolve()),
        propagation=m.PROPAGATION_FLAGS.get(config.rootfs_propagation, MS_PRIVATE | MS_REC),
        steps=tuple(steps),
        setup_dev=not dev_bound,
        devices=tuple(devices),
        bind_devices=user_ns,
        dev_core=os.path.exists("/proc/kcore"),
        no_pivot=no_pivot,
        masked_paths=config.masked_paths,
        readonly_paths=config.readonly_paths,
        readonly_root=config.root_readonly,
    )


# --------------------------------------------------------------------------
# carrying out (container init side: no imports, no logging, no locks)


def resolve_in_root(root: str, path: str) -> str:
    """The host path of ``path`` inside ``root``, resolving symlinks as if
    ``root`` were ``/``: absolute links restart at ``root``, ``..`` stops at
    it.  Components that do not exist yet are kept as they are."""
    done: list[str] = []
    todo = [c for c in path.split("/") if c][::-1]
    links = 0
    while todo:
        comp = todo.pop()
        if comp == ".":
            continue
        if comp == "..":
            if done:
                done.pop()
            continue
        candidate = root + "/" + "/".join(done + [comp])
        try:
            st = os.lstat(candidate)
        except FileNotFoundError:
            done.append(comp)
            continue
        if stat.S_ISLNK(st.st_mode):
            links += 1
            if links > _MAX_SYMLINKS:
                raise OSError(errno.ELOOP, "too many levels of symbolic links", path)
            target = os.readlink(candidate)
            if target.startswith("/"):
                done = []
            todo.extend([c for c in target.split("/") if c][::-1])
        else:
            done.append(comp)
    return root + ("/" + "/".join(done) if done else "")


def _make_target(root: str, target: str, is_dir: bool) -> None:
    """Create the mount point (directories along the way), staying in root."""
    if os.path.lexists(target):
        return
    parent = os.path.dirname(target)
    if not os.path.isdir(parent):
        rel = parent[len(root):]
        cur = root
        for comp in [c for c in rel.split("/") if c]:
            cur = resolve_in_root(root, cur[len(root):] + "/" + comp)
            if not os.path.isdir(cur):
                os.mkdir(cur, 0o755)
    if is_dir:
        os.mkdir(target, 0o755)
    else:
        os.close(os.open(target, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))


def _bind(source: str, target: str, flags: int, recursive: bool, propagation: int) -> None:
    mount(source, target, None, MS_BIND | (MS_REC if recursive else 0))
    if flags:
        # Flags on a bind take a remount; carry the flags the kernel locked
        # (nodev, nosuid, ... in a user namespace) or the remount is refused.
        mount(source, target, None, MS_BIND | MS_REMOUNT | flags | locked_flags(target))
    if propagation:
        mount(None, target, None, propagation)


def _mount_step(root: str, step: MountStep) -> None:
    target = resolve_in_root(root, step.destination)
    if step.kind == "bind":
        _make_target(root, target, os.path.isdir(step.source))
        _bind(step.source, target, step.flags, step.recursive, step.propagation)
        return
    _make_target(root, target, True)
    if step.kind == "cgroup":
        # A writable tmpfs first (the hierarchy directories are made in it),
        # read-only afterwards if asked.
        mount(step.source, target, step.fstype, step.flags & ~MS_RDONLY, step.data)
        for name, source in step.cgroup_binds:
            sub = target + "/" + name
            os.mkdir(sub, 0o755)
            _bind(source, sub, step.flags, False, 0)
        if step.flags & MS_RDONLY:
            mount(None, target, None, MS_BIND | MS_REMOUNT | step.flags | locked_flags(target))
    else:
        try:
            mount(step.source, target, step.fstype, step.flags, step.data)
        except OSError as exc:
            # Without its own network namespace (sysfs) or in a user
            # namespace (mqueue, sysfs) the kernel refuses a new instance:
            # show the host's instead, as runc does.
            if exc.errno == errno.EPERM and step.fstype in ("sysfs", "mqueue"):
                host = "/sys" if step.fstype == "sysfs" else "/dev/mqueue"
                _bind(host, target, step.flags & MS_RDONLY, step.fstype == "sysfs", 0)
            else:
                raise
    if step.propagation:
        mount(None, target, None, step.propagation)


def _make_devices(root: str, plan: RootfsPlan) -> None:
    for dev in plan.devices:
        target = resolve_in_root(root, dev.path)
        if os.path.lexists(target):
            os.unlink(target)
        parent = os.path.dirname(target)
        if not os.path.isdir(parent):
            _make_target(root, parent, True)
        if plan.bind_devices:
            # mknod is not allowed in a user namespace: bind the host's node.
            os.close(os.open(target, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o000))
            mount(dev.path, target, None, MS_BIND)
        else:
            os.mknod(target, dev.mode, dev.rdev)
            os.chmod(target, stat.S_IMODE(dev.mode))
            if dev.uid or dev.gid:
                os.chown(target, dev.uid, dev.gid)


def _make_dev_links(root: str, plan: RootfsPlan) -> None:
    ptmx = root + "/dev/ptmx"
    if os.path.lexists(ptmx):
        os.unlink(ptmx)
    os.symlink("pts/ptmx", ptmx)
    links = DEV_SYMLINKS + ((("/dev/core", "/proc/kcore"),) if plan.dev_core else ())
    for link, target in links:
        path = root + link
        if not os.path.lexists(path):
            os.symlink(target, path)


def setup_rootfs(plan: RootfsPlan) -> None:
    """Everything before pivot_root.  Runs in the container's mount namespace."""
    root = plan.rootfs
    # Stop our mounts propagating to the host (private/slave), or honour
    # rootfsPropagation.
    mount(None, "/", None, plan.propagation)
    if plan.propagation & m.MS_SHARED:
        # pivot_root refuses a shared parent: keep the rootfs's own parent private.
        mount(None, os.path.dirname(root) or "/", None, MS_PRIVATE)
    mount(root, root, None, MS_BIND | MS_REC)
    for step in plan.steps:
        _mount_step(root, step)
    if plan.setup_dev:
        _make_devices(root, plan)
        _make_dev_links(root, plan)


def enter_rootfs(plan: RootfsPlan) -> None:
    """pivot_root into the rootfs and detach the old root; MS_MOVE+chroot
    when asked (no_pivot) or when pivot_root is impossible (rootfs on the
    initramfs)."""
    root = plan.rootfs
    if not plan.no_pivot:
        old = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
        new = os.open(root, os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fchdir(new)
            try:
                pivot_root(".", ".")
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise
            else:
                # The old root is now stacked under ".": make sure unmounting
                # it does not propagate to the host, then detach it.
                os.fchdir(old)
                mount(None, ".", None, MS_SLAVE | MS_REC)
                umount(".", MNT_DETACH)
                os.chdir("/")
                return
        finally:
            os.close(old)
            os.close(new)
    os.chdir(root)
    mount(root, "/", None, MS_MOVE)
    os.chroot(".")
    os.chdir("/")


def finish_rootfs(plan: RootfsPlan) -> None:
    """After pivot_root: masked paths, read-only paths, read-only root."""
    for path in plan.masked_paths:
        try:
            st = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            continue
        if stat.S_ISDIR(st.st_mode):
            mount("tmpfs", path, "tmpfs", MS_RDONLY, None)
        else:
            mount("/dev/null", path, None, MS_BIND)
    for path in plan.readonly_paths:
        if not os.path.exists(path):
            continue
        mount(path, path, None, MS_BIND | MS_REC)
        mount(path, path, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_REC | locked_flags(path))


def make_root_readonly() -> None:
    mount("/", "/", None, MS_BIND | MS_REMOUNT | MS_RDONLY | locked_flags("/"))
