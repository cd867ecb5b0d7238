"""What docker inspect, docker logs and docker stats show for a container,
compared with dockerd's answers to the same docker CLI (28) and docker-py
calls (audited side by side against a private dockerd)."""

from __future__ import annotations

import json
from testlib import ok as _ok

MASKED = "/proc/kcore"
READONLY = "/proc/sys"


def test_inspect_defaults_as_dockerd_fills_them(e2e, test_id):
    """The CLI sends MaskedPaths/ReadonlyPaths null, MemorySwappiness -1 and
    NetworkMode "default" (or nothing); dockerd shows the default lists,
    null and "default"."""
    name = f"defaults-{test_id}"
    _ok(e2e.docker("create", "--name", name, "busybox"))
    fmt = "{{json .HostConfig.MaskedPaths}}|{{json .HostConfig.ReadonlyPaths}}|" \
          "{{json .HostConfig.MemorySwappiness}}|{{.HostConfig.NetworkMode}}"
    masked, readonly, swappiness, mode = _ok(e2e.docker("inspect", "-f", fmt, name)).strip().split("|")
    assert MASKED in json.loads(masked) and READONLY in json.loads(readonly)
    assert swappiness == "null"
    assert mode == "default"
    ps = _ok(e2e.docker("ps", "-a", "--filter", f"name={name}", "--format", "{{.Networks}}")).strip()
    assert ps == "bridge"
    with e2e.client() as client:
        listed = [c for c in client.containers(all=True) if f"/{name}" in c["Names"]]
    assert listed[0]["HostConfig"] == {"NetworkMode": "default"}

    privileged = f"priv-{test_id}"
    _ok(e2e.docker("create", "--name", privileged, "--privileged", "--memory-swappiness", "30",
                   "--network", "none", "busybox"))
    masked, readonly, swappiness, mode = _ok(e2e.docker("inspect", "-f", fmt, privileged)).strip().split("|")
    assert (masked, readonly, swappiness, mode) == ("null", "null", "30", "none")
    _ok(e2e.docker("rm", name, privileged))


def test_logs_tail_not_a_number_means_all(e2e, test_id):
    name = f"tail-{test_id}"
    _ok(e2e.docker("run", "--name", name, "busybox", "sh", "-c", "echo one; echo two"))
    result = e2e.docker("logs", "--tail", "abc", name)
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().split() == ["one", "two"]
    _ok(e2e.docker("rm", name))


def test_stats_blkio_counters_are_lists(e2e, test_id):
    """docker-py users iterate blkio_stats[...]; dockerd on cgroup v1 gives
    every counter as a list, empty when nothing was read or written."""
    name = f"blkio-{test_id}"
    client = e2e.docker_py()
    try:
        container = client.containers.run("busybox", ["sleep", "30"], name=name, detach=True, network_mode="none")
        try:
            stats = container.stats(stream=False)
            blkio = stats["blkio_stats"]
            v1 = not _cgroup2_only()
            for key in ("io_service_bytes_recursive", "io_serviced_recursive"):
                assert isinstance(blkio[key], list), (key, blkio[key])
            for key in ("io_queue_recursive", "io_service_time_recursive", "io_wait_time_recursive",
                        "io_merged_recursive", "io_time_recursive", "sectors_recursive"):
                assert isinstance(blkio[key], list) if v1 else blkio[key] is None, (key, blkio[key])
            assert sum(e["value"] for e in blkio["io_service_bytes_recursive"]) >= 0
        finally:
            container.remove(force=True)
    finally:
        client.close()


def _cgroup2_only() -> bool:
    with open("/proc/self/mountinfo") as mounts:
        return any(line.split(" - ")[1].split()[0] == "cgroup2" and line.split()[4] == "/sys/fs/cgroup"
                   for line in mounts)
