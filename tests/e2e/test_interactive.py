"""Interactive terminals in tmux: ``run -it busybox sh`` answers typed
commands and passes its exit status on, follows the terminal's size,
detaches on ctrl-p ctrl-q (the container keeps running) and can be
attached again; ``exec -it`` likewise.  Each test has its own tmux server."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import time

import pytest

from daemon.harness import _daemon_env
from daemon.rootconf import need_tool


class Tmux:
    def __init__(self, socket: str, env: dict[str, str]) -> None:
        self.socket = socket
        self.env = env
        self.tmux = need_tool("tmux")

    def _cmd(self, *args: str, check: bool = True) -> str:
        result = subprocess.run([self.tmux, "-L", self.socket, *args], capture_output=True, text=True,
                                env=self.env, timeout=20)
        if check and result.returncode != 0:
            raise AssertionError(f"tmux {args}: {result.stderr}")
        return result.stdout

    def start(self, command: str, *, width: int = 120, height: int = 30) -> None:
        # The shell line ends by printing the status and keeping the pane.
        line = f"{command}; echo EXIT=$?; sleep 600"
        self._cmd("new-session", "-d", "-s", "t", "-x", str(width), "-y", str(height), line)

    def send(self, *keys: str) -> None:
        self._cmd("send-keys", "-t", "t", *keys)

    def type(self, text: str) -> None:
        self._cmd("send-keys", "-t", "t", "-l", text)
        self._cmd("send-keys", "-t", "t", "Enter")

    def type_until(self, text: str, pattern: str, *, tries: int = 8, wait: float = 2.5) -> None:
        """Type a command until its answer shows: the first keys may reach a
        client that is still setting up its terminal (docker's may drop them)."""
        for _ in range(tries):
            self.type(text)
            try:
                self.wait_for(pattern, timeout=wait)
                return
            except AssertionError:
                continue
        self.wait_for(pattern, timeout=0.1)

    def screen(self) -> str:
        return self._cmd("capture-pane", "-p", "-t", "t", "-S", "-200")

    def wait_for(self, pattern: str, timeout: float = 20.0) -> re.Match:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(pattern, self.screen(), re.M)
            if m:
                return m
            time.sleep(0.1)
        raise AssertionError(f"{pattern!r} did not appear; the screen:\n{self.screen()}")

    def resize(self, width: int, height: int) -> None:
        self._cmd("resize-window", "-t", "t", "-x", str(width), "-y", str(height))

    def kill(self) -> None:
        self._cmd("kill-server", check=False)

    def fresh(self) -> None:
        """A new server on a new socket (a killed one takes a moment to go)."""
        self.kill()
        self.socket += "x"


@pytest.fixture
def tmux(e2e, test_id):
    env = {**e2e.daemon.env(), **_daemon_env(), "TERM": "xterm", "PS1": "$ "}
    t = Tmux(f"dy-{test_id}", env)
    try:
        yield t
    finally:
        t.kill()


def _command(tool: str, *args: str) -> str:
    base = ["docker"] if tool == "docker" else [sys.executable, "-m", "dockyard.cli.main"]
    return " ".join(shlex.quote(a) for a in base + list(args))


@pytest.mark.parametrize("tool", ["dockyard", "docker"])
def test_run_it_shell(e2e, tmux, tool, test_id):
    name = f"it-{tool}-{test_id}"
    tmux.start(_command(tool, "run", "-it", "--rm", "--name", name, "busybox", "sh"), width=100, height=30)
    _wait_running(e2e, name)
    # The shell's first prompt, written right after the start, is on the
    # screen before anything is typed (the attach was there before the start).
    tmux.wait_for(r"^/ #\s*$", timeout=10)
    tmux.type_until("echo hello-$((6*7)); tty", r"^hello-42\s*$")
    tmux.wait_for(r"^/dev/pts/\d+\s*$")
    # The terminal's size goes in at start, and follows a resize.
    tmux.type("stty size")
    tmux.wait_for(r"^30 100\s*$")
    tmux.resize(90, 25)
    time.sleep(0.5)
    tmux.type("stty size")
    tmux.wait_for(r"^25 90\s*$")
    tmux.type("exit 4")
    tmux.wait_for(r"EXIT=4$")
    # --rm: gone.
    deadline = time.monotonic() + 10
    while e2e.docker("inspect", name).returncode == 0:
        assert time.monotonic() < deadline, "the --rm container was not removed"
        time.sleep(0.1)


def _wait_running(e2e, name: str) -> None:
    deadline = time.monotonic() + 20
    while e2e.docker("inspect", "-f", "{{.State.Running}}", name).stdout != b"true\n":
        assert time.monotonic() < deadline, f"{name} did not start"
        time.sleep(0.1)
    time.sleep(0.3)  # the shell reads its terminal


@pytest.mark.parametrize("tool", ["docker", "dockyard"])
def test_detach_and_attach_again(e2e, tmux, tool, test_id):
    name = f"detach-{tool}-{test_id}"
    tmux.start(_command(tool, "run", "-it", "--name", name, "busybox", "sh"))
    _wait_running(e2e, name)
    tmux.type_until("echo before-detach", r"^before-detach\s*$")
    tmux.send("C-p", "C-q")
    tmux.wait_for(r"EXIT=0$")
    # Detached, not stopped.
    assert e2e.docker("inspect", "-f", "{{.State.Running}}", name).stdout == b"true\n"
    tmux.fresh()
    tmux.start(_command(tool, "attach", name))
    time.sleep(1.0)
    tmux.type_until("echo attached-$((2+3))", r"^attached-5\s*$")
    tmux.type("exit 9")
    tmux.wait_for(r"EXIT=9$")
    assert e2e.docker("inspect", "-f", "{{.State.ExitCode}}", name).stdout == b"9\n"
    e2e.docker("rm", name)


@pytest.mark.parametrize("tool", ["docker", "dockyard"])
def test_exec_it(e2e, tmux, tool, test_id):
    name = f"exec-it-{tool}-{test_id}"
    assert e2e.docker("run", "-d", "--name", name, "busybox", "sleep", "300").returncode == 0
    tmux.start(_command(tool, "exec", "-it", name, "sh"))
    time.sleep(1.0)
    tmux.type_until("echo exec-$((1+2)); [ -t 0 ] && echo stdin-is-a-tty", r"^exec-3\s*$")
    tmux.wait_for(r"^stdin-is-a-tty\s*$")
    tmux.type("exit 3")
    tmux.wait_for(r"EXIT=3$")
    # The container was not touched.
    assert e2e.docker("inspect", "-f", "{{.State.Running}}", name).stdout == b"true\n"
    e2e.docker("rm", "-f", name)
