"""Base images without a registry.

:func:`bootstrap_busybox` makes ``busybox:latest`` from the host's static
busybox (Debian's ``busybox-static``): a one-layer image laid out like the
official one - ``/bin/busybox`` with every applet as a hard link beside
it, ``/etc/passwd``, ``/etc/group``, ``/etc/shadow``, ``/tmp`` (1777),
``/root``, ``/home``, ``/var/spool/mail``, ``/var/www`` - with
``Cmd ["sh"]``.

It is deterministic: the layer tar is generated entry by entry (sorted,
fixed owners, modes and times), and the config's times are fixed, so the
same busybox binary always gives the same image ID on any host.

:func:`bootstrap_debian` (optional, slow, needs ``debootstrap`` and a
Debian mirror) builds a Debian image the same way from a debootstrap tree.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from typing import BinaryIO

from ..errors import InvalidArgument, Unavailable
from ..oci import mediatype
from ..oci.digest import Digest
from ..oci.image import ContainerConfig, History, ImageConfig, RootFS, format_time
from . import tarfmt
from .progress import IMPORTING, ProgressEvent, ProgressFn, reporter
from .service import ImageService

#: every file time in a bootstrapped image's layer: fixed, so the layer
#: depends only on the busybox binary
EPOCH = "1970-01-01T00:00:00Z"

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

_PASSWD = (
    "root:x:0:0:root:/root:/bin/sh\n"
    "daemon:x:1:1:daemon:/usr/sbin:/bin/false\n"
    "bin:x:2:2:bin:/bin:/bin/false\n"
    "sys:x:3:3:sys:/dev:/bin/false\n"
    "sync:x:4:100:sync:/bin:/bin/sync\n"
    "mail:x:8:8:mail:/var/spool/mail:/bin/false\n"
    "www-data:x:33:33:www-data:/var/www:/bin/false\n"
    "operator:x:37:37:Operator:/var:/bin/false\n"
    "nobody:x:65534:65534:nobody:/home:/bin/false\n"
)
_GROUP = (
    "root:x:0:\n"
    "daemon:x:1:\n"
    "bin:x:2:\n"
    "sys:x:3:\n"
    "adm:x:4:\n"
    "tty:x:5:\n"
    "disk:x:6:\n"
    "wheel:x:10:root\n"
    "mail:x:8:\n"
    "www-data:x:33:\n"
    "operator:x:37:\n"
    "staff:x:50:\n"
    "audio:x:29:\n"
    "users:x:100:\n"
    "nogroup:x:65534:\n"
)
_SHADOW = "".join(f"{line.split(':')[0]}:*::0:::::\n" for line in _PASSWD.splitlines())

_DIRS = {  # path -> mode
    "bin": 0o755, "dev": 0o755, "etc": 0o755, "home": 0o755, "proc": 0o755, "root": 0o700, "sys": 0o755,
    "tmp": 0o1777, "usr": 0o755, "usr/sbin": 0o755, "var": 0o755, "var/spool": 0o755,
    "var/spool/mail": 0o755, "var/www": 0o755,
}


@dataclass(frozen=True)
class Bootstrapped:
    image_id: Digest
    reference: str
    busybox_version: str


def _busybox(path: str) -> tuple[list[str], str]:
    if not os.path.isfile(path):
        raise Unavailable(f"busybox not found at {path}: install Debian's busybox-static")
    try:
        listing = subprocess.run([path, "--list"], capture_output=True, text=True, check=True, timeout=30)
        banner = subprocess.run([path], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        raise Unavailable(f"cannot run {path}: {exc}") from None
    applets = sorted({a.strip() for a in listing.stdout.split() if a.strip() and "/" not in a})
    first = (banner.stdout or banner.stderr).splitlines()[:1]
    version = first[0].split(" multi-call")[0].strip() if first else "BusyBox"
    return applets, version


def _entry(name: str, kind: bytes, mode: int, size: int = 0, linkname: str = "") -> bytes:
    return tarfmt.encode_header(tarfmt.TarEntry(
        name=name.encode(), type=kind, mode=mode, uid=0, gid=0, size=size, mtime_ns=0,
        linkname=linkname.encode()))


def write_busybox_rootfs(out: BinaryIO, busybox: str = "/bin/busybox") -> str:
    """The busybox root filesystem as a deterministic tar; returns the
    busybox version banner."""
    applets, version = _busybox(busybox)
    entries: list[tuple[str, bytes, int, bytes | str | None]] = []
    for path, mode in _DIRS.items():
        entries.append((path + "/", tarfmt.DIR, mode, None))
    files = {"etc/passwd": (_PASSWD, 0o644), "etc/group": (_GROUP, 0o644), "etc/shadow": (_SHADOW, 0o640),
             "etc/hostname": ("busybox\n", 0o644), "etc/nsswitch.conf": ("hosts: files dns\n", 0o644)}
    for path, (text, mode) in files.items():
        entries.append((path, tarfmt.REG, mode, text.encode()))
    entries.sort(key=lambda item: item[0])
    for name, kind, mode, data in entries:
        if kind == tarfmt.DIR:
            out.write(_entry(name, kind, mode))
            if name == "bin/":
                size = os.path.getsize(busybox)
                out.write(_entry("bin/busybox", tarfmt.REG, 0o755, size))
                with open(busybox, "rb") as f:
                    copied = 0
                    while chunk := f.read(1 << 20):
                        out.write(chunk)
                        copied += len(chunk)
                if copied != size:
                    raise Unavailable(f"{busybox} changed while being read")
                out.write(tarfmt.padding(size))
                for applet in applets:
                    if applet != "busybox":
                        out.write(_entry(f"bin/{applet}", tarfmt.LNK, 0o755, linkname="bin/busybox"))
            continue
        body = data if isinstance(data, bytes) else b""
        out.write(_entry(name, kind, mode, len(body)))
        out.write(body)
        out.write(tarfmt.padding(len(body)))
    out.write(tarfmt.end_of_archive())
    return version


class _Hashing:
    def __init__(self, writer) -> None:
        self.writer = writer

    def write(self, data) -> int:
        return self.writer.write(data)


def bootstrap_busybox(service: ImageService, reference: str = "busybox:latest", busybox: str = "/bin/busybox",
                      progress: ProgressFn | None = None) -> Bootstrapped:
    """Create (or re-tag) ``reference`` from the host's busybox."""
    report = reporter(progress)
    store = service.store
    with service._operation() as lease:
        with store.content.open_writer(ref="bootstrap-busybox") as writer:
            version = write_busybox_rootfs(_Hashing(writer), busybox)
            # The image was made when its one program was: the binary's
            # mtime (whole seconds: the image ID stays a function of the binary).
            try:
                created = format_time(os.stat(busybox).st_mtime_ns // 1_000_000_000)
            except OSError as exc:
                raise Unavailable(f"cannot read {busybox}: {exc}") from None
            blob = writer.commit(before_publish=service._protect(lease))
        diff_id = blob.digest  # uncompressed: the blob is the tar
        report(ProgressEvent(IMPORTING, "busybox", blob.size, blob.size))
        layer = service._ensure_layer(lease, None, diff_id, blob.digest, mediatype.OCI_LAYER, report)
        history = History(created=created, created_by=f"dockyard image bootstrap busybox ({version})")
        config = ImageConfig(
            architecture=service.platform.architecture, os=service.platform.os, variant=service.platform.variant,
            config=ContainerConfig(env=(DEFAULT_PATH,), cmd=("sh",)), rootfs=RootFS(diff_ids=(diff_id,)),
            history=(history,), created=created)
        image_id = service._finish(lease, config, [layer.chain_id], layer.size, None, reference)
    return Bootstrapped(image_id, reference, version)


def bootstrap_debian(service: ImageService, suite: str = "bookworm", reference: str | None = None,
                     mirror: str | None = None, progress: ProgressFn | None = None) -> Digest:
    """A Debian image from ``debootstrap --variant=minbase`` (slow; needs
    the debootstrap package and network access to a Debian mirror)."""
    from .diff import write_merged

    debootstrap = shutil.which("debootstrap")
    if debootstrap is None:
        raise Unavailable("debootstrap is not installed (apt-get install debootstrap)")
    if not suite.isalnum():
        raise InvalidArgument(f"invalid Debian suite {suite!r}")
    with tempfile.TemporaryDirectory(prefix="dockyard-debootstrap-") as tmp:
        rootfs = os.path.join(tmp, "rootfs")
        cmd = [debootstrap, "--variant=minbase", suite, rootfs] + ([mirror] if mirror else [])
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode:
            raise Unavailable(f"debootstrap {suite} failed: {proc.stderr.strip()[-500:]}")
        for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):
            path = os.path.join(rootfs, leftover)
            for name in os.listdir(path) if os.path.isdir(path) else ():
                full = os.path.join(path, name)
                if os.path.isfile(full):
                    os.unlink(full)
        tar_path = os.path.join(tmp, "rootfs.tar")
        with open(tar_path, "wb") as f:
            write_merged([rootfs], f)
        with open(tar_path, "rb") as f:
            return service.import_image(
                f, changes=[f"ENV {DEFAULT_PATH}", 'CMD ["bash"]'], message=f"debootstrap {suite}",
                reference=reference or f"debian:{suite}", progress=progress)


__all__ = ["Bootstrapped", "bootstrap_busybox", "bootstrap_debian", "write_busybox_rootfs", "EPOCH"]
