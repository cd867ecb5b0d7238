"""inotify(7): a readable fd when a file changes.

cgroup v2 reports its events (``memory.events``, ``cgroup.events``) as
"file modified" notifications; a watch on such a file turns an OOM kill or
an emptied cgroup into an fd a supervisor can poll.
"""

from __future__ import annotations

import ctypes
import os

from .libc import check, libc

#: inotify event bits (linux/inotify.h) and inotify_init1 flags
IN_MODIFY = 0x00000002
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC


def inotify_watch(path: str | os.PathLike, mask: int = IN_MODIFY) -> int:
    """An inotify fd (non-blocking, close-on-exec) watching ``path``; it
    becomes readable when the watched event happens.  The caller closes it."""
    fd = check(libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC), "inotify_init1")
    try:
        check(libc.inotify_add_watch(fd, os.fsencode(path), ctypes.c_uint32(mask)), "inotify_add_watch",
              os.fsdecode(path))
    except BaseException:
        os.close(fd)
        raise
    return fd
