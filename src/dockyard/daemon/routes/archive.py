"""``docker cp``: HEAD/GET/PUT ``/containers/{id}/archive?path=...``.

HEAD answers the path's stat in the ``X-Docker-Container-Path-Stat``
header (base64 of a JSON object: name, size, mode as Go's FileMode bits,
mtime, linkTarget); GET sends the same header and a tar of the path; PUT
extracts a tar (the request body) into the directory ``path``, read by a
worker thread as it arrives.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from dockyard.daemon.app import RouteTable, query_bool
from dockyard.daemon.engine import Engine
from dockyard.daemon.routes.containers import cut_connection, service, stream_chunks
from dockyard.daemon.streaming import BodyReader
from dockyard.errors import DockyardError, InvalidArgument

log = logging.getLogger(__name__)

STAT_HEADER = "X-Docker-Container-Path-Stat"


def _path(request: web.Request) -> str:
    path = request.query.get("path", "")
    if not path:
        raise InvalidArgument("Path cannot be empty")
    return path


async def head_archive(request: web.Request) -> web.StreamResponse:
    stat = await service(request).archive_stat(request.match_info["id"], _path(request))
    return web.Response(status=200, headers={STAT_HEADER: stat.header_value()})


async def get_archive(request: web.Request) -> web.StreamResponse:
    svc = service(request)
    ref = request.match_info["id"]
    stat, chunks = await svc.archive_get(ref, _path(request))
    response = web.StreamResponse(status=200, headers={STAT_HEADER: stat.header_value()})
    response.content_type = "application/x-tar"
    try:
        await response.prepare(request)
        await stream_chunks(request, response, chunks)
    except ConnectionError:
        cut_connection(request)
        return response
    except DockyardError as e:
        if not response.prepared:
            raise
        log.error("copy from %s failed mid-stream: %s", ref, e.message)
        cut_connection(request)
        return response
    finally:
        await chunks.aclose()
    await response.write_eof()
    return response


async def put_archive(request: web.Request) -> web.StreamResponse:
    svc = service(request)
    body = BodyReader(request.content, asyncio.get_running_loop())
    await svc.archive_put(request.match_info["id"], _path(request), body,
                          no_overwrite_dir_non_dir=query_bool(request, "noOverwriteDirNonDir"),
                          copy_uid_gid=query_bool(request, "copyUIDGID"))
    return web.Response(status=200)


def register(routes: RouteTable, engine: Engine) -> None:
    routes.head("/containers/{id}/archive", head_archive)
    routes.get("/containers/{id}/archive", get_archive)
    routes.put("/containers/{id}/archive", put_archive)
