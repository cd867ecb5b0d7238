"""The supervisor's files and wire protocol.

State directory (the client's ``state_dir``)::

    zygote.sock     the zygote's listening socket (spawn requests)
    zygote.lock     flock held by the live zygote; its pid inside
    zygote.log      the zygote's and supervisors' stderr
    <id>/           one directory per container (or one the caller names):
        control.sock    the supervisor's control socket
        supervisor.lock flock held by the live supervisor; JSON inside:
                        {"pid", "start_time"}
        state.json      {"container_id", "pid", "supervisor_pid", "status",
                         "started_at", "tty", "stdin", ...} once it runs
        exit.json       {"exit_code", "signal", "oom_killed", "started_at",
                         "finished_at", "pid"} once it exited (atomic)
        console*.sock   transient console sockets (terminal mode)

Liveness never trusts a pid alone: a supervisor is alive while its
``supervisor.lock`` is flock-ed (the kernel drops the lock when it dies).

Control protocol, on a unix stream socket:

1. The client sends one request, a JSON object on one line:
   ``{"op": "status"}``.
2. The server answers with one JSON line: ``{"ok": true, ...}`` or
   ``{"ok": false, "error": {"kind": "not_found", "message": "..."}}``
   (``kind`` is a :class:`~dockyard.errors.DockyardError` kind).
3. For ``attach`` and ``exec`` (unless detached) the connection then
   carries frames both ways until the server closes it: a 5-byte header,
   kind (1 byte) and payload length (uint32 big-endian), then the payload.

   ====  ===========  =====================================================
   kind  name         meaning
   ====  ===========  =====================================================
   0     STDIN        client -> server: bytes for the process's stdin
   1     STDOUT       server -> client: output (all output with a tty)
   2     STDERR       server -> client
   3     EXIT         server -> client: JSON ``{"exit_code": n, ...}``; last
   4     RESIZE       client -> server: JSON ``{"height": h, "width": w}``
   5     CLOSE_STDIN  client -> server: half-close the process's stdin
   ====  ===========  =====================================================

   Kinds 0-2 are Docker's stream ids, so the daemon can re-frame output
   into the Engine API's 8-byte multiplexed headers by rewriting headers.
   A client that shuts down its write side (``shutdown(SHUT_WR)``) means
   CLOSE_STDIN too.

Ops: ``status``, ``start``, ``wait`` (answers when the container has
exited and its output is drained), ``kill {"signal", "all"}``, ``pause``,
``resume``, ``resize {"height", "width", "exec_id"?}``, ``close_stdin``,
``attach {"stdin", "stdout", "stderr", "start"?}`` (``start: true``: start
the created container too, once the stream is in place), ``exec {"exec_id", "process",
"tty", "stdin", "detach", "console_size"?, "record"?}`` (``record: false``:
no result is kept for ``exec_inspect``), ``exec_inspect {"exec_id"}``,
``ps``.  The zygote takes one op, ``spawn {"container_id", "directory",
"spec", "hold"?}``, answered by the new supervisor once the container runs
(or failed), and ``ping``.  With ``hold: true`` the requester makes the
bundle meanwhile and then sends the line ``go`` on the same connection
(any other line, or its end, cancels the spawn).
"""

from __future__ import annotations

import json
import os
import struct

STDIN, STDOUT, STDERR, EXIT, RESIZE, CLOSE_STDIN = 0, 1, 2, 3, 4, 5
STREAM_NAMES = {STDOUT: "stdout", STDERR: "stderr"}
HEADER = struct.Struct(">BI")
#: Longest request line accepted (an exec request carries a process JSON).
MAX_REQUEST = 1 << 20
#: Largest frame accepted from a client.
MAX_FRAME = 1 << 20

ZYGOTE_SOCK = "zygote.sock"
ZYGOTE_LOCK = "zygote.lock"
ZYGOTE_LOG = "zygote.log"
CONTROL_SOCK = "control.sock"
SUPERVISOR_LOCK = "supervisor.lock"
STATE_FILE = "state.json"
EXIT_FILE = "exit.json"

#: sun_path holds 108 bytes; longer paths go through /proc/self/fd.
_SUN_PATH_MAX = 100


def code_version() -> str:
    """Identifies the code a zygote runs: size and mtime of every source
    file of the dockyard package (a zygote preloads runtimes and log drivers
    from all over it).  A client finding a zygote started from other code
    replaces it, so new supervisors always run the installed code;
    supervisors already running keep theirs (the wire protocol is stable)."""
    import zlib

    top = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    parts = []
    for directory, dirs, files in os.walk(top):
        dirs[:] = sorted(d for d in dirs if not d.startswith((".", "__pycache__")))
        for name in sorted(files):
            if name.endswith(".py"):
                st = os.stat(os.path.join(directory, name))
                parts.append(f"{directory[len(top):]}/{name}:{st.st_size}:{st.st_mtime_ns}")
    return f"{zlib.crc32(';'.join(parts).encode()):08x}"


def encode_frame(kind: int, payload: bytes = b"") -> bytes:
    return HEADER.pack(kind, len(payload)) + payload


class FrameDecoder:
    """Incremental frame parser (no I/O): ``feed(data)`` returns complete
    ``(kind, payload)`` pairs; usable from blocking or asyncio code."""

    __slots__ = ("_buf", "max_frame")

    def __init__(self, max_frame: int = 64 << 20) -> None:
        self._buf = b""
        self.max_frame = max_frame

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        buf = self._buf + data if self._buf else data
        frames = []
        pos = 0
        while len(buf) - pos >= 5:
            kind, size = HEADER.unpack_from(buf, pos)
            if size > self.max_frame:
                raise ValueError(f"frame of {size} bytes exceeds {self.max_frame}")
            if len(buf) - pos - 5 < size:
                break
            frames.append((kind, buf[pos + 5:pos + 5 + size]))
            pos += 5 + size
        self._buf = buf[pos:]
        return frames

    @property
    def pending(self) -> int:
        return len(self._buf)


def recv_line(sock, data: bytes = b"", *, limit: int | None = None,
              chunk: int = 65536) -> tuple[bytes, bytes] | None:
    """Read one message line from ``sock``, after ``data`` already read:
    (the line without its newline, what came after it), or None when the
    peer closes first or the line grows past ``limit`` bytes."""
    while b"\n" not in data:
        more = sock.recv(chunk)
        if not more:
            return None
        data += more
        if limit is not None and len(data) > limit:
            return None
    line, _, rest = data.partition(b"\n")
    return line, rest


def encode_message(doc: dict) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode() + b"\n"


def error_doc(exc: BaseException) -> dict:
    kind = getattr(exc, "kind", "internal")
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return {"ok": False, "error": {"kind": kind, "message": message}}


def raise_error(doc: dict) -> None:
    """Raise the DockyardError an ``{"ok": false}`` answer describes."""
    from dockyard import errors

    err = doc.get("error") or {}
    kinds = {cls.kind: cls for cls in (errors.NotFound, errors.AlreadyExists, errors.InvalidArgument,
                                       errors.FailedPrecondition, errors.Unavailable, errors.Internal)}
    raise kinds.get(err.get("kind"), errors.Internal)(err.get("message") or "supervisor request failed")


def write_json_atomic(path: str, doc: dict, *, durable: bool = True) -> None:
    """temp file, fsync, rename: readers see the old file or the new one.
    ``durable=False`` skips the fsync, for a record that is rewritten from
    live state anyway (a crash of the machine kills the container too)."""
    tmp = f"{path}.tmp{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        data = json.dumps(doc, separators=(",", ":")).encode()
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, path)


def sync_file(path: str) -> None:
    """fsync ``path`` (written by :func:`write_json_atomic` with
    ``durable=False``) and its directory, which holds the rename."""
    for target, flags in ((path, os.O_RDONLY), (os.path.dirname(path) or ".", os.O_RDONLY | os.O_DIRECTORY)):
        try:
            fd = os.open(target, flags | os.O_CLOEXEC)
        except OSError:
            return
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def read_json(path: str) -> dict | None:
    try:
        with open(path, "rb") as f:
            doc = json.loads(f.read())
    except (FileNotFoundError, NotADirectoryError):
        return None
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


class SocketPath:
    """A path usable for bind/connect even when longer than sun_path allows:
    the directory is opened O_PATH and addressed as /proc/<pid>/fd/<n>/name.

    ``for_self`` is for this process's own bind/connect; ``for_others`` for
    a path handed to another process (runc connecting to a console socket).
    Close it when the socket is no longer addressed by path.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._dirfd = -1
        if len(path.encode()) > _SUN_PATH_MAX:
            directory, _ = os.path.split(path)
            self._dirfd = os.open(directory, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)

    def _via(self, pid: str) -> str:
        if self._dirfd < 0:
            return self.path
        return f"/proc/{pid}/fd/{self._dirfd}/{os.path.basename(self.path)}"

    @property
    def for_self(self) -> str:
        return self._via("self")

    @property
    def for_others(self) -> str:
        return self._via(str(os.getpid()))

    def close(self) -> None:
        if self._dirfd >= 0:
            os.close(self._dirfd)
            self._dirfd = -1

    def __enter__(self) -> "SocketPath":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
