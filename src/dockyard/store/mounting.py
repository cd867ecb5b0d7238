"""Perform the mounts a snapshotter describes.

The snapshotter returns :class:`~dockyard.store.snapshot.Mount` values and
never mounts; whoever needs the filesystem (the container service, the
image layer for a diff, a test) mounts them here::

    with mounted(sn.prepare(key, parent), rootfs):
        ...                                   # rootfs shows the snapshot
    # unmounted on every exit path

or, for long-lived mounts, ``mount_all(mounts, target)`` and later
``unmount(target)``.

Overlays of any depth mount (see :mod:`dockyard.linux.overlay`).  A read-
only bind (``bind`` + ``ro``) is made read-only with the remount that
bind mounts need.  ``unmount`` removes everything stacked on the target.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator, Sequence

from ..errors import Internal, InvalidArgument
from ..linux import mount as kmount
from ..linux import overlay as koverlay
from .snapshot import Mount

#: overlay parameters that name directories (handled apart from the rest)
_OVERLAY_DIRS = ("lowerdir", "upperdir", "workdir")


def mount_one(m: Mount, target: str | os.PathLike, overlay_strategy: str | None = None) -> None:
    """Mount a single description on ``target``; raises Internal naming the
    mount when the kernel refuses."""
    try:
        if m.type == "overlay":
            lowerdir = m.option("lowerdir")
            if not lowerdir:
                raise InvalidArgument(f"overlay mount without lowerdir: {m}")
            rest = [o for o in m.options if o.partition("=")[0] not in _OVERLAY_DIRS]
            koverlay.mount_overlay(target, lowerdir.split(":"), m.option("upperdir"), m.option("workdir"),
                                   rest, strategy=overlay_strategy)
        elif m.type == "bind" or "bind" in m.options or "rbind" in m.options:
            parsed = kmount.parse_options(list(m.options))
            flags = parsed.flags | kmount.MS_BIND
            kmount.mount(m.source, target, None, flags & ~kmount.MS_RDONLY)
            if flags & kmount.MS_RDONLY:
                # A bind ignores MS_RDONLY on creation; remount applies it.
                kmount.mount(None, target, None, kmount.MS_REMOUNT | kmount.MS_BIND | flags)
            if parsed.propagation:
                kmount.mount(None, target, None, parsed.propagation)
        else:
            parsed = kmount.parse_options(list(m.options))
            kmount.mount(m.source, target, m.type, parsed.flags, parsed.data or None)
    except OSError as exc:
        raise Internal(f"mounting {m.type} {m.source} on {target}: {exc.strerror or exc}") from exc


def mount_all(mounts: Sequence[Mount], target: str | os.PathLike, overlay_strategy: str | None = None) -> None:
    """Mount each description on ``target`` in order; on failure undo the
    ones already made."""
    done = 0
    try:
        for m in mounts:
            mount_one(m, target, overlay_strategy)
            done += 1
    except BaseException:
        for _ in range(done):
            with contextlib.suppress(OSError):
                kmount.umount(target, kmount.MNT_DETACH)
        raise


def unmount(target: str | os.PathLike, detach: bool = False) -> None:
    """Unmount everything mounted on ``target`` (stacked mounts included).
    Not mounted is fine.  ``detach`` uses MNT_DETACH (lazy) for busy ones."""
    flags = kmount.MNT_DETACH if detach else 0
    for _ in range(64):  # stacked mounts on one point; bounded, not forever
        try:
            kmount.umount(target, flags)
        except OSError as exc:
            if exc.errno in (22, 2):  # EINVAL: not a mount point; ENOENT
                return
            raise Internal(f"unmounting {target}: {exc.strerror or exc}") from exc
    raise Internal(f"unmounting {target}: still mounted after 64 unmounts")


@contextlib.contextmanager
def mounted(mounts: Sequence[Mount], target: str | os.PathLike | None = None,
            overlay_strategy: str | None = None) -> Iterator[Path]:
    """Mount for the duration of a ``with`` block.  Without ``target``, a
    temporary directory is made (and removed)."""
    made = None
    if target is None:
        made = tempfile.mkdtemp(prefix="dockyard-mount-")
        target = made
    try:
        mount_all(mounts, target, overlay_strategy)
        try:
            yield Path(target)
        finally:
            try:
                unmount(target)
            except Internal:
                unmount(target, detach=True)
    finally:
        if made is not None:
            with contextlib.suppress(OSError):
                os.rmdir(made)


__all__ = ["mount_one", "mount_all", "unmount", "mounted"]
