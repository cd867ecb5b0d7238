"""The synchronous Engine API client used by the CLI and the tests.

::

    from dockyard.client import Client
    c = Client("unix:///run/dockyard.sock")
    c.version()["ApiVersion"]
    for msg in c.load_image(open("busybox.tar", "rb")):
        ...

The API version is negotiated on first use (``GET /_ping``'s Api-Version,
capped at :data:`API_VERSION`), unless one is given.  Errors come back as
DockyardError classes (``dockyard.client.errors``).  Streaming calls return
iterators (JSON lines) or the :class:`Response` itself (raw tar).
"""

from __future__ import annotations

import json
import os
import socket
from typing import IO, Any, Iterable, Iterator, Mapping

from dockyard.client.errors import KIND_HEADER, ConnectionFailed, error_from_response
from dockyard.client.stdcopy import demux
from dockyard.client.transport import Connection, Endpoint, Query, Response, TLSConfig

API_VERSION = "1.45"
MIN_API_VERSION = "1.24"


def _vtuple(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in text.split("."))
    except ValueError:
        return (0,)


def encode_filters(filters: Mapping[str, Iterable[str] | str | bool] | None) -> str | None:
    """``{"dangling": True, "label": ["a=b"]}`` -> Docker's JSON form."""
    if not filters:
        return None
    doc: dict[str, dict[str, bool]] = {}
    for key, values in filters.items():
        if isinstance(values, bool):
            values = ["true" if values else "false"]
        elif isinstance(values, str):
            values = [values]
        doc.setdefault(key, {}).update({v: True for v in values})
    return json.dumps(doc, separators=(",", ":"))


class HijackedSocket:
    """A raw bidirectional stream after ``101 UPGRADED`` (attach, exec)."""

    def __init__(self, conn: Connection, response: Response) -> None:
        self._conn = conn
        self.response = response
        self.sock: socket.socket = conn.sock  # type: ignore[assignment]
        self._rfile = conn.rfile
        self.multiplexed = "multiplexed" in response.header("content-type", "")

    def recv(self, n: int = 65536) -> bytes:
        """Bytes from the daemon (buffered ones first); b"" at the end."""
        return self._rfile.read1(n)

    def sendall(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close_write(self) -> None:
        """Half-close: the daemon sees the end of stdin, output keeps coming.

        Not over TLS: Python's ssl module cannot half-close (shutdown()
        drops the TLS session for reading too), so there the daemon only
        sees the end when the connection closes."""
        if hasattr(self.sock, "unwrap"):  # an ssl.SSLSocket
            return
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def fileno(self) -> int:
        return self.sock.fileno()

    def frames(self) -> Iterator[tuple[int, bytes]]:
        """(stream id, bytes) pairs; raw streams report everything as stdout."""
        if self.multiplexed:
            yield from demux(self.recv)
        else:
            while data := self.recv():
                yield 1, data

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> "HijackedSocket":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Client:
    def __init__(self, host: str | None = None, *, version: str | None = None, tls: TLSConfig | None = None,
                 timeout: float | None = None) -> None:
        if host is None:
            host = os.environ.get("DOCKYARD_HOST") or os.environ.get("DOCKER_HOST")
        self.endpoint = Endpoint.parse(host, tls=tls is not None)
        self.tls = tls
        self.timeout = timeout
        self._conn = Connection(self.endpoint, tls=tls, timeout=timeout)
        self._version = version
        self.server_headers: dict[str, str] = {}

    # -- plumbing ---------------------------------------------------------

    @property
    def api_version(self) -> str:
        if self._version is None:
            self._version = self.negotiate()
        return self._version

    def negotiate(self) -> str:
        """The API version both sides speak: the daemon's, capped at ours."""
        headers = self.ping()
        server = headers.get("api-version") or MIN_API_VERSION
        return server if _vtuple(server) < _vtuple(API_VERSION) else API_VERSION

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def url(self, path: str, *, versioned: bool = True) -> str:
        return f"/v{self.api_version}{path}" if versioned else path

    def request(self, method: str, path: str, *, query: Query = None,
                body: bytes | IO[bytes] | Iterable[bytes] | None = None, json_body: Any = None,
                headers: Mapping[str, str] | None = None, versioned: bool = True,
                stream: bool = False) -> Response:
        """Send a request; raise the mapped DockyardError for 4xx/5xx.  With
        ``stream`` the body is left unread for the caller."""
        hdrs = dict(headers or {})
        if json_body is not None:
            body = json.dumps(json_body).encode()
            hdrs["Content-Type"] = "application/json"
        conn = self._conn
        if stream:
            # A streamed response holds its connection: give it its own so
            # calls made while it is open do not cut it off.
            conn = Connection(self.endpoint, tls=self.tls, timeout=self.timeout)
        response = conn.send(method, self.url(path, versioned=versioned), query=query, headers=hdrs, body=body)
        if response.status >= 400:
            raise self._error(response)
        if not stream:
            # Read the body now so the connection is free for the next call.
            response.content
        return response

    @staticmethod
    def _error(response: Response) -> Exception:
        raw = response.read()
        try:
            message = json.loads(raw).get("message", "")
        except (ValueError, AttributeError):
            message = raw.decode(errors="replace").strip()
        if not message:
            message = f"{response.status} {response.reason}"
        return error_from_response(response.status, message, response.header(KIND_HEADER))

    def get_json(self, path: str, query: Query = None) -> Any:
        return self.request("GET", path, query=query).json()

    def post_json(self, path: str, query: Query = None, json_body: Any = None) -> Any:
        return self.request("POST", path, query=query, json_body=json_body).json()

    def stream_json(self, method: str, path: str, **kw: Any) -> Iterator[dict[str, Any]]:
        response = self.request(method, path, stream=True, **kw)
        try:
            for line in response.iter_lines():
                yield json.loads(line)
        finally:
            response.close()

    def hijack(self, method: str, path: str, *, query: Query = None,
               json_body: Any = None) -> HijackedSocket:
        """Send a request asking for ``Upgrade: tcp`` and return the raw
        stream (attach, exec start)."""
        conn = Connection(self.endpoint, tls=self.tls, timeout=self.timeout)
        headers = {"Connection": "Upgrade", "Upgrade": "tcp"}
        body = None
        if json_body is not None:
            body = json.dumps(json_body).encode()
            headers["Content-Type"] = "application/json"
        response = conn.send(method, self.url(path), query=query, headers=headers, body=body)
        if response.status >= 400:
            error = self._error(response)
            conn.close()
            raise error
        if response.status not in (101, 200):
            conn.close()
            raise ConnectionFailed(f"the daemon did not switch protocols ({response.status} {response.reason})")
        return HijackedSocket(conn, response)

    # -- system -----------------------------------------------------------

    def ping(self) -> dict[str, str]:
        response = self._conn.send("GET", "/_ping")
        body = response.read()
        if response.status >= 400:
            raise error_from_response(response.status, body.decode(errors="replace"), response.header(KIND_HEADER))
        self.server_headers = response.headers
        return response.headers

    def version(self) -> dict[str, Any]:
        return self.get_json("/version")

    def info(self) -> dict[str, Any]:
        return self.get_json("/info")

    def df(self, types: Iterable[str] = ()) -> dict[str, Any]:
        query = {"type": ",".join(types)} if types else None
        return self.get_json("/system/df", query)

    def events(self, *, since: str | None = None, until: str | None = None,
               filters: Mapping[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        return self.stream_json("GET", "/events", query={"since": since, "until": until,
                                                         "filters": encode_filters(filters)})

    # -- images -----------------------------------------------------------

    def images(self, *, all: bool = False, filters: Mapping[str, Any] | None = None,
               digests: bool = False) -> list[dict[str, Any]]:
        return self.get_json("/images/json", {"all": all or None, "filters": encode_filters(filters),
                                              "digests": digests or None})

    def inspect_image(self, name: str) -> dict[str, Any]:
        return self.get_json(f"/images/{name}/json")

    def image_history(self, name: str) -> list[dict[str, Any]]:
        return self.get_json(f"/images/{name}/history")

    def tag_image(self, name: str, repo: str, tag: str | None = None) -> None:
        self.request("POST", f"/images/{name}/tag", query={"repo": repo, "tag": tag})

    def remove_image(self, name: str, *, force: bool = False, noprune: bool = False) -> list[dict[str, str]]:
        response = self.request("DELETE", f"/images/{name}", query={"force": force or None,
                                                                    "noprune": noprune or None})
        return response.json() or []

    def import_image(self, source: IO[bytes] | Iterable[bytes], *, repo: str | None = None, tag: str | None = None,
                     changes: Iterable[str] = (), message: str | None = None,
                     platform: str | None = None) -> Iterator[dict[str, Any]]:
        query: dict[str, object] = {"fromSrc": "-", "repo": repo, "tag": tag, "message": message,
                                    "platform": platform}
        changes = list(changes)
        # Docker repeats ?changes= once per instruction.
        pairs = [(k, v) for k, v in query.items() if v is not None] + [("changes", c) for c in changes]
        return self._stream_upload("/images/create", pairs, source, "application/x-tar")

    def load_image(self, source: IO[bytes] | Iterable[bytes], *, quiet: bool = False) -> Iterator[dict[str, Any]]:
        return self._stream_upload("/images/load", [("quiet", "1" if quiet else "0")], source,
                                   "application/x-tar")

    def _stream_upload(self, path: str, pairs: list[tuple[str, object]], source: IO[bytes] | Iterable[bytes],
                       content_type: str) -> Iterator[dict[str, Any]]:
        conn = Connection(self.endpoint, tls=self.tls, timeout=self.timeout)
        try:
            response = conn.send("POST", self.url(path), query=pairs, headers={"Content-Type": content_type},
                                 body=source)
        except BaseException:
            conn.close()
            raise
        if response.status >= 400:
            error = self._error(response)
            conn.close()
            raise error
        return self._json_lines(response)

    @staticmethod
    def _json_lines(response: Response) -> Iterator[dict[str, Any]]:
        try:
            if "json" not in (response.header("content-type") or ""):
                # Old daemons answer a quiet load with plain text.
                text = response.read().decode(errors="replace")
                if text:
                    yield {"stream": text}
                return
            for line in response.iter_lines():
                yield json.loads(line)
        finally:
            response.close()

    def save_images(self, names: Iterable[str]) -> Response:
        """The ``docker save`` tar of ``names`` as a streaming response
        (``iter_chunks()``); the caller closes it."""
        names = list(names)
        if len(names) == 1:
            return self.request("GET", f"/images/{names[0]}/get", stream=True)
        return self.request("GET", "/images/get", query=[("names", n) for n in names], stream=True)

    def prune_images(self, filters: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return self.post_json("/images/prune", {"filters": encode_filters(filters)})

    # -- containers -------------------------------------------------------

    def create_container(self, config: Mapping[str, Any], *, name: str | None = None,
                         platform: str | None = None) -> dict[str, Any]:
        """``config`` is Docker's create body: Config with HostConfig and
        NetworkingConfig inside.  Returns ``{"Id", "Warnings"}``."""
        return self.post_json("/containers/create", {"name": name, "platform": platform}, dict(config))

    def containers(self, *, all: bool = False, limit: int | None = None, size: bool = False,
                   filters: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        return self.get_json("/containers/json", {"all": all or None, "limit": limit, "size": size or None,
                                                  "filters": encode_filters(filters)})

    def inspect_container(self, ref: str, *, size: bool = False) -> dict[str, Any]:
        return self.get_json(f"/containers/{ref}/json", {"size": size or None})

    def start_container(self, ref: str) -> bool:
        """False when it was already running (304)."""
        return self.request("POST", f"/containers/{ref}/start").status != 304

    def stop_container(self, ref: str, *, timeout: int | None = None, signal: str | None = None) -> bool:
        """False when it was not running (304)."""
        return self.request("POST", f"/containers/{ref}/stop", query={"t": timeout, "signal": signal}).status != 304

    def restart_container(self, ref: str, *, timeout: int | None = None, signal: str | None = None) -> None:
        self.request("POST", f"/containers/{ref}/restart", query={"t": timeout, "signal": signal})

    def kill_container(self, ref: str, signal: str | None = None) -> None:
        self.request("POST", f"/containers/{ref}/kill", query={"signal": signal})

    def remove_container(self, ref: str, *, force: bool = False, volumes: bool = False, link: bool = False) -> None:
        self.request("DELETE", f"/containers/{ref}", query={"force": force or None, "v": volumes or None,
                                                            "link": link or None})

    def pause_container(self, ref: str) -> None:
        self.request("POST", f"/containers/{ref}/pause")

    def unpause_container(self, ref: str) -> None:
        self.request("POST", f"/containers/{ref}/unpause")

    def rename_container(self, ref: str, name: str) -> None:
        self.request("POST", f"/containers/{ref}/rename", query={"name": name})

    def update_container(self, ref: str, resources: Mapping[str, Any]) -> dict[str, Any]:
        return self.post_json(f"/containers/{ref}/update", json_body=dict(resources)) or {}

    def resize_container(self, ref: str, height: int, width: int) -> None:
        self.request("POST", f"/containers/{ref}/resize", query={"h": height, "w": width})

    def wait_container(self, ref: str, condition: str | None = None) -> Response:
        """Registers the wait and returns once the daemon has sent the head
        (so a start that follows cannot be missed); ``read_wait`` gets the
        result."""
        return self.request("POST", f"/containers/{ref}/wait", query={"condition": condition}, stream=True)

    @staticmethod
    def read_wait(response: Response) -> dict[str, Any]:
        """The ``{"StatusCode", "Error"}`` of a :meth:`wait_container`."""
        try:
            doc = json.loads(response.read() or b"null")
        finally:
            response.close()
        if not isinstance(doc, dict):
            raise ConnectionFailed("the daemon ended the wait without a status")
        return doc

    def attach_container(self, ref: str, *, stdin: bool = False, stdout: bool = True, stderr: bool = True,
                         stream: bool = True, logs: bool = False, detach_keys: str | None = None) -> HijackedSocket:
        return self.hijack("POST", f"/containers/{ref}/attach", query={
            "stream": stream, "stdin": stdin, "stdout": stdout, "stderr": stderr, "logs": logs or None,
            "detachKeys": detach_keys})

    def logs(self, ref: str, *, stdout: bool = True, stderr: bool = True, follow: bool = False,
             since: str | None = None, until: str | None = None, timestamps: bool = False,
             tail: str | None = None, details: bool = False) -> Response:
        """The log stream (multiplexed frames unless the container has a
        TTY); the caller reads and closes it."""
        return self.request("GET", f"/containers/{ref}/logs", query={
            "stdout": stdout, "stderr": stderr, "follow": follow or None, "since": since, "until": until,
            "timestamps": timestamps or None, "tail": tail, "details": details or None}, stream=True)

    def top(self, ref: str, ps_args: str | None = None) -> dict[str, Any]:
        return self.get_json(f"/containers/{ref}/top", {"ps_args": ps_args})

    def stats(self, ref: str, *, stream: bool = True, one_shot: bool = False) -> Iterator[dict[str, Any]]:
        if not stream:
            doc = self.get_json(f"/containers/{ref}/stats", {"stream": False, "one-shot": one_shot or None})
            return iter([doc] if doc else [])
        return self.stream_json("GET", f"/containers/{ref}/stats", query={"stream": True})

    def changes(self, ref: str) -> list[dict[str, Any]]:
        return self.get_json(f"/containers/{ref}/changes") or []

    def export_container(self, ref: str) -> Response:
        return self.request("GET", f"/containers/{ref}/export", stream=True)

    def stat_path(self, ref: str, path: str) -> dict[str, Any]:
        """``HEAD /archive``: the path's stat (name, size, mode, mtime, linkTarget)."""
        response = self.request("HEAD", f"/containers/{ref}/archive", query={"path": path})
        return _decode_path_stat(response.header("x-docker-container-path-stat"))

    def get_archive(self, ref: str, path: str) -> tuple[Response, dict[str, Any]]:
        """A tar of ``path`` (streamed) and the path's stat."""
        response = self.request("GET", f"/containers/{ref}/archive", query={"path": path}, stream=True)
        return response, _decode_path_stat(response.header("x-docker-container-path-stat"))

    def put_archive(self, ref: str, path: str, data: bytes | IO[bytes] | Iterable[bytes], *,
                    no_overwrite_dir_non_dir: bool = False, copy_uid_gid: bool = False) -> None:
        self.request("PUT", f"/containers/{ref}/archive", query={
            "path": path, "noOverwriteDirNonDir": no_overwrite_dir_non_dir or None,
            "copyUIDGID": copy_uid_gid or None}, body=data, headers={"Content-Type": "application/x-tar"})

    def commit(self, ref: str, *, repo: str | None = None, tag: str | None = None, comment: str | None = None,
               author: str | None = None, changes: Iterable[str] = (), pause: bool = True,
               config: Mapping[str, Any] | None = None) -> dict[str, Any]:
        query: list[tuple[str, object]] = [("container", ref), ("repo", repo), ("tag", tag),
                                           ("comment", comment), ("author", author), ("pause", pause)]
        query += [("changes", c) for c in changes]
        return self.request("POST", "/commit", query=query, json_body=dict(config) if config else {}).json()

    def prune_containers(self, filters: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return self.post_json("/containers/prune", {"filters": encode_filters(filters)})

    # -- exec -------------------------------------------------------------

    def exec_create(self, ref: str, config: Mapping[str, Any]) -> str:
        return self.post_json(f"/containers/{ref}/exec", json_body=dict(config))["Id"]

    def exec_start(self, exec_id: str, *, tty: bool = False, detach: bool = False,
                   console_size: tuple[int, int] | None = None) -> HijackedSocket | None:
        body: dict[str, Any] = {"Detach": detach, "Tty": tty}
        if console_size:
            body["ConsoleSize"] = list(console_size)
        if detach:
            self.request("POST", f"/exec/{exec_id}/start", json_body=body)
            return None
        return self.hijack("POST", f"/exec/{exec_id}/start", json_body=body)

    def exec_inspect(self, exec_id: str) -> dict[str, Any]:
        return self.get_json(f"/exec/{exec_id}/json")

    def exec_resize(self, exec_id: str, height: int, width: int) -> None:
        self.request("POST", f"/exec/{exec_id}/resize", query={"h": height, "w": width})


def _decode_path_stat(header: str | None) -> dict[str, Any]:
    if not header:
        return {}
    import base64

    try:
        doc = json.loads(base64.b64decode(header))
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}
