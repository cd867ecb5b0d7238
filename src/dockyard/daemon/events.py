"""The event bus: what happened to containers, images, ... for ``/events``.

Services report events by calling a plain function, so they never import
the daemon (layers point down)::

    publish(type, action, actor_id, attributes)

e.g. ``publish("container", "start", cid, {"name": "web", "image": "busybox"})``.
The daemon hands :meth:`EventBus.publish` to each service as that function;
it is safe to call from any thread.

The bus keeps the last :data:`BUFFER_SIZE` events (Docker keeps 256) for
``since``/``until`` replays, and fans live events out to subscribers, each an
asyncio queue on the daemon's loop.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import AsyncIterator, Callable, Mapping, Protocol

from dockyard.daemon.filters import Filters

BUFFER_SIZE = 256

#: ``/events`` filter keys Docker accepts.
EVENT_FILTERS = ("config", "container", "daemon", "event", "image", "label", "network", "node",
                 "plugin", "scope", "secret", "service", "type", "volume")

#: Subscriber queue bound: a client that stops reading loses events instead
#: of growing the daemon's memory without limit.
QUEUE_LIMIT = 4096


class Publisher(Protocol):
    """What services get: ``publish(type, action, actor_id, attributes)``."""

    def __call__(self, type: str, action: str, actor_id: str,
                 attributes: Mapping[str, str] | None = None) -> None: ...


@dataclass(frozen=True)
class Event:
    type: str
    action: str
    actor_id: str
    attributes: Mapping[str, str] = field(default_factory=dict)
    time_nano: int = 0
    scope: str = "local"

    def to_json(self) -> dict:
        """Docker's events.Message, with the deprecated ``status``/``id``/
        ``from`` fields that old clients (and docker-py) still read."""
        # status, id and from are omitted when empty (omitempty in Docker's
        # struct: a prune has no actor ID); Attributes is a Go map, sorted.
        doc: dict = {}
        if self.type in ("container", "image"):
            doc["status"] = self.action
            if self.actor_id:
                doc["id"] = self.actor_id
            if self.type == "container" and self.attributes.get("image"):
                doc["from"] = self.attributes["image"]
        doc.update({
            "Type": self.type,
            "Action": self.action,
            "Actor": {"ID": self.actor_id, "Attributes": dict(sorted(self.attributes.items()))},
            "scope": self.scope,
            "time": self.time_nano // 1_000_000_000,
            "timeNano": self.time_nano,
        })
        return doc

    def matches(self, filters: Filters) -> bool:
        attrs = self.attributes
        if not filters.match_any("type", self.type):
            return False
        if "event" in filters:
            # "exec_start: sh -c ..." matches the filter "exec_start".
            base = self.action.split(":", 1)[0]
            if self.action not in filters.get("event") and base not in filters.get("event"):
                return False
        if not filters.match_any("scope", self.scope):
            return False
        if "container" in filters:
            if self.type != "container" or not filters.match_any("container", self.actor_id,
                                                                   self.actor_id[:12], attrs.get("name")):
                return False
        if "image" in filters:
            image_names = (attrs.get("image"), attrs.get("name")) if self.type == "container" else (
                self.actor_id, attrs.get("name"))
            if not filters.match_any("image", *image_names) and not filters.match_any(
                    "image", *(_short_name(n) for n in image_names if n)):
                return False
        for key in ("network", "volume", "plugin", "daemon", "node", "service", "secret", "config"):
            if key in filters and (self.type != key or not filters.match_any(key, self.actor_id,
                                                                               attrs.get("name"))):
                return False
        return filters.match_labels(attrs)


#: Put in subscriber queues to end their streams.
_CLOSED = Event("", "", "")


def _short_name(name: str) -> str:
    """``busybox:latest`` matches a filter of ``busybox``."""
    return name[: -len(":latest")] if name.endswith(":latest") else name


class EventBus:
    def __init__(self, *, buffer_size: int = BUFFER_SIZE, clock: Callable[[], int] = time.time_ns) -> None:
        self._buffer: deque[Event] = deque(maxlen=buffer_size)
        self._lock = threading.Lock()
        self._subscribers: set[asyncio.Queue[Event]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._clock = clock
        self._closed = False

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Attach to the daemon's loop, where subscribers live."""
        self._loop = loop

    def publish(self, type: str, action: str, actor_id: str,
                attributes: Mapping[str, str] | None = None) -> Event:
        """Record an event and deliver it to live subscribers.  Thread-safe."""
        with self._lock:
            # Timestamps are strictly increasing so since/until replays have
            # a total order even when two events land in the same ns.
            now = self._clock()
            if self._buffer and now <= self._buffer[-1].time_nano:
                now = self._buffer[-1].time_nano + 1
            event = Event(type, action, actor_id, dict(attributes or {}), now)
            self._buffer.append(event)
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is loop:
                self._deliver(event)
            else:
                loop.call_soon_threadsafe(self._deliver, event)
        return event

    def close(self) -> None:
        """End every subscription (daemon shutdown).  Must run on the loop."""
        self._closed = True
        for queue in list(self._subscribers):
            queue.put_nowait(_CLOSED)

    def _deliver(self, event: Event) -> None:
        for queue in list(self._subscribers):
            if queue.qsize() < QUEUE_LIMIT:
                queue.put_nowait(event)

    def buffered(self, since_ns: int | None = None, until_ns: int | None = None) -> list[Event]:
        with self._lock:
            events = list(self._buffer)
        return [e for e in events
                if (since_ns is None or e.time_nano >= since_ns) and (until_ns is None or e.time_nano <= until_ns)]

    async def subscribe(self, filters: Filters | None = None, *, since_ns: int | None = None,
                        until_ns: int | None = None) -> AsyncIterator[Event]:
        """Replay buffered events when ``since`` or ``until`` is given (as
        Docker does), then follow live ones until ``until`` (forever when
        None).  Must run on the bound loop."""
        filters = filters or Filters()
        queue: asyncio.Queue[Event] = asyncio.Queue()
        # Subscribe before reading the buffer so nothing falls between them;
        # events seen in both are skipped by time below.
        self._subscribers.add(queue)
        try:
            last_ns = -1
            if since_ns is not None or until_ns is not None:
                for event in self.buffered(since_ns or 0, until_ns):
                    last_ns = event.time_nano
                    if event.matches(filters):
                        yield event
            while True:
                timeout = None
                if until_ns is not None:
                    timeout = (until_ns - time.time_ns()) / 1e9
                    if timeout <= 0:
                        return
                if self._closed:
                    return
                try:
                    event = await asyncio.wait_for(queue.get(), timeout)
                except asyncio.TimeoutError:
                    return
                if event is _CLOSED:
                    return
                if event.time_nano <= last_ns:
                    continue
                if until_ns is not None and event.time_nano > until_ns:
                    return
                if event.matches(filters):
                    yield event
        finally:
            self._subscribers.discard(queue)
