"""Container endpoints, over ``dockyard.container.ContainerService``.

The service is asyncio-native, so handlers await it directly (it runs its
own blocking steps on its own pools).  It publishes the container events
(create, start, die, destroy, ...) itself through the event bus; only
``prune`` is reported here, as images' prune is.

Shapes, status codes and the order of checks follow dockerd's container
router: arguments are validated before a stream starts (after the first
byte the status is gone), ``start`` of a running container and ``stop`` of
a stopped one answer 304, ``wait`` sends its headers at once (API >= 1.30)
so a client knows the wait is registered before it starts the container.

``attach`` hijacks the connection (see :mod:`dockyard.daemon.hijack`);
the byte shuffling it shares with ``exec start`` lives in
:mod:`dockyard.daemon.routes.stdio`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any, AsyncIterator

from aiohttp import web

from dockyard.daemon.app import (
    RouteTable,
    api_version,
    engine_of,
    json_response,
    query_bool,
    query_int,
)
from dockyard.daemon.engine import Engine
from dockyard.daemon.routes.stdio import relay_attach
from dockyard.errors import DockyardError, InvalidArgument

log = logging.getLogger(__name__)

#: How often a handler that waits on something else (a container's exit,
#: a quiet log) looks whether its client is still there.
DISCONNECT_POLL = 1.0

WAIT_CONDITIONS = ("not-running", "next-exit", "removed")


def service(request: web.Request) -> Any:
    """The daemon's container service."""
    return engine_of(request).containers


# -- request helpers -------------------------------------------------------------

async def read_json_body(request: web.Request, *, what: str) -> Any:
    """The request's JSON body, or None when there is none.  Docker's
    CheckForJSON: a body must say it is JSON."""
    raw = await request.read()
    if not raw.strip():
        return None
    content_type = request.headers.get("Content-Type", "")
    if content_type and "json" not in content_type.split(";", 1)[0]:
        raise InvalidArgument(f"unsupported Content-Type header ({content_type}): must be 'application/json'")
    try:
        return json.loads(raw)
    except ValueError as e:
        raise InvalidArgument(f"invalid JSON in the {what}: {e}") from None


def json_filters(request: web.Request) -> dict[str, Any]:
    """``filters`` as the service takes it (both of Docker's encodings)."""
    text = request.query.get("filters")
    if not text:
        return {}
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise InvalidArgument(f"invalid filter: {e}") from None
    if not isinstance(doc, dict):
        raise InvalidArgument("invalid filter: expected a JSON object")
    return doc


def query_size(request: web.Request, name: str) -> int:
    value = request.query.get(name, "")
    try:
        return int(value)
    except ValueError:
        raise InvalidArgument(f"invalid {name} value {value!r}: strconv.Atoi: parsing {value!r}: "
                              "invalid syntax") from None


def client_gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


async def until_gone(request: web.Request) -> None:
    """Returns when the client has closed its connection (aiohttp does not
    cancel a handler whose client left, so long waits watch for it)."""
    while not client_gone(request):
        await asyncio.sleep(DISCONNECT_POLL)


async def unless_gone(request: web.Request, aw: Any) -> tuple[bool, Any]:
    """Await ``aw`` unless the client leaves first: (finished, result)."""
    task = asyncio.ensure_future(aw)
    watcher = asyncio.ensure_future(until_gone(request))
    try:
        done, _ = await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            return True, task.result()
        task.cancel()
        return False, None
    finally:
        watcher.cancel()
        if not task.done():
            task.cancel()


async def stream_chunks(request: web.Request, response: web.StreamResponse, chunks: AsyncIterator[bytes]) -> None:
    """Copy ``chunks`` into a prepared response; a client that leaves ends
    the copy and the producer (its ``aclose`` runs)."""
    try:
        async for chunk in chunks:
            await response.write(chunk)
    except (ConnectionError, asyncio.CancelledError):
        log.info("%s %s: the client went away", request.method, request.path)
        raise ConnectionResetError("client went away") from None
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()


def cut_connection(request: web.Request) -> None:
    """A stream that broke after its head was sent can only be reported by
    cutting the connection (the client then sees a truncated body)."""
    if request.transport is not None:
        request.transport.close()


# -- create / list / inspect -------------------------------------------------------

_EMPTY_CONFIG = "Config cannot be empty in order to create a container"


async def create_container(request: web.Request) -> web.StreamResponse:
    svc = service(request)
    body = await read_json_body(request, what="container config")
    if body is None:
        raise InvalidArgument("invalid JSON: got EOF while reading request body")
    if not isinstance(body, dict):
        raise InvalidArgument(_EMPTY_CONFIG)
    config = dict(body)
    host_config = config.pop("HostConfig", None) or {}
    networking_config = config.pop("NetworkingConfig", None)
    if not config:
        # dockerd decodes Config as an embedded pointer: a body with none
        # of its fields ({} or only HostConfig) leaves it nil.
        raise InvalidArgument(_EMPTY_CONFIG)
    if not isinstance(host_config, dict):
        raise InvalidArgument("invalid HostConfig: expected an object")
    api = api_version(request)
    if api < (1, 25):
        # Old clients removed their containers themselves.
        host_config["AutoRemove"] = False
    limit = host_config.get("PidsLimit")
    if isinstance(limit, int) and limit <= 0:
        # Docker: 0 and negative values mean "no limit", as if unset.
        host_config["PidsLimit"] = None
    platform = request.query.get("platform") or None
    result = await svc.create(config, host_config, networking_config, name=request.query.get("name") or None,
                              platform=platform)
    return json_response({"Id": result["Id"], "Warnings": list(result.get("Warnings") or [])}, status=201)


async def list_containers(request: web.Request) -> web.StreamResponse:
    svc = service(request)
    filters = json_filters(request)
    # API < 1.22 clients send before/since as their own parameters.
    for key in ("before", "since"):
        if request.query.get(key):
            filters = {**filters, key: [request.query[key]]}
    limit = query_int(request, "limit", -1)
    containers = await svc.list(all=query_bool(request, "all"), limit=limit if limit is not None else -1,
                                size=query_bool(request, "size"), filters=filters)
    return json_response(containers)


async def inspect_container(request: web.Request) -> web.StreamResponse:
    doc = await service(request).inspect(request.match_info["id"], size=query_bool(request, "size"))
    return json_response(doc)


async def top(request: web.Request) -> web.StreamResponse:
    result = await service(request).top(request.match_info["id"], request.query.get("ps_args", ""))
    return json_response(result)


async def changes(request: web.Request) -> web.StreamResponse:
    # null, not [], for a container with no changes, as dockerd answers
    return json_response(await service(request).changes(request.match_info["id"]) or None)


# -- logs / stats / export -------------------------------------------------------------

def _log_options(request: web.Request) -> dict[str, Any]:
    stdout = query_bool(request, "stdout")
    stderr = query_bool(request, "stderr")
    if not (stdout or stderr):
        raise InvalidArgument("Bad parameters: you must choose at least one stream")
    return {
        "follow": query_bool(request, "follow"),
        "stdout": stdout,
        "stderr": stderr,
        "since": request.query.get("since") or 0,
        "until": request.query.get("until") or 0,
        "timestamps": query_bool(request, "timestamps"),
        "tail": request.query.get("tail") or "all",
        "details": query_bool(request, "details"),
    }


#: How long ``logs`` waits for its first entry before sending the head
#: anyway (a quiet ``logs -f`` must not keep the client waiting for it).
FIRST_ENTRY_WAIT = 0.25


async def logs(request: web.Request) -> web.StreamResponse:
    svc = service(request)
    options = _log_options(request)
    container = svc.resolve(request.match_info["id"])
    tty = bool(container.config.get("Tty"))
    # A follow ends with the run, also when the container is removed
    # meanwhile (docker-py's run(remove=True) reads the stream after that).
    messages = svc.logs(container.id, **options)
    # The service checks the driver when reading begins: give it the first
    # entry's time so a refusal is still a status code, not a broken stream.
    first = asyncio.ensure_future(_first(messages))
    await asyncio.wait({first}, timeout=FIRST_ENTRY_WAIT)
    if first.done() and first.exception() is not None:
        await messages.aclose()
        raise first.exception()  # type: ignore[misc]
    multiplexed = not tty and api_version(request) >= (1, 42)
    response = web.StreamResponse(status=200)
    response.content_type = ("application/vnd.docker.multiplexed-stream" if multiplexed
                             else "application/vnd.docker.raw-stream")
    response.enable_chunked_encoding()

    async def copy() -> None:
        item = await first
        while item is not None:
            await response.write(_log_frame(item, tty))
            item = await _first(messages)

    try:
        await response.prepare(request)
        finished, _ = await unless_gone(request, copy())
    except ConnectionError:
        log.info("logs of %s: the client went away", container.id[:12])
        cut_connection(request)
        return response
    except DockyardError as e:
        # Mid-stream: the status is gone; end the body.
        log.info("logs of %s ended early: %s", container.id[:12], e.message)
        finished = True
    finally:
        if not first.done():
            first.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await first
        await messages.aclose()
    if not finished:
        cut_connection(request)
        return response
    await response.write_eof()
    return response


async def _first(messages: AsyncIterator[tuple[str, bytes]]) -> tuple[str, bytes] | None:
    try:
        return await messages.__anext__()
    except StopAsyncIteration:
        return None


def _log_frame(item: tuple[str, bytes], tty: bool) -> bytes:
    from dockyard.daemon.hijack import STDERR, STDOUT, frame

    stream, data = item
    if tty:
        return data
    return frame(STDERR if stream == "stderr" else STDOUT, data)


async def stats(request: web.Request) -> web.StreamResponse:
    svc = service(request)
    stream = query_bool(request, "stream", default=True)
    one_shot = query_bool(request, "one-shot") if api_version(request) >= (1, 41) else False
    container = svc.resolve(request.match_info["id"])
    documents = svc.stats(container.id, stream=stream, one_shot=one_shot)
    if not stream:
        try:
            doc = await documents.__anext__()
        except StopAsyncIteration:
            doc = None
        finally:
            await documents.aclose()
        return json_response(doc)
    response = web.StreamResponse(status=200)
    response.content_type = "application/json"
    response.enable_chunked_encoding()
    await response.prepare(request)
    try:
        async for doc in documents:
            await response.write(json.dumps(doc, ensure_ascii=False).encode() + b"\n")
    except ConnectionError:
        cut_connection(request)
        return response
    finally:
        await documents.aclose()
    await response.write_eof()
    return response


async def export(request: web.Request) -> web.StreamResponse:
    svc = service(request)
    container = svc.resolve(request.match_info["id"])
    chunks = svc.export(container.id)
    # The first chunk before the head: a failure to read the container's
    # filesystem is still a status code.
    try:
        first = await chunks.__anext__()
    except StopAsyncIteration:
        first = b""
    except BaseException:
        await chunks.aclose()
        raise
    response = web.StreamResponse(status=200)
    response.content_type = "application/x-tar"
    await response.prepare(request)
    try:
        if first:
            await response.write(first)
        await stream_chunks(request, response, chunks)
    except ConnectionError:
        cut_connection(request)
        return response
    except DockyardError as e:
        log.error("export of %s failed mid-stream: %s", container.id[:12], e.message)
        cut_connection(request)
        return response
    await response.write_eof()
    return response


# -- lifecycle -------------------------------------------------------------------------

async def start(request: web.Request) -> web.StreamResponse:
    if request.content_length is not None and request.content_length > 7 or (
            request.content_length is None and request.headers.get("Transfer-Encoding")):
        raise InvalidArgument("starting container with non-empty request body was deprecated since API v1.22 "
                              "and removed in v1.24")
    started = await service(request).start(request.match_info["id"])
    return web.Response(status=204 if started else 304)


def _stop_args(request: web.Request) -> dict[str, Any]:
    timeout = query_int(request, "t")
    signal = request.query.get("signal") or None if api_version(request) >= (1, 42) else None
    return {"timeout": timeout, "signal": signal}


async def stop(request: web.Request) -> web.StreamResponse:
    stopped = await service(request).stop(request.match_info["id"], **_stop_args(request))
    return web.Response(status=204 if stopped else 304)


async def restart(request: web.Request) -> web.StreamResponse:
    await service(request).restart(request.match_info["id"], **_stop_args(request))
    return web.Response(status=204)


async def kill(request: web.Request) -> web.StreamResponse:
    ref = request.match_info["id"]
    try:
        await service(request).kill(ref, request.query.get("signal") or "SIGKILL")
    except DockyardError as e:
        raise _reworded(e, f"cannot kill container: {ref}: {e.message}") from None
    return web.Response(status=204)


def _reworded(error: DockyardError, message: str) -> DockyardError:
    """The same kind of error with Docker's context in front."""
    try:
        return type(error)(message)
    except TypeError:
        return error


async def pause(request: web.Request) -> web.StreamResponse:
    await service(request).pause(request.match_info["id"])
    return web.Response(status=204)


async def unpause(request: web.Request) -> web.StreamResponse:
    await service(request).unpause(request.match_info["id"])
    return web.Response(status=204)


async def rename(request: web.Request) -> web.StreamResponse:
    await service(request).rename(request.match_info["id"], request.query.get("name", ""))
    return web.Response(status=204)


async def update(request: web.Request) -> web.StreamResponse:
    body = await read_json_body(request, what="update config")
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise InvalidArgument("invalid update config: expected an object")
    body = {k: v for k, v in body.items() if v is not None}
    api = api_version(request)
    if api < (1, 40):
        body.pop("PidsLimit", None)
    if api >= (1, 42):
        body.pop("KernelMemory", None)  # removed in API 1.42: ignored
    limit = body.get("PidsLimit")
    if isinstance(limit, int) and limit <= 0:
        body["PidsLimit"] = -1  # 0 and negatives mean "unlimited" on update
    result = await service(request).update(request.match_info["id"], body)
    # dockerd answers null, not [], when an update has nothing to warn about
    return json_response({"Warnings": list(result["Warnings"]) if result.get("Warnings") else None})


async def resize(request: web.Request) -> web.StreamResponse:
    height, width = query_size(request, "h"), query_size(request, "w")
    await service(request).resize(request.match_info["id"], height, width)
    return web.Response(status=200)


async def wait(request: web.Request) -> web.StreamResponse:
    svc = service(request)
    legacy = api_version(request) < (1, 30)
    condition = "not-running" if legacy else (request.query.get("condition") or "not-running")
    if condition not in WAIT_CONDITIONS:
        raise InvalidArgument(f'invalid condition: "{condition}"')
    container = svc.resolve(request.match_info["id"])
    waiting = asyncio.ensure_future(svc.wait(container.id, condition))
    # Let the service register the waiter before the head goes out: the
    # client starts the container as soon as it sees the head.
    await asyncio.sleep(0)
    if legacy:
        finished, result = await unless_gone(request, waiting)
        return json_response(result) if finished else web.Response(status=204)
    response = web.StreamResponse(status=200)
    response.content_type = "application/json"
    try:
        await response.prepare(request)
        finished, result = await unless_gone(request, waiting)
    except ConnectionError:
        waiting.cancel()
        cut_connection(request)
        return response
    except DockyardError as e:
        # The head is out: the error goes in the body, as Docker's does.
        finished, result = True, {"StatusCode": -1, "Error": {"Message": e.message}}
    if not finished:
        cut_connection(request)
        return response
    body = {"StatusCode": result.get("StatusCode", 0), "Error": result.get("Error")}
    try:
        await response.write(json.dumps(body).encode() + b"\n")
        await response.write_eof()
    except ConnectionError:
        cut_connection(request)
    return response


async def delete(request: web.Request) -> web.StreamResponse:
    await service(request).remove(request.match_info["id"], force=query_bool(request, "force"),
                                  volumes=query_bool(request, "v"), link=query_bool(request, "link"))
    return web.Response(status=204)


async def prune(request: web.Request) -> web.StreamResponse:
    engine = engine_of(request)
    report = await service(request).prune(json_filters(request))
    engine.events.publish("container", "prune", "", {"reclaimed": str(report.get("SpaceReclaimed", 0))})
    return json_response({"ContainersDeleted": report.get("ContainersDeleted"),
                          "SpaceReclaimed": report.get("SpaceReclaimed", 0)})


# -- attach ----------------------------------------------------------------------------

async def attach(request: web.Request) -> web.StreamResponse:
    svc = service(request)
    container = svc.resolve(request.match_info["id"])
    return await relay_attach(
        request, svc, container.id,
        stdin=query_bool(request, "stdin"), stdout=query_bool(request, "stdout"),
        stderr=query_bool(request, "stderr"), stream=query_bool(request, "stream"),
        logs=query_bool(request, "logs"), detach_keys=request.query.get("detachKeys") or None)


# -- commit ----------------------------------------------------------------------------

async def commit(request: web.Request) -> web.StreamResponse:
    svc = service(request)
    query = request.query
    body = await read_json_body(request, what="container config")
    if body is not None and not isinstance(body, dict):
        raise InvalidArgument("invalid container config: expected an object")
    result = await svc.commit(
        query.get("container", ""), repo=query.get("repo", ""), tag=query.get("tag", ""),
        comment=query.get("comment", ""), author=query.get("author", ""), changes=query.getall("changes", []),
        pause=query_bool(request, "pause", default=True), config=body or None)
    return json_response({"Id": result["Id"]}, status=201)


def register(routes: RouteTable, engine: Engine) -> None:
    # Static paths before the {id} patterns.
    routes.get("/containers/json", list_containers)
    routes.post("/containers/create", create_container)
    routes.post("/containers/prune", prune)
    routes.post("/commit", commit)
    routes.get("/containers/{id}/json", inspect_container)
    routes.get("/containers/{id}/top", top)
    routes.get("/containers/{id}/logs", logs)
    routes.get("/containers/{id}/changes", changes)
    routes.get("/containers/{id}/export", export)
    routes.get("/containers/{id}/stats", stats)
    routes.post("/containers/{id}/resize", resize)
    routes.post("/containers/{id}/start", start)
    routes.post("/containers/{id}/stop", stop)
    routes.post("/containers/{id}/restart", restart)
    routes.post("/containers/{id}/kill", kill)
    routes.post("/containers/{id}/update", update)
    routes.post("/containers/{id}/rename", rename)
    routes.post("/containers/{id}/pause", pause)
    routes.post("/containers/{id}/unpause", unpause)
    routes.post("/containers/{id}/attach", attach)
    routes.post("/containers/{id}/wait", wait)
    routes.delete("/containers/{id}", delete)
