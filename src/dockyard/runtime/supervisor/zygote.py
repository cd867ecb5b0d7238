"""The zygote: a prepared process that forks one supervisor per container.

Started by :class:`~.client.SupervisorClient` when none runs for its state
directory (``python -c 'from dockyard.runtime.supervisor.zygote import main;
main()' STATE_DIR READY_FD``), it detaches (own session, re-parented away
from the daemon), imports what supervisors need (the runtimes, the log
drivers as they are asked for), freezes the heap (``gc.freeze()``) so that
forked children share those pages instead of copying them, and serves
``spawn`` requests on ``zygote.sock``.  A supervisor forked from it costs
only the pages it writes.  The zygote outlives daemon restarts and is
reused by the next daemon; it holds ``zygote.lock`` while alive.

Nothing here imports asyncio, aiohttp or threads: a fork must copy no
lock held by another thread.
"""

from __future__ import annotations

import fcntl
import gc
import importlib
import json
import os
import signal
import socket
import sys

from . import protocol as P

#: Imported before the first fork so every supervisor shares them.
PRELOAD = (
    "dockyard.runtime.supervisor.server",
    "dockyard.runtime.registry",
    "dockyard.runtime.external",
    "dockyard.linux.process",
    "dockyard.linux.terminal",
    "subprocess",
)
#: Imported if they exist (heavier, but shared).
PRELOAD_OPTIONAL = (
    "dockyard.runtime.native",
    "dockyard.runtime.cgroups",
)


def _preload(names, optional: bool = False) -> None:
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError:
            if not optional:
                raise


def _preload_for(spec: dict) -> bool:
    """Import in the zygote what a spawn needs (its log driver module and
    runtime), so the next supervisors share it.  True if anything new was
    imported (the heap is frozen again)."""
    before = len(sys.modules)
    module = spec.get("log_module") or "dockyard.logs"
    try:
        logs = importlib.import_module(module)
        driver = spec.get("log_driver")
        drivers = getattr(logs, "DRIVERS", {})
        if driver in drivers:
            importlib.import_module(drivers[driver])
            importlib.import_module(f"{module}.copier")
    except ImportError:
        pass  # the supervisor reports it
    return len(sys.modules) != before


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    state_dir = os.path.abspath(argv[0])
    ready_fd = int(argv[1]) if len(argv) > 1 else -1
    os.makedirs(state_dir, mode=0o711, exist_ok=True)
    lock_fd = os.open(os.path.join(state_dir, P.ZYGOTE_LOCK), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        _ready(ready_fd, b"busy\n")  # another zygote serves this directory
        os._exit(0)
    sock_path = os.path.join(state_dir, P.ZYGOTE_SOCK)
    try:
        os.unlink(sock_path)
    except FileNotFoundError:
        pass
    address = P.SocketPath(sock_path)  # kept open: the zygote binds through it
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(address.for_self)
    os.chmod(sock_path, 0o600)
    listener.listen(128)
    # Detach: the launcher exits at once, the zygote is re-parented to init
    # (or the launcher's subreaper) and shares no session with the daemon.
    if os.fork() != 0:
        os._exit(0)
    os.setsid()
    os.chdir("/")
    os.ftruncate(lock_fd, 0)
    os.pwrite(lock_fd, str(os.getpid()).encode(), 0)
    # Supervisors are reaped by the kernel; each resets SIGCHLD for itself.
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    _preload(PRELOAD)
    _preload(PRELOAD_OPTIONAL, optional=True)
    gc.collect()
    gc.freeze()
    _ready(ready_fd, f"ok {os.getpid()}\n".encode())
    serve(listener, lock_fd, address)


def _ready(fd: int, message: bytes) -> None:
    if fd >= 0:
        try:
            os.write(fd, message)
        finally:
            os.close(fd)


def _read_request(conn: socket.socket) -> dict | None:
    conn.settimeout(10)
    data = b""
    while b"\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
        if len(data) > P.MAX_REQUEST:
            return None
    try:
        doc = json.loads(data.split(b"\n", 1)[0])
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


def serve(listener: socket.socket, lock_fd: int, address: P.SocketPath) -> None:
    while True:
        try:
            conn, _ = listener.accept()
        except InterruptedError:
            continue
        try:
            request = _read_request(conn)
        except OSError:
            conn.close()
            continue
        if request is None:
            conn.close()
            continue
        op = request.get("op")
        if op == "ping":
            _send(conn, {"ok": True, "pid": os.getpid()})
        elif op == "shutdown":
            _send(conn, {"ok": True})
            listener.close()
            os._exit(0)
        elif op == "spawn":
            if _preload_for(request.get("spec") or {}):
                gc.collect()
                gc.freeze()
            _fork_supervisor(conn, request, listener, lock_fd, address)
        else:
            _send(conn, {"ok": False, "error": {"kind": "invalid_argument", "message": f"unknown op {op!r}"}})


def _send(conn: socket.socket, doc: dict) -> None:
    try:
        conn.sendall(P.encode_message(doc))
    except OSError:
        pass
    conn.close()


def _fork_supervisor(conn: socket.socket, request: dict, listener: socket.socket, lock_fd: int,
                     address: P.SocketPath) -> None:
    try:
        pid = os.fork()
    except OSError as e:
        _send(conn, {"ok": False, "error": {"kind": "unavailable", "message": f"fork: {e.strerror}"}})
        return
    if pid:
        conn.close()
        return
    # The supervisor: drop the zygote's resources, become its own session.
    code = 1
    try:
        listener.close()
        address.close()
        os.close(lock_fd)
        os.setsid()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        from dockyard.linux.process import set_name

        set_name(f"dy-sup {request.get('container_id', '')}"[:15].encode())
        from .server import serve as serve_container

        code = serve_container(conn, request)
    except BaseException:  # noqa: BLE001 - the forked child must never return into the zygote's loop
        import traceback

        traceback.print_exc()
    finally:
        try:
            sys.stderr.flush()
        finally:
            os._exit(code)


if __name__ == "__main__":
    main()
