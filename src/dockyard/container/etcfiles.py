"""The per-container /etc/hostname, /etc/hosts and /etc/resolv.conf.

Docker writes these three files in the container's directory on the host
and bind-mounts them, so a read-only image still gets the right hostname
and DNS.  Content follows Docker's: the standard localhost lines, the
container's own address when it has one, ExtraHosts; the host's
resolv.conf without loopback nameservers (unreachable from a private
network namespace), falling back to public resolvers, with Dns/DnsSearch/
DnsOptions overriding.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from .fsutil import atomic_write

HOSTS_HEADER = (
    "127.0.0.1\tlocalhost\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::0\tip6-localnet\n"
    "ff00::0\tip6-mcastprefix\n"
    "ff02::1\tip6-allnodes\n"
    "ff02::2\tip6-allrouters\n"
)
#: Docker's fallback when the host has only local resolvers.
FALLBACK_NAMESERVERS = ("8.8.8.8", "8.8.4.4")


@dataclass(frozen=True)
class EtcFiles:
    hostname: Path
    hosts: Path
    resolv_conf: Path


def hosts_content(hostname: str, domainname: str, extra_hosts: list[str], address: str | None) -> str:
    text = HOSTS_HEADER
    for entry in extra_hosts:
        name, _, ip = entry.partition(":")
        if ip == "host-gateway":
            # TODO(network issue): the bridge gateway address.
            continue
        text += f"{ip}\t{name}\n"
    if address:
        names = f"{hostname}.{domainname} {hostname}" if domainname else hostname
        text += f"{address}\t{names}\n"
    return text


def _is_loopback(addr: str) -> bool:
    return addr.startswith("127.") or addr == "::1"


def resolv_conf_content(host_resolv: str, dns: list[str], search: list[str], options: list[str],
                        *, host_network: bool) -> str:
    nameservers, host_search, host_options, other = [], [], [], []
    for line in host_resolv.splitlines():
        fields = line.split()
        if not fields or fields[0].startswith(("#", ";")):
            continue
        if fields[0] == "nameserver" and len(fields) > 1:
            nameservers.append(fields[1])
        elif fields[0] in ("search", "domain"):
            host_search = fields[1:]
        elif fields[0] == "options":
            host_options.extend(fields[1:])
        else:
            other.append(line)
    if dns:
        nameservers = list(dns)
    elif not host_network:
        nameservers = [n for n in nameservers if not _is_loopback(n)] or list(FALLBACK_NAMESERVERS)
    lines = []
    if search or host_search:
        searches = [s for s in (search or host_search) if s != "."]
        if searches:
            lines.append("search " + " ".join(searches))
    lines.extend(f"nameserver {n}" for n in nameservers)
    opts = options or host_options
    if opts:
        lines.append("options " + " ".join(opts))
    return "\n".join(lines) + "\n"


def write_etc_files(container_dir: Path, config: Mapping[str, Any], host_config: Mapping[str, Any],
                    container_id: str, *, address: str | None = None,
                    host_etc: Path = Path("/etc")) -> EtcFiles:
    """Write (atomically) the three files under ``container_dir``.  Not
    fsync'd: the service rewrites them at start when one is missing or
    empty, as a machine crash may leave them (see ``etc_files_intact``)."""
    net = host_config.get("NetworkMode") or "bridge"
    host_network = net == "host"
    uts_host = (host_config.get("UTSMode") or "") == "host"
    hostname = config.get("Hostname") or container_id[:12]
    if host_network or uts_host:
        hostname = config.get("Hostname") or os.uname().nodename
    files = EtcFiles(container_dir / "hostname", container_dir / "hosts", container_dir / "resolv.conf")
    atomic_write(files.hostname, hostname + "\n", durable=False)
    if host_network:
        try:
            hosts = (host_etc / "hosts").read_text()
        except OSError:
            hosts = HOSTS_HEADER
        extra = hosts_content(hostname, "", list(host_config.get("ExtraHosts") or []), None)[len(HOSTS_HEADER):]
        atomic_write(files.hosts, hosts + ("" if hosts.endswith("\n") or not hosts else "\n") + extra, durable=False)
    else:
        atomic_write(files.hosts, hosts_content(hostname, config.get("Domainname") or "",
                                                list(host_config.get("ExtraHosts") or []), address),
                     durable=False)
    try:
        host_resolv = (host_etc / "resolv.conf").read_text()
    except OSError:
        host_resolv = ""
    atomic_write(files.resolv_conf, resolv_conf_content(
        host_resolv, list(host_config.get("Dns") or []), list(host_config.get("DnsSearch") or []),
        list(host_config.get("DnsOptions") or []), host_network=host_network), durable=False)
    return files


def etc_files_intact(container_dir: Path) -> bool:
    """Whether the three files exist and none is empty (a crash right
    after an un-fsync'd write can leave one so)."""
    for name in ("hostname", "hosts", "resolv.conf"):
        try:
            if os.stat(container_dir / name).st_size == 0:
                return False
        except FileNotFoundError:
            return False
    return True
