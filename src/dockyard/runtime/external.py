"""runc and crun driven through their command lines, as a :class:`Runtime`.

Both binaries speak the same verbs and flags (runc's), keep their state in a
directory per container under ``--root`` (``<root>/<id>/``), and exit 1 for
every failure.  So errors are classified by looking at the world, not the
wording: a missing ``<root>/<id>`` means ``NotFound``; an operation that
failed on a container that does exist is a ``FailedPrecondition`` (wrong
state).  Only where nothing but the message can tell two causes apart
(a create whose process cannot be executed) does the one table
:data:`_MESSAGE_KINDS` look at the text.

Error text is taken from the runtime's own log (``--log`` on a memfd with
``--log-format json``), so the container's stderr, which create and exec
hand to the runtime as its own stderr, never has to be read.

The binary is started with ``posix_spawn`` (vfork-fast) and its output
captured on memfds, without the subprocess module: that module pulls in
threading, whose fork hooks would make every supervisor (a forked process
that calls this) copy pages it could share.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path
from typing import Any

from dockyard.errors import (AlreadyExists, DockyardError, FailedPrecondition, Internal, InvalidArgument,
                             NotFound, Unavailable)

from .base import State, Stdio

#: Substrings of runc/crun error messages that name a cause only the
#: message carries, in order of precedence.  Everything else is classified
#: by state (see the module docstring).  Kept in one place on purpose.
_MESSAGE_KINDS: tuple[tuple[str, type[DockyardError]], ...] = (
    ("executable file not found", NotFound),      # runc: exec: "x": executable file not found in $PATH
    ("no such file or directory", NotFound),      # crun / runc: the process path does not exist
    ("permission denied", FailedPrecondition),    # not executable (docker maps this to 126)
)


class ExternalRuntime:
    """runc or crun (or another runc-compatible binary) as a library.

    ``binary`` is a command name looked up on PATH or an absolute path;
    ``root`` is its state directory (``--root``).  Raises ``Unavailable`` on
    use when the binary is not installed.
    """

    def __init__(self, binary: str, root: Path) -> None:
        self.binary = binary
        self.name = os.path.basename(binary)
        self.root = Path(root)
        self._path: str | None = None

    def __repr__(self) -> str:
        return f"ExternalRuntime({self.binary!r}, {str(self.root)!r})"

    # -- plumbing ---------------------------------------------------------

    def _resolve(self) -> str:
        if self._path is None:
            path = self.binary if os.path.isabs(self.binary) else shutil.which(self.binary)
            if not path or not os.access(path, os.X_OK):
                raise Unavailable(f"OCI runtime {self.binary!r} is not installed")
            self._path = path
        return self._path

    def _run(self, args: list[str], *, what: str, container_id: str | None = None,
             stdio: Stdio | None = None, capture: bool = True) -> bytes:
        """Run ``binary --root R --log <memfd> --log-format json <args>``;
        return its stdout, or raise the classified error."""
        binary = self._resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        opened: list[int] = []
        try:
            log_fd = _memfd("runtime-log", opened)
            argv = [binary, "--root", str(self.root), "--log", f"/proc/self/fd/{_LOG_FD}",
                    "--log-format", "json", *args]
            if capture:
                null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
                opened.append(null)
                stdin, stdout, stderr = null, _memfd("stdout", opened), _memfd("stderr", opened)
            else:
                # create/exec: the runtime's stdio become the container
                # process's, unless a terminal is used (None: ours).
                s = stdio or Stdio()
                stdin, stdout, stderr = s.stdin, s.stdout, s.stderr
            status = _spawn_wait(argv, (stdin, stdout, stderr), log_fd, self.name)
            if status == 0:
                return _read_all(stdout) if capture else b""
            message = self._error_text(log_fd, _read_all(stderr) if capture else None)
        finally:
            for fd in opened:
                os.close(fd)
        raise self._classify(what, container_id, message)

    @staticmethod
    def _error_text(log_fd: int, stderr: bytes | None) -> str:
        """The last error the runtime logged (its JSON log), else its stderr."""
        os.lseek(log_fd, 0, os.SEEK_SET)
        raw = b""
        while chunk := os.read(log_fd, 65536):
            raw += chunk
        messages = []
        # crun writes records without a newline between them.
        for record in raw.replace(b"}{", b"}\n{").splitlines():
            try:
                doc = json.loads(record)
            except ValueError:
                continue
            if isinstance(doc, dict) and doc.get("level") in ("error", "fatal") and doc.get("msg"):
                messages.append(str(doc["msg"]))
        if messages:
            return messages[-1]
        text = (stderr or b"").decode(errors="replace").strip()
        return text.splitlines()[-1] if text else "failed without a message"

    def _exists(self, container_id: str) -> bool:
        return (self.root / container_id).is_dir()

    def _classify(self, what: str, container_id: str | None, message: str) -> DockyardError:
        text = f"{self.name} {what}: {message}"
        if container_id is not None and what != "create" and not self._exists(container_id):
            return NotFound(f"no such container: {container_id} ({text})")
        lowered = message.lower()
        if what in ("create", "exec"):
            for needle, kind in _MESSAGE_KINDS:
                if needle in lowered:
                    return kind(text)
            return InvalidArgument(text) if what == "create" else FailedPrecondition(text)
        if container_id is not None:
            return FailedPrecondition(text)
        return Internal(text)

    @staticmethod
    def _read_pid(pid_file: Path) -> int:
        try:
            return int(pid_file.read_text().strip())
        except (OSError, ValueError) as e:
            raise Internal(f"runtime pid file {pid_file} unreadable: {e}") from e

    def _check_id(self, container_id: str) -> None:
        if not container_id or "/" in container_id or container_id in (".", ".."):
            raise InvalidArgument(f"invalid container id {container_id!r}")

    # -- Runtime protocol -------------------------------------------------

    def create(self, container_id: str, bundle: Path, *, stdio: Stdio | None = None,
               console_socket: Path | None = None, pid_file: Path | None = None) -> int:
        self._check_id(container_id)
        self._resolve()
        if self._exists(container_id):
            raise AlreadyExists(f"container {container_id} already exists in {self.root}")
        bundle = Path(bundle)
        config = bundle / "config.json"
        if not config.is_file():
            raise NotFound(f"bundle {bundle}: no config.json")
        own_pid_file = pid_file is None
        if own_pid_file:
            pid_file = self.root / f".{container_id}.pid"
        args = ["create", "--bundle", str(bundle), "--pid-file", str(pid_file)]
        if console_socket is not None:
            args += ["--console-socket", str(console_socket)]
        try:
            self._run([*args, container_id], what="create", container_id=container_id, stdio=stdio,
                      capture=False)
            return self._read_pid(Path(pid_file))
        except DockyardError as e:
            if not isinstance(e, AlreadyExists) and self._exists(container_id):
                # A failed create must leave nothing behind.
                self._delete_quietly(container_id)
            raise
        finally:
            if own_pid_file:
                Path(pid_file).unlink(missing_ok=True)

    def _delete_quietly(self, container_id: str) -> None:
        try:
            self._run(["delete", "--force", container_id], what="delete", container_id=container_id)
        except DockyardError:
            pass

    def start(self, container_id: str) -> None:
        self._run(["start", container_id], what="start", container_id=container_id)

    def state(self, container_id: str) -> State:
        out = self._run(["state", container_id], what="state", container_id=container_id)
        try:
            return _state_from_json(json.loads(out))
        except (ValueError, KeyError, TypeError) as e:
            raise Internal(f"{self.name} state {container_id}: unreadable output: {e}") from e

    def list(self) -> list[State]:
        if not self.root.is_dir():
            return []
        out = self._run(["list", "--format", "json"], what="list")
        try:
            docs = json.loads(out) or []
            return [_state_from_json(d) for d in docs]
        except (ValueError, KeyError, TypeError) as e:
            raise Internal(f"{self.name} list: unreadable output: {e}") from e

    def kill(self, container_id: str, sig: int = signal.SIGTERM, *, all: bool = False) -> None:
        args = ["kill"] + (["--all"] if all else []) + [container_id, str(int(sig))]
        self._run(args, what="kill", container_id=container_id)

    def delete(self, container_id: str, *, force: bool = False) -> None:
        args = ["delete"] + (["--force"] if force else []) + [container_id]
        self._run(args, what="delete", container_id=container_id)

    def exec(self, container_id: str, process: dict[str, Any], *, stdio: Stdio | None = None,
             console_socket: Path | None = None, pid_file: Path | None = None) -> int:
        if not self._exists(container_id):
            raise NotFound(f"no such container: {container_id}")
        # The process file lives on a memfd too: nothing to clean up.
        proc_fd = os.memfd_create("oci-process", os.MFD_CLOEXEC)
        own_pid_file = pid_file is None
        if own_pid_file:
            pid_file = self.root / f".{container_id}.exec-{os.getpid()}-{proc_fd}.pid"
        try:
            os.write(proc_fd, json.dumps(process).encode())
            args = ["exec", "--process", f"/proc/{os.getpid()}/fd/{proc_fd}", "--detach",
                    "--pid-file", str(pid_file)]
            if console_socket is not None:
                args += ["--console-socket", str(console_socket)]
            self._run([*args, container_id], what="exec", container_id=container_id, stdio=stdio,
                      capture=False)
            return self._read_pid(Path(pid_file))
        finally:
            os.close(proc_fd)
            if own_pid_file:
                Path(pid_file).unlink(missing_ok=True)

    def ps(self, container_id: str) -> list[int]:
        out = self._run(["ps", "--format", "json", container_id], what="ps", container_id=container_id)
        try:
            return [int(p) for p in (json.loads(out) or [])]
        except (ValueError, TypeError) as e:
            raise Internal(f"{self.name} ps {container_id}: unreadable output: {e}") from e

    def pause(self, container_id: str) -> None:
        self._run(["pause", container_id], what="pause", container_id=container_id)

    def resume(self, container_id: str) -> None:
        self._run(["resume", container_id], what="resume", container_id=container_id)


#: The fd number the runtime's log memfd gets in the child.
_LOG_FD = 3


def _memfd(name: str, opened: list[int]) -> int:
    fd = os.memfd_create(name, os.MFD_CLOEXEC)
    opened.append(fd)
    return fd


def _read_all(fd: int) -> bytes:
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(fd, 1 << 16):
        chunks.append(chunk)
    return b"".join(chunks)


def _spawn_wait(argv: list[str], stdio: tuple[int | None, int | None, int | None], log_fd: int,
                name: str) -> int:
    """posix_spawn ``argv`` with ``stdio`` as fds 0-2 (None: inherit ours)
    and ``log_fd`` as fd 3; wait for it; its exit status (128+N if killed).

    Every fd of ours is close-on-exec, so the child gets exactly these."""
    # dup2 clears close-on-exec on the target; sources that would be
    # overwritten before use (an fd numbered 0-3) are moved out of the way.
    actions = []
    sources = [fd for fd in (*stdio, log_fd) if fd is not None]
    moved: dict[int, int] = {}
    for fd in sources:
        if fd <= _LOG_FD and fd not in moved:
            moved[fd] = os.dup(fd)
    try:
        for target, fd in enumerate(stdio):
            if fd is not None:
                actions.append((os.POSIX_SPAWN_DUP2, moved.get(fd, fd), target))
        actions.append((os.POSIX_SPAWN_DUP2, moved.get(log_fd, log_fd), _LOG_FD))
        try:
            pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=actions, setsigdef=_SIGDEF)
        except OSError as e:
            raise Unavailable(f"running {name}: {e.strerror}") from e
    finally:
        for fd in moved.values():
            os.close(fd)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


#: Signals reset to their default in the runtime's process (a caller may
#: ignore some, and an ignored disposition survives exec).
_SIGDEF = (signal.SIGPIPE, signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD, signal.SIGQUIT)


def _state_from_json(doc: dict[str, Any]) -> State:
    return State(
        id=doc["id"],
        status=doc["status"],
        pid=int(doc.get("pid") or 0),
        bundle=doc.get("bundle") or doc.get("bundle_path") or "",
        oci_version=doc.get("ociVersion") or "1.0.2",
        annotations=dict(doc.get("annotations") or {}),
        created=doc.get("created"),
    )
