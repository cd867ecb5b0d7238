"""The container verbs' pure parts, without a daemon: docker's flag values,
where options end and the image begins, the create body, and the numbers
``ps`` and ``stats`` print."""

from __future__ import annotations

import pytest

from dockyard.cli.commands.container import container_row, stats_row
from dockyard.cli.commands.run import (
    _parser,
    build_create_body,
    duration_ns,
    parse_mount,
    parse_restart,
    parse_ulimit,
    ram_in_bytes,
    split_at_image,
)
from dockyard.cli.commands.streams import _KeyWatch, detach_sequence
from dockyard.cli.context import Context, UsageError


@pytest.mark.parametrize("text, value", [("1024", 1024), ("512m", 512 << 20), ("1g", 1 << 30), ("1.5k", 1536),
                                         ("64MiB", 64 << 20), ("2GB", 2 << 30), ("-1", -1)])
def test_ram_in_bytes(text, value):
    assert ram_in_bytes(text, "-m") == value


def test_bad_values_are_flag_errors():
    with pytest.raises(UsageError) as e:
        ram_in_bytes("lots", "-m, --memory")
    assert e.value.status == 125 and 'invalid argument "lots" for "-m, --memory" flag' in e.value.message
    with pytest.raises(UsageError):
        duration_ns("soon", "--health-interval")
    # the policy's name is the daemon's to check (as docker's CLI leaves it)
    assert parse_restart("sometimes") == {"Name": "sometimes", "MaximumRetryCount": 0}
    with pytest.raises(UsageError, match="no policy provided before colon"):
        parse_restart(":3")
    with pytest.raises(UsageError, match="maximum retry count must be an integer"):
        parse_restart("on-failure:x")
    with pytest.raises(UsageError):
        parse_ulimit("nofile=10:5")


def test_durations_restart_ulimits_mounts():
    assert duration_ns("1m30s", "x") == 90_000_000_000 and duration_ns("500ms", "x") == 500_000_000
    assert parse_restart("on-failure:3") == {"Name": "on-failure", "MaximumRetryCount": 3}
    assert parse_restart("unless-stopped") == {"Name": "unless-stopped", "MaximumRetryCount": 0}
    assert parse_ulimit("nofile=1024:2048") == {"Name": "nofile", "Soft": 1024, "Hard": 2048}
    assert parse_mount("type=bind,source=/a,target=/b,readonly") == {
        "Type": "bind", "Source": "/a", "Target": "/b", "ReadOnly": True}
    assert parse_mount("type=tmpfs,dst=/t,tmpfs-size=64m,tmpfs-mode=1770") == {
        "Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"SizeBytes": 64 << 20, "Mode": 0o1770}}


@pytest.mark.parametrize("argv, options, rest", [
    (["-it", "busybox", "sh"], ["-it"], ["busybox", "sh"]),
    (["--name", "x", "-e", "A=1", "busybox", "ls", "-l"], ["--name", "x", "-e", "A=1"], ["busybox", "ls", "-l"]),
    (["--name=x", "-dit", "busybox"], ["--name=x", "-dit"], ["busybox"]),
    (["-eA=1", "-m", "1g", "img", "--rm"], ["-eA=1", "-m", "1g"], ["img", "--rm"]),
    (["--rm", "--", "busybox", "-x"], ["--rm"], ["busybox", "-x"]),
    (["--sig-proxy=false", "img"], ["--sig-proxy=false"], ["img"]),
])
def test_options_end_at_the_image(argv, options, rest):
    p = _parser(Context(), "run", "run")
    assert split_at_image(p, argv) == (options, rest)


def _body(*argv: str, detach: bool = False) -> dict:
    p = _parser(Context(), "run", "run")
    options, rest = split_at_image(p, list(argv))
    return build_create_body(p.parse_args(options), rest[0], rest[1:], detach=detach)


def test_create_body_as_docker_sends_it(monkeypatch):
    monkeypatch.setenv("FROM_ENV", "yes")
    body = _body("-it", "--rm", "-e", "A=1", "-e", "FROM_ENV", "-e", "UNSET_ONE", "-l", "k=v", "-m", "64m",
                 "--cpus", "1.5", "--pids-limit", "10", "-v", "/h:/c:ro", "-v", "/anon", "--tmpfs", "/t:size=1m",
                 "--cap-add", "SYS_ADMIN", "--restart", "no", "--entrypoint", "", "-h", "box", "--init",
                 "busybox", "sh", "-c", "true")
    assert body["Image"] == "busybox" and body["Cmd"] == ["sh", "-c", "true"]
    assert body["Tty"] and body["OpenStdin"] and body["AttachStdin"] and body["StdinOnce"]
    assert body["Env"] == ["A=1", "FROM_ENV=yes", "UNSET_ONE"]
    assert body["Labels"] == {"k": "v"} and body["Entrypoint"] == [""] and body["Hostname"] == "box"
    assert body["Volumes"] == {"/anon": {}}
    hc = body["HostConfig"]
    assert hc["AutoRemove"] and hc["Memory"] == 64 << 20 and hc["NanoCpus"] == 1_500_000_000
    assert hc["PidsLimit"] == 10 and hc["Binds"] == ["/h:/c:ro"] and hc["Tmpfs"] == {"/t": "size=1m"}
    assert hc["CapAdd"] == ["SYS_ADMIN"] and hc["Init"] is True and hc["NetworkMode"] == "default"
    detached = _body("-d", "busybox", detach=True)
    assert not (detached["AttachStdin"] or detached["AttachStdout"] or detached["AttachStderr"])
    assert detached["Cmd"] is None


def test_publish_flags_as_docker_sends_them():
    # The daemon decides whether it can publish (ours refuses until bridge
    # networking lands): the CLI only says what was asked, as docker does.
    body = _body("-p", "8080:80", "-p", "127.0.0.1:5353:53/udp", "-p", "9000", "--expose", "7000", "busybox")
    assert body["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}, "9000/tcp": {}, "7000/tcp": {}}
    assert body["HostConfig"]["PortBindings"] == {
        "80/tcp": [{"HostIp": "", "HostPort": "8080"}], "53/udp": [{"HostIp": "127.0.0.1", "HostPort": "5353"}],
        "9000/tcp": [{"HostIp": "", "HostPort": ""}]}
    ranged = _body("-p", "8000-8001:80-81", "busybox")["HostConfig"]["PortBindings"]
    assert ranged == {"80/tcp": [{"HostIp": "", "HostPort": "8000"}], "81/tcp": [{"HostIp": "", "HostPort": "8001"}]}
    assert _body("-P", "busybox")["HostConfig"]["PublishAllPorts"] is True
    for bad, why in (("80:x", "invalid containerPort: x"), ("x:80", "invalid hostPort: x"),
                     ("80/tcpx", "invalid proto: tcpx"), ("1-3:80-81", "invalid ranges specified")):
        with pytest.raises(UsageError, match=why):
            _body("-p", bad, "busybox")


def test_refused_combinations():
    with pytest.raises(UsageError, match="conflicting options: cannot specify both --attach and --detach"):
        _body("-a", "stdout", "busybox", detach=True)
    with pytest.raises(UsageError, match="--restart and --rm"):
        _body("--rm", "--restart", "always", "busybox")


def test_detach_keys_are_watched_across_reads():
    assert detach_sequence(None) == b"\x10\x11" and detach_sequence("ctrl-a,x") == b"\x01x"
    watch = _KeyWatch(detach_sequence(None))
    watch.feed(b"abc\x10")
    assert not watch.seen
    watch.feed(b"\x11")
    assert watch.seen


def test_ps_row():
    summary = {"Id": "a" * 64, "Names": ["/web"], "Image": "busybox:latest", "ImageID": "sha256:" + "b" * 64,
               "Command": "sh -c 'while true; do sleep 1; done'", "Created": 1000, "Status": "Up 2 seconds",
               "State": "running", "Labels": {"b": "2", "a": "1"}, "SizeRw": 12000, "SizeRootFs": 4_400_000}
    row = container_row(summary, trunc=True, now=1062)
    assert row["ID"] == "a" * 12 and row["Names"] == "web" and row["Image"] == "busybox:latest"
    assert row["Command"] == '"sh -c \'while true; …"' and row["RunningFor"] == "About a minute ago"
    assert row["Labels"] == "a=1,b=2" and row["Size"] == "12kB (virtual 4.4MB)"
    full = container_row(summary, trunc=False, now=1062)
    assert full["ID"] == "a" * 64 and full["Command"] == '"sh -c \'while true; do sleep 1; done\'"'


def test_stats_row_computed_as_docker():
    doc = {
        "id": "c" * 64, "name": "/box",
        "cpu_stats": {"cpu_usage": {"total_usage": 3_000_000_000}, "system_cpu_usage": 20_000_000_000,
                      "online_cpus": 2},
        "precpu_stats": {"cpu_usage": {"total_usage": 2_000_000_000}, "system_cpu_usage": 10_000_000_000},
        "memory_stats": {"usage": 110 << 20, "limit": 200 << 20, "stats": {"total_inactive_file": 10 << 20}},
        "networks": {"eth0": {"rx_bytes": 1500, "tx_bytes": 500}},
        "blkio_stats": {"io_service_bytes_recursive": [{"op": "Read", "value": 4096},
                                                       {"op": "Write", "value": 8192}]},
        "pids_stats": {"current": 7},
    }
    row = stats_row(doc, ref="box", trunc=True)
    assert row == {"Container": "box", "ID": "c" * 12, "Name": "box", "CPUPerc": "20.00%",
                   "MemUsage": "100MiB / 200MiB", "MemPerc": "50.00%", "NetIO": "1.5kB / 500B",
                   "BlockIO": "4.1kB / 8.19kB", "PIDs": "7"}
