"""Following a running container's log through a hard link of its file.

Used where a follow must end promptly and surely when the container's run
ends: ``docker run``'s attach (which relays the output of a container it
attached to before start, see :mod:`.stdio`) and ``logs -f`` (docker-py's
``run()`` follows the logs and removes the container before it reads
them).

Why a link.  A removed container's log file disappears, possibly before a
follower has seen the exit, and dockyard.logs' follow of a vanished file
does not end (its loop waits for a successor that never comes and no
longer asks ``stop``).  The link, made in the daemon's scratch directory
while the container runs, keeps a name (and the data) until the reader is
done; reading it directly also lets the follow poll faster than the
service's logs do.  The price: a rotation (max-size) moves the followed
name away, so logs that rotate are followed through the service instead
(:func:`rotates`), except when the container removes itself (AutoRemove),
where the link is the only follow that ends.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import threading
from pathlib import Path
from typing import Any, AsyncIterator

from dockyard.errors import DockyardError

#: How often a linked follow looks for new output and for the end of the run
#: (the end of `docker run` waits for it).
FOLLOW_POLL = 0.01


def rotates(container: Any) -> bool:
    """Whether the container's log file may be rotated away while followed
    (json-file rotates only with max-size; local always does)."""
    log_config = container.host_config.get("LogConfig") or {}
    if (log_config.get("Type") or "json-file") != "json-file":
        return True
    size = str((log_config.get("Config") or {}).get("max-size", "")).strip()
    return size not in ("", "-1")


def readable(container: Any) -> bool:
    log_config = container.host_config.get("LogConfig") or {}
    return bool(container.log_path) and log_config.get("Type") != "none"


async def follow_linked(svc: Any, container: Any, *, tmp_dir: Path, stdout: bool, stderr: bool,
                        since_ns: int | None = None, until_ns: int | None = None, tail: int | None = None,
                        timestamps: bool = False) -> AsyncIterator[tuple[str, bytes]]:
    """``(stream, bytes)`` of the container's current run as ``docker logs
    -f`` shows them, until the run ends (or the container is removed) and
    everything it wrote has been read."""
    from dockyard import logs as logs_mod
    from dockyard.daemon.streaming import stream_executor

    cid = container.id
    log_config = container.host_config.get("LogConfig") or {}
    tmp_dir.mkdir(parents=True, exist_ok=True)
    link = tmp_dir / f"follow-{cid[:12]}-{secrets.token_hex(4)}.log"
    try:
        os.link(container.log_path, link)
    except FileNotFoundError:
        return  # already removed: nothing left to follow
    try:
        run_id = container.state.started_at
        wanted = {name for name, on in (("stdout", stdout), ("stderr", stderr)) if on}
        reader = logs_mod.open_reader(log_config.get("Type") or "json-file", link,
                                      dict(log_config.get("Config") or {}))
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=256)
        end = object()
        cancelled = threading.Event()

        def run_over() -> bool:
            if cancelled.is_set():
                return True
            try:
                current = svc.resolve(cid)  # safe from any thread (the service says so)
            except DockyardError:
                return True
            return not current.state.running or current.state.started_at != run_id

        def put(item: Any) -> None:
            asyncio.run_coroutine_threadsafe(queue.put(item), loop).result()

        def pump() -> None:
            try:
                for entry in reader.read(since=since_ns, until=until_ns, tail=tail, follow=True, stop=run_over,
                                         poll_interval=FOLLOW_POLL):
                    if cancelled.is_set():
                        break
                    if entry.stream in wanted:
                        put((entry.stream, entry.render(timestamps)))
            except BaseException as exc:  # noqa: BLE001 - handed to the consumer
                put(exc)
            finally:
                put(end)

        worker = loop.run_in_executor(stream_executor(), pump)
        try:
            while True:
                item = await queue.get()
                if item is end:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            cancelled.set()
            # Let a producer blocked on the full queue see the cancellation.
            while not worker.done():
                while not queue.empty():
                    queue.get_nowait()
                await asyncio.sleep(0.01)
    finally:
        try:
            os.unlink(link)
        except OSError:
            pass
