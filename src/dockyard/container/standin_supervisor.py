"""A minimal supervisor behind :class:`~.process.ProcessBackend`, used until
dockyard.runtime's supervisor lands (TODO(issue 3): replace with it).

It does the part live-restore depends on: a detached process per container
(double-forked, its own session, so neither the daemon's exit nor a
``kill -9`` of the daemon touches it) that creates and starts the container
through the runtime with pipes for stdout/stderr, copies them into the log
driver, waits for the container (as child subreaper) and writes its exit
status to ``exit.json`` atomically before it exits.

Not here: a terminal, stdin and attach, exec.  Those are the real
supervisor's (its client API relays them).

Files in the request's ``state_dir``: ``supervisor.json`` (pid and start
time of the supervisor, pid of the container), ``exit.json``.
"""

from __future__ import annotations

import asyncio
import json
import os
import selectors
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from ..errors import DockyardError, Internal
from .process import ExitStatus, LogSpec, SpawnRequest

EXIT_FILE = "exit.json"
INFO_FILE = "supervisor.json"
_ERROR_KINDS = ("NotFound", "AlreadyExists", "InvalidArgument", "FailedPrecondition", "Unavailable",
                "Internal")


def _write_json(path: Path, doc: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as f:
        json.dump(doc, f)
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, path)


def _start_time(pid: int) -> int | None:
    from ..linux.process import process_start_time
    return process_start_time(pid)


def _format_now() -> str:
    from .model import format_time
    return format_time()


class StandinProcessBackend:
    """ProcessBackend over the stand-in supervisor processes."""

    def spawn(self, request: SpawnRequest) -> dict[str, Any]:
        request.state_dir.mkdir(parents=True, exist_ok=True)
        for name in (EXIT_FILE, INFO_FILE):
            try:
                (request.state_dir / name).unlink()
            except FileNotFoundError:
                pass
        doc = {
            "container_id": request.container_id, "bundle": str(request.bundle), "runtime": request.runtime,
            "runtime_root": str(request.runtime_root), "state_dir": str(request.state_dir),
            "log": {"driver": request.log.driver, "path": request.log.path, "options": request.log.options},
            "cgroups_path": request.cgroups_path,
        }
        read_fd, write_fd = os.pipe()
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "dockyard.container.standin_supervisor", json.dumps(doc), str(write_fd)],
                pass_fds=(write_fd,), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=open(request.state_dir / "supervisor.log", "ab"), start_new_session=True, close_fds=True)
        finally:
            os.close(write_fd)
        try:
            with os.fdopen(read_fd, "rb") as reader:
                line = reader.readline()
        finally:
            proc.wait()  # the intermediate process exits at once (double fork)
        if not line:
            raise Internal(f"supervisor for {request.container_id} died before reporting; see "
                           f"{request.state_dir / 'supervisor.log'}")
        result = json.loads(line)
        if "error" in result:
            from .. import errors
            kind = result.get("kind")
            cls = getattr(errors, kind) if kind in _ERROR_KINDS else Internal
            raise cls(result["error"])
        return {"kind": "standin", "state_dir": str(request.state_dir), "supervisor_pid": result["supervisor_pid"],
                "supervisor_start": result["supervisor_start"], "pid": result["pid"],
                "runtime": request.runtime, "runtime_root": str(request.runtime_root)}

    def pid(self, handle: dict[str, Any]) -> int:
        return int(handle.get("pid") or 0)

    def alive(self, handle: dict[str, Any]) -> bool:
        pid = handle.get("supervisor_pid")
        if not pid:
            return False
        from ..linux.process import process_state
        start = _start_time(pid)
        # A zombie is gone for our purposes (its parent has not reaped it yet).
        return start is not None and start == handle.get("supervisor_start") and process_state(pid) not in ("Z", "X")

    def exit_status(self, handle: dict[str, Any]) -> ExitStatus | None:
        path = Path(handle["state_dir"]) / EXIT_FILE
        try:
            doc = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return None
        return ExitStatus(exit_code=doc["exit_code"], oom_killed=doc.get("oom_killed", False),
                          finished_at=doc.get("finished_at", ""), error=doc.get("error", ""))

    async def wait_exit(self, handle: dict[str, Any]) -> ExitStatus:
        status = self.exit_status(handle)
        if status is not None:
            return status
        if self.alive(handle):
            try:
                pidfd = os.pidfd_open(handle["supervisor_pid"])
            except ProcessLookupError:
                pidfd = None
            if pidfd is not None:
                # A pidfd polls readable when the process exits: no thread
                # per container waits.
                loop = asyncio.get_running_loop()
                done = loop.create_future()
                loop.add_reader(pidfd, lambda: done.done() or done.set_result(None))
                try:
                    if self.alive(handle):  # it may have exited before the reader was added
                        await done
                finally:
                    loop.remove_reader(pidfd)
                    os.close(pidfd)
        status = self.exit_status(handle)
        if status is None:
            # The supervisor died without recording an exit (killed): the
            # container's fate is unknown.
            status = ExitStatus(exit_code=255, finished_at=_format_now(),
                                error="the container's supervisor exited without recording its exit status")
        return status

    def release(self, handle: dict[str, Any]) -> None:
        state_dir = Path(handle["state_dir"])
        for name in (EXIT_FILE, INFO_FILE):
            try:
                (state_dir / name).unlink()
            except FileNotFoundError:
                pass


# --------------------------------------------------------------------------- the supervisor process

def _oom_killed(cgroups_path: str, container_id: str, before: int) -> bool:
    try:
        from ..runtime.cgroups import open_cgroup
        return open_cgroup(cgroups_path, container_id).oom_kill_count() > before
    except Exception:  # noqa: BLE001 - OOM accounting is best effort
        return False


def _oom_count(cgroups_path: str, container_id: str) -> int:
    try:
        from ..runtime.cgroups import open_cgroup
        return open_cgroup(cgroups_path, container_id).oom_kill_count()
    except Exception:  # noqa: BLE001
        return 0


def _supervise(doc: dict[str, Any], report_fd: int) -> int:
    from .. import logs
    from ..linux.process import set_child_subreaper
    from ..runtime.base import Stdio
    from ..runtime.registry import get_runtime

    state_dir = Path(doc["state_dir"])
    cid = doc["container_id"]
    log = LogSpec(doc["log"]["driver"], doc["log"]["path"], doc["log"]["options"])
    set_child_subreaper(True)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)

    def report(result: dict[str, Any]) -> None:
        os.write(report_fd, (json.dumps(result) + "\n").encode())
        os.close(report_fd)

    runtime = get_runtime(doc["runtime"], Path(doc["runtime_root"]))
    copier = logs.open_copier(log.driver, log.path, log.options)
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    devnull = os.open(os.devnull, os.O_RDONLY)
    try:
        pid = runtime.create(cid, Path(doc["bundle"]), stdio=Stdio(devnull, out_w, err_w))
        oom_before = _oom_count(doc.get("cgroups_path", ""), cid)
        runtime.start(cid)
    except DockyardError as exc:
        try:
            runtime.delete(cid, force=True)
        except DockyardError:
            pass
        report({"error": str(exc), "kind": type(exc).__name__})
        return 1
    except Exception as exc:  # noqa: BLE001 - reported to the daemon, which raises Internal
        report({"error": f"starting container {cid}: {exc}", "kind": "Internal"})
        return 1
    finally:
        os.close(out_w)
        os.close(err_w)
        os.close(devnull)
    _write_json(state_dir / INFO_FILE, {"supervisor_pid": os.getpid(), "pid": pid})
    report({"supervisor_pid": os.getpid(), "supervisor_start": _start_time(os.getpid()), "pid": pid})

    sel = selectors.DefaultSelector()
    sel.register(out_r, selectors.EVENT_READ, "stdout")
    sel.register(err_r, selectors.EVENT_READ, "stderr")
    open_streams = 2
    status = None
    while open_streams:
        for key, _ in sel.select(timeout=1.0):
            data = os.read(key.fd, 65536)
            if data:
                copier.feed(key.data, data)
            else:
                copier.end(key.data)
                sel.unregister(key.fd)
                os.close(key.fd)
                open_streams -= 1
        if status is None:
            # Reap as we go: the container's init may exit while a process it
            # left behind still holds the pipes open.
            try:
                wpid, wstatus = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                wpid, wstatus = pid, 0
            if wpid == pid:
                status = wstatus
                # Whatever init left behind dies with it (as under a pid namespace).
                try:
                    runtime.kill(cid, signal.SIGKILL, all=True)
                except DockyardError:
                    pass
    if status is None:
        _, status = os.waitpid(pid, 0)
    copier.close()
    code = os.waitstatus_to_exitcode(status)
    if code < 0:
        code = 128 - code  # killed by signal N -> 128+N, as a shell reports it
    oom = _oom_killed(doc.get("cgroups_path", ""), cid, oom_before)
    # Reap other children the subreaper inherited (exec'd processes).
    while True:
        try:
            if os.waitpid(-1, os.WNOHANG)[0] == 0:
                break
        except ChildProcessError:
            break
    try:
        runtime.delete(cid, force=True)
    except DockyardError:
        pass
    _write_json(state_dir / EXIT_FILE, {"exit_code": code, "oom_killed": oom, "finished_at": _format_now()})
    return 0


def main() -> int:
    doc = json.loads(sys.argv[1])
    report_fd = int(sys.argv[2])
    # Double fork: the daemon reaps the intermediate at once; the
    # supervisor is re-parented away from the daemon and survives it.
    if os.fork() != 0:
        os._exit(0)
    os.chdir("/")
    try:
        return _supervise(doc, report_fd)
    except BaseException as exc:  # noqa: BLE001 - last resort: leave a record for the daemon
        try:
            os.write(report_fd, (json.dumps({"error": f"supervisor: {exc}", "kind": "Internal"}) + "\n").encode())
        except OSError:
            pass
        raise


if __name__ == "__main__":
    sys.exit(main())
