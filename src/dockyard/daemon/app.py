"""The aiohttp application: API versions, errors, and route registration.

Every route is served twice, unversioned (``/_ping``) and versioned
(``/v1.45/_ping``).  The version middleware refuses versions outside
[MIN_API_VERSION, API_VERSION] with Docker's 400 messages and stores the
version the request asked for in ``request["api_version"]`` (the maximum for
unversioned paths) so handlers can shape old responses.

Route modules (``dockyard.daemon.routes.*``) export ``register(routes,
engine)`` and add handlers to a :class:`RouteTable`; the modules are listed
in ``dockyard.daemon.routes.ROUTE_MODULES``.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Awaitable, Callable, Iterable

from aiohttp import web

from dockyard import __version__
from dockyard.daemon.engine import Engine
from dockyard.daemon.errors import KIND_HEADER, error_body, status_for
from dockyard.daemon.streaming import StreamFailed
from dockyard.errors import DockyardError, InvalidArgument

log = logging.getLogger(__name__)

API_VERSION = "1.45"
MIN_API_VERSION = "1.24"
SERVER_HEADER = f"Dockyard/{__version__} (linux)"

ENGINE_KEY = web.AppKey("engine", Engine)
#: Where the version middleware leaves the request's API version (a tuple).
API_VERSION_KEY: Any = web.RequestKey("api_version", tuple) if hasattr(web, "RequestKey") else "api_version"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def version_tuple(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split("."))
    except ValueError:
        raise InvalidArgument(f"invalid API version {text!r}") from None


def json_response(doc: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    # As Docker's encoder: no escaping of non-ASCII, a newline at the end.
    return web.Response(body=json.dumps(doc, ensure_ascii=False).encode() + b"\n", status=status,
                        content_type="application/json", headers=headers)


def query_bool(request: web.Request, name: str, default: bool = False) -> bool:
    """Docker's boolean query values: "1", "true", "True", "yes" are true;
    "", "0", "false", "no" are false."""
    value = request.query.get(name)
    if value is None:
        return default
    return value.strip().lower() not in ("", "0", "false", "no", "off")


def query_int(request: web.Request, name: str, default: int | None = None) -> int | None:
    value = request.query.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise InvalidArgument(f"invalid value for {name}: {value!r} is not an integer") from None


async def in_executor(func: Callable[..., Any], *args: Any) -> Any:
    """Run blocking service code (file and database I/O) off the loop."""
    import asyncio

    return await asyncio.get_running_loop().run_in_executor(None, func, *args)


def error_response(status: int, message: str, kind: str | None = None) -> web.Response:
    return json_response(error_body(message), status=status,
                         headers={KIND_HEADER: kind} if kind else None)


def engine_of(request: web.Request) -> Engine:
    return request.app[ENGINE_KEY]


def api_version(request: web.Request) -> tuple[int, ...]:
    return request.get(API_VERSION_KEY, version_tuple(API_VERSION))


class RouteTable:
    """Collects routes; each is registered unversioned and under /v{version}."""

    def __init__(self) -> None:
        self.routes: list[tuple[str, str, Handler]] = []

    def add(self, method: str, path: str, handler: Handler) -> None:
        self.routes.append((method, path, handler))

    def get(self, path: str, handler: Handler) -> None:
        self.add("GET", path, handler)

    def head(self, path: str, handler: Handler) -> None:
        self.add("HEAD", path, handler)

    def post(self, path: str, handler: Handler) -> None:
        self.add("POST", path, handler)

    def put(self, path: str, handler: Handler) -> None:
        self.add("PUT", path, handler)

    def delete(self, path: str, handler: Handler) -> None:
        self.add("DELETE", path, handler)

    def install(self, app: web.Application) -> None:
        router = app.router
        for method, path, handler in self.routes:
            router.add_route(method, path, handler)
            router.add_route(method, "/v{api_version:[0-9][0-9.]*}" + path, handler)


@web.middleware
async def version_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    requested = request.match_info.get("api_version")
    if requested:
        want = version_tuple(requested)
        if want < version_tuple(MIN_API_VERSION):
            raise InvalidArgument(f"client version {requested} is too old. Minimum supported API version is "
                                  f"{MIN_API_VERSION}, please upgrade your client to a newer version")
        if want > version_tuple(API_VERSION):
            raise InvalidArgument(f"client version {requested} is too new. Maximum supported API version is "
                                  f"{API_VERSION}")
        request[API_VERSION_KEY] = want
    else:
        request[API_VERSION_KEY] = version_tuple(API_VERSION)
    return await handler(request)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except StreamFailed as e:
        # The error was already written into a started stream.
        log.info("%s %s failed mid-stream: %s", request.method, request.path, e.error.message)
        if e.response is None:
            return error_response(status_for(e.error), e.error.message, e.error.kind)
        try:
            await e.response.write_eof()
        except ConnectionError:
            pass  # the client left; the error was logged above
        return e.response
    except DockyardError as e:
        status = status_for(e)
        if status >= 500 and status != 503:
            log.error("%s %s: %s", request.method, request.path, e.message)
        else:
            log.debug("%s %s: %d %s", request.method, request.path, status, e.message)
        return error_response(status, e.message, e.kind)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        # aiohttp's own 404/405 answers, in Docker's JSON shape.  dockerd's
        # router answers a known path with the wrong method as an unknown
        # one: 404, not 405.
        if e.status in (404, 405):
            return error_response(404, "page not found")
        return error_response(e.status, (e.reason or "error").lower())
    except ConnectionError:
        # The client is gone; there is nobody to answer.  (Returning rather
        # than raising keeps aiohttp from logging it as a server fault.)
        log.debug("%s %s: the client went away", request.method, request.path)
        if request.transport is not None:
            request.transport.close()
        return web.Response(status=400)
    except Exception as e:  # noqa: BLE001 - the last line of defence: a real fault
        log.exception("%s %s failed", request.method, request.path)
        return error_response(500, f"internal error: {type(e).__name__}: {e}")


async def _common_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers["Server"] = SERVER_HEADER
    response.headers.setdefault("Api-Version", API_VERSION)
    response.headers.setdefault("Docker-Experimental", "false")
    response.headers.setdefault("Ostype", "linux")


def build_app(engine: Engine, modules: Iterable[Any] | None = None) -> web.Application:
    """The aiohttp app for ``engine``.  ``modules`` defaults to every route
    module in ROUTE_MODULES; tests may pass their own."""
    # Large uploads (images/load) are streamed from request.content, never
    # buffered whole; client_max_size only bounds bodies read with .read().
    app = web.Application(middlewares=[error_middleware, version_middleware], client_max_size=64 << 20)
    app[ENGINE_KEY] = engine
    app.on_response_prepare.append(_common_headers)
    if modules is None:
        from dockyard.daemon.routes import load_route_modules

        modules = load_route_modules()
    table = RouteTable()
    for module in modules:
        module.register(table, engine)
    table.install(app)
    return app
