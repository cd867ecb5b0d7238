"""The daemon's error answers as DockyardError classes: the mirror of
``dockyard.daemon.errors``.

Every class here is both a :class:`RemoteError` (the daemon said so; the CLI
prints "Error response from daemon: ...") and the shared class of its kind
(:class:`~dockyard.errors.NotFound`, ...), so callers catch the same classes
whether they run beside the services or talk to them over HTTP.

The status code alone cannot tell AlreadyExists from FailedPrecondition
(both 409), so Dockyard's daemon also names the kind in a
``Dockyard-Error-Kind`` header; other Docker daemons are mapped by status.
"""

from __future__ import annotations

from dockyard.errors import (
    AlreadyExists,
    DockyardError,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    NotFound,
    Unavailable,
)

KIND_HEADER = "Dockyard-Error-Kind"


class RemoteError(DockyardError):
    """An error answer from the daemon (carries the HTTP status)."""

    def __init__(self, message: str = "", status: int = 500) -> None:
        super().__init__(message)
        self.status = status


class RemoteNotFound(RemoteError, NotFound):
    pass


class RemoteAlreadyExists(RemoteError, AlreadyExists):
    pass


class RemoteInvalidArgument(RemoteError, InvalidArgument):
    pass


class RemoteFailedPrecondition(RemoteError, FailedPrecondition):
    pass


class RemoteUnavailable(RemoteError, Unavailable):
    pass


class RemoteInternal(RemoteError, Internal):
    pass


BY_KIND: dict[str, type[RemoteError]] = {
    NotFound.kind: RemoteNotFound,
    AlreadyExists.kind: RemoteAlreadyExists,
    InvalidArgument.kind: RemoteInvalidArgument,
    FailedPrecondition.kind: RemoteFailedPrecondition,
    Unavailable.kind: RemoteUnavailable,
    Internal.kind: RemoteInternal,
}

#: For daemons that do not send the kind header (dockerd): status -> class.
BY_STATUS: dict[int, type[RemoteError]] = {
    400: RemoteInvalidArgument,
    404: RemoteNotFound,
    409: RemoteFailedPrecondition,
    500: RemoteInternal,
    503: RemoteUnavailable,
}


def error_from_response(status: int, message: str, kind: str | None = None) -> RemoteError:
    cls = BY_KIND.get(kind or "") or BY_STATUS.get(status)
    if cls is None:
        cls = RemoteInvalidArgument if 400 <= status < 500 else RemoteInternal
    return cls(message, status)


class ConnectionFailed(Unavailable):
    """The daemon could not be reached at all (no socket, refused, TLS)."""
