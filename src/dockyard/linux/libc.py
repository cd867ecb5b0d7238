"""The C library handle and errno-checked calls.

Every ctypes call in Dockyard goes through this module's ``libc`` with
``use_errno=True`` and :func:`check`, so a failing syscall becomes an
``OSError`` carrying errno and the path or operation that failed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def check(result: int, what: str, path: str | bytes | None = None) -> int:
    """Raise ``OSError(errno, ...)`` if a libc call returned -1."""
    if result == -1:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}", path)
    return result


def fsencode(path: str | os.PathLike | bytes | None) -> bytes | None:
    if path is None:
        return None
    return os.fsencode(path)
