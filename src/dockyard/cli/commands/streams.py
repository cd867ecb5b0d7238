"""The CLI's side of a hijacked connection (run, start -a, attach, exec).

Output is read on the calling thread and written to our stdout/stderr as
it comes (demultiplexed from 8-byte stdcopy frames, or raw with a TTY);
stdin, when attached, is copied by a daemon thread and half-closed at its
end so the daemon can close the container's stdin (``echo hi | run -i
busybox cat``).  With a TTY on our side the terminal is put in raw mode for
the session and its size follows ours (SIGWINCH -> a resize call on a
connection of its own).

Detaching (ctrl-p ctrl-q by default) is done by the daemon, which ends the
stream; we watch the same keys go by so we can tell a detach from the
container's exit.  Imports stay light: this is on ``dockyard run``'s path.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Any, Callable

from dockyard.errors import DockyardError

DEFAULT_DETACH_KEYS = "ctrl-p,ctrl-q"


def detach_sequence(spec: str | None) -> bytes:
    """Docker's detach key syntax as bytes (the daemon validates it too)."""
    out = bytearray()
    for key in (spec or DEFAULT_DETACH_KEYS).split(","):
        key = key.strip()
        if len(key) == 1:
            out.append(ord(key))
        elif key.lower().startswith("ctrl-") and len(key) == 6:
            ch = key[5].lower()
            if "a" <= ch <= "z":
                out.append(ord(ch) - ord("a") + 1)
            else:
                out.append({"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31}.get(ch, 0))
    return bytes(out)


class _KeyWatch:
    """Sees whether the detach sequence went by in the bytes we sent."""

    def __init__(self, keys: bytes) -> None:
        self.keys = keys
        self.matched = 0
        self.seen = False

    def feed(self, data: bytes) -> None:
        if not self.keys or self.seen:
            return
        for byte in data:
            if byte == self.keys[self.matched]:
                self.matched += 1
                if self.matched == len(self.keys):
                    self.seen = True
                    return
            else:
                self.matched = 1 if byte == self.keys[0] else 0


def stdin_is_tty() -> bool:
    try:
        return os.isatty(0)
    except OSError:
        return False


def terminal_size(fd: int = 1) -> tuple[int, int] | None:
    """(height, width) of the terminal on ``fd`` (stdout, else stdin)."""
    for candidate in (fd, 0):
        try:
            size = os.get_terminal_size(candidate)
            return size.lines, size.columns
        except OSError:
            continue
    return None


class RawTerminal:
    """Raw mode on our stdin's terminal for the session; restored on exit."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and stdin_is_tty()
        self._saved: Any = None

    def __enter__(self) -> "RawTerminal":
        if self.enabled:
            import termios
            import tty

            self._saved = termios.tcgetattr(0)
            # TCSANOW, not setraw's default TCSAFLUSH: what was typed ahead
            # of the attach is kept and sent.
            tty.setraw(0, termios.TCSANOW)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._saved is not None:
            import termios

            termios.tcsetattr(0, termios.TCSADRAIN, self._saved)
            self._saved = None


class ResizeOnWinch:
    """Keep the remote terminal's size equal to ours: once now, then on
    every SIGWINCH.  ``resize(h, w)`` must use a connection of its own (it
    runs in a signal handler, between reads of the main connection)."""

    def __init__(self, resize: Callable[[int, int], None], enabled: bool) -> None:
        self.resize = resize
        self.enabled = enabled
        self._previous: Any = None

    def _apply(self, *_: object) -> None:
        size = terminal_size()
        if size is None:
            return
        try:
            self.resize(*size)
        except Exception:  # noqa: BLE001 - a failed resize must not end the session
            pass

    def __enter__(self) -> "ResizeOnWinch":
        if self.enabled and terminal_size() is not None:
            self._apply()
            self._previous = signal.signal(signal.SIGWINCH, self._apply)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGWINCH, self._previous)
            self._previous = None


#: Signals ``--sig-proxy`` forwards to the container (docker's list minus
#: the ones that concern only us).
PROXIED_SIGNALS = ("SIGHUP", "SIGINT", "SIGQUIT", "SIGTERM", "SIGUSR1", "SIGUSR2", "SIGALRM", "SIGCONT",
                   "SIGTSTP", "SIGTTIN", "SIGTTOU", "SIGXCPU", "SIGXFSZ", "SIGVTALRM", "SIGPROF", "SIGIO",
                   "SIGPWR", "SIGSYS")


class SignalProxy:
    """Forward the signals we receive to the container (``--sig-proxy``)."""

    def __init__(self, kill: Callable[[str], None], enabled: bool) -> None:
        self.kill = kill
        self.enabled = enabled
        self._previous: dict[int, Any] = {}

    def _forward(self, signum: int, frame: object) -> None:
        try:
            self.kill(signal.Signals(signum).name)
        except Exception:  # noqa: BLE001 - the container may be gone already
            pass

    def __enter__(self) -> "SignalProxy":
        if self.enabled:
            for name in PROXIED_SIGNALS:
                signum = getattr(signal, name, None)
                if signum is None:
                    continue
                try:
                    self._previous[signum] = signal.signal(signum, self._forward)
                except (OSError, ValueError):
                    continue
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()


def _write(out: Any, data: bytes) -> None:
    out.write(data)
    out.flush()


class Session:
    """One hijacked stream: copy until the output ends.  ``run()`` returns
    True when the user detached."""

    def __init__(self, sock: Any, *, stdin: bool, tty: bool, detach_keys: str | None = None,
                 out: Any = None, err: Any = None) -> None:
        self.sock = sock
        self.stdin = stdin
        self.tty = tty
        self.keys = _KeyWatch(detach_sequence(detach_keys)) if stdin else _KeyWatch(b"")
        self.out = out if out is not None else sys.stdout.buffer
        self.err = err if err is not None else sys.stderr.buffer

    def _pump_stdin(self) -> None:
        try:
            while True:
                try:
                    data = os.read(0, 65536)
                except InterruptedError:
                    continue
                if not data:
                    break
                self.keys.feed(data)
                self.sock.sendall(data)
                if self.keys.seen:
                    return  # the daemon detaches us and ends the stream
        except OSError:
            return
        self.sock.close_write()

    def run(self) -> bool:
        if self.stdin:
            threading.Thread(target=self._pump_stdin, name="stdin", daemon=True).start()
        try:
            for stream, data in self.sock.frames():
                if stream == 2:
                    _write(self.err, data)
                else:
                    _write(self.out, data)
        except (OSError, DockyardError):
            pass  # the daemon closed on us (detach, or it went away)
        return self.keys.seen
