"""Progress reports of long image operations (load, save, import, commit).

The image layer reports plain values; the daemon turns them into Docker's
JSON progress stream (``{"status": "Loading layer", "id": "abc123def456",
"progressDetail": {"current": n, "total": m}}``) and the CLI into bars.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

#: statuses used (Docker's words where Docker has them)
LOADING_LAYER = "Loading layer"
LOADING_BLOB = "Loading blob"
IMPORTING = "Importing"
SAVING = "Saving"
EXTRACTING = "Extracting"
WRITING_LAYER = "Writing layer"
DONE = "Done"


@dataclass(frozen=True)
class ProgressEvent:
    status: str
    id: str = ""  # a short id (12 hex chars of a digest) or a name
    current: int = 0
    total: int | None = None  # None when unknown


ProgressFn = Callable[[ProgressEvent], None]


def _noop(event: ProgressEvent) -> None:
    pass


def reporter(fn: ProgressFn | None) -> ProgressFn:
    return fn if fn is not None else _noop


def short(digest: object) -> str:
    text = str(digest)
    return text.partition(":")[2][:12] if ":" in text else text[:12]
