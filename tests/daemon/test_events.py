"""The event bus on its own: the 256-event ring, since/until replay, live
delivery from other threads, filters, Docker's message shape."""

from __future__ import annotations

import asyncio
import threading

import pytest

from dockyard.daemon.events import BUFFER_SIZE, Event, EventBus
from dockyard.daemon.filters import Filters
from dockyard.errors import InvalidArgument


def test_ring_keeps_the_last_256() -> None:
    bus = EventBus()
    for i in range(BUFFER_SIZE + 44):
        bus.publish("image", "tag", f"id{i}")
    kept = bus.buffered()
    assert len(kept) == 256 == BUFFER_SIZE
    assert kept[0].actor_id == "id44" and kept[-1].actor_id == f"id{BUFFER_SIZE + 43}"


def test_timestamps_strictly_increase() -> None:
    bus = EventBus(clock=lambda: 1000)
    events = [bus.publish("image", "tag", str(i)) for i in range(5)]
    assert [e.time_nano for e in events] == [1000, 1001, 1002, 1003, 1004]
    assert [e.actor_id for e in bus.buffered(since_ns=1001, until_ns=1003)] == ["1", "2", "3"]


def test_message_shape() -> None:
    event = Event("container", "start", "c" * 64, {"image": "busybox", "name": "web"}, 1_700_000_000_123_456_789)
    doc = event.to_json()
    assert doc == {
        "status": "start", "id": "c" * 64, "from": "busybox",
        "Type": "container", "Action": "start",
        "Actor": {"ID": "c" * 64, "Attributes": {"image": "busybox", "name": "web"}},
        "scope": "local", "time": 1_700_000_000, "timeNano": 1_700_000_000_123_456_789,
    }
    assert "status" not in Event("network", "create", "n1").to_json()
    # a prune has no actor: no empty id (Docker omits it); attributes sorted
    prune = Event("container", "prune", "", {"reclaimed": "0"}).to_json()
    assert list(prune) == ["status", "Type", "Action", "Actor", "scope", "time", "timeNano"]
    died = Event("container", "die", "c1", {"name": "a", "image": "bb", "exitCode": "0"}).to_json()
    assert list(died["Actor"]["Attributes"]) == ["exitCode", "image", "name"]


def f(doc: dict) -> Filters:
    import json

    return Filters.parse(json.dumps(doc), allowed=("type", "event", "container", "image", "label", "network"))


@pytest.mark.parametrize("event, filters, expected", [
    (Event("image", "tag", "sha256:a", {"name": "busybox:latest"}), {"type": ["image"]}, True),
    (Event("image", "tag", "sha256:a", {"name": "busybox:latest"}), {"type": ["container"]}, False),
    (Event("image", "tag", "sha256:a", {"name": "busybox:latest"}), {"event": ["tag", "untag"]}, True),
    (Event("container", "exec_start: sh -c true", "c1", {}), {"event": ["exec_start"]}, True),
    (Event("image", "tag", "sha256:a", {"name": "busybox:latest"}), {"image": ["busybox"]}, True),
    (Event("image", "tag", "sha256:a", {"name": "busybox:latest"}), {"image": ["busybox:latest"]}, True),
    (Event("image", "tag", "sha256:a", {"name": "busybox:latest"}), {"image": ["alpine"]}, False),
    (Event("container", "start", "c" * 64, {"name": "web", "image": "busybox"}), {"container": ["web"]}, True),
    (Event("container", "start", "c" * 64, {"name": "web", "image": "busybox"}), {"container": ["c" * 12]}, True),
    (Event("container", "start", "c" * 64, {"name": "web", "image": "busybox"}), {"container": ["db"]}, False),
    (Event("container", "start", "c" * 64, {"name": "web", "image": "busybox"}), {"image": ["busybox"]}, True),
    (Event("image", "tag", "sha256:a", {"name": "x"}), {"container": ["web"]}, False),
    (Event("container", "start", "c1", {"tier": "web", "name": "a"}), {"label": ["tier"]}, True),
    (Event("container", "start", "c1", {"tier": "web", "name": "a"}), {"label": ["tier=web"]}, True),
    (Event("container", "start", "c1", {"tier": "web", "name": "a"}), {"label": ["tier=db"]}, False),
    (Event("network", "create", "n1", {"name": "br0"}), {"network": ["br0"]}, True),
])
def test_filters(event: Event, filters: dict, expected: bool) -> None:
    assert event.matches(f(filters)) is expected


def test_filter_parsing() -> None:
    assert f({"type": {"image": True, "container": False}}).get("type") == frozenset({"image"})
    assert f({"type": ["image"]}).get("type") == frozenset({"image"})
    with pytest.raises(InvalidArgument, match="invalid filter 'bogus'"):
        f({"bogus": ["x"]})
    with pytest.raises(InvalidArgument):
        Filters.parse("{not json", allowed=("type",))


def test_live_delivery_from_threads_and_until() -> None:
    async def scenario() -> list[str]:
        bus = EventBus()
        bus.bind(asyncio.get_running_loop())
        # With "until" alone, Docker replays the whole buffer up to it.
        bus.publish("image", "tag", "before")
        received: list[str] = []

        async def consume() -> None:
            import time

            async for event in bus.subscribe(f({"event": ["tag"]}), until_ns=time.time_ns() + 500_000_000):
                received.append(event.actor_id)

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.05)
        threads = [threading.Thread(target=bus.publish, args=("image", action, f"{action}-{i}"))
                   for i, action in enumerate(["tag", "untag", "tag"])]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        await asyncio.wait_for(task, 5)  # ends by itself at "until"
        return received

    assert sorted(asyncio.run(scenario())) == ["before", "tag-0", "tag-2"]


def test_no_replay_without_since_or_until() -> None:
    async def scenario() -> list[str]:
        bus = EventBus()
        bus.bind(asyncio.get_running_loop())
        bus.publish("image", "tag", "old")
        received: list[str] = []

        async def consume() -> None:
            async for event in bus.subscribe():
                received.append(event.actor_id)

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.05)
        bus.publish("image", "tag", "new")
        await asyncio.sleep(0.05)
        bus.close()
        await asyncio.wait_for(task, 5)
        return received

    assert asyncio.run(scenario()) == ["new"]


def test_close_ends_subscriptions() -> None:
    async def scenario() -> None:
        bus = EventBus()
        bus.bind(asyncio.get_running_loop())

        async def consume() -> int:
            return len([e async for e in bus.subscribe()])

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.05)
        bus.publish("image", "tag", "x")
        await asyncio.sleep(0.05)
        bus.close()
        assert await asyncio.wait_for(task, 5) == 1

    asyncio.run(scenario())
