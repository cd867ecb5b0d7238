"""Opening the services an Engine holds, from the daemon's configuration.

Every service must open: a data root that cannot be used (not a directory,
a database that cannot be read or migrated) stops the daemon at start with
the reason, rather than serving half an API.  Opening also clears the data
root's scratch area of what an earlier daemon left there when it died.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import sqlite3
from pathlib import Path
from typing import AsyncIterator

from dockyard.daemon.config import DaemonConfig
from dockyard.daemon.engine import Engine, load_engine_id, tmp_dir
from dockyard.daemon.events import EventBus
from dockyard.errors import Unavailable

log = logging.getLogger(__name__)

#: Names of the files a daemon makes in the data root's scratch area, none
#: of which outlives the daemon that made it: upload spools
#: (streaming.spool: mkstemp's 8 random characters) and the hard links an
#: earlier daemon's ``logs -f`` followed.  Anything else there is left alone.
TMP_LEFTOVERS = re.compile(r"upload-[a-z0-9_]{8}\.tar|follow-[0-9a-f]{12}-[0-9a-f]{8}\.log")

#: The engine ID's temp file (load_engine_id), in the data root itself.
ENGINE_ID_LEFTOVER = re.compile(r"\.engine-id\.\d+\.tmp")


def clean_tmp(data_root: Path) -> list[str]:
    """Remove what dead daemons left in the scratch area; returns the names
    removed.  The caller holds the data root's lock and serves nothing yet,
    so no file there can be in use: each one's maker is gone."""
    removed = []
    for directory, pattern in ((tmp_dir(data_root), TMP_LEFTOVERS), (data_root, ENGINE_ID_LEFTOVER)):
        try:
            entries = list(os.scandir(directory))
        except FileNotFoundError:
            continue
        for entry in entries:
            # Regular files only (a directory or a link of that name is not ours).
            if pattern.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
                    removed.append(entry.name)
    return removed


def open_storage(config: DaemonConfig):
    """The data root made ready, its store opened (the store's start-up
    collection removes what a crash left half-made) and the image service
    over it.  Runs in a worker thread: it may take a while."""
    from dockyard.image.service import ImageService
    from dockyard.store import open_store

    root = config.data_root
    try:
        root.mkdir(parents=True, exist_ok=True, mode=0o711)
        tmp_dir(root).mkdir(exist_ok=True, mode=0o700)
        removed = clean_tmp(root)
        if removed:
            log.info("removed %d leftover file(s) from %s", len(removed), tmp_dir(root))
        engine_id = load_engine_id(root)
        store = open_store(root)
    except OSError as e:
        raise Unavailable(f"cannot use data root {root}: {e}") from e
    except sqlite3.Error as e:
        raise Unavailable(f"cannot open the metadata database under {root}: {e}") from e
    return engine_id, store, ImageService(store)


@contextlib.asynccontextmanager
async def open_engine(config: DaemonConfig) -> AsyncIterator[Engine]:
    """The Engine with every service open, on the running loop (the
    container service is asyncio-native and reconciles its containers with
    the kernel as it opens).  Leaving closes the services; containers keep
    running (live-restore)."""
    from dockyard.container.service import ContainerService

    loop = asyncio.get_running_loop()
    engine_id, store, images = await loop.run_in_executor(None, open_storage, config)
    events = EventBus()
    events.bind(loop)
    containers = None
    try:
        containers = ContainerService(
            data_root=config.data_root, store=store, publish=events.publish,
            runtime_root=config.exec_root / "runtime", default_runtime=config.default_runtime,
            default_log_driver=config.log_driver, default_log_options=dict(config.log_opts),
            images=images)
        try:
            await containers.open()
        except sqlite3.Error as e:
            raise Unavailable(f"cannot open the container records under {config.data_root}: {e}") from e
        engine = Engine(config=config, events=events, engine_id=engine_id, store=store, images=images,
                        containers=containers)
        yield engine
    finally:
        if containers is not None:
            # Stops watching only: containers keep running (live-restore).
            await containers.close()
        images.close()
        store.close()
