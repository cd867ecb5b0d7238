"""The per-container supervisor process (forked by the zygote).

One single-threaded poll loop owns everything long-lived about a container:

- its stdio: pipes (or the pty master received over a console socket),
  output fed to the log copier and to attached clients, stdin fed from an
  attached client with half-close;
- its exit: the supervisor is the child subreaper, so init (and every exec'd
  process) is re-parented to it and reaped here; the exit status is written
  to ``exit.json`` atomically once the output is drained, after
  ``runtime.delete``;
- exec sessions: ``runtime.exec`` is called from here, never from the
  multithreaded daemon, and the session's I/O is relayed over the client's
  control connection.

Memory: a supervisor lives as long as its container, and every page it
writes stops being shared with the zygote it was forked from (CPython 3.11
writes reference counts into every object it touches).  So the supervisor
proper runs little besides the loop: the setup (files, sockets, pipes,
runtime create/start) runs in a throw-away child that hands its results
over (:func:`serve`), and so does every later runtime call
(:class:`ForkedRuntime`).  Processes those children leave behind (init, an
exec'd process) are re-parented to the supervisor, the subreaper.

Children are reaped only in the loop, never while a runtime call waits for
its own helper.  Runtime calls block the loop; they are short.

The protocol is documented in :mod:`.protocol`.
"""

from __future__ import annotations

import _signal  # signal's C layer: the Python wrapper's enum conversions touch many pages
import _socket
import array
import errno
import fcntl
import importlib
import json
import os
import select
import signal
import socket
import struct
import sys
import time
from pathlib import Path

from dockyard.errors import AlreadyExists, DockyardError, FailedPrecondition, Internal, InvalidArgument, NotFound
# At the top, not in the functions that use it: an import statement run in a
# supervisor touches (and so copies) the module's spec and more.
from dockyard.linux.process import set_child_subreaper

from . import protocol as P
from .spec import ExitStatus, SupervisorSpec, rfc3339nano

#: Stop reading a process's output while an attached client has this much
#: unsent (the process then blocks on a full pipe, as under Docker).
HIGH_WATER = 1 << 20
#: Stop reading a client's stdin frames while this much is unwritten.
STDIN_HIGH_WATER = 1 << 20
#: How long a finished supervisor keeps flushing output to slow clients.
LINGER = 2.0
#: Finished exec sessions remembered for exec_inspect.
EXEC_HISTORY = 64
#: How long the set-up child of a held spawn waits for the caller's word
#: that the bundle is ready (see _await_bundle).
HOLD_TIMEOUT = 120.0
#: How long a set-up child spawned without the start stays to make it
#: (see StartHelper); a start after that forks a helper of its own.
START_LINGER = 10.0

_POLLIN, _POLLOUT = select.POLLIN, select.POLLOUT
_POLLEND = select.POLLHUP | select.POLLERR | select.POLLNVAL


def _nonblock(fd: int) -> None:
    os.set_blocking(fd, False)


def _close(fd: int | None) -> None:
    if fd is not None and fd >= 0:
        try:
            os.close(fd)
        except OSError:
            pass


class ProcessIO:
    """The I/O of one process (the container's init or an exec session)."""

    __slots__ = ("out", "stdin_fd", "stdin_buf", "stdin_closing", "tty", "master", "subscribers", "copier")

    def __init__(self, tty: bool, master: int | None, out: dict[int, int], stdin_fd: int | None,
                 copier=None) -> None:
        self.tty = tty
        self.master = master
        self.out = out  # fd -> STDOUT/STDERR
        self.stdin_fd = stdin_fd  # pipe write end, the master (tty) or None
        self.stdin_buf = bytearray()
        self.stdin_closing = False
        self.subscribers: list[Conn] = []
        self.copier = copier

    def backlogged(self) -> bool:
        for conn in self.subscribers:
            if len(conn.outbuf) > HIGH_WATER:
                return True
        return False


class ExecSession:
    __slots__ = ("exec_id", "pid", "io", "conn", "exit_code", "deadline", "detached", "record")

    def __init__(self, exec_id: str, pid: int, io: ProcessIO, conn, detached: bool, record: bool = True) -> None:
        self.exec_id = exec_id
        self.pid = pid
        self.io = io
        self.conn = conn
        self.exit_code: int | None = None
        self.deadline = 0.0
        self.detached = detached
        #: keep the result for exec_inspect (False: a health probe, whose
        #: caller reads the exit code from the stream and nobody inspects)
        self.record = record


class Conn:
    """A control connection: a request line, then maybe a frame stream."""

    __slots__ = ("sock", "fd", "inbuf", "outbuf", "mode", "decoder", "kinds", "stdin_io", "close_after",
                 "read_eof", "exec")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.inbuf = b""
        self.outbuf = bytearray()
        self.mode = "request"  # request, attach, exec, wait, done
        self.decoder: P.FrameDecoder | None = None
        self.kinds: tuple[int, ...] = ()
        self.stdin_io: ProcessIO | None = None
        self.close_after = False
        self.read_eof = False
        self.exec: ExecSession | None = None


class ForkedRuntime:
    """The runtime, with every call made in a short-lived forked child.

    Why: a supervisor lives as long as its container, and every page it
    writes stops being shared with the zygote.  A runtime call (runc's
    subprocess machinery, the native runtime's setup) touches a lot of the
    heap; made in a throw-away child, those copies die with the child and
    the supervisor stays small.  Processes the call leaves behind (init,
    an exec'd process) are re-parented to the supervisor, the subreaper.
    """

    def __init__(self, runtime) -> None:
        self._runtime = runtime
        self.name = runtime.name
        self.root = runtime.root

    @property
    def unforked(self):
        """The runtime itself, for the supervisor's last call (the delete
        once the container exited): the supervisor ends soon after, so the
        pages that call copies cost nothing for long, while a fork would
        delay the exit's record (and every waiter) by a millisecond or more."""
        return self._runtime

    def __getattr__(self, method: str):
        fn = getattr(self._runtime, method)

        def call(*args, **kwargs):
            return _in_child(fn, args, kwargs)

        return call


class StartHelper:
    """The set-up child of a container spawned without its start (clients
    attach first, then start: ``docker run``), kept until the start.

    Why: a start made by the supervisor proper is a fork of it (see
    ForkedRuntime) whose child runs the runtime's code for the first time
    in that process, page faults and all: ~3 ms on the path of every
    ``docker run``.  The set-up child has just created the container; its
    runtime is warm and the fork is already paid.  It waits (at most
    START_LINGER) for one word on its channel, starts the container, answers
    and exits.  It holds none of the container's fds, nor the lock."""

    __slots__ = ("pid", "channel", "reaped")

    def __init__(self, pid: int, channel) -> None:
        self.pid = pid
        self.channel = channel
        self.reaped = False

    def start(self) -> bool:
        """Have the helper start the container: True when it did, False
        when it is gone (the caller starts it another way); raises the
        runtime's error."""
        chunks = []
        try:
            if not self.reaped:
                self.channel.sendall(b"start")
                chunks = self._answer()
        except OSError:
            chunks = []
        finally:
            self.close()
        if not chunks:
            return False
        try:
            doc = json.loads(b"".join(chunks))
        except ValueError:
            raise Internal("the container's start helper died while starting it") from None
        if not doc.get("ok"):
            P.raise_error(doc)
        return True

    def _answer(self) -> list[bytes]:
        """Its answer, or nothing if it exits without one.  Not read to the
        end of the stream alone: the container's init, still waiting for
        its start, holds a copy of the helper's end until it execs."""
        chunks = []
        poller = select.poll()
        poller.register(self.channel.fileno(), _POLLIN)
        while True:
            if poller.poll(50):
                chunk = self.channel.recv(65536)
                if not chunk:
                    return chunks
                chunks.append(chunk)
                if chunk.endswith(b"\n"):
                    return chunks  # one line, then the helper exits
            else:
                try:
                    gone = os.waitpid(self.pid, os.WNOHANG)[0] != 0
                except ChildProcessError:
                    gone = True
                if gone:
                    self.reaped = True
                    return chunks

    def close(self) -> None:
        """Let it go: it exits when its channel closes (or has), and the
        loop reaps it.  Not waited for here: a process this size takes a
        millisecond to be torn down, on the start's path."""
        try:
            self.channel.close()
        except OSError:
            pass


def _linger_for_start(channel, sup) -> None:
    """In the set-up child, after the handover: see StartHelper."""
    # Everything of the container now lives in the supervisor proper: hold
    # none of it (the lock above all, and the pipes, whose ends would keep
    # the container's stdin open).
    if sup.listen is not None:
        sup.listen.close()
    _close(sup.lock_fd)
    for fd in set(sup.io.out) | {sup.io.stdin_fd, sup.io.master}:
        _close(fd)
    try:
        if not select.select([channel], [], [], START_LINGER)[0] or channel.recv(16) != b"start":
            return
        try:
            sup._runtime.start(sup.cid)
            doc = {"ok": True}
        except BaseException as e:  # noqa: BLE001 - answered to the supervisor proper
            if not isinstance(e, DockyardError):
                e = Internal(f"starting container {sup.cid}: {type(e).__name__}: {e}")
            doc = P.error_doc(e)
        channel.sendall(json.dumps(doc).encode() + b"\n")
    except OSError:
        pass


def _in_child(fn, args, kwargs):
    r, w = os.pipe()
    try:
        pid = os.fork()
    except OSError:
        os.close(r)
        os.close(w)
        raise
    if pid == 0:  # the helper
        code = 0
        try:
            os.close(r)
            _signal.set_wakeup_fd(-1)
            _signal.signal(_signal.SIGCHLD, _signal.SIG_DFL)
            try:
                doc = {"ok": True, "value": fn(*args, **kwargs)}
            except BaseException as e:  # noqa: BLE001 - handed to the supervisor as an error answer
                if not isinstance(e, DockyardError):
                    e = Internal(f"{getattr(fn, '__name__', 'runtime call')}: {type(e).__name__}: {e}")
                doc = P.error_doc(e)
            view = memoryview(json.dumps(doc).encode())
            while view:
                view = view[os.write(w, view):]
        except BaseException:  # noqa: BLE001 - never return into the supervisor's loop
            code = 1
        finally:
            os._exit(code)
    os.close(w)
    chunks = []
    try:
        while chunk := os.read(r, 65536):
            chunks.append(chunk)
    finally:
        os.close(r)
        os.waitpid(pid, 0)
    try:
        doc = json.loads(b"".join(chunks))
    except ValueError:
        raise Internal(f"runtime call {getattr(fn, '__name__', '?')} died without an answer") from None
    if not doc.get("ok"):
        P.raise_error(doc)
    return doc.get("value")


def _run_with_pipes(run, want_stdin: bool, copier=None) -> tuple[ProcessIO, int]:
    """Call ``run(stdin, stdout, stderr)`` with fds for a process without a
    terminal (a pipe, or /dev/null, for stdin; pipes for the output), keep
    our ends (non-blocking) and close the process's: (its ProcessIO, the
    pid ``run`` returns)."""
    theirs: list[int] = []
    ours: list[int] = []
    stdin_w = None
    try:
        if want_stdin:
            stdin_r, stdin_w = os.pipe()
            ours.append(stdin_w)
        else:
            stdin_r = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        theirs.append(stdin_r)
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        theirs += [out_w, err_w]
        ours += [out_r, err_r]
        pid = run(stdin_r, out_w, err_w)
    except BaseException:
        for fd in theirs + ours:
            _close(fd)
        raise
    for fd in theirs:
        _close(fd)
    for fd in ours:
        _nonblock(fd)
    return ProcessIO(False, None, {out_r: P.STDOUT, err_r: P.STDERR}, stdin_w, copier), pid


def _exit_code(status: int) -> tuple[int, int | None]:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        return 128 + sig, sig
    return os.waitstatus_to_exitcode(status), None


def oom_source(pid: int) -> tuple[str, str] | None:
    """(file, key) holding the OOM-kill count of ``pid``'s memory cgroup,
    resolved now while the process exists (v1 memory.oom_control or v2
    memory.events, line ``oom_kill N``); None without one."""
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    v1 = v2 = None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            v1 = path
        elif controllers == "":
            v2 = path
    candidates = []
    if v1 is not None:
        candidates.append(f"/sys/fs/cgroup/memory{v1}/memory.oom_control")
    if v2 is not None:
        candidates += [f"/sys/fs/cgroup{v2}/memory.events", f"/sys/fs/cgroup/unified{v2}/memory.events"]
    for path in candidates:
        if os.path.exists(path):
            return path, "oom_kill"
    return None


def read_oom_count(source: tuple[str, str] | None) -> int:
    if not source:
        return 0
    path, key = source
    try:
        with open(path) as f:
            for line in f:
                name, _, value = line.partition(" ")
                if name == key:
                    return int(value)
    except (OSError, ValueError):
        pass
    return 0


class Supervisor:
    def __init__(self, container_id: str, directory: str, spec: SupervisorSpec) -> None:
        self.cid = container_id
        self.dir = directory
        self.spec = spec
        self._runtime = None
        self.listen: socket.socket | None = None
        self.control_path: P.SocketPath | None = None
        self.lock_fd = -1
        self.pid = 0
        self.status = "creating"
        self.created_at = ""
        self.started_at = ""
        self.tty = False
        self.io: ProcessIO | None = None
        self.conns: dict[int, Conn] = {}
        self.waiters: list[Conn] = []
        self.execs: dict[int, ExecSession] = {}  # by pid
        self.exec_results: dict[str, dict] = {}
        self.exit: ExitStatus | None = None
        self.wait_status: int | None = None
        self.drain_deadline = 0.0
        self.finished = False
        self.linger_deadline = 0.0
        self.oom_before = 0
        self.oom_source: tuple[str, str] | None = None
        self.sig_r = -1
        self._exec_seq = 0
        self.log_errors = 0
        #: the supervisor proper's pid (the setup helper's parent)
        self.supervisor_pid = os.getpid()
        self.start_helper: StartHelper | None = None

    # -- setup ------------------------------------------------------------

    @property
    def runtime(self):
        """In the supervisor proper: the runtime behind ForkedRuntime, made
        on first use; in the setup helper: the runtime itself."""
        if self._runtime is None:
            self._runtime = ForkedRuntime(self._open_runtime())
        return self._runtime

    def path(self, name: str) -> str:
        return os.path.join(self.dir, name)

    def prepare(self) -> None:
        """Files, lock, control socket, signals: before the container exists."""
        os.makedirs(self.dir, mode=0o711, exist_ok=True)
        lock_fd = os.open(self.path(P.SUPERVISOR_LOCK), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(lock_fd)
            raise AlreadyExists(f"container {self.cid}: another supervisor runs in {self.dir}") from None
        self.lock_fd = lock_fd
        from dockyard.linux.process import process_start_time

        os.ftruncate(self.lock_fd, 0)
        os.pwrite(self.lock_fd, json.dumps({"pid": self.supervisor_pid,
                                            "start_time": process_start_time(self.supervisor_pid)}).encode(), 0)
        for stale in (P.EXIT_FILE, P.STATE_FILE, P.CONTROL_SOCK):
            try:
                os.unlink(self.path(stale))
            except FileNotFoundError:
                pass
        self.control_path = P.SocketPath(self.path(P.CONTROL_SOCK))
        self.listen = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listen.bind(self.control_path.for_self)
        os.chmod(self.path(P.CONTROL_SOCK), 0o600)
        self.listen.listen(64)
        self.listen.setblocking(False)

    def install_signals(self) -> None:
        # Children are reaped in the loop; SIGCHLD only wakes it.  Handlers,
        # not SIG_IGN, for the termination signals: an ignored disposition
        # would be inherited by the container's processes across exec.
        r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.sig_r = r
        _signal.set_wakeup_fd(w, warn_on_full_buffer=False)
        for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            _signal.signal(sig, _ignore)

    def _open_runtime(self):
        from dockyard.runtime.registry import get_runtime

        root = Path(self.spec.runtime_root) if self.spec.runtime_root else None
        return get_runtime(self.spec.runtime, root)

    def _open_copier(self):
        module = sys.modules.get(self.spec.log_module) or importlib.import_module(self.spec.log_module)
        return module.open_copier(self.spec.log_driver, self.spec.log_path, self.spec.log_options)

    def _terminal(self) -> bool:
        try:
            with open(os.path.join(self.spec.bundle, "config.json"), "rb") as f:
                config = json.loads(f.read())
        except FileNotFoundError:
            raise NotFound(f"bundle {self.spec.bundle}: no config.json") from None
        except ValueError as e:
            raise InvalidArgument(f"bundle {self.spec.bundle}: config.json: {e}") from None
        process = config.get("process") if isinstance(config, dict) else None
        return bool(isinstance(process, dict) and process.get("terminal"))

    def create_and_start(self) -> dict:
        """Create (and start, unless told not to) the container; the answer
        to the spawn request."""
        from dockyard.runtime.base import Stdio

        self.tty = self.spec.terminal if self.spec.terminal is not None else self._terminal()
        self._runtime = self._open_runtime()
        # Opened here to fail before the container exists on bad log
        # options; the supervisor proper opens its own.
        self._open_copier().close()
        if self.tty:
            self.io, self.pid = self._create_tty(None)
        else:
            self.io, self.pid = self._create_pipes(None, Stdio)
        self.created_at = rfc3339nano()
        self.oom_source = oom_source(self.pid)
        self.oom_before = read_oom_count(self.oom_source)
        self.status = "created"
        if self.spec.start:
            self._start()
        else:
            self._write_state()
        return self._status_doc()

    def _create_pipes(self, copier, Stdio):
        return _run_with_pipes(
            lambda i, o, e: self.runtime.create(self.cid, Path(self.spec.bundle), stdio=Stdio(i, o, e)),
            self.spec.stdin, copier)

    def _receive_console(self, name: str, create):
        """Run ``create(console_socket_path)`` and return (its result, the
        pty master it sent)."""
        path = self.path(name)
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        with P.SocketPath(path) as sp, socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
            listener.bind(sp.for_self)
            listener.listen(1)
            try:
                result = create(Path(sp.for_others))
                listener.settimeout(10)
                try:
                    conn, _ = listener.accept()
                except socket.timeout:
                    raise Internal(f"container {self.cid}: the runtime sent no terminal") from None
                with conn:
                    conn.settimeout(10)
                    from dockyard.linux.terminal import recv_fd

                    master, _ = recv_fd(conn)
            finally:
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass
        return result, master

    def _create_tty(self, copier):
        from dockyard.runtime.base import Stdio

        null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        try:
            pid, master = self._receive_console(
                "console.sock",
                lambda sock: self.runtime.create(self.cid, Path(self.spec.bundle), stdio=Stdio(null, null, null),
                                                 console_socket=sock))
        finally:
            os.close(null)
        os.set_inheritable(master, False)
        _nonblock(master)
        if self.spec.console_size:
            from dockyard.linux.terminal import set_winsize

            set_winsize(master, *self.spec.console_size)
        return ProcessIO(True, master, {master: P.STDOUT}, master if self.spec.stdin else None, copier), pid

    def _start(self) -> None:
        helper, self.start_helper = self.start_helper, None
        if helper is None or not helper.start():
            self.runtime.start(self.cid)
        self.started_at = rfc3339nano()
        self.status = "running"
        self._write_state()

    def _write_state(self) -> None:
        # Not fsync'd: it describes a live process, which no crash of the
        # machine outlives; exit.json, which must survive, is.
        P.write_json_atomic(self.path(P.STATE_FILE), self._status_doc(), durable=False)

    def _status_doc(self) -> dict:
        doc = {"ok": True, "container_id": self.cid, "pid": self.pid, "supervisor_pid": self.supervisor_pid,
               "status": self.status, "created_at": self.created_at, "started_at": self.started_at,
               "tty": self.tty, "stdin": self.spec.stdin, "directory": self.dir}
        if self.exit is not None:
            doc["exit"] = self.exit.to_json()
        return doc

    def abort(self) -> None:
        """Undo a failed spawn: nothing of the container may remain."""
        if self._runtime is not None and self.pid:
            try:
                self._runtime.delete(self.cid, force=True)
            except DockyardError:
                pass
        self._reap_all()
        if self.listen is not None:
            self.listen.close()
        names = [P.CONTROL_SOCK, P.STATE_FILE]
        if self.lock_fd >= 0:
            names.append(P.SUPERVISOR_LOCK)  # ours: no other supervisor ran here
        for name in names:
            try:
                os.unlink(self.path(name))
            except FileNotFoundError:
                pass
        # Unlocked before the requester hears of the failure, so that it can
        # spawn again at once.
        _close(self.lock_fd)
        self.lock_fd = -1
        try:
            os.rmdir(self.dir)
        except OSError:
            pass  # not empty: the caller's files live there too

    # -- handover from the setup helper to the supervisor proper ------------

    def handover(self) -> tuple[dict, list[int]]:
        """What the supervisor proper needs: scalars and the fds (lock,
        control socket, the process's stdio)."""
        io = self.io
        fds = [self.lock_fd, self.listen.fileno()]
        out = []
        for fd, kind in io.out.items():
            out.append([len(fds), kind])
            fds.append(fd)
        stdin = master = None
        if io.master is not None:
            master = next(i for i, fd in enumerate(fds) if fd == io.master)
        if io.stdin_fd is not None:
            if io.stdin_fd == io.master:
                stdin = master
            else:
                stdin = len(fds)
                fds.append(io.stdin_fd)
        doc = {"pid": self.pid, "status": self.status, "created_at": self.created_at,
               "started_at": self.started_at, "tty": self.tty, "oom_before": self.oom_before,
               "oom_source": list(self.oom_source) if self.oom_source else None,
               "out": out, "stdin": stdin, "master": master}
        return doc, fds

    def adopt(self, doc: dict, fds: list[int]) -> None:
        """Take over what the setup helper made."""
        self.lock_fd = fds[0]
        self.listen = socket.socket(fileno=fds[1])
        self.listen.setblocking(False)
        self.pid = doc["pid"]
        self.status = doc["status"]
        self.created_at = doc["created_at"]
        self.started_at = doc["started_at"]
        self.tty = doc["tty"]
        self.oom_before = doc["oom_before"]
        self.oom_source = tuple(doc["oom_source"]) if doc["oom_source"] else None
        out = {fds[i]: kind for i, kind in doc["out"]}
        master = fds[doc["master"]] if doc["master"] is not None else None
        stdin = fds[doc["stdin"]] if doc["stdin"] is not None else None
        self.io = ProcessIO(self.tty, master, out, stdin, self._open_copier())
        self.control_path = P.SocketPath(self.path(P.CONTROL_SOCK))

    # -- the loop ---------------------------------------------------------

    def run(self) -> None:
        self._reap()  # init may have exited before SIGCHLD woke anything
        self._progress()
        while True:
            events: dict[int, int] = {self.sig_r: _POLLIN}
            if self.listen is not None:
                events[self.listen.fileno()] = _POLLIN
            for io in self._ios():
                if not io.backlogged():
                    for fd in io.out:
                        events[fd] = events.get(fd, 0) | _POLLIN
                if io.stdin_buf and io.stdin_fd is not None:
                    events[io.stdin_fd] = events.get(io.stdin_fd, 0) | _POLLOUT
            for conn in self.conns.values():
                mask = 0
                if not conn.read_eof and not self._stdin_backlogged(conn):
                    mask |= _POLLIN
                if conn.outbuf:
                    mask |= _POLLOUT
                events[conn.fd] = mask
            poller = select.poll()
            for fd, mask in events.items():
                poller.register(fd, mask)
            try:
                ready = poller.poll(self._timeout_ms())
            except InterruptedError:
                ready = []
            for fd, ev in ready:
                try:
                    self._dispatch(fd, ev)
                except Exception as e:  # noqa: BLE001 - the supervisor must outlive any one bug
                    self._fault(fd, e)
            self._reap()
            self._progress()
            if self.finished and (not self._pending_output() or time.monotonic() > self.linger_deadline):
                return

    def _fault(self, fd: int, exc: Exception) -> None:
        import traceback

        os.write(2, f"supervisor {self.cid}: {type(exc).__name__}: {exc}\n".encode(errors="replace"))
        traceback.print_exc()
        conn = self.conns.get(fd)
        if conn is not None:
            self._drop(conn)

    def _ios(self):
        if self.io is not None:
            yield self.io
        for session in self.execs.values():
            yield session.io

    def _stdin_backlogged(self, conn: Conn) -> bool:
        io = conn.stdin_io
        return io is not None and len(io.stdin_buf) > STDIN_HIGH_WATER

    def _timeout_ms(self) -> int:
        deadlines = []
        if self.wait_status is not None and not self.finished:
            deadlines.append(self.drain_deadline)
        for s in self.execs.values():
            if s.exit_code is not None:
                deadlines.append(s.deadline)
        if self.finished:
            deadlines.append(self.linger_deadline)
        if not deadlines:
            return -1
        return max(0, int((min(deadlines) - time.monotonic()) * 1000) + 1)

    def _pending_output(self) -> bool:
        return any(c.outbuf for c in self.conns.values())

    def _dispatch(self, fd: int, ev: int) -> None:
        if fd == self.sig_r:
            try:
                while os.read(fd, 4096):
                    pass
            except BlockingIOError:
                pass
            return
        if self.listen is not None and fd == self.listen.fileno():
            self._accept()
            return
        conn = self.conns.get(fd)
        if conn is not None:
            if ev & _POLLOUT:
                self._flush(conn)
            if fd in self.conns and ev & (_POLLIN | _POLLEND):
                self._conn_readable(conn)
            return
        for io in list(self._ios()):
            if fd in io.out and ev & (_POLLIN | _POLLEND):
                self._output(io, fd)
            if fd == io.stdin_fd and ev & (_POLLOUT | _POLLEND) and io.stdin_buf:
                self._write_stdin(io)

    # -- processes --------------------------------------------------------

    def _output(self, io: ProcessIO, fd: int) -> None:
        kind = io.out[fd]
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError as e:
            if e.errno != errno.EIO:  # EIO: the pty's last slave closed
                raise
            data = b""
        if not data:
            del io.out[fd]
            if io.copier is not None:
                self._log(io, "end", P.STREAM_NAMES[kind])
            if fd == io.master:
                io.stdin_fd = None
                io.stdin_buf.clear()
                io.master = None
            _close(fd)
            return
        if io.copier is not None:
            self._log(io, "feed", P.STREAM_NAMES[kind], data)
        if io.subscribers:
            frame = P.encode_frame(kind, data)
            for conn in io.subscribers:
                if kind in conn.kinds:
                    self._send(conn, frame)

    def _log(self, io: ProcessIO, method: str, *args) -> None:
        """Hand output to the log driver.  A failing log (disk full, a
        driver bug) loses those lines, never the container: the error goes
        to the zygote's log and the relay carries on."""
        try:
            getattr(io.copier, method)(*args)
        except Exception as e:  # noqa: BLE001 - see above
            self.log_errors += 1
            if self.log_errors <= 10 or self.log_errors % 1000 == 0:
                os.write(2, f"supervisor {self.cid}: log driver: {type(e).__name__}: {e} "
                            f"({self.log_errors} errors)\n".encode(errors="replace"))

    def _write_stdin(self, io: ProcessIO) -> None:
        if io.stdin_fd is None:
            io.stdin_buf.clear()
            return
        try:
            n = os.write(io.stdin_fd, io.stdin_buf)
            del io.stdin_buf[:n]
        except BlockingIOError:
            return
        except OSError:
            # The reader is gone (EPIPE): drop what is left.
            io.stdin_buf.clear()
            self._close_stdin_now(io)
            return
        if not io.stdin_buf and io.stdin_closing:
            self._close_stdin_now(io)

    def _close_stdin(self, io: ProcessIO) -> None:
        """Half-close: once what is buffered is written."""
        if io.stdin_fd is None:
            return
        io.stdin_closing = True
        if not io.stdin_buf:
            self._close_stdin_now(io)

    def _close_stdin_now(self, io: ProcessIO) -> None:
        if io.stdin_fd is None:
            return
        if io.tty:
            # A terminal has no half-close; EOF is the line discipline's ^D.
            try:
                os.write(io.stdin_fd, b"\x04")
            except OSError:
                pass
        else:
            _close(io.stdin_fd)
        io.stdin_fd = None
        io.stdin_closing = False

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if self.start_helper is not None and pid == self.start_helper.pid:
                self.start_helper.reaped = True
            if pid == self.pid and self.wait_status is None:
                self.wait_status = status
                self.drain_deadline = time.monotonic() + self.spec.drain_timeout
                self.status = "exiting"
            session = self.execs.get(pid)
            if session is not None and session.exit_code is None:
                session.exit_code = _exit_code(status)[0]
                session.deadline = time.monotonic() + self.spec.drain_timeout

    def _reap_all(self) -> None:
        while True:
            try:
                if os.waitpid(-1, os.WNOHANG)[0] == 0:
                    return
            except ChildProcessError:
                return

    def _progress(self) -> None:
        now = time.monotonic()
        for pid, session in list(self.execs.items()):
            if session.exit_code is not None and (not session.io.out or now > session.deadline):
                self._finish_exec(session)
                del self.execs[pid]
        if self.wait_status is not None and not self.finished:
            if (not self.io.out or now > self.drain_deadline) and (not self.execs or now > self.drain_deadline):
                self._finish()

    def _finish_exec(self, session: ExecSession) -> None:
        io = session.io
        for fd in list(io.out):
            _close(fd)
        io.out.clear()
        if io.stdin_fd is not None and io.stdin_fd != io.master:
            _close(io.stdin_fd)
        _close(io.master)
        io.stdin_fd = io.master = None
        if session.record:
            self.exec_results[session.exec_id] = {"exec_id": session.exec_id, "pid": session.pid,
                                                  "running": False, "exit_code": session.exit_code}
            while len(self.exec_results) > EXEC_HISTORY:
                self.exec_results.pop(next(iter(self.exec_results)))
        conn = session.conn
        if conn is not None and conn.fd in self.conns:
            self._send(conn, P.encode_frame(P.EXIT, json.dumps({"exit_code": session.exit_code}).encode()))
            conn.close_after = True
            conn.mode = "done"
            self._flush(conn)

    def _finish(self) -> None:
        """Init exited and its output is drained: record, clean up, answer."""
        code, sig = _exit_code(self.wait_status)
        if self.start_helper is not None:  # never started
            self.start_helper.close()
            self.start_helper = None
        for session in list(self.execs.values()):
            if session.exit_code is None:
                session.exit_code = 137
            self._finish_exec(session)
        self.execs.clear()
        io = self.io
        for fd in list(io.out):
            if io.copier is not None:
                self._log(io, "end", P.STREAM_NAMES[io.out[fd]])
            _close(fd)
        io.out.clear()
        if io.stdin_fd is not None and io.stdin_fd != io.master:
            _close(io.stdin_fd)
        _close(io.master)
        io.stdin_fd = io.master = None
        error = ""
        try:
            io.copier.close()
        except Exception as e:  # noqa: BLE001 - a log failure must not lose the exit status
            error = f"closing the log: {e}"
        oom = self.oom_source is not None and read_oom_count(self.oom_source) > self.oom_before
        try:
            self.runtime.unforked.delete(self.cid, force=True)
        except DockyardError as e:
            if not isinstance(e, NotFound):
                error = error or f"deleting the container: {e}"
        self._reap_all()
        self.exit = ExitStatus(exit_code=code, signal=sig, oom_killed=oom, started_at=self.started_at,
                               finished_at=rfc3339nano(), pid=self.pid, error=error)
        self.status = "exited"
        # Recorded before anyone is told (a client that hears of the exit
        # finds the record), made durable after: the fsync waits for the
        # filesystem's journal, milliseconds on a busy disk, and only a
        # crash of the machine in between could lose it.
        P.write_json_atomic(self.path(P.EXIT_FILE), self.exit.to_json(), durable=False)
        exit_frame = P.encode_frame(P.EXIT, json.dumps(self.exit.to_json()).encode())
        for conn in list(self.conns.values()):
            if conn.mode == "attach":
                self._send(conn, exit_frame)
                conn.close_after = True
                self._flush(conn)
        for conn in self.waiters:
            if conn.fd in self.conns:
                self._reply(conn, {"ok": True, "exit": self.exit.to_json()}, close=True)
        self.waiters.clear()
        P.sync_file(self.path(P.EXIT_FILE))
        self._write_state()
        # New connections now find no socket and read exit.json instead.
        if self.listen is not None:
            try:
                os.unlink(self.path(P.CONTROL_SOCK))
            except FileNotFoundError:
                pass
        self.finished = True
        self.linger_deadline = time.monotonic() + LINGER

    # -- connections ------------------------------------------------------

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self.listen.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            sock.setblocking(False)
            conn = Conn(sock)
            self.conns[conn.fd] = conn

    def _drop(self, conn: Conn) -> None:
        if conn.stdin_io is not None:
            # A client that leaves (reset, error) ends its stdin as a
            # half-close would: with StdinOnce the container's closes.
            self._client_stdin_closed(conn)
        self.conns.pop(conn.fd, None)
        for io in self._ios():
            if conn in io.subscribers:
                io.subscribers.remove(conn)
        if conn in self.waiters:
            self.waiters.remove(conn)
        if conn.exec is not None:
            conn.exec.conn = None
        try:
            conn.sock.close()
        except OSError:
            pass

    def _send(self, conn: Conn, data: bytes) -> None:
        conn.outbuf += data
        if len(conn.outbuf) == len(data):
            self._flush(conn)

    def _flush(self, conn: Conn) -> None:
        if conn.outbuf:
            try:
                n = conn.sock.send(conn.outbuf)
                del conn.outbuf[:n]
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self._drop(conn)
                return
        if not conn.outbuf and conn.close_after:
            self._drop(conn)

    def _reply(self, conn: Conn, doc: dict, close: bool = False) -> None:
        self._send(conn, P.encode_message(doc))
        if close:
            conn.close_after = True
            conn.mode = "done"
            self._flush(conn)

    def _conn_readable(self, conn: Conn) -> None:
        try:
            data = conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._drop(conn)
            return
        if not data:
            conn.read_eof = True
            if conn.mode == "request":
                self._drop(conn)
            elif conn.stdin_io is not None:
                self._client_stdin_closed(conn)
            elif conn.mode in ("attach", "exec") and not conn.outbuf and not conn.kinds:
                self._drop(conn)
            return
        if conn.mode == "request":
            conn.inbuf += data
            nl = conn.inbuf.find(b"\n")
            if nl < 0:
                if len(conn.inbuf) > P.MAX_REQUEST:
                    self._reply(conn, P.error_doc(InvalidArgument("request too long")), close=True)
                return
            line, rest = conn.inbuf[:nl], conn.inbuf[nl + 1:]
            conn.inbuf = b""
            try:
                request = json.loads(line)
                if not isinstance(request, dict):
                    raise ValueError("not an object")
            except ValueError as e:
                self._reply(conn, P.error_doc(InvalidArgument(f"bad request: {e}")), close=True)
                return
            try:
                self._handle(conn, request)
            except DockyardError as e:
                self._reply(conn, P.error_doc(e), close=True)
                return
            except OSError as e:
                self._reply(conn, P.error_doc(Internal(f"{request.get('op')}: {e}")), close=True)
                return
            if rest and conn.decoder is not None:
                self._frames(conn, rest)
        elif conn.decoder is not None:
            self._frames(conn, data)

    def _frames(self, conn: Conn, data: bytes) -> None:
        try:
            frames = conn.decoder.feed(data)
        except ValueError:
            self._drop(conn)
            return
        for kind, payload in frames:
            io = conn.stdin_io
            if kind == P.STDIN:
                if io is not None and io.stdin_fd is not None and not io.stdin_closing:
                    io.stdin_buf += payload
                    self._write_stdin(io)
            elif kind == P.CLOSE_STDIN:
                if io is not None:
                    self._client_stdin_closed(conn)
            elif kind == P.RESIZE:
                try:
                    size = json.loads(payload)
                    target = conn.exec.io if conn.exec is not None else self.io
                    self._resize(target, int(size["height"]), int(size["width"]))
                except (ValueError, KeyError, TypeError, OSError):
                    pass

    def _client_stdin_closed(self, conn: Conn) -> None:
        io = conn.stdin_io
        conn.stdin_io = None
        if io is None:
            return
        if io is self.io and not self.spec.stdin_once:
            return  # stdin stays open for the next client (docker attach without StdinOnce)
        self._close_stdin(io)

    def _resize(self, io: ProcessIO | None, height: int, width: int) -> None:
        if io is None or not io.tty or io.master is None:
            return
        from dockyard.linux.terminal import set_winsize

        set_winsize(io.master, height, width)

    # -- ops --------------------------------------------------------------

    def _handle(self, conn: Conn, req: dict) -> None:
        op = req.get("op")
        handler = _OPS.get(op)
        if handler is None:
            raise InvalidArgument(f"unknown supervisor op {op!r}")
        handler(self, conn, req)

    def _require_live(self) -> None:
        if self.finished or self.wait_status is not None:
            raise FailedPrecondition(f"container {self.cid} is not running")

    def op_status(self, conn: Conn, req: dict) -> None:
        self._reply(conn, self._status_doc(), close=True)

    def op_start(self, conn: Conn, req: dict) -> None:
        if self.status != "created":
            raise FailedPrecondition(f"container {self.cid} is {self.status}, not created")
        self._start()
        self._reply(conn, self._status_doc(), close=True)

    def op_wait(self, conn: Conn, req: dict) -> None:
        if self.exit is not None:
            self._reply(conn, {"ok": True, "exit": self.exit.to_json()}, close=True)
            return
        conn.mode = "wait"
        self.waiters.append(conn)

    def op_kill(self, conn: Conn, req: dict) -> None:
        self._require_live()
        self.runtime.kill(self.cid, int(req.get("signal", signal.SIGTERM)), all=bool(req.get("all")))
        self._reply(conn, {"ok": True}, close=True)

    def op_pause(self, conn: Conn, req: dict) -> None:
        self._freezer_op(conn, self.runtime.pause, "paused")

    def op_resume(self, conn: Conn, req: dict) -> None:
        self._freezer_op(conn, self.runtime.resume, "running")

    def _freezer_op(self, conn: Conn, call, status: str) -> None:
        self._require_live()
        call(self.cid)
        self.status = status
        self._write_state()
        self._reply(conn, {"ok": True}, close=True)

    def op_ps(self, conn: Conn, req: dict) -> None:
        self._require_live()
        self._reply(conn, {"ok": True, "pids": self.runtime.ps(self.cid)}, close=True)

    def op_resize(self, conn: Conn, req: dict) -> None:
        target = self.io
        exec_id = req.get("exec_id")
        if exec_id:
            target = next((s.io for s in self.execs.values() if s.exec_id == exec_id), None)
            if target is None:
                raise NotFound(f"no such exec: {exec_id}")
        self._resize(target, int(req["height"]), int(req["width"]))
        self._reply(conn, {"ok": True}, close=True)

    def op_close_stdin(self, conn: Conn, req: dict) -> None:
        if self.io is not None:
            self._close_stdin(self.io)
        self._reply(conn, {"ok": True}, close=True)

    def op_attach(self, conn: Conn, req: dict) -> None:
        if req.get("start"):
            # Output is read only in the loop, after this handler has
            # subscribed the connection: none of it can be missed.
            if self.status != "created":
                raise FailedPrecondition(f"container {self.cid} is {self.status}, not created")
            self._start()
        kinds = tuple(k for k, name in ((P.STDOUT, "stdout"), (P.STDERR, "stderr")) if req.get(name, True))
        conn.mode = "attach"
        conn.kinds = kinds
        conn.decoder = P.FrameDecoder(P.MAX_FRAME)
        self._reply(conn, dict(self._status_doc(), ok=True))
        if self.finished:
            self._send(conn, P.encode_frame(P.EXIT, json.dumps(self.exit.to_json()).encode()))
            conn.close_after = True
            self._flush(conn)
            return
        if req.get("stdin") and self.io.stdin_fd is not None and not self.io.stdin_closing:
            conn.stdin_io = self.io
        if kinds:
            self.io.subscribers.append(conn)

    def op_exec(self, conn: Conn, req: dict) -> None:
        self._require_live()
        if self.status == "created":
            raise FailedPrecondition(f"container {self.cid} is not running")
        process = req.get("process")
        if not isinstance(process, dict) or not process.get("args"):
            raise InvalidArgument("exec: process.args is required")
        tty = bool(req.get("tty"))
        want_stdin = bool(req.get("stdin"))
        detach = bool(req.get("detach"))
        self._exec_seq += 1
        exec_id = str(req.get("exec_id") or f"exec-{self._exec_seq}")
        process = dict(process, terminal=tty)
        if tty and req.get("console_size"):
            h, w = req["console_size"]
            process["consoleSize"] = {"height": int(h), "width": int(w)}
        io, pid = self._spawn_exec(process, tty, want_stdin and not detach, detach)
        session = ExecSession(exec_id, pid, io, None if detach else conn, detach,
                              record=req.get("record", True) is not False)
        self.execs[pid] = session
        if detach:
            self._reply(conn, {"ok": True, "exec_id": exec_id, "pid": pid}, close=True)
            return
        conn.mode = "exec"
        conn.exec = session
        conn.kinds = (P.STDOUT, P.STDERR)
        conn.decoder = P.FrameDecoder(P.MAX_FRAME)
        if io.stdin_fd is not None:
            conn.stdin_io = io
        io.subscribers.append(conn)
        self._reply(conn, {"ok": True, "exec_id": exec_id, "pid": pid, "tty": tty})

    def _spawn_exec(self, process: dict, tty: bool, want_stdin: bool, detach: bool):
        from dockyard.runtime.base import Stdio

        null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        try:
            if tty:
                name = f"console-exec{self._exec_seq}.sock"
                pid, master = self._receive_console(
                    name, lambda sock: self.runtime.exec(self.cid, process, stdio=Stdio(null, null, null),
                                                         console_socket=sock))
                os.set_inheritable(master, False)
                _nonblock(master)
                if detach:
                    # Nobody reads it: keep draining into nothing so the
                    # process never blocks on a full terminal.
                    return ProcessIO(True, master, {master: P.STDOUT}, None), pid
                return ProcessIO(True, master, {master: P.STDOUT}, master if want_stdin else None), pid
            if detach:
                pid = self.runtime.exec(self.cid, process, stdio=Stdio(null, null, null))
                return ProcessIO(False, None, {}, None), pid
            return _run_with_pipes(lambda i, o, e: self.runtime.exec(self.cid, process, stdio=Stdio(i, o, e)),
                                   want_stdin)
        finally:
            os.close(null)

    def op_exec_inspect(self, conn: Conn, req: dict) -> None:
        exec_id = req.get("exec_id")
        for s in self.execs.values():
            if s.exec_id == exec_id:
                self._reply(conn, {"ok": True, "exec_id": exec_id, "pid": s.pid, "running": s.exit_code is None,
                                   "exit_code": s.exit_code}, close=True)
                return
        result = self.exec_results.get(exec_id)
        if result is None:
            raise NotFound(f"no such exec: {exec_id}")
        self._reply(conn, dict(result, ok=True), close=True)


def _ignore(signum, frame) -> None:
    pass


_OPS = {name[3:]: fn for name, fn in vars(Supervisor).items() if name.startswith("op_")}


def parse_spawn(request: dict) -> tuple[str, str, SupervisorSpec] | DockyardError:
    """(container id, directory, spec) of a spawn request, or the error to
    answer.  The zygote calls this before forking, so that the objects it
    makes are its own pages, not pages each supervisor copies."""
    container_id = request.get("container_id") or ""
    try:
        return container_id, str(request["directory"]), SupervisorSpec.from_json(request.get("spec") or {})
    except (TypeError, KeyError, ValueError) as e:
        return InvalidArgument(f"spawn: bad spec: {e}")


def serve(reply: socket.socket, request: dict) -> int:
    """Body of a freshly forked supervisor.

    The setup (files, control socket, pipes, runtime create and start) runs
    in a throw-away child, which answers the spawn request and hands its
    results over (fds by SCM_RIGHTS); the supervisor proper only runs the
    loop, so the pages the setup code touched are never its own (see
    ForkedRuntime for why that matters).  The supervisor is the child
    subreaper from the start, so the container's init, orphaned when the
    setup child and the runtime's helpers exit, is re-parented to it.
    """
    parsed = request.get("_parsed") or parse_spawn(request)
    if isinstance(parsed, DockyardError):
        _answer(reply, P.error_doc(parsed))
        return 1
    container_id, directory, spec = parsed
    held = request.get("_rest", b"") if request.get("hold") else None
    set_child_subreaper(True)
    # _socket's own objects: socket.socketpair wraps both ends in Python
    # socket objects, which copies ~250 KiB of the zygote's pages here.
    ours, theirs = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            ours.close()
            code = _setup(theirs, reply, container_id, directory, spec, held)
        finally:
            os._exit(code)
    theirs.close()
    doc = None
    try:
        doc, fds = _receive_handover(ours)
    finally:
        helper = StartHelper(pid, ours) if doc is not None and doc.get("lingers") else None
        if helper is None:
            ours.close()
            if doc is None:
                os.waitpid(pid, 0)
    if doc is None:
        reply.close()  # the set-up child answered the error (or died)
        return 1
    # Answered here, once the set-up child handed over: when the spawn
    # returns, the supervisor has taken over.  The set-up child, which
    # exits now (its teardown takes a millisecond) or stays to start the
    # container (StartHelper), is reaped by the loop, like any child but
    # init.  The child encoded the answer (no JSON encoding here: fewer
    # pages copied).
    _answer_raw(reply, doc.pop("answer").encode())
    sup = Supervisor(container_id, directory, spec)
    sup.adopt(doc, fds)
    sup.start_helper = helper
    sup.install_signals()
    sup.run()
    return 0


def _await_bundle(reply: socket.socket, received: bytes) -> None:
    """A held spawn (``"hold": true``): its caller makes the bundle while
    the supervisor is forked and set up, then says ``go`` (or anything
    else to cancel) on the spawn's connection."""
    reply.settimeout(HOLD_TIMEOUT)
    try:
        word = P.recv_line(reply, received, chunk=64)
    except OSError:
        word = None
    if word is None or word[0] != b"go":
        raise FailedPrecondition("spawn cancelled: the caller did not make the bundle ready")


def _setup(channel: socket.socket, reply: socket.socket, container_id: str, directory: str,
           spec: SupervisorSpec, held: bytes | None = None) -> int:
    """In the setup child: make the container and hand it over with the
    answer to the spawn request, which the supervisor proper sends; on
    failure, undo and answer the error here."""
    sup = Supervisor(container_id, directory, spec)
    sup.supervisor_pid = os.getppid()
    try:
        sup.prepare()
        if held is not None:
            _await_bundle(reply, held)
        answer = sup.create_and_start()
        doc, fds = sup.handover()
        doc["answer"] = P.encode_message(answer).decode()
        doc["lingers"] = not spec.start
        payload = json.dumps(doc).encode()
        channel.sendmsg([struct.pack(">I", len(payload)), payload],
                        [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
    except BaseException as e:  # noqa: BLE001 - every failure is answered, then undone
        if not isinstance(e, DockyardError):
            e = Internal(f"supervisor for {container_id}: {type(e).__name__}: {e}")
        try:
            sup.abort()
        finally:
            _answer(reply, P.error_doc(e))
        return 1
    reply.close()
    if not spec.start:
        _linger_for_start(channel, sup)
    return 0


def warm_up(directory: str, spec_doc: dict, rounds: int = 10) -> None:
    """Run the supervisor proper's own path - receiving a handover, adopt,
    the loop - ``rounds`` times on dummy fds, in the zygote before it forks
    supervisors.  Why: CPython 3.11 writes into a code object the first
    times it runs it (warm-up counter, then the adaptive instructions'
    caches), and each such write in a supervisor copies a page it would
    otherwise share with the zygote; done here, once, the supervisors find
    the code ready.  Nothing here forks, signals or reaps for real: the
    dummy supervisor is marked finished, so its loop ends after one round,
    and its pid 0 matches no child."""
    spec = SupervisorSpec.from_json({**spec_doc, "bundle": directory,
                                     "log_path": os.path.join(directory, "warm-up-supervisor.log")})
    for _ in range(rounds):
        opened: list[int] = []
        sup = None
        try:
            opened.append(os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC))
            listen_end, other_end = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)
            opened += [listen_end.detach(), other_end.detach()]
            out_r, out_w = os.pipe()
            err_r, err_w = os.pipe()
            sig_r, sig_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
            opened += [out_r, out_w, err_r, err_w, sig_r, sig_w]
            doc = {"pid": 0, "status": "running", "created_at": "", "started_at": "", "tty": False,
                   "oom_before": 0, "oom_source": None, "out": [[2, P.STDOUT], [3, P.STDERR]],
                   "stdin": None, "master": None,
                   "answer": P.encode_message({"ok": True, "container_id": "warm-up", "pid": 0,
                                               "status": "running"}).decode()}
            ours, theirs = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)
            try:
                payload = json.dumps(doc).encode()
                theirs.sendmsg([struct.pack(">I", len(payload)), payload],
                               [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [opened[0], opened[1],
                                                                                          out_r, err_r]))])
                got, fds = _receive_handover(ours)
            finally:
                ours.close()
                theirs.close()
            opened += fds
            if got is None:
                return
            asker, answerer = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                _answer_raw(answerer, got.pop("answer").encode())
                asker.recv(65536)
            finally:
                asker.close()
            sup = Supervisor("warm-up", directory, spec)
            sup.adopt(got, fds)
            sup.sig_r = sig_r
            sup.finished = True
            sup.linger_deadline = time.monotonic()
            sup.run()
        finally:
            if sup is not None and sup.io is not None and sup.io.copier is not None:
                sup.io.copier.close()
            if sup is not None and sup.listen is not None:
                sup.listen.detach()  # its fd is in opened
            for fd in opened:
                _close(fd)
    for name in ("warm-up-supervisor.log",):
        try:
            os.unlink(os.path.join(directory, name))
        except OSError:
            pass


def _receive_handover(channel: socket.socket) -> tuple[dict | None, list[int]]:
    fds = array.array("i")
    data, ancdata, _, _ = channel.recvmsg(1 << 16, socket.CMSG_SPACE(64 * fds.itemsize))
    for level, kind, raw in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(raw[:len(raw) - len(raw) % fds.itemsize])
    if len(data) < 4:
        for fd in fds:
            _close(fd)
        return None, []
    (size,) = struct.unpack(">I", data[:4])
    payload = data[4:]
    while len(payload) < size:
        chunk = channel.recv(size - len(payload))
        if not chunk:
            break
        payload += chunk
    try:
        return json.loads(payload), list(fds)
    except ValueError:
        for fd in fds:
            _close(fd)
        return None, []


def _answer(reply: socket.socket, doc: dict) -> None:
    _answer_raw(reply, P.encode_message(doc))


def _answer_raw(reply: socket.socket, message: bytes) -> None:
    try:
        reply.setblocking(True)
        reply.sendall(message)
    except OSError:
        pass  # the requester died; the supervisor carries on regardless
    finally:
        reply.close()
