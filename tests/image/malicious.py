"""A corpus of malicious layer tars, built with the standard library's
tarfile (an independent writer, so the reader is tested against bytes it
did not produce).  Each case names the attack and what must stop it."""

from __future__ import annotations

import gzip
import io
import tarfile
from dataclasses import dataclass, field
from typing import Callable

from dockyard.image.apply import ApplyOptions
from dockyard.image.tarfmt import TarLimits


def _info(name: str, kind: bytes = tarfile.REGTYPE, size: int = 0, linkname: str = "", mode: int = 0o644,
          **kw) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = size
    info.linkname = linkname
    info.mode = mode
    info.mtime = 1_600_000_000
    for key, value in kw.items():
        setattr(info, key, value)
    return info


def build(members: list[tuple[tarfile.TarInfo, bytes | None]], fmt=tarfile.PAX_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return buf.getvalue()


def forged_size_tar(name: str, size: int) -> bytes:
    """A header declaring ``size`` bytes (base-256 encoded), and no data."""
    info = _info(name)
    info.size = 0
    header = bytearray(info.tobuf(format=tarfile.GNU_FORMAT))
    field = bytearray(12)
    field[0] = 0x80
    field[1:] = size.to_bytes(11, "big")
    header[124:136] = field
    header[148:156] = b" " * 8
    checksum = sum(header[:512])
    header[148:156] = b"%06o\0 " % checksum
    return bytes(header) + b"hello".ljust(512, b"\0") + bytes(1024)


@dataclass(frozen=True)
class Case:
    name: str
    tar: Callable[[str], bytes]  # outside dir -> archive bytes
    message: str  # a fragment of the expected error
    options: ApplyOptions = field(default_factory=ApplyOptions)


def _corpus() -> list[Case]:
    data = b"pwned\n"
    cases = [
        Case("dotdot", lambda out: build([(_info("../escaped"), data)]), "'..'"),
        Case("nested-dotdot", lambda out: build([(_info("a/b/../../../escaped"), data)]), "'..'"),
        Case("pax-path-dotdot", lambda out: build([(_info("x" * 120 + "/../../escaped"), data)]), "'..'"),
        Case("gnu-longname-dotdot",
             lambda out: build([(_info("../" * 40 + "escaped"), data)], fmt=tarfile.GNU_FORMAT), "'..'"),
        Case("symlink-relative-escape",
             lambda out: build([(_info("link", tarfile.SYMTYPE, linkname="../../../../../../etc"), None)]),
             "escapes the layer root"),
        Case("symlink-then-write-absolute",
             lambda out: build([(_info("dir", tarfile.SYMTYPE, linkname=out), None),
                                (_info("dir/escaped"), data)]), "is a symlink"),
        Case("symlink-then-write-inside",
             lambda out: build([(_info("real", tarfile.DIRTYPE, mode=0o755), None),
                                (_info("alias", tarfile.SYMTYPE, linkname="real"), None),
                                (_info("alias/file"), data)]), "is a symlink"),
        Case("symlink-then-mkdir",
             lambda out: build([(_info("dir", tarfile.SYMTYPE, linkname=out), None),
                                (_info("dir/sub", tarfile.DIRTYPE, mode=0o755), None)]), "is a symlink"),
        Case("hardlink-dotdot",
             lambda out: build([(_info("h", tarfile.LNKTYPE, linkname="../../../../etc/passwd"), None)]), "'..'"),
        Case("hardlink-absolute-outside",
             lambda out: build([(_info("h", tarfile.LNKTYPE, linkname="/etc/passwd"), None)]),
             "does not exist in this layer"),
        Case("hardlink-through-symlink",
             lambda out: build([(_info("s", tarfile.SYMTYPE, linkname="/etc"), None),
                                (_info("h", tarfile.LNKTYPE, linkname="s/passwd"), None)]), "is a symlink"),
        Case("symlink-then-whiteout",
             lambda out: build([(_info("dir", tarfile.SYMTYPE, linkname=out), None),
                                (_info("dir/.wh.sentinel"), b"")]), "is a symlink"),
        Case("whiteout-dotdot", lambda out: build([(_info("a/.wh..."), b"")]), "malformed whiteout"),
        Case("device-forbidden",
             lambda out: build([(_info("mem", tarfile.CHRTYPE, devmajor=1, devminor=1), None)]),
             "device nodes are not allowed", ApplyOptions(allow_devices=False)),
        Case("block-device-forbidden",
             lambda out: build([(_info("sda", tarfile.BLKTYPE, devmajor=8, devminor=0), None)]),
             "device nodes are not allowed", ApplyOptions(allow_devices=False)),
        Case("huge-declared-size", lambda out: forged_size_tar("bomb", 1 << 60), "over the limit"),
        Case("size-over-caller-limit", lambda out: build([(_info("big"), b"x" * 4096)]), "over the limit",
             ApplyOptions(limits=TarLimits(max_entry_size=1024))),
        Case("total-size-limit",
             lambda out: build([(_info(f"f{i}"), b"y" * 1000) for i in range(20)]), "limit",
             ApplyOptions(limits=TarLimits(max_total_size=8192))),
        Case("entry-count-limit",
             lambda out: build([(_info(f"f{i}"), b"") for i in range(50)]), "more than 10 entries",
             ApplyOptions(limits=TarLimits(max_entries=10))),
        Case("gzip-bomb",
             lambda out: gzip.compress(build([(_info("zeros"), bytes(8 << 20))]), 9), "limit",
             ApplyOptions(limits=TarLimits(max_total_size=1 << 20))),
        Case("truncated", lambda out: build([(_info("cut"), b"z" * 5000)])[:2048], "truncated"),
        Case("bad-checksum",
             lambda out: (lambda b: b[:10] + b"X" + b[11:])(build([(_info("file"), data)])), "bad header checksum"),
        Case("root-as-file", lambda out: build([(_info("./"), data)]), "names the root"),
        Case("hardlink-to-directory",
             lambda out: build([(_info("d", tarfile.DIRTYPE, mode=0o755), None),
                                (_info("h", tarfile.LNKTYPE, linkname="d"), None)]), "is a directory"),
    ]
    return cases


CORPUS = _corpus()
