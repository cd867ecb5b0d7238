"""OCI hooks: a program run with the container's state JSON on stdin.

:func:`run_hook` is used both by the runtime (prestart, createRuntime,
poststart, poststop, in the runtime's namespaces) and by the container's
init (createContainer, startContainer, in the container's namespaces), so
it only forks, execs, polls and waits: no subprocess module, no imports.
"""

from __future__ import annotations

import os
import select
import signal
import time
from typing import NamedTuple

from .config import Hook


class PreparedHook(NamedTuple):
    """A hook with its argv and environment already encoded."""

    kind: str
    index: int
    path: bytes
    argv: tuple[bytes, ...]
    envp: tuple[bytes, ...]
    timeout: float | None

    @classmethod
    def of(cls, kind: str, index: int, hook: Hook) -> "PreparedHook":
        argv = tuple(os.fsencode(a) for a in (hook.args or (hook.path,)))
        env = tuple(os.fsencode(e) for e in hook.env)
        return cls(kind, index, os.fsencode(hook.path), argv, env, float(hook.timeout) if hook.timeout else None)

    def describe(self) -> str:
        return f"{self.kind} hook #{self.index} ({os.fsdecode(self.path)})"


def prepare(kind: str, hooks: tuple[Hook, ...]) -> tuple[PreparedHook, ...]:
    return tuple(PreparedHook.of(kind, i, h) for i, h in enumerate(hooks))


def _env_dict(envp: tuple[bytes, ...]) -> dict[bytes, bytes]:
    env = {}
    for item in envp:
        key, _, value = item.partition(b"=")
        env[key] = value
    return env


def run_hook(hook: PreparedHook, state: bytes) -> str | None:
    """Run one hook to completion; None on success, else why it failed."""
    r, w = os.pipe()
    try:
        pid = os.fork()
    except OSError as exc:
        os.close(r)
        os.close(w)
        return f"{hook.describe()}: fork: {exc.strerror}"
    if pid == 0:
        try:
            os.close(w)
            os.dup2(r, 0)
            os.execve(hook.path, list(hook.argv), _env_dict(hook.envp))
        finally:
            os._exit(127)
    os.close(r)
    try:
        os.write(w, state)
    except BrokenPipeError:
        pass  # the hook did not read its stdin; that is its business
    finally:
        os.close(w)
    status = _wait(pid, hook.timeout)
    if status is None:
        return f"{hook.describe()}: timed out after {hook.timeout:g}s"
    code = os.waitstatus_to_exitcode(status)
    if code == 127:
        return f"{hook.describe()}: could not be executed (exit status 127)"
    if code != 0:
        return f"{hook.describe()}: exit status {code}" if code > 0 else f"{hook.describe()}: killed by signal {-code}"
    return None


def _wait(pid: int, timeout: float | None) -> int | None:
    if timeout is None:
        return os.waitpid(pid, 0)[1]
    deadline = time.monotonic() + timeout
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        pidfd = -1
    try:
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return status
            left = deadline - time.monotonic()
            if left <= 0:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return None
            if pidfd >= 0:
                poller = select.poll()
                poller.register(pidfd, select.POLLIN)
                poller.poll(left * 1000)
            else:
                time.sleep(min(left, 0.01))
    finally:
        if pidfd >= 0:
            os.close(pidfd)


def run_all(hooks: tuple[PreparedHook, ...], state: bytes) -> str | None:
    """Run hooks in order, stopping at the first failure (its reason)."""
    for hook in hooks:
        error = run_hook(hook, state)
        if error:
            return error
    return None
