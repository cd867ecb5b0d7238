"""The native OCI runtime: Dockyard's own runc, in Python.

``NativeRuntime(root)`` implements :class:`dockyard.runtime.base.Runtime`;
``dockyard-runtime`` (:mod:`dockyard.runtime.cli`) is its command line.
"""

from .runtime import NativeRuntime

__all__ = ["NativeRuntime"]
