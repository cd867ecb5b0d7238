"""The one table from error classes to HTTP status codes.

Services raise :mod:`dockyard.errors` classes; the daemon answers with the
status below and Docker's body ``{"message": "..."}``.  The client reads
this table backwards (``dockyard.client.errors``), so a class raised in the
daemon comes back as the same class in the caller.
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

#: Names the DockyardError kind of an error answer, so Dockyard's client can
#: raise the exact class where the status is shared (409 is both
#: AlreadyExists and FailedPrecondition).  Other clients ignore it.  (The
#: client keeps a copy of the name: see dockyard.client.errors.)
KIND_HEADER = "Dockyard-Error-Kind"

#: Error class -> HTTP status.  Order matters only for subclasses, which are
#: looked up through the MRO (a subclass of NotFound is still a 404).
STATUS_BY_ERROR: dict[type[DockyardError], int] = {
    NotFound: 404,
    AlreadyExists: 409,
    InvalidArgument: 400,
    FailedPrecondition: 409,
    Unavailable: 503,
    Internal: 500,
}


def status_for(error: DockyardError) -> int:
    """The HTTP status for ``error``, walking its class hierarchy so that
    service-specific subclasses keep their family's status."""
    for cls in type(error).__mro__:
        status = STATUS_BY_ERROR.get(cls)  # type: ignore[arg-type]
        if status is not None:
            return status
    return 500


def error_body(message: str) -> dict[str, str]:
    return {"message": message}
