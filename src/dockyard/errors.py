"""The error model shared by every layer.

One root, :class:`DockyardError`, and a small set of classes that say what
kind of failure happened, never how it is worded.  Callers branch on the
class; the daemon maps classes to HTTP status codes in one table
(``dockyard.daemon.errors``); the CLI maps them to exit codes.

Messages carry the context a user needs ("no such image: busybox:latest"),
because they are shown verbatim by the docker CLI.
"""

from __future__ import annotations


class DockyardError(Exception):
    """Root of every error Dockyard raises on purpose."""

    #: Short machine-readable kind, stable across versions.
    kind = "internal"

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:  # pragma: no cover - trivial
        return self.message


class NotFound(DockyardError):
    """The named object (image, container, blob, snapshot, ...) does not exist."""

    kind = "not_found"


class AlreadyExists(DockyardError):
    """An object with that name or key exists already (a name conflict)."""

    kind = "already_exists"


class InvalidArgument(DockyardError):
    """The caller's input is malformed or out of range."""

    kind = "invalid_argument"


class FailedPrecondition(DockyardError):
    """The input is valid but the system is not in a state that allows it
    (image in use, container not running, ...)."""

    kind = "failed_precondition"


class Unavailable(DockyardError):
    """A dependency is not reachable or not installed (a registry, runc, a
    kernel feature); retrying later or elsewhere may succeed."""

    kind = "unavailable"


class Internal(DockyardError):
    """A real fault: an invariant broke or the kernel refused unexpectedly."""

    kind = "internal"


__all__ = [
    "DockyardError",
    "NotFound",
    "AlreadyExists",
    "InvalidArgument",
    "FailedPrecondition",
    "Unavailable",
    "Internal",
]
