"""Exec endpoints: create, start (hijacked unless detached), resize, inspect.

An exec is created on a running container (``POST /containers/{id}/exec``,
201 ``{"Id"}``), started once (``POST /exec/{id}/start``): detached it
answers 200 at once, attached it takes over the connection like attach
does and relays the process's stdio until it exits.  ``GET
/exec/{id}/json`` then reports its ``ExitCode``, which is how the docker
CLI learns the status of ``docker exec``.
"""

from __future__ import annotations

from aiohttp import web

from dockyard.daemon.app import RouteTable, json_response
from dockyard.daemon.engine import Engine
from dockyard.daemon.routes.containers import query_size, read_json_body, service
from dockyard.daemon.hijack import STDOUT, hijack
from dockyard.daemon.routes.stdio import relay_hijacked
from dockyard.errors import DockyardError, InvalidArgument


async def create_exec(request: web.Request) -> web.StreamResponse:
    body = await read_json_body(request, what="exec config")
    if not isinstance(body, dict):
        raise InvalidArgument("No exec command specified")
    result = await service(request).exec_create(request.match_info["id"], body)
    return json_response({"Id": result["Id"]}, status=201)


async def start_exec(request: web.Request) -> web.StreamResponse:
    body = await read_json_body(request, what="exec start config") or {}
    if not isinstance(body, dict):
        raise InvalidArgument("invalid exec start config: expected an object")
    svc = service(request)
    exec_id = request.match_info["id"]
    tty = body.get("Tty")
    console_size = body.get("ConsoleSize") or None
    if console_size is not None and (not isinstance(console_size, list) or len(console_size) != 2):
        raise InvalidArgument("invalid ConsoleSize: expected [height, width]")
    if body.get("Detach"):
        await svc.exec_start(exec_id, detach=True, tty=None if tty is None else bool(tty),
                             console_size=console_size)
        return web.Response(status=200)
    record = await svc.exec_inspect(exec_id)  # a missing exec is a 404 before the upgrade
    use_tty = bool(record["ProcessConfig"]["tty"]) if tty is None else bool(tty)
    if record.get("Running") or record.get("ExitCode") is not None:
        # Already started: a 409 while the status code still exists.
        await svc.exec_start(exec_id, detach=False, tty=use_tty, console_size=console_size)
    # As dockerd: the stream is taken over first, and a process that cannot
    # be started is reported in it; exec inspect then says ExitCode 126.
    conn = await hijack(request, multiplexed=not use_tty)
    try:
        session = await svc.exec_start(exec_id, detach=False, tty=use_tty, console_size=console_size)
    except DockyardError as e:
        try:
            await conn.write_frame(STDOUT, (e.message + "\r\n").encode())
        except ConnectionError:
            pass
        await conn.close()
        return conn.response
    return await relay_hijacked(conn, session)


async def resize_exec(request: web.Request) -> web.StreamResponse:
    height, width = query_size(request, "h"), query_size(request, "w")
    await service(request).exec_resize(request.match_info["id"], height, width)
    return web.Response(status=200)


async def inspect_exec(request: web.Request) -> web.StreamResponse:
    return json_response(await service(request).exec_inspect(request.match_info["id"]))


def register(routes: RouteTable, engine: Engine) -> None:
    routes.post("/containers/{id}/exec", create_exec)
    routes.post("/exec/{id}/start", start_exec)
    routes.post("/exec/{id}/resize", resize_exec)
    routes.get("/exec/{id}/json", inspect_exec)
