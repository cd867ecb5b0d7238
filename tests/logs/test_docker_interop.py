"""Log files against the ones Docker's engine writes (a private dockerd):
json-file byte for byte, local record for record, and our readers on
Docker's rotated and compressed files."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from testlib import need_tool, require_root
from dockyard.logs import Partial, jsonfile, local, open_reader
from dockyard.logs.copier import Copier
from dockyard.logs.timefmt import parse_rfc3339

#: What the container prints on stdout: escapes of every kind, a line long
#: enough to be split in 16 KiB pieces, and a last line without a newline.
SCRIPT = (r"printf 'a\tb<c>&\042q\134 \001\033 \377\342\200\250 \303\251\r\n'; "
          r"head -c 40000 /dev/zero | tr '\0' a; echo; printf 'tail-no-newline'")
EXPECTED_OUTPUT = (b'a\tb<c>&"q\\ \x01\x1b \xff\xe2\x80\xa8 \xc3\xa9\r\n' + b"a" * 40000 + b"\n"
                   + b"tail-no-newline")


class Dockerd:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.env = {**os.environ, "DOCKER_HOST": f"unix://{base}/d.sock"}
        self.log = open(base / "dockerd.log", "wb")
        self.proc = subprocess.Popen(
            ["dockerd", "--data-root", str(base / "data"), "--exec-root", str(base / "exec"),
             "-H", f"unix://{base}/d.sock", "--pidfile", str(base / "d.pid"), "--bridge", "none",
             "--iptables=false", "--ip6tables=false"],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while subprocess.run(["docker", "version"], env=self.env, capture_output=True).returncode:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.stop()
                pytest.skip("a private dockerd did not start: " +
                            (base / "dockerd.log").read_text(errors="replace")[-500:])
            time.sleep(0.3)

    def docker(self, *args: str) -> str:
        out = subprocess.run(["docker", *args], env=self.env, capture_output=True)
        assert out.returncode == 0, f"docker {args}: {out.stderr.decode(errors='replace')}"
        return out.stdout.decode(errors="replace")

    def run(self, *args: str) -> Path:
        """Run a container to its end; its directory under the data root."""
        cid = self.docker("run", "-d", "--network", "none", *args).strip()
        self.docker("wait", cid)
        return self.base / "data" / "containers" / cid

    def stop(self) -> None:
        try:
            ids = subprocess.run(["docker", "ps", "-aq"], env=self.env, capture_output=True, text=True).stdout.split()
            if ids:
                subprocess.run(["docker", "rm", "-f", *ids], env=self.env, capture_output=True)
        finally:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                    self.proc.wait()
            self.log.close()
            for sub in ("exec", "data"):
                subprocess.run(["umount", "-R", "-l", str(self.base / sub)], capture_output=True)


@pytest.fixture(scope="module")
def dockerd(busybox_tar):
    require_root()
    need_tool("dockerd")
    need_tool("docker")
    # Short path: containerd's sockets live under the exec root.
    base = Path(tempfile.mkdtemp(prefix="dyl", dir="/tmp"))
    engine = None
    try:
        engine = Dockerd(base)
        engine.docker("import", str(busybox_tar), "dockyard-logs-test:1")
        yield engine
    finally:
        if engine is not None:
            engine.stop()
        shutil.rmtree(base, ignore_errors=True)


class Recorder:
    def __init__(self):
        self.entries = []

    def write(self, stream, line, timestamp, partial=None):
        self.entries.append((stream, line, partial))

    def flush(self):
        pass

    def close(self):
        pass


def our_pieces(output: bytes) -> list[tuple[str, bytes, Partial | None]]:
    """How our copier splits ``output`` (fed in small chunks, as a pipe delivers it)."""
    rec = Recorder()
    copier = Copier(rec)
    for i in range(0, len(output), 3000):
        copier.feed("stdout", output[i:i + 3000])
    copier.close()
    return rec.entries


def test_json_file_is_byte_identical(dockerd):
    cdir = dockerd.run("--log-driver", "json-file", "dockyard-logs-test:1", "sh", "-c", SCRIPT)
    docker_lines = (cdir / f"{cdir.name}-json.log").read_bytes().splitlines(keepends=True)
    pieces = our_pieces(EXPECTED_OUTPUT)
    assert len(docker_lines) == len(pieces) == 5  # 1 + three 16 KiB pieces of 40000 + the tail
    for raw, (stream, line, partial) in zip(docker_lines, pieces):
        ts = parse_rfc3339(json.loads(raw)["time"])
        assert jsonfile.encode_entry(stream, line, ts, partial) == raw
    # Docker's file read back by our reader: the output, except that JSON
    # cannot carry the invalid UTF-8 byte (U+FFFD instead, as docker logs shows).
    entries = list(open_reader("json-file", cdir / f"{cdir.name}-json.log").read())
    assert b"".join(e.line for e in entries) == EXPECTED_OUTPUT.replace(b"\xff", "\ufffd".encode())


def test_local_records_are_identical(dockerd):
    cdir = dockerd.run("--log-driver", "local", "dockyard-logs-test:1", "sh", "-c", SCRIPT)
    path = cdir / "local-logs" / "container.log"
    entries = list(open_reader("local", path).read())
    assert b"".join(e.line for e in entries) == EXPECTED_OUTPUT
    assert [(e.partial.ordinal, e.partial.last) if e.partial else None for e in entries] == \
        [None, (1, False), (2, False), (3, True), (1, False)]
    assert entries[1].partial.id == entries[3].partial.id != entries[4].partial.id
    # Re-encoded by us, each record is Docker's, byte for byte.
    ours = b"".join(local.encode_entry(e.stream, e.line[:-1] if e.line.endswith(b"\n") else e.line,
                                       e.timestamp, e.partial) for e in entries)
    assert ours == path.read_bytes()


def test_reader_follows_dockers_rotated_files(dockerd):
    script = "i=0; while [ $i -lt 300 ]; do echo line $i; i=$((i+1)); done"
    cdir = dockerd.run("--log-driver", "json-file", "--log-opt", "max-size=1k", "--log-opt", "max-file=3",
                       "--log-opt", "compress=true", "dockyard-logs-test:1", "sh", "-c", script)
    name = f"{cdir.name}-json.log"
    time.sleep(0.5)  # Docker compresses the rotated file in the background
    files = sorted(f for f in os.listdir(cdir) if f.startswith(name))
    assert files == [name, f"{name}.1.gz", f"{name}.2.gz"]
    lines = [e.line for e in open_reader("json-file", cdir / name).read()]
    numbers = [int(line.split()[1]) for line in lines]
    assert numbers == list(range(numbers[0], 300)) and numbers[0] > 0
    assert [e.line for e in open_reader("json-file", cdir / name).read(tail=3)] == \
        [b"line 297\n", b"line 298\n", b"line 299\n"]
