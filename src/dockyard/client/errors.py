"""The daemon's error answers as DockyardError classes, read through
``dockyard.daemon.errors``' table.

Every class here is both a :class:`RemoteError` (the daemon said so; the CLI
prints "Error response from daemon: ...") and the shared class of its kind
(:class:`~dockyard.errors.NotFound`, ...), so callers catch the same classes
whether they run beside the services or talk to them over HTTP.

The status code alone cannot tell AlreadyExists from FailedPrecondition
(both 409), so Dockyard's daemon also names the kind in a
``Dockyard-Error-Kind`` header; other Docker daemons are mapped by status.
"""

from __future__ import annotations

from dockyard import errors as shared
from dockyard.daemon.errors import KIND_HEADER, STATUS_BY_ERROR

__all__ = ["KIND_HEADER", "RemoteError", "RemoteNotFound", "RemoteAlreadyExists", "RemoteInvalidArgument",
           "RemoteFailedPrecondition", "RemoteUnavailable", "RemoteInternal", "BY_KIND", "BY_STATUS",
           "error_from_response", "ConnectionFailed"]


class RemoteError(shared.DockyardError):
    """An error answer from the daemon (carries the HTTP status)."""

    def __init__(self, message: str = "", status: int = 500) -> None:
        super().__init__(message)
        self.status = status


# Each one (RemoteError, the shared class it stands for).

class RemoteNotFound(RemoteError, shared.NotFound):
    pass


class RemoteAlreadyExists(RemoteError, shared.AlreadyExists):
    pass


class RemoteInvalidArgument(RemoteError, shared.InvalidArgument):
    pass


class RemoteFailedPrecondition(RemoteError, shared.FailedPrecondition):
    pass


class RemoteUnavailable(RemoteError, shared.Unavailable):
    pass


class RemoteInternal(RemoteError, shared.Internal):
    pass


_REMOTE: tuple[type[RemoteError], ...] = (RemoteNotFound, RemoteAlreadyExists, RemoteInvalidArgument,
                                          RemoteFailedPrecondition, RemoteUnavailable, RemoteInternal)

BY_KIND: dict[str, type[RemoteError]] = {cls.kind: cls for cls in _REMOTE}

#: For daemons that do not send the kind header (dockerd): status -> class,
#: the daemon's one table (STATUS_BY_ERROR) read backwards.  409 answers
#: both a name conflict and an object in use; without the header it reads
#: as the latter.
BY_STATUS: dict[int, type[RemoteError]] = {
    STATUS_BY_ERROR[cls.__bases__[1]]: cls for cls in _REMOTE if cls is not RemoteAlreadyExists}


def error_from_response(status: int, message: str, kind: str | None = None) -> RemoteError:
    cls = BY_KIND.get(kind or "") or BY_STATUS.get(status)
    if cls is None:
        cls = RemoteInvalidArgument if 400 <= status < 500 else RemoteInternal
    return cls(message, status)


class ConnectionFailed(shared.Unavailable):
    """The daemon could not be reached at all (no socket, refused, TLS)."""
