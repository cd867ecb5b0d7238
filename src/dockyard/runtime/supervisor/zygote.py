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

import _signal  # signal's C layer, cheaper to run in a fresh child
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
)
#: Imported if they exist (heavier, but shared).
PRELOAD_OPTIONAL = (
    "dockyard.runtime.native",
    "dockyard.runtime.cgroups",
)


def _quiet_threading_fork_hook() -> None:
    """Skip the threading module's after-fork bookkeeping in supervisors.

    The native runtime imports logging, which imports threading, whose
    fork hook rebuilds its thread registry in every child: Python code run
    at each fork that copies hundreds of KiB of shared pages per
    supervisor.  The zygote and its children never start threads (see the
    module docstring), so there is nothing for it to fix up; the hook is
    registered once and cannot be removed, so its body is emptied, in this
    process only."""
    threading = sys.modules.get("threading")
    hook = getattr(threading, "_after_fork", None)
    if hook is None or threading.active_count() != 1:
        return
    hook.__code__ = (lambda: None).__code__
    # logging's hook walks its handlers' weak set in Python; with one
    # thread no handler lock can be held at the fork, so of its work only
    # re-initialising the module lock (taken before the fork) matters.
    logging = sys.modules.get("logging")
    hook = getattr(logging, "_after_at_fork_child_reinit_locks", None)
    if hook is not None:
        # The new body's _lock is looked up in the hook's globals, which
        # are logging's (its module lock), not this module's.
        hook.__code__ = (lambda: _lock._at_fork_reinit()).__code__  # noqa: F821


def _preload(names, optional: bool = False) -> None:
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError:
            if not optional:
                raise


def _warm_up(state_dir: str, spec: dict) -> None:
    """Run the log path a few dozen times, so that Python's adaptive
    interpreter has specialised its bytecode here, once, instead of in
    every supervisor (where each rewritten code object is a page copied)."""
    module = spec.get("log_module") or "dockyard.logs"
    driver = spec.get("log_driver") or "none"
    directory = os.path.join(state_dir, ".warmup")
    try:
        logs = importlib.import_module(module)
        os.makedirs(directory, exist_ok=True)
        for _ in range(3):
            copier = logs.open_copier(driver, os.path.join(directory, "warmup.log"), spec.get("log_options") or {})
            for i in range(40):
                copier.feed("stdout", b"warm up line %d\nand a partial" % i)
                copier.feed("stderr", b"more\n")
            copier.close()
        server.warm_up(directory, spec)
    except Exception:  # noqa: BLE001 - an optimisation only
        pass
    finally:
        try:
            for name in os.listdir(directory):
                os.unlink(os.path.join(directory, name))
            os.rmdir(directory)
        except OSError:
            pass


#: The supervisor module, imported by main() before the first fork.
server = None


def _warm_up_supervisor() -> None:
    """Run, a few times, the calls every supervisor makes between its fork
    and its loop, so their first-use work (the adaptive interpreter's
    counters and caches in their code objects, ctypes' argument
    converters) is done here once instead of in every supervisor.
    Each call is harmless in the zygote: PR_SET_CHILD_SUBREAPER 0 is its
    state anyway (the flag is not inherited across fork)."""
    from dockyard.linux.process import set_child_subreaper
    import _socket

    for _ in range(10):
        set_child_subreaper(False)
        a, b = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)
        a.close()
        b.close()
        json.loads(b'{"pid": 1, "status": "running", "out": [[1, 1]], "master": null}')


#: Objects that occupy the free blocks of partly used allocator pools.
_PLUGS: list = []


def _plug_free_blocks() -> None:
    """Occupy every free block of the small-object allocator's partly used
    pools, so that a supervisor's new objects go to fresh pools (pages it
    owns anyway) instead of into free slots scattered over pages it shares
    with the zygote, each of which a single allocation would copy."""
    report = os.memfd_create("mallocstats", os.MFD_CLOEXEC)
    saved = os.dup(2)
    try:
        os.dup2(report, 2)
        sys._debugmallocstats()
        os.lseek(report, 0, os.SEEK_SET)
        raw = b""
        while chunk := os.read(report, 1 << 16):
            raw += chunk
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(report)
    text = raw.decode(errors="replace")
    for line in text.splitlines():
        fields = line.split()
        if len(fields) != 5 or not fields[0].isdigit():
            continue
        size_class, avail = int(fields[0]), int(fields[4])
        size = 16 * (size_class + 1)
        for _ in range(avail):
            if size <= 16:
                _PLUGS.append([None, None])  # its item array is 16 bytes
            elif size <= 32:
                _PLUGS.append(float(len(_PLUGS)))
            else:
                _PLUGS.append(b"x" * (size - 33))  # a bytes object of exactly this class


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
    os.pwrite(lock_fd, json.dumps({"pid": os.getpid(), "version": P.code_version()}).encode(), 0)
    # Supervisors are reaped by the kernel; each resets SIGCHLD for itself.
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    _preload(PRELOAD)
    _preload(PRELOAD_OPTIONAL, optional=True)
    global server
    from . import server
    _warm_up_supervisor()
    _quiet_threading_fork_hook()
    gc.collect()
    _plug_free_blocks()
    gc.freeze()
    _ready(ready_fd, f"ok {os.getpid()}\n".encode())
    serve(listener, lock_fd, address, state_dir)


def _ready(fd: int, message: bytes) -> None:
    if fd >= 0:
        try:
            os.write(fd, message)
        finally:
            os.close(fd)


def _read_request(conn: socket.socket) -> dict | None:
    conn.settimeout(10)
    received = P.recv_line(conn, limit=P.MAX_REQUEST)
    if received is None:
        return None
    line, rest = received
    try:
        doc = json.loads(line)
    except ValueError:
        return None
    if not isinstance(doc, dict):
        return None
    if rest:
        doc["_rest"] = rest  # a held spawn's word may come with it (see server.serve)
    return doc


_WARMED: set = set()


def serve(listener: socket.socket, lock_fd: int, address: P.SocketPath, state_dir: str) -> None:
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
            spec = request.get("spec") or {}
            changed = _preload_for(spec)
            key = (spec.get("log_module"), spec.get("log_driver"))
            if key not in _WARMED:
                _WARMED.add(key)
                _warm_up(state_dir, spec)
                changed = True
            if changed:
                _quiet_threading_fork_hook()
                gc.collect()
                _plug_free_blocks()
                gc.freeze()
            request["_parsed"] = server.parse_spawn(request)
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
        _signal.signal(_signal.SIGCHLD, _signal.SIG_DFL)
        # Named for ps; through /proc rather than prctl, whose ctypes call
        # would copy more pages than the rest of this start-up.
        comm = os.open("/proc/self/comm", os.O_WRONLY)
        try:
            os.write(comm, f"dy-sup {request.get('container_id', '')}"[:15].encode())
        finally:
            os.close(comm)
        code = server.serve(conn, request)
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
