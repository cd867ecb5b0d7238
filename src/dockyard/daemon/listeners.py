"""Where the daemon listens: ``-H`` addresses parsed into listener values,
and the sockets made from them.

``unix:///path``
    A unix socket, mode 0660, owned by root and by the ``--group`` group
    (``dockyard`` unless configured) when that group exists, else by root's
    group.  A stale socket file is replaced; a live one (some process still
    accepts on it) is an error rather than a silent takeover.
``tcp://host[:port]``
    Plain TCP is served only on loopback addresses, with a warning: anyone
    who can reach the API owns the host.  Any other address needs TLS
    (``--tls`` or ``--tlsverify``).  The default port is 2375, 2376 with TLS,
    as for dockerd.
"""

from __future__ import annotations

import grp
import ipaddress
import logging
import os
import socket
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from dockyard.errors import FailedPrecondition, InvalidArgument

if TYPE_CHECKING:
    import ssl

    from dockyard.daemon.config import DaemonConfig

log = logging.getLogger(__name__)

SOCKET_MODE = 0o660


@dataclass(frozen=True)
class Listener:
    """One parsed ``-H`` address."""

    scheme: str  # "unix" or "tcp"
    address: str  # socket path, or host
    port: int = 0

    def __str__(self) -> str:
        if self.scheme == "unix":
            return f"unix://{self.address}"
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"tcp://{host}:{self.port}"

    @property
    def is_loopback(self) -> bool:
        if self.scheme != "tcp":
            return False
        if self.address == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.address).is_loopback
        except ValueError:
            return False


def parse_host(text: str, *, tls: bool = False) -> Listener:
    """Parse a ``-H`` value as dockerd does (``unix://``, ``tcp://``)."""
    if text.startswith("unix://"):
        path = text[len("unix://"):]
        if not path.startswith("/"):
            raise InvalidArgument(f"invalid host {text!r}: the unix socket path must be absolute")
        return Listener("unix", path)
    if text.startswith("/"):
        return Listener("unix", text)
    if text.startswith("tcp://"):
        rest = text[len("tcp://"):].rstrip("/")
        if "/" in rest:
            raise InvalidArgument(f"invalid host {text!r}: a TCP address takes no path")
        default_port = 2376 if tls else 2375
        if rest.startswith("["):
            host, sep, port_text = rest[1:].partition("]")
            if not sep:
                raise InvalidArgument(f"invalid host {text!r}: unterminated IPv6 address")
            port_text = port_text.removeprefix(":")
        else:
            host, _, port_text = rest.rpartition(":") if ":" in rest else (rest, "", "")
        host = host or "0.0.0.0"
        try:
            port = int(port_text) if port_text else default_port
        except ValueError:
            raise InvalidArgument(f"invalid host {text!r}: bad port {port_text!r}") from None
        if not 0 < port < 65536:
            raise InvalidArgument(f"invalid host {text!r}: port {port} out of range")
        return Listener("tcp", host, port)
    scheme = text.partition("://")[0] if "://" in text else text
    raise InvalidArgument(f"invalid host {text!r}: unsupported protocol {scheme!r} (use unix:// or tcp://)")


def plan_listeners(config: DaemonConfig) -> list[Listener]:
    """Parse every host and refuse unencrypted TCP beyond loopback."""
    listeners = [parse_host(h, tls=config.use_tls) for h in config.hosts]
    for listener in listeners:
        if listener.scheme != "tcp" or config.use_tls:
            continue
        if not listener.is_loopback:
            raise InvalidArgument(
                f"refusing to serve {listener} without TLS: unencrypted TCP is allowed only on loopback "
                "addresses; use --tlsverify with --tlscacert, --tlscert and --tlskey")
        log.warning("serving %s without TLS: any local user can control this daemon and the host; "
                    "use --tlsverify for remote access", listener)
    return listeners


def tls_context(config: DaemonConfig) -> ssl.SSLContext | None:
    if not config.use_tls:
        return None
    import ssl  # only TLS daemons pay for it

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(str(config.tlscert), str(config.tlskey))
        if config.tlsverify:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(cafile=str(config.tlscacert))
    except (OSError, ssl.SSLError) as e:
        raise InvalidArgument(f"loading TLS material: {e}") from e
    return ctx


def _socket_in_use(path: str) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(path)
        return True
    except OSError:
        return False
    finally:
        probe.close()


def socket_group(name: str) -> int:
    """The gid for the socket: the named group if it exists, else root's."""
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        return 0


def bind_unix(path: str, group: str) -> socket.socket:
    """A listening unix socket at ``path``, mode 0660, owner root and ``group``."""
    p = Path(path)
    try:
        st = os.lstat(p)
    except FileNotFoundError:
        st = None
    if st is not None:
        if not stat.S_ISSOCK(st.st_mode):
            raise FailedPrecondition(f"cannot listen on {path}: it exists and is not a socket")
        if _socket_in_use(path):
            raise FailedPrecondition(f"cannot listen on {path}: another daemon is accepting connections on it")
        p.unlink()
    p.parent.mkdir(parents=True, exist_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        # Bind under a restrictive umask so the socket is never reachable by
        # others between bind() and chmod().
        old_umask = os.umask(0o177)
        try:
            sock.bind(path)
        finally:
            os.umask(old_umask)
        os.chown(path, 0 if os.geteuid() == 0 else -1, socket_group(group) if os.geteuid() == 0 else -1)
        os.chmod(path, SOCKET_MODE)
        sock.listen(1024)
        sock.setblocking(False)
    except OSError as e:
        sock.close()
        raise FailedPrecondition(f"cannot listen on unix://{path}: {e.strerror}") from e
    return sock


def bind_tcp(listener: Listener) -> socket.socket:
    try:
        infos = socket.getaddrinfo(listener.address, listener.port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise InvalidArgument(f"cannot resolve {listener}: {e.strerror}") from e
    family, kind, proto, _, addr = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(1024)
        sock.setblocking(False)
    except OSError as e:
        sock.close()
        raise FailedPrecondition(f"cannot listen on {listener}: {e.strerror}") from e
    return sock
