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

#: The header dockyard.daemon.errors names the kind in (a copy of the name:
#: the client's import path stays free of daemon modules, see by_status).
KIND_HEADER = "Dockyard-Error-Kind"


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

_by_status: dict[int, type[RemoteError]] = {}


def by_status(status: int) -> type[RemoteError] | None:
    """For daemons that do not send the kind header (dockerd): the class for
    ``status``, from the daemon's one table (STATUS_BY_ERROR) read
    backwards.  409 answers both a name conflict and an object in use;
    without the header it reads as the latter.  The table is imported on
    first use: Dockyard's own answers never need it, and the CLI's start-up
    stays light."""
    if not _by_status:
        from dockyard.daemon.errors import STATUS_BY_ERROR

        # Each remote class is (RemoteError, the shared class it stands for).
        _by_status.update({STATUS_BY_ERROR[cls.__bases__[1]]: cls
                           for cls in _REMOTE if cls is not RemoteAlreadyExists})
    return _by_status.get(status)


def error_from_response(status: int, message: str, kind: str | None = None) -> RemoteError:
    cls = BY_KIND.get(kind or "") or by_status(status)
    if cls is None:
        cls = RemoteInvalidArgument if 400 <= status < 500 else RemoteInternal
    return cls(message, status)


class ConnectionFailed(shared.Unavailable):
    """The daemon could not be reached at all (no socket, refused, TLS)."""
