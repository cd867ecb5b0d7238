"""The :class:`~.process.ProcessBackend` over dockyard.runtime's
supervisors (``dockyard.runtime.supervisor``), plus asyncio wrappers for
their framed stdio streams.

Each container's supervisor directory is ``<container dir>/supervisor``;
the zygote and its socket live in the client's state dir (under the
daemon's exec root).  A handle persisted in the container record is
``{"kind": "supervisor", "container_id", "directory", "pid",
"supervisor_pid", "tty"}``.
"""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path
from typing import Any, Callable

from ..errors import DockyardError, NotFound, Unavailable
from .process import ExitStatus, SpawnRequest

#: Frame kinds of the supervisor protocol (Docker's stream ids for 0-2).
STDIN, STDOUT, STDERR, EXIT = 0, 1, 2, 3


def _exit(status: Any) -> ExitStatus:
    return ExitStatus(exit_code=int(status.exit_code), oom_killed=bool(status.oom_killed),
                      finished_at=status.finished_at or "", error=status.error or "",
                      started_at=status.started_at or "")


class SupervisorBackend:
    def __init__(self, state_dir: Path) -> None:
        from ..runtime.supervisor import SupervisorClient
        self.client = SupervisorClient(Path(state_dir))

    def _handle(self, handle: dict[str, Any]):
        from ..runtime.supervisor.client import SupervisorHandle
        return SupervisorHandle(handle["container_id"], Path(handle["directory"]))

    def spawn(self, request: SpawnRequest, prepare: Callable[[], None] | None = None) -> dict[str, Any]:
        from ..runtime.supervisor import SupervisorSpec
        spec = SupervisorSpec(
            bundle=str(request.bundle), runtime=request.runtime, runtime_root=str(request.runtime_root),
            stdin=request.open_stdin, stdin_once=request.stdin_once, log_driver=request.log.driver,
            log_path=request.log.path, log_options=dict(request.log.options), cgroups_path=request.cgroups_path,
            console_size=request.console_size, start=request.start, terminal=request.tty)
        directory = request.state_dir
        # A finished supervisor of an earlier run leaves its files: forget them.
        try:
            directory.mkdir(parents=True)
        except FileExistsError:
            try:
                self.client.remove(request.container_id, directory=directory)
            except DockyardError:
                pass
            directory.mkdir(parents=True, exist_ok=True)
        info = self.client.spawn(request.container_id, spec, directory=directory, prepare=prepare)
        return {"kind": "supervisor", "container_id": request.container_id, "directory": str(directory),
                "pid": info.pid, "supervisor_pid": info.supervisor_pid, "tty": info.tty}

    def start(self, handle: dict[str, Any]) -> None:
        self._handle(handle).start()

    def pid(self, handle: dict[str, Any]) -> int:
        return int(handle.get("pid") or 0)

    def alive(self, handle: dict[str, Any]) -> bool:
        return self._handle(handle).alive()

    def exit_status(self, handle: dict[str, Any]) -> ExitStatus | None:
        status = self._handle(handle).exit_status()
        return _exit(status) if status is not None else None

    async def wait_exit(self, handle: dict[str, Any]) -> ExitStatus:
        h = self._handle(handle)
        try:
            return _exit(await h.wait_async())
        except (DockyardError, OSError):
            status = h.exit_status()
            if status is not None:
                return _exit(status)
            from .model import format_time
            return ExitStatus(exit_code=255, finished_at=format_time(),
                              error="the container's supervisor exited without recording its exit status")

    def release(self, handle: dict[str, Any]) -> None:
        try:
            self.client.remove(handle["container_id"], directory=Path(handle["directory"]))
        except NotFound:
            pass

    # -- stdio ------------------------------------------------------------

    def attach(self, handle: dict[str, Any], *, stdin: bool, stdout: bool, stderr: bool, start: bool = False):
        return self._handle(handle).attach(stdin=stdin, stdout=stdout, stderr=stderr, start=start)

    def exec(self, handle: dict[str, Any], process: dict[str, Any], *, exec_id: str, tty: bool, stdin: bool,
             detach: bool, console_size: tuple[int, int] | None = None, record: bool = True):
        return self._handle(handle).exec(process, tty=tty, stdin=stdin, detach=detach, exec_id=exec_id,
                                         console_size=console_size, record=record)

    def exec_inspect(self, handle: dict[str, Any], exec_id: str) -> dict[str, Any]:
        return self._handle(handle).exec_inspect(exec_id)

    def resize(self, handle: dict[str, Any], height: int, width: int, exec_id: str | None = None) -> None:
        self._handle(handle).resize(height, width, exec_id)

    def close_stdin(self, handle: dict[str, Any]) -> None:
        self._handle(handle).close_stdin()

    def stop_zygote(self) -> None:
        """Stop the zygote (supervisors carry on).  For tests and uninstall;
        a daemon restart reuses it."""
        self.client.stop_zygote()


class AsyncStream:
    """A supervisor stream (attach or exec) driven from asyncio without a
    thread: ``read()`` -> ``(kind, bytes)`` with kind 1 stdout / 2 stderr,
    or None at the end (``exit`` then holds the EXIT document, if any)."""

    def __init__(self, stream: Any) -> None:
        from ..runtime.supervisor import protocol as P
        self._P = P
        self.sock: socket.socket = stream.sock
        self.sock.setblocking(False)
        self.header = dict(stream.header)
        self.tty = bool(stream.tty)
        self.exit: dict[str, Any] | None = None
        self._decoder, self._frames = stream.pending()
        self._eof = False
        self._closed = False
        self._reading = False

    @property
    def exit_code(self) -> int | None:
        return None if self.exit is None else self.exit.get("exit_code")

    async def read(self) -> tuple[int, bytes] | None:
        loop = asyncio.get_running_loop()
        while True:
            while self._frames:
                kind, payload = self._frames.pop(0)
                if kind == EXIT:
                    self.exit = json.loads(payload)
                    self._eof = True
                    return None
                if kind in (STDOUT, STDERR):
                    return kind, payload
            if self._eof or self._closed:
                return None
            self._reading = True
            try:
                data = await loop.sock_recv(self.sock, 65536)
            except (ConnectionResetError, OSError):
                data = b""
            finally:
                self._reading = False
                if self._closed:
                    self._release()
            if not data:
                self._eof = True
                return None
            self._frames = self._decoder.feed(data)

    async def write(self, data: bytes) -> None:
        loop = asyncio.get_running_loop()
        P = self._P
        for i in range(0, len(data), P.MAX_FRAME):
            await loop.sock_sendall(self.sock, P.encode_frame(STDIN, data[i:i + P.MAX_FRAME]))

    async def close_stdin(self) -> None:
        try:
            await asyncio.get_running_loop().sock_sendall(self.sock, self._P.encode_frame(self._P.CLOSE_STDIN))
        except OSError:
            pass

    async def resize(self, height: int, width: int) -> None:
        payload = json.dumps({"height": height, "width": width}).encode()
        await asyncio.get_running_loop().sock_sendall(self.sock, self._P.encode_frame(self._P.RESIZE, payload))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        # shutdown wakes a read pending on the loop with the end of the
        # stream (closing the fd under it would leave it waiting forever:
        # the loop's watch goes with the fd), and the supervisor sees an
        # orderly end.  The pending read closes the socket when it wakes.
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        if not self._reading:
            self._release()

    def _release(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def open_async(stream: Any) -> AsyncStream:
    if isinstance(stream, int):
        raise Unavailable("a detached exec has no stream")
    return AsyncStream(stream)
