"""Runtime implementations by name: ``native``, ``runc``, ``crun`` or the
absolute path of any runc-compatible binary.

The native runtime is imported only when asked for, so a caller that drives
runc (a supervisor, a test) does not pay for its imports.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from dockyard.errors import InvalidArgument, Unavailable

from .base import Runtime

#: Where each runtime keeps its state when the caller names no root.  Kept
#: apart from runc's and crun's own defaults (/run/runc, /run/crun) so that
#: Dockyard's containers never mix with those of another engine.
DEFAULT_ROOT = Path("/run/dockyard/runtime")

#: Names of the runc-compatible binaries looked up on PATH.
EXTERNAL = ("runc", "crun")


def default_root(name: str) -> Path:
    return DEFAULT_ROOT / (os.path.basename(name) if os.path.isabs(name) else name)


def get_runtime(name: str = "native", root: Path | None = None) -> Runtime:
    """The runtime called ``name`` with its state under ``root``.

    Raises ``InvalidArgument`` for an unknown name or a relative path and
    ``Unavailable`` when the runtime is not installed.
    """
    root = Path(root) if root is not None else default_root(name)
    if name == "native":
        try:
            from .native import NativeRuntime
        except ImportError as e:
            raise Unavailable(f"native runtime is not available: {e}") from e
        return NativeRuntime(root)
    from .external import ExternalRuntime

    if name in EXTERNAL:
        if not shutil.which(name):
            raise Unavailable(f"OCI runtime {name!r} is not installed")
        return ExternalRuntime(name, root)
    if os.path.isabs(name):
        if not os.access(name, os.X_OK):
            raise Unavailable(f"OCI runtime {name!r} does not exist or is not executable")
        return ExternalRuntime(name, root)
    raise InvalidArgument(f"unknown runtime {name!r}: use native, runc, crun or an absolute path")


def available_runtimes() -> list[str]:
    """Names that :func:`get_runtime` can return right now."""
    names = []
    try:
        import importlib.util

        if importlib.util.find_spec("dockyard.runtime.native") is not None:
            names.append("native")
    except (ImportError, ValueError):
        pass
    names += [n for n in EXTERNAL if shutil.which(n)]
    return names
