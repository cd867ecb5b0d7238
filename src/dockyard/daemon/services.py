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
    """Open the store and dockyard.image's service on the data root.  The
    store's start-up collection removes what a crash left half-made."""
    try:
        from dockyard.image.service import ImageService
        from dockyard.store import open_store
    except ImportError as e:
        engine.images = None
        engine.images_error = f"the image service is not available: {e}"
        log.error("%s", engine.images_error)
        return
    store = open_store(engine.config.data_root)
    engine.images = ImageService(store)
    engine.store = store


async def open_container_service(engine: Engine) -> None:
    """Open dockyard.container's service on the daemon's loop (it is
    asyncio-native) and reconcile it with the running containers.  A failure
    leaves the slot empty, logged: images and system routes keep working."""
    if engine.store is None:
        return
    config = engine.config
    try:
        from dockyard.container.service import ContainerService

        service = ContainerService(
            data_root=config.data_root, store=engine.store, publish=engine.events.publish,
            runtime_root=config.exec_root / "runtime", default_runtime=config.default_runtime,
            default_log_driver=config.log_driver, default_log_options=dict(config.log_opts),
            images=engine.images)
        await service.open()
    except Exception:  # noqa: BLE001 - the daemon serves what works; the cause is logged
        log.exception("the container service could not be opened; container counts read 0")
        return
    engine.containers = service


def open_engine(config: DaemonConfig) -> Engine:
    config.data_root.mkdir(parents=True, exist_ok=True, mode=0o711)
    (config.data_root / "tmp").mkdir(exist_ok=True, mode=0o700)
    engine = Engine(config=config, events=EventBus(), engine_id=load_engine_id(config.data_root))
    open_image_service(engine)
    return engine
