"""Attach before start through the Engine API, as ``docker run`` and
``docker start -a`` do it: attach to a created (or exited) container, then
start it; every byte of the new run reaches the attached client, prompts
without a newline included, and stdin typed before the start is kept."""

from __future__ import annotations

import socket
import time

import pytest

READ_TIMEOUT = 10.0


def _create(client, cmd, **config) -> str:
    body = {"Image": "busybox", "Cmd": cmd, **config}
    return client.create_container(body)["Id"]


def _read_until(sock, pattern: bytes, timeout: float = READ_TIMEOUT) -> bytes:
    """What the hijacked stream carries until ``pattern`` shows (demultiplexed
    without a TTY); AssertionError when it does not in time."""
    sock.sock.settimeout(timeout)
    seen = b""
    deadline = time.monotonic() + timeout
    try:
        for _, data in sock.frames():
            seen += data
            if pattern in seen:
                return seen
            if time.monotonic() > deadline:
                break
    except (socket.timeout, TimeoutError):
        pass
    raise AssertionError(f"{pattern!r} did not come; got {seen!r}")


def _read_to_end(sock, timeout: float = READ_TIMEOUT) -> bytes:
    sock.sock.settimeout(timeout)
    return b"".join(data for _, data in sock.frames())


def test_tty_prompt_of_a_fresh_run_is_not_lost(e2e):
    """`run -it busybox sh`: the shell's first prompt is written before any
    input and right after the start; the attached client must get it."""
    with e2e.client() as client:
        cid = _create(client, ["sh"], Tty=True, OpenStdin=True, StdinOnce=True, AttachStdin=True,
                      AttachStdout=True, AttachStderr=True)
        try:
            with client.attach_container(cid, stdin=True, stdout=True, stderr=True) as sock:
                client.start_container(cid)
                _read_until(sock, b"/ # ")  # nothing typed yet
                sock.sendall(b"echo $((6*7)); exit 5\n")
                assert b"42" in _read_to_end(sock)
            assert client.read_wait(client.wait_container(cid))["StatusCode"] == 5
        finally:
            client.remove_container(cid, force=True)


def test_unterminated_output_reaches_a_client_attached_before_start(e2e):
    """A prompt without a newline (no TTY) comes at once, not when a line
    is complete (the log holds lines; the live stream holds bytes)."""
    with e2e.client() as client:
        cid = _create(client, ["sh", "-c", "printf 'name? '; read name; echo hello $name; echo bye >&2"],
                      OpenStdin=True, StdinOnce=True, AttachStdin=True)
        try:
            with client.attach_container(cid, stdin=True, stdout=True, stderr=True) as sock:
                client.start_container(cid)
                _read_until(sock, b"name? ")
                sock.sendall(b"world\n")
                sock.close_write()
                sock.sock.settimeout(READ_TIMEOUT)
                frames = list(sock.frames())
            assert b"".join(d for s, d in frames if s == 1) == b"hello world\n"
            assert b"".join(d for s, d in frames if s == 2) == b"bye\n"
        finally:
            client.remove_container(cid, force=True)


def test_stdin_sent_before_the_start_is_kept(e2e):
    with e2e.client() as client:
        cid = _create(client, ["sh", "-c", "cat; echo done"], OpenStdin=True, StdinOnce=True, AttachStdin=True)
        try:
            with client.attach_container(cid, stdin=True, stdout=True, stderr=True) as sock:
                sock.sendall(b"typed ahead\n")
                sock.close_write()
                time.sleep(0.2)
                client.start_container(cid)
                assert _read_to_end(sock) == b"typed ahead\ndone\n"
        finally:
            client.remove_container(cid, force=True)


def test_start_attach_of_an_exited_container_prints_the_new_run(e2e):
    """`docker start -a`: the new run's output, all of it; with logs=1 the
    log of the earlier runs comes first."""
    with e2e.client() as client:
        cid = _create(client, ["sh", "-c", "echo run; echo err >&2"])
        try:
            client.start_container(cid)
            assert client.read_wait(client.wait_container(cid))["StatusCode"] == 0
            with client.attach_container(cid, stdout=True, stderr=True) as sock:
                client.start_container(cid)
                assert sorted(_frames(sock)) == [(1, b"run\n"), (2, b"err\n")]
            with client.attach_container(cid, stdout=True, stderr=True, logs=True) as sock:
                client.start_container(cid)
                got = _frames(sock)
            assert [d for s, d in got if s == 1] == [b"run\n"] * 3
            assert [d for s, d in got if s == 2] == [b"err\n"] * 3
        finally:
            client.remove_container(cid, force=True)


def _frames(sock) -> list[tuple[int, bytes]]:
    sock.sock.settimeout(READ_TIMEOUT)
    return list(sock.frames())


def test_attach_before_start_ends_when_the_start_fails(e2e):
    with e2e.client() as client:
        cid = _create(client, ["no-such-command"])
        try:
            with client.attach_container(cid, stdout=True, stderr=True) as sock:
                with pytest.raises(Exception):
                    client.start_container(cid)
                assert _read_to_end(sock) == b""
        finally:
            client.remove_container(cid, force=True)


def test_tty_detach_keeps_the_shell_and_inspect_shows_stdin_once(e2e):
    """`run -it` sends StdinOnce with Tty; inspect shows it as sent, and a
    detach (ctrl-p ctrl-q) does not end the shell (Docker ignores StdinOnce
    with a TTY)."""
    with e2e.client() as client:
        cid = _create(client, ["sh"], Tty=True, OpenStdin=True, StdinOnce=True, AttachStdin=True)
        try:
            assert client.inspect_container(cid)["Config"]["StdinOnce"] is True
            with client.attach_container(cid, stdin=True, stdout=True, stderr=True) as sock:
                client.start_container(cid)
                _read_until(sock, b"/ # ")
                sock.sendall(b"echo $((2+3))\r")
                _read_until(sock, b"5\r\n")
                sock.sendall(b"\x10\x11")
                _read_to_end(sock)  # the daemon ends the stream on detach
            time.sleep(0.3)
            assert client.inspect_container(cid)["State"]["Running"] is True
            with client.attach_container(cid, stdin=True, stdout=True, stderr=True) as sock:
                sock.sendall(b"exit 4\r")
                _read_to_end(sock)
            assert client.read_wait(client.wait_container(cid))["StatusCode"] == 4
        finally:
            client.remove_container(cid, force=True)


@pytest.mark.parametrize("tool", ["docker", "dockyard"])
def test_start_a_prints_the_new_run_with_both_clis(e2e, tool, test_id):
    name = f"start-a-{tool}-{test_id}"
    run = e2e.docker if tool == "docker" else e2e.cli
    assert run("run", "--name", name, "busybox", "sh", "-c", "echo out; echo err >&2; exit 3").returncode == 3
    again = run("start", "-a", name)
    assert (again.returncode, again.stdout, again.stderr.count(b"err\n")) == (3, b"out\n", 1), again.stderr
    e2e.docker("rm", name)


def test_a_stdin_once_client_that_drops_its_connection_closes_the_stdin(e2e):
    """Docker's StdinOnce: when the attached client goes (here: closes its
    connection without a half-close first), the container's stdin closes;
    without StdinOnce it stays open for the next client."""
    with e2e.client() as client:
        once = _create(client, ["sh", "-c", "cat; echo done"], OpenStdin=True, StdinOnce=True, AttachStdin=True)
        kept = _create(client, ["sh", "-c", "cat; echo done"], OpenStdin=True, AttachStdin=True)
        try:
            for cid in (once, kept):
                sock = client.attach_container(cid, stdin=True, stdout=True, stderr=True)
                client.start_container(cid)
                sock.sendall(b"hello\n")
                _read_until(sock, b"hello\n")
                sock.close()
            assert client.read_wait(client.wait_container(once))["StatusCode"] == 0
            assert e2e.cli("logs", once).stdout == b"hello\ndone\n"
            time.sleep(0.5)
            assert client.inspect_container(kept)["State"]["Running"] is True
        finally:
            for cid in (once, kept):
                client.remove_container(cid, force=True)
