"""A small HTTP/1.1 client over unix and TCP (+TLS) sockets.

Why not http.client or requests: the CLI's start-up time counts (``dockyard
run`` is benchmarked), and the Engine API needs things general clients make
awkward: hijacking the connection after ``101 UPGRADED`` and half-closing
it, and streaming request bodies of unknown length.  This module does just
HTTP/1.1 framing: Content-Length, chunked transfer coding, read-to-close.
"""

from __future__ import annotations

import os
import socket
from typing import IO, TYPE_CHECKING, Any, Iterable, Iterator, Mapping, NamedTuple
from urllib.parse import quote, urlencode

from dockyard.client.errors import ConnectionFailed
from dockyard.errors import InvalidArgument

if TYPE_CHECKING:
    import ssl

DEFAULT_UNIX_SOCKET = "/run/dockyard.sock"

#: Query parameters: a mapping, or pairs when a key repeats (?names=a&names=b).
#: None values are left out.
Query = Mapping[str, object] | Iterable[tuple[str, object]] | None
CHUNK = 1 << 16


class TLSConfig(NamedTuple):
    """Client TLS material (docker's --tlsverify/--tlscacert/--tlscert/--tlskey).
    (A NamedTuple, not a dataclass: the CLI's start-up time counts.)"""

    ca_cert: str | None = None
    cert: str | None = None
    key: str | None = None
    verify: bool = True

    def context(self) -> "ssl.SSLContext":
        import ssl  # only TLS connections pay for it

        ctx = ssl.create_default_context(cafile=self.ca_cert) if self.verify else ssl.SSLContext(
            ssl.PROTOCOL_TLS_CLIENT)
        if not self.verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if self.cert:
            ctx.load_cert_chain(self.cert, self.key)
        return ctx


class Endpoint(NamedTuple):
    """Where the daemon is: ``unix:///path`` or ``tcp://host:port``."""

    scheme: str
    address: str
    port: int = 0

    @classmethod
    def parse(cls, host: str | None, *, tls: bool = False) -> "Endpoint":
        if not host:
            return cls("unix", DEFAULT_UNIX_SOCKET)
        if host.startswith("unix://"):
            return cls("unix", host[len("unix://"):])
        if host.startswith("/"):
            return cls("unix", host)
        for prefix in ("tcp://", "http://", "https://"):
            if host.startswith(prefix):
                rest = host[len(prefix):].rstrip("/")
                default = 2376 if tls or prefix == "https://" else 2375
                if rest.startswith("["):
                    addr, _, port = rest[1:].partition("]")
                    port = port.removeprefix(":")
                else:
                    addr, _, port = rest.rpartition(":") if ":" in rest else (rest, "", "")
                try:
                    return cls("tcp", addr or "127.0.0.1", int(port) if port else default)
                except ValueError:
                    raise InvalidArgument(f"invalid daemon address {host!r}: bad port") from None
        raise InvalidArgument(f"invalid daemon address {host!r}: use unix:///path or tcp://host:port")

    def __str__(self) -> str:
        if self.scheme == "unix":
            return f"unix://{self.address}"
        return f"tcp://{self.address}:{self.port}"


class Response:
    """A response whose body is read on demand (it may be an endless stream)."""

    def __init__(self, conn: "Connection", status: int, reason: str, headers: dict[str, str],
                 body_mode: str, length: int) -> None:
        self._conn = conn
        self.status = status
        self.reason = reason
        self.headers = headers  # lower-cased names
        self._mode = body_mode  # "none", "length", "chunked", "close"
        self._remaining = length
        self._chunk_left = 0
        self.done = body_mode == "none"
        self._content: bytes | None = None

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)

    def read1(self, size: int = CHUNK) -> bytes:
        """Up to ``size`` body bytes; b"" at the end of the body."""
        if self.done:
            return b""
        rf = self._conn.rfile
        if self._mode == "length":
            if self._remaining <= 0:
                self._finish()
                return b""
            data = rf.read1(min(size, self._remaining))
            if not data:
                raise ConnectionFailed("connection closed in the middle of a response")
            self._remaining -= len(data)
            if self._remaining == 0:
                self._finish()
            return data
        if self._mode == "chunked":
            if self._chunk_left == 0:
                line = rf.readline(1024)
                if not line:
                    raise ConnectionFailed("connection closed in the middle of a chunked response")
                try:
                    self._chunk_left = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    raise ConnectionFailed(f"bad chunk header {line[:40]!r}") from None
                if self._chunk_left == 0:
                    while rf.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    self._finish()
                    return b""
            data = rf.read1(min(size, self._chunk_left))
            if not data:
                raise ConnectionFailed("connection closed in the middle of a chunked response")
            self._chunk_left -= len(data)
            if self._chunk_left == 0:
                rf.readline(8)  # CRLF after the chunk
            return data
        data = rf.read1(size)
        if not data:
            self._finish(reusable=False)
        return data

    def _finish(self, reusable: bool = True) -> None:
        self.done = True
        self._conn.response_done(self, reusable and self.header("connection", "").lower() != "close")

    def read(self) -> bytes:
        parts = []
        while data := self.read1(CHUNK):
            parts.append(data)
        return b"".join(parts)

    @property
    def content(self) -> bytes:
        """The whole body, read once and kept."""
        if self._content is None:
            self._content = self.read()
        return self._content

    def json(self) -> Any:
        import json

        body = self.content
        return json.loads(body) if body.strip() else None

    def iter_chunks(self, size: int = CHUNK) -> Iterator[bytes]:
        while data := self.read1(size):
            yield data

    def iter_lines(self) -> Iterator[bytes]:
        """Body lines without their newline (JSON-lines streams)."""
        pending = b""
        for chunk in self.iter_chunks():
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                line = line.rstrip(b"\r")
                if line:
                    yield line
        if pending.strip():
            yield pending

    def close(self) -> None:
        if not self.done:
            self.done = True
            self._conn.close()


class Connection:
    """One HTTP/1.1 connection to the daemon, reused while responses are
    read to their end."""

    def __init__(self, endpoint: Endpoint, *, tls: TLSConfig | None = None, timeout: float | None = None) -> None:
        self.endpoint = endpoint
        self.tls = tls
        self.timeout = timeout
        self.sock: socket.socket | None = None
        self.rfile: IO[bytes] = None  # type: ignore[assignment]
        self._busy = False

    def connect(self) -> None:
        ep = self.endpoint
        try:
            if ep.scheme == "unix":
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(self.timeout)
                try:
                    sock.connect(ep.address)
                except OSError:
                    sock.close()
                    raise
            else:
                sock = socket.create_connection((ep.address, ep.port), timeout=self.timeout)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if self.tls is not None:
                    sock = self.tls.context().wrap_socket(sock, server_hostname=ep.address)
        except OSError as e:
            raise ConnectionFailed(
                f"Cannot connect to the Dockyard daemon at {ep}. Is the daemon running? ({e.strerror or e})"
            ) from e
        self.sock = sock
        self.rfile = sock.makefile("rb", buffering=CHUNK)

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.rfile.close()
                self.sock.close()
            finally:
                self.sock = None
                self._busy = False

    def response_done(self, response: Response, reusable: bool) -> None:
        self._busy = False
        if not reusable:
            self.close()

    def _host_header(self) -> str:
        if self.endpoint.scheme == "unix":
            return "docker"  # what the docker CLI sends over unix sockets
        return f"{self.endpoint.address}:{self.endpoint.port}"

    def send(self, method: str, path: str, *, query: Query = None,
             headers: Mapping[str, str] | None = None, body: bytes | IO[bytes] | Iterable[bytes] | None = None,
             ) -> Response:
        if self._busy:
            # The previous response is still being streamed: abandon it.
            self.close()
        url = quote(path, safe="/:@!$&'()*+,;=-._~")
        if query:
            items = query.items() if isinstance(query, Mapping) else query
            pairs = [(k, _query_value(v)) for k, v in items if v is not None]
            if pairs:
                url += "?" + urlencode(pairs)
        hdrs = {"Host": self._host_header(), "User-Agent": "Dockyard-Client"}
        if headers:
            hdrs.update(headers)
        for attempt in (0, 1):
            fresh = self.sock is None
            if fresh:
                self.connect()
            try:
                self._write_request(method, url, hdrs, body)
                return self._read_response(method)
            except (ConnectionResetError, BrokenPipeError, ConnectionFailed):
                # A kept-alive connection the daemon closed meanwhile: retry
                # once on a new one, if the body can be sent again.
                self.close()
                if fresh or attempt or not (body is None or isinstance(body, bytes)):
                    raise
        raise ConnectionFailed(f"no answer from {self.endpoint}")  # not reached: the loop returns or raises

    def _write_request(self, method: str, url: str, headers: dict[str, str],
                       body: bytes | IO[bytes] | Iterable[bytes] | None) -> None:
        sock = self.sock
        if sock is None:
            raise ConnectionFailed(f"not connected to {self.endpoint}")
        lines = [f"{method} {url} HTTP/1.1"]
        streaming = False
        if body is None:
            if method in ("POST", "PUT"):
                headers.setdefault("Content-Length", "0")
        elif isinstance(body, bytes):
            headers["Content-Length"] = str(len(body))
        else:
            size = _file_size(body)
            if size is not None:
                headers["Content-Length"] = str(size)
            else:
                headers["Transfer-Encoding"] = "chunked"
            streaming = True
        lines.extend(f"{k}: {v}" for k, v in headers.items())
        head = ("\r\n".join(lines) + "\r\n\r\n").encode()
        if body is None or streaming:
            sock.sendall(head)
        else:
            sock.sendall(head + body)  # type: ignore[operator]
        if streaming:
            chunked = "Transfer-Encoding" in headers
            for data in _body_chunks(body):  # type: ignore[arg-type]
                if not data:
                    continue
                if chunked:
                    sock.sendall(b"%x\r\n" % len(data) + data + b"\r\n")
                else:
                    sock.sendall(data)
            if chunked:
                sock.sendall(b"0\r\n\r\n")

    def _read_head(self) -> tuple[int, str, dict[str, str]]:
        line = self.rfile.readline(65537)
        if not line:
            raise ConnectionFailed(f"the daemon at {self.endpoint} closed the connection without answering")
        parts = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/"):
            raise ConnectionFailed(f"not an HTTP answer from {self.endpoint}: {line[:60]!r}")
        status = int(parts[1])
        reason = parts[2] if len(parts) > 2 else ""
        headers: dict[str, str] = {}
        while True:
            line = self.rfile.readline(65537)
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        return status, reason, headers

    def _read_response(self, method: str) -> Response:
        status, reason, headers = self._read_head()
        while 100 <= status < 200 and status != 101:
            status, reason, headers = self._read_head()
        self._busy = True
        if method == "HEAD" or status in (101, 204, 304):
            mode, length = "none", 0
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            mode, length = "chunked", 0
        elif "content-length" in headers:
            length = int(headers["content-length"])
            mode = "length" if length else "none"
        else:
            mode, length = "close", 0
        response = Response(self, status, reason, headers, mode, length)
        if mode == "none" and status != 101:
            response._finish()
        return response


def _query_value(value: object) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def _file_size(body: object) -> int | None:
    fileno = getattr(body, "fileno", None)
    if fileno is None:
        return None
    try:
        st = os.fstat(fileno())
        pos = body.tell()  # type: ignore[attr-defined]
    except (OSError, ValueError, AttributeError):
        return None
    import stat

    if not stat.S_ISREG(st.st_mode):
        return None
    return st.st_size - pos


def _body_chunks(body: IO[bytes] | Iterable[bytes]) -> Iterator[bytes]:
    read = getattr(body, "read", None)
    if read is not None:
        while data := read(CHUNK * 4):
            yield data
    else:
        yield from body  # type: ignore[misc]
