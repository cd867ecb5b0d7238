"""Relaying a hijacked connection to a container's or an exec's stdio.

Both ``POST /containers/{id}/attach`` and ``POST /exec/{id}/start`` end in
the same loop: output frames from the service's :class:`StdioSession` go to
the client (8-byte stdcopy frames, or raw with a TTY), the client's bytes
go to stdin until the detach keys are typed.  The client may half-close
(end of its stdin) and keep reading; the relay ends when the output ends
(the process exited), when the client leaves, or on detach.

Attaching before start.  ``docker run`` attaches to a *created* container,
then starts it, and must see all of its output.  The service attaches only
to running containers, so for a container that is not running yet the
relay answers the upgrade at once, waits for the container's ``start``
event, and then follows its output from the log (every byte the container
wrote since the attach request, in order, without the race of a late live
attach) while stdin goes to a live attach.  An interactive TTY is followed
live instead: its echo and prompts are not newline-terminated, and the log
records complete lines only (so its very first prompt may be missed).
TODO(issue 4): the service should attach before it starts the process
(the supervisor can spawn a container created but not started); all of
this then becomes one live attach.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path
from typing import Any, AsyncIterator

from aiohttp import web

from dockyard.daemon.filters import Filters
from dockyard.daemon.hijack import STDERR, STDOUT, HijackedConnection, hijack
from dockyard.daemon.routes.logfollow import follow_linked, readable, rotates
from dockyard.errors import DockyardError, InvalidArgument

log = logging.getLogger(__name__)

#: How often a relay whose client half-closed looks whether it left.
GONE_POLL = 0.5


async def _copy_out(conn: HijackedConnection, output: AsyncIterator[tuple[int, bytes]]) -> None:
    async for stream, data in output:
        await conn.write_frame(stream, data)


async def _copy_in(conn: HijackedConnection, session: Any) -> str:
    """Client bytes to ``session``'s stdin (or nowhere when it takes none).
    Returns "detached" or "gone"; a half-close only ends the stdin."""
    while True:
        data = await conn.read()
        if not data:
            if session is not None:
                with contextlib.suppress(DockyardError, OSError):
                    await session.close_stdin()
            # Half-closed: output keeps flowing until the client leaves.
            while not conn.closed:
                await asyncio.sleep(GONE_POLL)
            return "gone"
        if session is not None and session.stdin and not await session.write(data):
            return "detached"


async def relay(conn: HijackedConnection, output: AsyncIterator[tuple[int, bytes]], stdin_session: Any) -> str:
    """Run the two copies until one side ends: "exited" (the output ended),
    "detached" or "gone"."""
    out_task = asyncio.ensure_future(_copy_out(conn, output))
    in_task = asyncio.ensure_future(_copy_in(conn, stdin_session))
    try:
        done, _ = await asyncio.wait({out_task, in_task}, return_when=asyncio.FIRST_COMPLETED)
        if out_task in done:
            error = out_task.exception()
            if isinstance(error, ConnectionError):
                return "gone"
            if error is not None:
                raise error
            return "exited"
        return in_task.result()
    finally:
        for task in (out_task, in_task):
            task.cancel()
        for task in (out_task, in_task):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        aclose = getattr(output, "aclose", None)
        if aclose is not None:
            with contextlib.suppress(Exception):
                await aclose()


async def _finish(conn: HijackedConnection, sessions: list[Any]) -> None:
    for session in sessions:
        if session is not None:
            with contextlib.suppress(Exception):
                await session.close()
    await conn.close()


async def relay_session(request: web.Request, session: Any) -> web.StreamResponse:
    """Hijack ``request`` and relay ``session`` (a running container's or
    an exec's) until it ends."""
    try:
        conn = await hijack(request, multiplexed=not session.tty)
    except BaseException:
        await session.close()
        raise
    return await relay_hijacked(conn, session)


async def relay_hijacked(conn: HijackedConnection, session: Any) -> web.StreamResponse:
    """Relay ``session`` over a connection already taken over."""
    try:
        await relay(conn, session.output(), session)
    except ConnectionError:
        log.debug("%s: the client went away", conn.request.path)
    except DockyardError as e:
        # The stream is all there is after the upgrade: end it.
        log.info("%s ended: %s", conn.request.path, e.message)
    finally:
        await _finish(conn, [session])
    return conn.response


# -- attach ---------------------------------------------------------------------

async def relay_attach(request: web.Request, svc: Any, events: Any, cid: str, *, stdin: bool, stdout: bool,
                       stderr: bool, stream: bool, logs: bool, detach_keys: str | None,
                       tmp_dir: Path) -> web.StreamResponse:
    if not (stdin or stdout or stderr):
        raise InvalidArgument("Bad parameters: you must choose at least one stream")
    container = svc.resolve(cid)
    if container.state.running or not stream:
        session = await svc.attach(cid, stdin=stdin, stdout=stdout, stderr=stderr, stream=stream, logs=logs,
                                   detach_keys=detach_keys)
        return await relay_session(request, session)
    return await _attach_before_start(request, svc, events, container, stdin=stdin, stdout=stdout, stderr=stderr,
                                      logs=logs, detach_keys=detach_keys, tmp_dir=tmp_dir)


class _StartWatch:
    """The container's events, subscribed before its state is read so a
    start cannot fall between the two."""

    def __init__(self, events: Any, cid: str) -> None:
        self._subscription = events.subscribe(
            Filters({"type": frozenset({"container"}), "container": frozenset({cid})}))
        self._pending: asyncio.Future | None = None

    async def open(self) -> None:
        self._pending = asyncio.ensure_future(self._subscription.__anext__())
        await asyncio.sleep(0)  # the generator runs up to its queue: subscribed

    async def next(self, timeout: float) -> Any:
        """The next event, None on timeout; StopAsyncIteration at the end."""
        if self._pending is None:
            raise StopAsyncIteration
        done, _ = await asyncio.wait({self._pending}, timeout=timeout)
        if not done:
            return None
        event = self._pending.result()
        self._pending = asyncio.ensure_future(self._subscription.__anext__())
        return event

    async def close(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration, Exception):
                await self._pending
            self._pending = None
        with contextlib.suppress(Exception):
            await self._subscription.aclose()


async def _attach_before_start(request: web.Request, svc: Any, events: Any, container: Any, *, stdin: bool,
                               stdout: bool, stderr: bool, logs: bool, detach_keys: str | None,
                               tmp_dir: Path) -> web.StreamResponse:
    from dockyard.container.execs import parse_detach_keys

    parse_detach_keys(detach_keys)  # bad keys are a 400 before the upgrade
    cid = container.id
    tty = bool(container.config.get("Tty"))
    # Output written from now on is this attach's (the log's clock is the
    # host's, as ours).
    since_ns = time.time_ns()
    since = f"{since_ns // 1_000_000_000}.{since_ns % 1_000_000_000:09d}"
    watch = _StartWatch(events, cid)
    await watch.open()
    conn: HijackedConnection | None = None
    sessions: list[Any] = []
    try:
        conn = await hijack(request, multiplexed=not tty)
        if logs:
            replay = await svc.attach(cid, stdin=False, stdout=stdout, stderr=stderr, stream=False, logs=True)
            sessions.append(replay)
            await _copy_out(conn, replay.output())
        if not await _wait_started(svc, cid, conn, watch):
            return conn.response
        current = svc.resolve(cid)
        if (tty and stdin) or not readable(current):
            session = await svc.attach(cid, stdin=stdin, stdout=stdout, stderr=stderr, stream=True,
                                       detach_keys=detach_keys)
            sessions.append(session)
            await relay(conn, session.output(), session)
            return conn.response
        stdin_session = None
        if not stdin:
            # The service reports attaches it makes; this one it never sees.
            events.publish("container", "attach", cid, current.event_attributes())
        if stdin:
            stdin_session = await svc.attach(cid, stdin=True, stdout=False, stderr=False, stream=True,
                                             detach_keys=detach_keys)
            sessions.append(stdin_session)
        if not (stdout or stderr):
            output = _until_exit(svc, cid)
        elif current.host_config.get("AutoRemove") or not rotates(current):
            output = _linked_log_output(svc, current, tmp_dir=tmp_dir, since_ns=since_ns, stdout=stdout,
                                        stderr=stderr)
        else:
            output = _log_output(svc, cid, since=since, stdout=stdout, stderr=stderr)
        await relay(conn, output, stdin_session)
        return conn.response
    except ConnectionError:
        log.debug("attach to %s: the client went away", cid[:12])
        return conn.response if conn is not None else web.Response(status=400)
    except DockyardError as e:
        if conn is None:
            raise
        # After the upgrade the only channel left is the stream itself.
        log.info("attach to %s ended: %s", cid[:12], e.message)
        return conn.response
    finally:
        await watch.close()
        if conn is not None:
            await _finish(conn, sessions)


async def _until_exit(svc: Any, cid: str) -> AsyncIterator[tuple[int, bytes]]:
    """No output was asked for: end when the container's run does."""
    with contextlib.suppress(DockyardError):
        await svc.wait(cid, "not-running")
    return
    yield  # an async generator that yields nothing


async def _log_output(svc: Any, cid: str, *, since: str, stdout: bool,
                      stderr: bool) -> AsyncIterator[tuple[int, bytes]]:
    """The container's output since ``since``, as it is logged; the follow
    ends when the container's run does."""
    async for stream, data in svc.logs(cid, follow=True, stdout=stdout, stderr=stderr, since=since):
        yield (STDERR if stream == "stderr" else STDOUT), data


async def _linked_log_output(svc: Any, container: Any, *, tmp_dir: Path, since_ns: int, stdout: bool,
                             stderr: bool) -> AsyncIterator[tuple[int, bytes]]:
    async for stream, data in follow_linked(svc, container, tmp_dir=tmp_dir, since_ns=since_ns, stdout=stdout,
                                            stderr=stderr):
        yield (STDERR if stream == "stderr" else STDOUT), data


async def _wait_started(svc: Any, cid: str, conn: HijackedConnection, watch: _StartWatch) -> bool:
    """Until the container runs (True), or is removed or the client leaves
    (False).  Stdin the client sends meanwhile waits in the connection's
    buffer for the relay."""
    while True:
        try:
            container = svc.resolve(cid)
        except DockyardError:
            return False
        if container.state.running:
            return True
        if conn.closed:
            return False
        try:
            event = await watch.next(GONE_POLL)
        except StopAsyncIteration:
            return False
        if event is not None and event.action == "destroy":
            return False
