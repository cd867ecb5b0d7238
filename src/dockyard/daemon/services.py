"""Opening the services an Engine holds, from the daemon's configuration.

Each service comes from its own layer; a layer that cannot be opened (not
written yet, or failing) leaves its slot empty with the reason, so the daemon
still serves what works and the affected routes answer Unavailable.
"""

from __future__ import annotations

import logging

from dockyard.daemon.config import DaemonConfig
from dockyard.daemon.engine import Engine, load_engine_id
from dockyard.daemon.events import EventBus

log = logging.getLogger(__name__)


def open_image_service(engine: Engine) -> None:
    """Open dockyard.image's service on the data root."""
    # TODO(issue 4): construct dockyard.image's service once its API lands.
    engine.images = None
    engine.images_error = "the image service (dockyard.image) is not available in this build yet"


def open_engine(config: DaemonConfig) -> Engine:
    config.data_root.mkdir(parents=True, exist_ok=True, mode=0o711)
    (config.data_root / "tmp").mkdir(exist_ok=True, mode=0o700)
    engine = Engine(config=config, events=EventBus(), engine_id=load_engine_id(config.data_root))
    open_image_service(engine)
    return engine
