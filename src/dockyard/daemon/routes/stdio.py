"""Relaying a hijacked connection to a container's or an exec's stdio.

Both ``POST /containers/{id}/attach`` and ``POST /exec/{id}/start`` end in
the same loop: output frames from the service's :class:`StdioSession` go to
the client (8-byte stdcopy frames, or raw with a TTY), the client's bytes
go to stdin until the detach keys are typed.  The client may half-close
(end of its stdin) and keep reading; the relay ends when the output ends
(the process exited), when the client leaves, or on detach.

Attaching before start.  ``docker run`` and ``docker start -a`` attach to
a container that is not running yet, then start it, and must see all of
its output.  The service makes that one mechanism with a live attach: the
session waits for the container's next start, and the supervisor starts
the container only once the waiting sessions are connected to it, so the
first byte (a shell's first prompt included) reaches them; stdin the
client sends meanwhile waits in the connection's buffer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, AsyncIterator

from aiohttp import web

from dockyard.daemon.hijack import HijackedConnection, hijack
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

async def relay_attach(request: web.Request, svc: Any, cid: str, *, stdin: bool, stdout: bool, stderr: bool,
                       stream: bool, logs: bool, detach_keys: str | None) -> web.StreamResponse:
    """``POST /containers/{id}/attach``: a running container's output from
    now on, or, when it is not running, its next run's from the first byte
    (see the module docstring); with ``logs`` its log first."""
    if not (stdin or stdout or stderr):
        raise InvalidArgument("Bad parameters: you must choose at least one stream")
    # Every check (the detach keys, a paused container) before the upgrade:
    # after it the status code is gone.
    session = await svc.attach(cid, stdin=stdin, stdout=stdout, stderr=stderr, stream=stream, logs=logs,
                               detach_keys=detach_keys)
    return await relay_session(request, session)
