"""The ``Engine``: everything a route needs, in one object.

Route modules receive the Engine and reach services only through it, so a
route never constructs a service and tests can build an Engine around a
private data root.  Services are optional while their layers are being
written: a route whose service is missing answers ``Unavailable`` with the
reason, and ``/info`` reports zeros rather than inventing numbers.
"""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from dockyard.daemon.config import DaemonConfig
from dockyard.daemon.events import EventBus
from dockyard.errors import Unavailable


@dataclass(frozen=True)
class ContainerCounts:
    running: int = 0
    paused: int = 0
    stopped: int = 0

    @property
    def total(self) -> int:
        return self.running + self.paused + self.stopped


class ContainerBackend(Protocol):
    """What the system and image routes need from the container service
    (dockyard.container, written later).  Container routes use the service's
    full API directly."""

    def counts(self) -> ContainerCounts: ...

    def image_ids_in_use(self) -> set[str]:
        """Config digests of images some container (running or not) uses."""
        ...

    def disk_usage(self) -> list[dict[str, Any]]:
        """``/system/df`` Containers entries (Docker's container summary with SizeRw)."""
        ...

    def image_users(self, image_id: Any) -> list[Any]:
        """dockyard.image ImageUser values for the containers using
        ``image_id`` (the ``in_use`` feed of ImageService.remove)."""
        ...


@dataclass
class Engine:
    config: DaemonConfig
    events: EventBus
    engine_id: str
    #: dockyard.image service; None until the image layer can be opened.
    images: Any = None
    #: dockyard.container service (ContainerBackend); None until it lands.
    containers: ContainerBackend | None = None
    started_at: float = field(default_factory=time.time)
    #: Why ``images`` is None, for the Unavailable message.
    images_error: str = "the image service is not available"
    #: dockyard.store.Store the services share (None until opened).
    store: Any = None

    def close(self) -> None:
        """Release what the services hold (the store's database)."""
        if self.store is not None:
            self.store.close()
            self.store = None

    def image_service(self) -> Any:
        if self.images is None:
            raise Unavailable(self.images_error)
        return self.images

    def container_counts(self) -> ContainerCounts:
        if self.containers is None:
            return ContainerCounts()
        return self.containers.counts()

    def image_ids_in_use(self) -> set[str]:
        if self.containers is None:
            return set()
        return self.containers.image_ids_in_use()

    @property
    def tmp_dir(self) -> Path:
        """Scratch space on the data root's filesystem, for spooled uploads."""
        return self.config.data_root / "tmp"


def load_engine_id(data_root: Path) -> str:
    """The daemon's stable ID (``/info`` ID), made once per data root."""
    path = data_root / "engine-id"
    try:
        text = path.read_text().strip()
        if text:
            return text
    except FileNotFoundError:
        pass
    engine_id = str(uuid.uuid4())
    tmp = path.with_name(f".engine-id.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        f.write(engine_id + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, path)
    return engine_id
