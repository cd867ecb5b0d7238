"""Pseudo-terminals and the console-socket protocol.

A container with ``process.terminal`` gets a pty allocated from its own
devpts instance (its /dev/ptmx); the master side is sent to the caller over
the unix socket ``--console-socket`` with SCM_RIGHTS, the message body
being the pty's name, as runc does.  The slave becomes fds 0-2 and the
controlling terminal of a new session.
"""

from __future__ import annotations

import array
import fcntl
import os
import socket
import struct
import termios

TIOCGPTN = 0x80045430
TIOCSPTLCK = 0x40045431
TIOCGPTPEER = 0x5441
TIOCSCTTY = 0x540E
TIOCSWINSZ = 0x5414

_UNLOCK = struct.pack("i", 0)
_PTN_BUF = bytes(4)


def open_pty(ptmx: str | bytes = "/dev/ptmx") -> tuple[int, int, bytes]:
    """Open a new pty from ``ptmx``: (master fd, slave fd, slave name)."""
    master = os.open(ptmx, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        fcntl.ioctl(master, TIOCSPTLCK, _UNLOCK)
        number = struct.unpack("i", fcntl.ioctl(master, TIOCGPTN, _PTN_BUF))[0]
        try:
            # TIOCGPTPEER opens the slave without a path lookup (safe against
            # a container swapping /dev/pts under us).
            slave = fcntl.ioctl(master, TIOCGPTPEER, os.O_RDWR | os.O_NOCTTY)
        except OSError:
            slave = os.open(b"/dev/pts/%d" % number, os.O_RDWR | os.O_NOCTTY)
    except BaseException:
        os.close(master)
        raise
    return master, slave, b"/dev/pts/%d" % number


def make_controlling(slave: int) -> None:
    """New session with ``slave`` as its controlling terminal, on fds 0-2."""
    os.setsid()
    fcntl.ioctl(slave, TIOCSCTTY, 0)
    for fd in (0, 1, 2):
        os.dup2(slave, fd)


def send_fd(sock_fd: int, fd: int, name: bytes) -> None:
    """Send ``fd`` over the unix socket on ``sock_fd`` (SCM_RIGHTS)."""
    sock = socket.socket(fileno=sock_fd)
    try:
        sock.sendmsg([name], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))])
    finally:
        sock.detach()


def recv_fd(sock: socket.socket) -> tuple[int, bytes]:
    """Receive one fd sent by :func:`send_fd`: (fd, name)."""
    fds = array.array("i")
    msg, ancdata, _flags, _addr = sock.recvmsg(4096, socket.CMSG_SPACE(fds.itemsize))
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[:len(data) - (len(data) % fds.itemsize)])
    if not fds:
        raise OSError(0, "console socket: no file descriptor received")
    for extra in fds[1:]:
        os.close(extra)
    return fds[0], msg


def set_winsize(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def get_winsize(fd: int) -> tuple[int, int]:
    rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, bytes(8)))
    return rows, cols
