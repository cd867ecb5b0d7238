"""The daemon's side: start the zygote, spawn supervisors, talk to them,
and find them again after a restart.

::

    client = SupervisorClient(Path("/run/dockyard/supervisors"))
    info = client.spawn("c1", SupervisorSpec(bundle="/.../bundle", runtime="runc",
                                             log_driver="json-file", log_path="/.../c1-json.log"))
    handle = client.connect("c1")
    with handle.attach(stdin=True) as stream: ...     # frames, see .protocol
    code, out, err = handle.exec({"args": ["ls"], "cwd": "/"}).communicate()
    status = handle.wait()                             # ExitStatus
    client.remove("c1")                                # forget an exited one

After a daemon restart, :meth:`SupervisorClient.list` finds every
supervisor directory with its state: live ones are re-adopted with
:meth:`connect`; ones that exited meanwhile report their recorded
:class:`ExitStatus`; ones whose supervisor died without a record are
``lost``.

Every call here is blocking; asyncio code can run them in a thread or use
:meth:`SupervisorHandle.wait_async` (no thread) and the raw sockets of
streams with :class:`~.protocol.FrameDecoder`.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

from dockyard.errors import AlreadyExists, FailedPrecondition, Internal, InvalidArgument, NotFound, Unavailable

from . import protocol as P
from .spec import ExitStatus, SupervisorInfo, SupervisorSpec


def _lock_held(path: str) -> bool:
    """Whether another process holds an flock on ``path``."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def _read_lock_doc(path: str) -> dict:
    try:
        with open(path, "rb") as f:
            raw = f.read()
        doc = json.loads(raw) if raw.strip().startswith(b"{") else {"pid": int(raw or 0)}
        return doc if isinstance(doc, dict) else {}
    except (OSError, ValueError):
        return {}


def _check_id(container_id: str) -> None:
    if not container_id or "/" in container_id or container_id in (".", "..") or "\0" in container_id:
        raise InvalidArgument(f"invalid container id {container_id!r}")


class Stream:
    """A framed bidirectional stream (attach or exec) over a control
    connection.  ``read()`` returns ``(kind, payload)`` frames until EXIT;
    ``exit`` then holds the EXIT document."""

    def __init__(self, sock: socket.socket, header: dict, leftover: bytes) -> None:
        self.sock = sock
        self.header = header
        self.tty = bool(header.get("tty"))
        self.exit: dict | None = None
        self._decoder = P.FrameDecoder()
        self._frames: list[tuple[int, bytes]] = self._decoder.feed(leftover) if leftover else []
        self._eof = False

    def fileno(self) -> int:
        return self.sock.fileno()

    def pending(self) -> tuple[P.FrameDecoder, list[tuple[int, bytes]]]:
        """For a caller that reads :attr:`sock` itself from now on (an
        asyncio wrapper): the decoder, holding any partial frame, and the
        frames already decoded but not yet returned by :meth:`read`."""
        return self._decoder, list(self._frames)

    def write(self, data: bytes) -> None:
        """Send ``data`` to the process's stdin."""
        for i in range(0, len(data), P.MAX_FRAME):
            self.sock.sendall(P.encode_frame(P.STDIN, data[i:i + P.MAX_FRAME]))

    def close_stdin(self) -> None:
        self.sock.sendall(P.encode_frame(P.CLOSE_STDIN))

    def resize(self, height: int, width: int) -> None:
        self.sock.sendall(P.encode_frame(P.RESIZE, json.dumps({"height": height, "width": width}).encode()))

    def read(self, timeout: float | None = None) -> tuple[int, bytes] | None:
        """The next frame, or None at the end of the stream."""
        self.sock.settimeout(timeout)
        while not self._frames:
            if self._eof:
                return None
            data = self.sock.recv(65536)
            if not data:
                self._eof = True
                return None
            self._frames = self._decoder.feed(data)
        kind, payload = self._frames.pop(0)
        if kind == P.EXIT:
            self.exit = json.loads(payload)
        return kind, payload

    def __iter__(self):
        while (frame := self.read()) is not None:
            yield frame

    def communicate(self, stdin: bytes | None = None, timeout: float | None = None) -> tuple[int | None, bytes, bytes]:
        """Write ``stdin`` (then half-close), read to the end: (exit code,
        stdout, stderr)."""
        if stdin is not None:
            self.write(stdin)
            self.close_stdin()
        out, err = [], []
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else max(0.01, deadline - time.monotonic())
            frame = self.read(left)
            if frame is None:
                break
            kind, payload = frame
            if kind == P.STDOUT:
                out.append(payload)
            elif kind == P.STDERR:
                err.append(payload)
            elif kind == P.EXIT:
                break
        self.close()
        code = self.exit.get("exit_code") if self.exit else None
        return code, b"".join(out), b"".join(err)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self) -> "Stream":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class SupervisorHandle:
    """One container's supervisor, addressed by its directory."""

    def __init__(self, container_id: str, directory: Path) -> None:
        self.container_id = container_id
        self.directory = Path(directory)

    def _path(self, name: str) -> str:
        return str(self.directory / name)

    # -- plumbing ---------------------------------------------------------

    def _connect(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            with P.SocketPath(self._path(P.CONTROL_SOCK)) as address:
                sock.connect(address.for_self)
        except (FileNotFoundError, ConnectionRefusedError, NotADirectoryError):
            sock.close()
            raise
        except OSError as e:
            sock.close()
            raise Unavailable(f"supervisor of {self.container_id}: {e.strerror}") from None
        return sock

    def _request(self, doc: dict, timeout: float | None = 60.0) -> tuple[socket.socket, dict, bytes]:
        """Send one request; (socket, answer, bytes read past the answer)."""
        try:
            sock = self._connect()
        except (FileNotFoundError, ConnectionRefusedError, NotADirectoryError):
            raise self._gone_error() from None
        try:
            sock.settimeout(timeout)
            sock.sendall(P.encode_message(doc))
            received = P.recv_line(sock)
            if received is None:
                raise self._gone_error()
            line, rest = received
            answer = json.loads(line)
        except socket.timeout:
            sock.close()
            raise Unavailable(f"supervisor of {self.container_id} did not answer {doc.get('op')}") from None
        except (ConnectionResetError, BrokenPipeError):
            # It exited with our connection still in its backlog.
            sock.close()
            raise self._gone_error() from None
        except BaseException:
            sock.close()
            raise
        if not answer.get("ok"):
            sock.close()
            P.raise_error(answer)
        return sock, answer, rest

    def _call(self, doc: dict, timeout: float | None = 60.0) -> dict:
        sock, answer, _ = self._request(doc, timeout)
        sock.close()
        return answer

    def _gone_error(self) -> Exception:
        if self.exit_status() is not None:
            return FailedPrecondition(f"container {self.container_id} is not running")
        if not (self.directory / P.SUPERVISOR_LOCK).exists():
            return NotFound(f"no supervisor for container {self.container_id}")
        return Unavailable(f"the supervisor of container {self.container_id} is gone")

    # -- queries ----------------------------------------------------------

    def alive(self) -> bool:
        return _lock_held(self._path(P.SUPERVISOR_LOCK))

    def supervisor_pid(self) -> int:
        return int(_read_lock_doc(self._path(P.SUPERVISOR_LOCK)).get("pid") or 0)

    def exit_status(self) -> ExitStatus | None:
        doc = P.read_json(self._path(P.EXIT_FILE))
        return ExitStatus.from_json(doc) if doc else None

    def info(self) -> SupervisorInfo:
        """Status without talking to the supervisor when it is not there."""
        state = P.read_json(self._path(P.STATE_FILE)) or {}
        exit_status = self.exit_status()
        alive = self.alive()
        if exit_status is not None:
            status = "exited"
        elif alive:
            status = state.get("status", "creating")
        else:
            status = "lost"
        return SupervisorInfo(
            container_id=self.container_id, directory=str(self.directory),
            supervisor_pid=int(state.get("supervisor_pid") or self.supervisor_pid() or 0),
            pid=int(state.get("pid") or 0), status=status, started_at=state.get("started_at", ""),
            tty=bool(state.get("tty")), stdin=bool(state.get("stdin")), exit=exit_status)

    def status(self) -> SupervisorInfo:
        try:
            doc = self._call({"op": "status"}, timeout=10)
        except (FailedPrecondition, NotFound, Unavailable):
            return self.info()
        return self._info_of(doc)

    def _info_of(self, doc: dict) -> SupervisorInfo:
        """A status document (the answer to status and start) as a value."""
        exit_doc = doc.get("exit")
        return SupervisorInfo(
            container_id=self.container_id, directory=str(self.directory),
            supervisor_pid=int(doc["supervisor_pid"]), pid=int(doc["pid"]), status=doc["status"],
            started_at=doc.get("started_at", ""), tty=bool(doc.get("tty")), stdin=bool(doc.get("stdin")),
            exit=ExitStatus.from_json(exit_doc) if exit_doc else None)

    # -- control ----------------------------------------------------------

    def start(self) -> SupervisorInfo:
        # The answer is the status after the start: no second round trip
        # (which could also wait behind the supervisor recording an exit).
        return self._info_of(self._call({"op": "start"}))

    def wait(self, timeout: float | None = None) -> ExitStatus:
        """Block until the container exited and its output is logged."""
        recorded = self.exit_status()
        if recorded is not None:
            return recorded
        try:
            sock, answer, _ = self._request({"op": "wait"}, timeout=timeout)
        except socket.timeout:
            raise Unavailable(f"container {self.container_id} still running after {timeout}s") from None
        except FailedPrecondition:
            recorded = self.exit_status()
            if recorded is not None:
                return recorded
            raise
        except Unavailable:
            recorded = self.exit_status()
            if recorded is not None:
                return recorded
            raise
        sock.close()
        return ExitStatus.from_json(answer["exit"])

    async def wait_async(self) -> ExitStatus:
        """:meth:`wait` for asyncio code, without a thread."""
        import asyncio

        while True:
            recorded = self.exit_status()
            if recorded is not None:
                return recorded
            try:
                with P.SocketPath(self._path(P.CONTROL_SOCK)) as address:
                    reader, writer = await asyncio.open_unix_connection(address.for_self)
            except (FileNotFoundError, ConnectionRefusedError):
                recorded = self.exit_status()
                if recorded is not None:
                    return recorded
                raise self._gone_error() from None
            try:
                writer.write(P.encode_message({"op": "wait"}))
                await writer.drain()
                line = await reader.readline()
            finally:
                writer.close()
            if not line:
                continue  # it finished between our check and the answer: read the record
            answer = json.loads(line)
            if not answer.get("ok"):
                P.raise_error(answer)
            return ExitStatus.from_json(answer["exit"])

    def kill(self, sig: int = signal.SIGTERM, *, all: bool = False) -> None:
        self._call({"op": "kill", "signal": int(sig), "all": all})

    def pause(self) -> None:
        self._call({"op": "pause"})

    def resume(self) -> None:
        self._call({"op": "resume"})

    def ps(self) -> list[int]:
        return list(self._call({"op": "ps"})["pids"])

    def resize(self, height: int, width: int, exec_id: str | None = None) -> None:
        self._call({"op": "resize", "height": int(height), "width": int(width), "exec_id": exec_id})

    def close_stdin(self) -> None:
        self._call({"op": "close_stdin"})

    def attach(self, *, stdin: bool = False, stdout: bool = True, stderr: bool = True,
               start: bool = False) -> Stream:
        """A stream of the container's output from now on (and its stdin
        when ``stdin``); it ends with an EXIT frame when the container
        exits.  ``start``: start the created container once the stream is
        in place (as :meth:`start`, in the same round trip); the stream's
        header is then the status after the start."""
        request = {"op": "attach", "stdin": stdin, "stdout": stdout, "stderr": stderr}
        if start:
            request["start"] = True
        sock, answer, rest = self._request(request, timeout=60 if start else 30)
        sock.settimeout(None)
        return Stream(sock, answer, rest)

    def exec(self, process: dict[str, Any], *, tty: bool = False, stdin: bool = False, detach: bool = False,
             exec_id: str | None = None, console_size: tuple[int, int] | None = None,
             record: bool = True) -> Stream | int:
        """Run ``process`` (an OCI process object) in the container.  Returns
        a :class:`Stream` whose EXIT frame carries the exit code, or the
        pid when ``detach``.  ``record=False``: the supervisor keeps no
        result for :meth:`exec_inspect` (fire-and-forget probes)."""
        request = {"op": "exec", "process": process, "tty": tty, "stdin": stdin, "detach": detach,
                   "exec_id": exec_id, "console_size": list(console_size) if console_size else None}
        if not record:
            request["record"] = False
        sock, answer, rest = self._request(request, timeout=60)
        if detach:
            sock.close()
            return int(answer["pid"])
        sock.settimeout(None)
        return Stream(sock, answer, rest)

    def exec_inspect(self, exec_id: str) -> dict:
        return self._call({"op": "exec_inspect", "exec_id": exec_id})


class SupervisorClient:
    """Spawns and finds supervisors under ``state_dir`` (shared with the
    zygote, which it starts when needed)."""

    def __init__(self, state_dir: Path, *, python: str | None = None, spawn_timeout: float = 120.0) -> None:
        self.state_dir = Path(state_dir).absolute()
        self.python = python or sys.executable
        self.spawn_timeout = spawn_timeout
        self._zygote_version: str | None = None

    def directory(self, container_id: str) -> Path:
        return self.state_dir / container_id

    # -- the zygote -------------------------------------------------------

    def zygote_pid(self) -> int | None:
        lock = str(self.state_dir / P.ZYGOTE_LOCK)
        if not _lock_held(lock):
            return None
        return int(_read_lock_doc(lock).get("pid") or 0) or None

    def ensure_zygote(self) -> int:
        """The zygote's pid, starting it if none runs (or replacing one that
        runs other code than this client's)."""
        pid = self.zygote_pid()
        if pid:
            if self._zygote_version is None:
                self._zygote_version = P.code_version()
            running = _read_lock_doc(str(self.state_dir / P.ZYGOTE_LOCK)).get("version")
            if running == self._zygote_version:
                return pid
            self.stop_zygote()
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o711)
        import subprocess  # here: the zygote imports this module and must not pull in threading

        log = os.open(self.state_dir / P.ZYGOTE_LOG, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        r, w = os.pipe()
        try:
            proc = subprocess.Popen(
                [self.python, "-c", "from dockyard.runtime.supervisor.zygote import main; main()",
                 str(self.state_dir), str(w)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, pass_fds=(w,), start_new_session=True,
                cwd="/", close_fds=True)
        except OSError as e:
            os.close(r)
            os.close(w)
            raise Unavailable(f"starting the supervisor zygote: {e}") from None
        finally:
            os.close(log)
        os.close(w)
        try:
            message = b""
            while chunk := os.read(r, 64):
                message += chunk
        finally:
            os.close(r)
            proc.wait()
        if message.startswith(b"ok "):
            return int(message.split()[1])
        if message.startswith(b"busy"):
            for _ in range(200):
                pid = self.zygote_pid()
                if pid:
                    return pid
                time.sleep(0.01)
        raise Unavailable(f"the supervisor zygote did not start (see {self.state_dir / P.ZYGOTE_LOG}): "
                          f"{self._log_tail()}")

    def _log_tail(self) -> str:
        try:
            with open(self.state_dir / P.ZYGOTE_LOG, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 2000))
                return f.read().decode(errors="replace").strip().splitlines()[-1:][0]
        except (OSError, IndexError):
            return ""

    def _zygote_request(self, doc: dict, timeout: float, prepare=None) -> dict:
        """One request to the zygote and its answer.  With ``prepare`` (a
        held spawn): sent, then ``prepare()`` runs while the supervisor is
        forked and set up, then the word to go on (or to cancel, when
        ``prepare`` raises: its error is raised once the supervisor has
        undone its part)."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        failure: BaseException | None = None
        try:
            with P.SocketPath(str(self.state_dir / P.ZYGOTE_SOCK)) as address:
                sock.connect(address.for_self)
            sock.settimeout(timeout)
            sock.sendall(P.encode_message(doc))
            if prepare is not None:
                try:
                    prepare()
                except BaseException as e:  # noqa: BLE001 - raised below, after the supervisor's undo
                    failure = e
                try:
                    sock.sendall(b"cancel\n" if failure is not None else b"go\n")
                except OSError:
                    pass  # it failed (and answered) before waiting for the word
            received = P.recv_line(sock)
        except OSError:
            if failure is None:
                raise
            received = None
        finally:
            sock.close()
        if failure is not None:
            raise failure
        if received is None:
            raise Internal(f"supervisor for {doc.get('container_id', '?')} died before answering: "
                           f"{self._log_tail()}")
        return json.loads(received[0])

    def stop_zygote(self) -> None:
        """Stop the zygote (supervisors it forked carry on)."""
        pid = self.zygote_pid()
        if not pid:
            return
        try:
            self._zygote_request({"op": "shutdown"}, timeout=5)
        except (OSError, Internal):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for _ in range(500):
            if not self.zygote_pid():
                return
            time.sleep(0.01)

    # -- supervisors ------------------------------------------------------

    def spawn(self, container_id: str, spec: SupervisorSpec, *, directory: Path | None = None,
              prepare=None) -> SupervisorInfo:
        """Start a supervisor that creates (and starts) the container; returns
        once it runs.  Raises the runtime's error when it could not start
        (nothing is left behind then) and AlreadyExists when a supervisor
        for it still runs.

        ``prepare``: a callable that makes the bundle, run here once the
        request is on its way, so that the supervisor's fork and set-up
        (milliseconds) overlap it; the container is created after it
        returns.  When it raises, the spawn is cancelled and its error
        raised."""
        _check_id(container_id)
        directory = Path(directory) if directory is not None else self.directory(container_id)
        handle = SupervisorHandle(container_id, directory)
        if handle.alive():
            # A supervisor that recorded an exit is only finishing up.
            deadline = time.monotonic() + 5
            while handle.alive() and handle.exit_status() is not None and time.monotonic() < deadline:
                time.sleep(0.01)
            if handle.alive():
                raise AlreadyExists(f"container {container_id} already has a running supervisor")
        request = {"op": "spawn", "container_id": container_id, "directory": str(directory),
                   "spec": spec.to_json()}
        if prepare is not None:
            request["hold"] = True
        for attempt in range(3):
            self.ensure_zygote()
            try:
                answer = self._zygote_request(request, timeout=self.spawn_timeout, prepare=prepare)
                break
            except (ConnectionRefusedError, FileNotFoundError):
                # The zygote died after we found it: start another.
                if attempt == 2:
                    raise Unavailable("the supervisor zygote is not reachable") from None
        if not answer.get("ok"):
            P.raise_error(answer)
        return SupervisorInfo(container_id=container_id, directory=str(directory),
                              supervisor_pid=int(answer["supervisor_pid"]), pid=int(answer["pid"]),
                              status=answer["status"], started_at=answer.get("started_at", ""),
                              tty=bool(answer.get("tty")), stdin=bool(answer.get("stdin")))

    def connect(self, container_id: str, *, directory: Path | None = None) -> SupervisorHandle:
        """The handle of an existing supervisor (live or finished)."""
        _check_id(container_id)
        directory = Path(directory) if directory is not None else self.directory(container_id)
        if not (directory / P.SUPERVISOR_LOCK).exists():
            raise NotFound(f"no supervisor for container {container_id}")
        return SupervisorHandle(container_id, directory)

    def list(self) -> list[SupervisorInfo]:
        """Every supervisor directory under ``state_dir``: live, exited (with
        the recorded status) or lost (died without a record)."""
        found = []
        try:
            names = sorted(os.listdir(self.state_dir))
        except FileNotFoundError:
            return []
        for name in names:
            directory = self.state_dir / name
            if (directory / P.SUPERVISOR_LOCK).exists():
                found.append(SupervisorHandle(name, directory).info())
        return found

    def remove(self, container_id: str, *, directory: Path | None = None) -> None:
        """Forget a finished supervisor's files.  FailedPrecondition while it
        runs."""
        directory = Path(directory) if directory is not None else self.directory(container_id)
        handle = SupervisorHandle(container_id, directory)
        if handle.alive():
            raise FailedPrecondition(f"the supervisor of {container_id} is still running")
        for name in (P.EXIT_FILE, P.STATE_FILE, P.CONTROL_SOCK, P.SUPERVISOR_LOCK):
            try:
                (directory / name).unlink()
            except FileNotFoundError:
                pass
        try:
            directory.rmdir()
        except OSError:
            pass  # the caller's own files live there too
