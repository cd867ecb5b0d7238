"""The ``Engine``: everything a route needs, in one object.

Route modules receive the Engine and reach services only through it, so a
route never constructs a service.  An Engine is made whole by
:func:`dockyard.daemon.services.open_engine`: the store, the image service
and the container service are always there (a daemon whose services cannot
open does not start).
"""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from dockyard.daemon.config import DaemonConfig
from dockyard.daemon.events import EventBus

if TYPE_CHECKING:
    from dockyard.container.service import ContainerService
    from dockyard.image.service import ImageService
    from dockyard.store import Store


@dataclass
class Engine:
    config: DaemonConfig
    events: EventBus
    engine_id: str
    #: the content store, metadata DB and snapshotter the services share
    store: Store
    images: ImageService
    containers: ContainerService
    started_at: float = field(default_factory=time.time)

    @property
    def tmp_dir(self) -> Path:
        """Scratch space on the data root's filesystem, for spooled uploads."""
        return tmp_dir(self.config.data_root)


def tmp_dir(data_root: Path) -> Path:
    return data_root / "tmp"


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
