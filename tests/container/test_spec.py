"""Spec generation: Config + HostConfig -> config.json, field by field,
and create-time validation with Docker's messages.  Pure: a small rootfs
directory with passwd/group files is all the I/O."""

from __future__ import annotations

import dataclasses

import json
import os
from pathlib import Path

import pytest

from dockyard.container import defaults
from dockyard.container.config import (merge_image_config, normalize_host_config, parse_restart_policy,
                                       parse_security_opts, validate_config, health_settings)
from dockyard.container.hostinfo import HostInfo
from dockyard.container.spec import SpecContext, build_spec, capabilities_for
from dockyard.errors import InvalidArgument

HOST = HostInfo(ncpu=2, cpus=frozenset({0, 1}), mems=frozenset({0}))
CID = "0123456789ab" + "c" * 52


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("rootfs")
    (root / "etc").mkdir()
    (root / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\n"
        "daemon:x:1:1:daemon:/usr/sbin:/bin/false\n"
        "alice:x:1000:1000:Alice:/home/alice:/bin/sh\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
    (root / "etc" / "group").write_text(
        "root:x:0:\nwheel:x:10:alice,daemon\naudio:x:29:alice\nalice:x:1000:\nstaff:x:50:\n"
        "nogroup:x:65534:\n")
    return root


def make(config=None, host_config=None, image=None, rootfs: Path | None = None, host=HOST, **ctx):
    """Run the whole create-time + start-time path and return (spec, warnings)."""
    merged = merge_image_config({"Cmd": ["sh"]} if config is None else config, image or {})
    hc, warnings = normalize_host_config(host_config or {}, host)
    merged = validate_config(merged, hc)
    spec = build_spec(merged, hc, SpecContext(container_id=CID, rootfs=rootfs, host=host, **ctx))
    json.dumps(spec)  # must be serialisable as is
    return spec, warnings


def mount_at(spec, dest):
    found = [m for m in spec["mounts"] if m["destination"] == dest]
    return found[0] if found else None


def ns_types(spec):
    return {n["type"]: n.get("path") for n in spec["linux"]["namespaces"]}


# ----------------------------------------------------------------- defaults

def test_default_capabilities_are_docker_cap_eff(rootfs):
    spec, _ = make(rootfs=rootfs)
    caps = spec["process"]["capabilities"]
    bits = 0
    for name in caps["effective"]:
        bits |= 1 << defaults.ALL_CAPABILITIES.index(name)
    assert f"{bits:016x}" == "00000000a80425fb"
    assert caps["bounding"] == caps["permitted"] == caps["effective"]
    assert "inheritable" not in caps


def test_default_mounts_masked_and_readonly_paths(rootfs):
    spec, _ = make(rootfs=rootfs)
    dests = [m["destination"] for m in spec["mounts"]]
    for dest in ("/proc", "/dev", "/dev/pts", "/sys", "/sys/fs/cgroup", "/dev/mqueue", "/dev/shm"):
        assert dest in dests
    assert "ro" in mount_at(spec, "/sys")["options"]
    assert "ro" in mount_at(spec, "/sys/fs/cgroup")["options"]
    assert "size=67108864" in mount_at(spec, "/dev/shm")["options"]
    assert "/proc/kcore" in spec["linux"]["maskedPaths"]
    assert "/proc/sys" in spec["linux"]["readonlyPaths"]
    # parents before children
    assert dests.index("/dev") < dests.index("/dev/pts") < len(dests)
    assert dests.index("/sys") < dests.index("/sys/fs/cgroup")


def test_default_device_rules_deny_all_then_allow_standard(rootfs):
    spec, _ = make(rootfs=rootfs)
    rules = spec["linux"]["resources"]["devices"]
    assert rules[0] == {"allow": False, "access": "rwm"}
    allowed = {(r.get("type"), r.get("major"), r.get("minor")) for r in rules if r["allow"]}
    for dev in (("c", 1, 3), ("c", 1, 5), ("c", 1, 9), ("c", 1, 8), ("c", 5, 0), ("c", 5, 1),
                ("c", 136, None), ("c", 5, 2)):
        assert dev in allowed
    assert {"allow": False, "type": "c", "major": 10, "minor": 229, "access": "rwm"} in rules


def test_default_namespaces_and_hostname(rootfs):
    spec, _ = make(rootfs=rootfs)
    assert set(ns_types(spec)) == {"mount", "network", "uts", "pid", "ipc"}
    assert spec["hostname"] == CID[:12]
    assert "HOSTNAME=" + CID[:12] in spec["process"]["env"]
    assert spec["linux"]["cgroupsPath"] == f"/dockyard/{CID}"
    assert spec["process"]["oomScoreAdj"] == 0


def test_cgroup_namespace_private_on_v2_host(rootfs):
    spec, _ = make(rootfs=rootfs, host=HostInfo(ncpu=2, cpus=frozenset({0, 1}), private_cgroupns=True))
    assert "cgroup" in ns_types(spec)
    spec, _ = make(rootfs=rootfs, host_config={"CgroupnsMode": "host"},
                   host=HostInfo(ncpu=2, cpus=frozenset({0, 1}), private_cgroupns=True))
    assert "cgroup" not in ns_types(spec)


def test_etc_files_bind_mounted(rootfs, tmp_path):
    spec, _ = make(rootfs=rootfs, hostname_path=tmp_path / "hostname", hosts_path=tmp_path / "hosts",
                   resolv_conf_path=tmp_path / "resolv.conf")
    for name in ("hostname", "hosts", "resolv.conf"):
        m = mount_at(spec, f"/etc/{name}")
        assert m["type"] == "bind" and m["source"] == str(tmp_path / name)
        assert "ro" not in m["options"]
    spec, _ = make(rootfs=rootfs, host_config={"ReadonlyRootfs": True}, hosts_path=tmp_path / "hosts")
    assert "ro" in mount_at(spec, "/etc/hosts")["options"]
    assert spec["root"]["readonly"] is True


# ----------------------------------------------------------------- Config

def test_cmd_entrypoint_semantics():
    image = {"Entrypoint": ["/entry"], "Cmd": ["default-arg"]}
    # nothing given: both from the image
    c = merge_image_config({}, image)
    assert (c["Entrypoint"], c["Cmd"]) == (["/entry"], ["default-arg"])
    # Cmd given: replaces the image Cmd, image Entrypoint stays
    c = merge_image_config({"Cmd": ["x"]}, image)
    assert (c["Entrypoint"], c["Cmd"]) == (["/entry"], ["x"])
    # Entrypoint given: resets the image Cmd
    c = merge_image_config({"Entrypoint": ["/other"]}, image)
    assert (c["Entrypoint"], c["Cmd"]) == (["/other"], None)
    # Entrypoint cleared explicitly: image Cmd alone
    c = merge_image_config({"Entrypoint": []}, image)
    assert (c["Entrypoint"], c["Cmd"]) == ([], ["default-arg"])
    # the docker CLI's `--entrypoint ""` ([""]): cleared, stored null, the
    # command given runs (dockerd: Path "echo", Args ["hi"])
    c = merge_image_config({"Entrypoint": [""], "Cmd": ["echo", "hi"]}, image)
    assert (c["Entrypoint"], c["Cmd"]) == (None, ["echo", "hi"])
    # strings are accepted as one-element lists (old clients)
    c = merge_image_config({"Cmd": "echo"}, {})
    assert c["Cmd"] == ["echo"]


def test_process_args_from_entrypoint_and_cmd(rootfs):
    spec, _ = make({"Entrypoint": ["/bin/sh", "-c"], "Cmd": ["echo hi"]}, rootfs=rootfs)
    assert spec["process"]["args"] == ["/bin/sh", "-c", "echo hi"]


def test_no_command_is_an_error(rootfs):
    with pytest.raises(InvalidArgument, match="No command specified"):
        make({}, rootfs=rootfs)


def test_env_merge_order_and_path_default(rootfs):
    c = merge_image_config({"Env": ["A=own", "B=own"]}, {"Env": ["PATH=/img/bin", "A=image", "C=image"]})
    assert c["Env"] == ["A=own", "B=own", "PATH=/img/bin", "C=image"]
    spec, _ = make({"Cmd": ["sh"], "Env": ["A=1"]}, rootfs=rootfs, image={"Env": ["PATH=/img"]})
    env = spec["process"]["env"]
    assert env[0] == "PATH=/img"
    assert "A=1" in env and "HOME=/root" in env
    spec, _ = make({"Cmd": ["sh"]}, rootfs=rootfs)
    assert spec["process"]["env"][0] == "PATH=" + defaults.DEFAULT_PATH
    spec, _ = make({"Cmd": ["sh"], "Tty": True, "Env": ["HOME=/x"]}, rootfs=rootfs)
    assert "TERM=xterm" in spec["process"]["env"] and "HOME=/x" in spec["process"]["env"]
    assert spec["process"]["terminal"] is True


def test_invalid_env_entry_rejected():
    with pytest.raises(InvalidArgument, match="invalid environment variable: =x"):
        merge_image_config({"Env": ["=x"], "Cmd": ["sh"]}, {})


def test_workdir(rootfs):
    spec, _ = make({"Cmd": ["sh"]}, rootfs=rootfs, image={"WorkingDir": "/srv"})
    assert spec["process"]["cwd"] == "/srv"
    spec, _ = make({"Cmd": ["sh"], "WorkingDir": "/tmp"}, rootfs=rootfs, image={"WorkingDir": "/srv"})
    assert spec["process"]["cwd"] == "/tmp"
    with pytest.raises(InvalidArgument, match="the working directory 'rel' is invalid, it needs to be an absolute path"):
        make({"Cmd": ["sh"], "WorkingDir": "rel"}, rootfs=rootfs)


# additionalGids lead with the primary group, as dockerd sets them (`id`
# shows groups=1000(alice),10(wheel),... and /proc's Groups the same).
@pytest.mark.parametrize("user,uid,gid,extra,home", [
    ("", 0, 0, [0], "/root"),
    ("alice", 1000, 1000, [1000, 10, 29], "/home/alice"),
    ("1000", 1000, 1000, [1000, 10, 29], "/home/alice"),
    ("alice:staff", 1000, 50, [50], "/home/alice"),
    ("alice:77", 1000, 77, [77], "/home/alice"),
    ("4242", 4242, 0, [0], "/"),
    ("4242:4243", 4242, 4243, [4243], "/"),
    ("daemon", 1, 1, [1, 10], "/usr/sbin"),
])
def test_user_resolution(rootfs, user, uid, gid, extra, home):
    spec, _ = make({"Cmd": ["sh"], "User": user}, rootfs=rootfs)
    u = spec["process"]["user"]
    assert (u["uid"], u["gid"], u.get("additionalGids", [])) == (uid, gid, extra)
    assert f"HOME={home}" in spec["process"]["env"]


def test_user_from_image_and_group_add(rootfs):
    spec, _ = make({"Cmd": ["sh"]}, {"GroupAdd": ["staff", "123"]}, image={"User": "alice"}, rootfs=rootfs)
    u = spec["process"]["user"]
    assert u["uid"] == 1000 and u["additionalGids"] == [1000, 10, 29, 50, 123]


def test_unknown_user_and_group_errors(rootfs):
    with pytest.raises(InvalidArgument, match="^unable to find user bob: no matching entries in passwd file$"):
        make({"Cmd": ["sh"], "User": "bob"}, rootfs=rootfs)
    with pytest.raises(InvalidArgument, match="unable to find group nope: no matching entries in group file"):
        make({"Cmd": ["sh"], "User": "alice:nope"}, rootfs=rootfs)


def test_passwd_symlink_cannot_escape_rootfs(tmp_path):
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    outside = tmp_path / "outside-passwd"
    outside.write_text("evil:x:0:0::/:/bin/sh\n")
    # An absolute symlink is resolved inside the rootfs, where it does not exist.
    (root / "etc" / "passwd").symlink_to("/../../" + str(outside))
    with pytest.raises(InvalidArgument, match="unable to find user evil"):
        make({"Cmd": ["sh"], "User": "evil"}, rootfs=root)


def test_hostname_domainname_and_validation(rootfs):
    spec, _ = make({"Cmd": ["sh"], "Hostname": "web", "Domainname": "example.org"}, rootfs=rootfs)
    assert spec["hostname"] == "web" and spec["domainname"] == "example.org"
    assert "HOSTNAME=web" in spec["process"]["env"]
    with pytest.raises(InvalidArgument, match="invalid hostname format"):
        make({"Cmd": ["sh"], "Hostname": "-bad"}, rootfs=rootfs)


def test_stop_signal_annotation_and_validation(rootfs):
    spec, _ = make({"Cmd": ["sh"]}, image={"StopSignal": "SIGUSR1"}, rootfs=rootfs)
    assert spec["annotations"]["org.opencontainers.image.stopSignal"] == "SIGUSR1"
    with pytest.raises(InvalidArgument, match="Invalid signal: SIGNOPE"):
        make({"Cmd": ["sh"], "StopSignal": "SIGNOPE"}, rootfs=rootfs)


def test_labels_merge():
    c = merge_image_config({"Cmd": ["x"], "Labels": {"a": "own"}}, {"Labels": {"a": "img", "b": "img"}})
    assert c["Labels"] == {"a": "own", "b": "img"}


def test_healthcheck_merge_defaults_and_validation():
    c = merge_image_config({"Cmd": ["x"], "Healthcheck": {"Interval": 2_000_000_000}},
                           {"Healthcheck": {"Test": ["CMD", "true"], "Retries": 7}})
    assert c["Healthcheck"]["Test"] == ["CMD", "true"] and c["Healthcheck"]["Retries"] == 7
    settings = health_settings(c["Healthcheck"])
    assert settings["Interval"] == 2_000_000_000 and settings["Timeout"] == 30_000_000_000
    assert health_settings({"Test": ["NONE"]}) is None
    hc, _ = normalize_host_config({}, HOST)
    with pytest.raises(InvalidArgument, match="Interval in Healthcheck cannot be less than 1ms"):
        validate_config({"Cmd": ["x"], "Healthcheck": {"Test": ["CMD", "x"], "Interval": 5}}, hc)
    with pytest.raises(InvalidArgument, match="Retries in Healthcheck cannot be negative"):
        validate_config({"Cmd": ["x"], "Healthcheck": {"Test": ["CMD", "x"], "Retries": -1}}, hc)


# ----------------------------------------------------------------- resources

def test_memory_and_swap_defaults(rootfs):
    spec, _ = make(host_config={"Memory": 64 << 20}, rootfs=rootfs)
    assert spec["linux"]["resources"]["memory"] == {"limit": 64 << 20, "swap": 128 << 20}
    spec, _ = make(host_config={"Memory": 64 << 20, "MemorySwap": -1}, rootfs=rootfs)
    assert spec["linux"]["resources"]["memory"]["swap"] == -1
    spec, _ = make(host_config={"Memory": 64 << 20, "MemorySwap": 100 << 20, "MemoryReservation": 32 << 20,
                                "MemorySwappiness": 10, "OomKillDisable": True}, rootfs=rootfs)
    assert spec["linux"]["resources"]["memory"] == {"limit": 64 << 20, "swap": 100 << 20,
                                                    "reservation": 32 << 20, "swappiness": 10,
                                                    "disableOOMKiller": True}


def test_swap_without_accounting_warns(rootfs):
    host = HostInfo(ncpu=2, cpus=frozenset({0, 1}), swap_limit=False)
    spec, warnings = make(host_config={"Memory": 64 << 20, "MemorySwap": 128 << 20}, rootfs=rootfs, host=host)
    assert spec["linux"]["resources"]["memory"]["swap"] == -1
    assert any("swap limit capabilities" in w for w in warnings)


@pytest.mark.parametrize("hc,message", [
    ({"Memory": 1 << 20}, "Minimum memory limit allowed is 6MB"),
    ({"Memory": 64 << 20, "MemorySwap": 32 << 20}, "Minimum memoryswap limit should be larger than memory limit, see usage"),
    ({"MemorySwap": 64 << 20}, "You should always set the Memory limit when using Memoryswap limit, see usage"),
    ({"MemoryReservation": 1 << 20}, "Minimum memory reservation allowed is 6MB"),
    ({"Memory": 16 << 20, "MemoryReservation": 32 << 20},
     "Minimum memory limit can not be less than memory reservation limit, see usage"),
    ({"MemorySwappiness": 101}, "Invalid value: 101, valid memory swappiness range is 0-100"),
    ({"NanoCpus": 500_000_000, "CpuPeriod": 100000}, "Conflicting options: Nano CPUs and CPU Period cannot both be set"),
    ({"NanoCpus": 500_000_000, "CpuQuota": 50000}, "Conflicting options: Nano CPUs and CPU Quota cannot both be set"),
    ({"NanoCpus": 3_000_000_000}, "Range of CPUs is from 0.01 to 2.00, as there are only 2 CPUs available"),
    ({"CpuPeriod": 500}, r"CPU cfs period can not be less than 1ms \(i.e. 1000\) or larger than 1s \(i.e. 1000000\)"),
    ({"CpuQuota": 500}, r"CPU cfs quota can not be less than 1ms \(i.e. 1000\)"),
    ({"CpusetCpus": "0-7"}, "Requested CPUs are not available - requested 0-7, available: 0-1"),
    ({"CpusetCpus": "x"}, "^Invalid value x for cpuset cpus: invalid format: x$"),
    ({"CpusetMems": "3"}, "Requested memory nodes are not available - requested 3, available: 0"),
    ({"BlkioWeight": 5}, "Range of blkio weight is from 10 to 1000"),
    ({"OomScoreAdj": 1001}, r"Invalid value 1001, range for oom score adj is \[-1000, 1000\]"),
    ({"ShmSize": -1}, "SHM size can not be less than 0"),
    ({"Memory": "lots"}, "invalid Memory"),
])
def test_resource_validation_messages(hc, message):
    with pytest.raises(InvalidArgument, match=message):
        normalize_host_config(hc, HOST)


def test_storage_opt_refused():
    with pytest.raises(InvalidArgument, match="^--storage-opt is supported only for overlay over xfs with "
                                              "'pquota' mount option$"):
        normalize_host_config({"StorageOpt": {"size": "1G"}}, HOST)
    assert normalize_host_config({"StorageOpt": {}}, HOST)[0] is not None


def test_blkio_weight_discarded_before_its_range_is_checked():
    """dockerd on a kernel without the weight: any value is a warning."""
    no_weight = dataclasses.replace(HOST, blkio_weight=False)
    hc, warnings = normalize_host_config({"BlkioWeight": 5}, no_weight)
    assert hc["BlkioWeight"] == 0
    assert warnings == ["Your kernel does not support Block I/O weight or the cgroup is not mounted. "
                        "Weight discarded."]


def test_cpu_fields(rootfs):
    spec, _ = make(host_config={"NanoCpus": 1_500_000_000}, rootfs=rootfs)
    assert spec["linux"]["resources"]["cpu"] == {"period": 100000, "quota": 150000}
    spec, _ = make(host_config={"CpuQuota": 20000, "CpuPeriod": 50000, "CpuShares": 512,
                                "CpusetCpus": "1", "CpusetMems": "0"}, rootfs=rootfs)
    assert spec["linux"]["resources"]["cpu"] == {"quota": 20000, "period": 50000, "shares": 512,
                                                 "cpus": "1", "mems": "0"}
    spec, _ = make(host_config={"CpuShares": 1}, rootfs=rootfs)
    assert spec["linux"]["resources"]["cpu"]["shares"] == 2  # clamped like Docker


def test_pids_limit(rootfs):
    spec, _ = make(host_config={"PidsLimit": 50}, rootfs=rootfs)
    assert spec["linux"]["resources"]["pids"] == {"limit": 50}
    for unlimited in (0, -1, None):
        spec, _ = make(host_config={"PidsLimit": unlimited}, rootfs=rootfs)
        assert "pids" not in spec["linux"]["resources"]


def test_blkio_weight_and_throttle(rootfs, tmp_path):
    st = os.stat("/dev/null")
    spec, warnings = make(host_config={
        "BlkioWeight": 300,
        "BlkioDeviceReadBps": [{"Path": "/dev/null", "Rate": 1048576}],
        "BlkioDeviceWriteIOps": [{"Path": "/dev/null", "Rate": 100}],
    }, rootfs=rootfs)
    blkio = spec["linux"]["resources"]["blockIO"]
    assert blkio["weight"] == 300
    dev = (os.major(st.st_rdev), os.minor(st.st_rdev))
    assert blkio["throttleReadBpsDevice"] == [{"major": dev[0], "minor": dev[1], "rate": 1048576}]
    assert blkio["throttleWriteIOPSDevice"] == [{"major": dev[0], "minor": dev[1], "rate": 100}]
    host = HostInfo(ncpu=2, cpus=frozenset({0, 1}), blkio_weight=False)
    spec, warnings = make(host_config={"BlkioWeight": 300}, rootfs=rootfs, host=host)
    assert "blockIO" not in spec["linux"]["resources"]
    assert "Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded." in warnings
    with pytest.raises(InvalidArgument, match="invalid device path"):
        normalize_host_config({"BlkioDeviceReadBps": [{"Path": str(tmp_path / "nope"), "Rate": 1}]}, HOST)


def test_ulimits(rootfs):
    spec, _ = make(host_config={"Ulimits": [{"Name": "nofile", "Soft": 1024, "Hard": 2048},
                                            {"Name": "core", "Soft": -1, "Hard": -1}]}, rootfs=rootfs)
    assert {"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 2048} in spec["process"]["rlimits"]
    assert {"type": "RLIMIT_CORE", "soft": 2**64 - 1, "hard": 2**64 - 1} in spec["process"]["rlimits"]
    with pytest.raises(InvalidArgument, match="invalid ulimit type: bogus"):
        normalize_host_config({"Ulimits": [{"Name": "bogus", "Soft": 1, "Hard": 1}]}, HOST)
    with pytest.raises(InvalidArgument, match="ulimit soft limit must be less than or equal to hard limit: 5 > 2"):
        normalize_host_config({"Ulimits": [{"Name": "nofile", "Soft": 5, "Hard": 2}]}, HOST)


def test_oom_score_adj(rootfs):
    spec, _ = make(host_config={"OomScoreAdj": 500}, rootfs=rootfs)
    assert spec["process"]["oomScoreAdj"] == 500


def test_shm_size(rootfs):
    spec, _ = make(host_config={"ShmSize": 1 << 20}, rootfs=rootfs)
    assert "size=1048576" in mount_at(spec, "/dev/shm")["options"]


# ----------------------------------------------------------------- mounts

def test_binds(rootfs, tmp_path):
    spec, _ = make(host_config={"Binds": [f"{tmp_path}:/data", f"{tmp_path}:/ro:ro",
                                          f"{tmp_path}:/shared:rshared"]}, rootfs=rootfs)
    assert mount_at(spec, "/data") == {"destination": "/data", "type": "bind", "source": str(tmp_path),
                                       "options": ["rbind", "rprivate"]}
    assert mount_at(spec, "/ro")["options"] == ["rbind", "ro", "rprivate"]
    assert mount_at(spec, "/shared")["options"] == ["rbind", "rshared"]
    assert spec["linux"]["rootfsPropagation"] == "shared"


@pytest.mark.parametrize("bind,message", [
    ("/a:/b:bogus", "invalid mode: bogus"),
    ("/a:/b:ro,rw", "invalid mode: ro,rw"),
    ("/a:rel", "invalid mount path: 'rel' mount path must be absolute"),
    ("/a:/b:c:d", "invalid volume specification: '/a:/b:c:d'"),
    ("/a:/", "destination can't be '/'"),
    ("named:/data", "volumes are not supported yet"),
    ("/anon", "volumes are not supported yet"),
    ("./rel:/x", "includes invalid characters for a local volume name"),
])
def test_bind_errors(bind, message):
    with pytest.raises(InvalidArgument, match=message):
        normalize_host_config({"Binds": [bind]}, HOST)


def test_mounts_api_bind_and_tmpfs(rootfs, tmp_path):
    spec, _ = make(host_config={"Mounts": [
        {"Type": "bind", "Source": str(tmp_path), "Target": "/b", "ReadOnly": True,
         "BindOptions": {"Propagation": "rslave", "NonRecursive": True}},
        {"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"SizeBytes": 16 << 20, "Mode": 0o1700}},
    ]}, rootfs=rootfs)
    assert mount_at(spec, "/b")["options"] == ["bind", "ro", "rslave"]
    assert mount_at(spec, "/t") == {"destination": "/t", "type": "tmpfs", "source": "tmpfs",
                                    "options": ["nosuid", "nodev", "noexec", "size=16m", "mode=1700"]}
    assert spec["linux"]["rootfsPropagation"] == "rslave"


@pytest.mark.parametrize("mount,message", [
    ({"Type": "bind", "Target": "/x"}, 'invalid mount config for type "bind": field Source must not be empty'),
    ({"Type": "bind", "Source": "/x"}, 'invalid mount config for type "bind": field Target must not be empty'),
    ({"Type": "tmpfs", "Source": "/x", "Target": "/x"}, 'invalid mount config for type "tmpfs": field Source must not be specified'),
    ({"Type": "tmpfs", "Target": "/x", "BindOptions": {"Propagation": "shared"}},
     'invalid mount config for type "tmpfs": field BindOptions must not be specified'),
    ({"Type": "weird", "Target": "/x"}, 'invalid mount config for type "weird": mount type unknown'),
    ({"Type": "volume", "Target": "/x"}, "volumes are not supported yet"),
])
def test_mounts_api_errors(mount, message):
    with pytest.raises(InvalidArgument, match=message):
        normalize_host_config({"Mounts": [mount]}, HOST)


def test_tmpfs_map_and_duplicates(rootfs, tmp_path):
    spec, _ = make(host_config={"Tmpfs": {"/run": "exec,size=64m", "/cache": ""}}, rootfs=rootfs)
    assert mount_at(spec, "/run")["options"] == ["nosuid", "nodev", "exec", "size=64m"]
    assert mount_at(spec, "/cache")["options"] == ["noexec", "nosuid", "nodev"]
    with pytest.raises(InvalidArgument, match="Duplicate mount point: /data"):
        normalize_host_config({"Binds": [f"{tmp_path}:/data"], "Tmpfs": {"/data": ""}}, HOST)


def test_user_shm_mount_replaces_default(rootfs):
    spec, _ = make(host_config={"Tmpfs": {"/dev/shm": "size=1m"}}, rootfs=rootfs)
    shm = [m for m in spec["mounts"] if m["destination"] == "/dev/shm"]
    assert len(shm) == 1 and "size=1m" in shm[0]["options"]


# ----------------------------------------------------------------- security

def test_cap_add_drop_and_all():
    assert "CAP_SYS_ADMIN" in capabilities_for({"CapAdd": ["sys_admin"]})
    assert "CAP_NET_RAW" not in capabilities_for({"CapDrop": ["NET_RAW"]})
    assert capabilities_for({"CapDrop": ["ALL"], "CapAdd": ["CAP_CHOWN"]}) == ["CAP_CHOWN"]
    caps = capabilities_for({"CapAdd": ["ALL"], "CapDrop": ["SYS_ADMIN"]})
    assert "CAP_SYS_ADMIN" not in caps and "CAP_SYS_MODULE" in caps
    with pytest.raises(InvalidArgument, match='^invalid CapAdd: unknown capability: "CAP_FLY"$'):
        normalize_host_config({"CapAdd": ["fly"]}, HOST)


def test_privileged(rootfs):
    spec, _ = make(host_config={"Privileged": True}, rootfs=rootfs,
                   default_seccomp=lambda caps: {"defaultAction": "SCMP_ACT_ERRNO"})
    assert len(spec["process"]["capabilities"]["effective"]) == len(defaults.ALL_CAPABILITIES)
    assert "maskedPaths" not in spec["linux"] and "readonlyPaths" not in spec["linux"]
    assert "seccomp" not in spec["linux"]
    assert "ro" not in mount_at(spec, "/sys")["options"]
    assert spec["linux"]["resources"]["devices"] == [{"allow": True, "access": "rwm"}]
    assert any(d["path"].startswith("/dev/") for d in spec["linux"].get("devices", [])) or not os.listdir("/dev")


def test_seccomp_default_unconfined_and_profile(rootfs, tmp_path):
    seen = []

    def default(caps):
        seen.append(list(caps))
        return {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]}

    spec, _ = make(rootfs=rootfs, default_seccomp=default)
    assert spec["linux"]["seccomp"]["defaultAction"] == "SCMP_ACT_ERRNO"
    assert seen and "CAP_CHOWN" in seen[0]
    spec, _ = make(host_config={"SecurityOpt": ["seccomp=unconfined"]}, rootfs=rootfs, default_seccomp=default)
    assert "seccomp" not in spec["linux"]
    profile = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86"]},
                    {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]}],
        "syscalls": [
            {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
            {"names": ["ptrace"], "action": "SCMP_ACT_ALLOW", "excludes": {"caps": ["CAP_CHOWN"]}},
        ],
    }
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(profile))
    for value in (str(path), json.dumps(profile)):  # a path or inline JSON (what the docker CLI sends)
        spec, _ = make(host_config={"SecurityOpt": [f"seccomp={value}"]}, rootfs=rootfs, default_seccomp=default)
        sc = spec["linux"]["seccomp"]
        names = [n for rule in sc["syscalls"] for n in rule["names"]]
        assert names == ["read", "write"]
        assert len(sc["architectures"]) == 2
    spec, _ = make(host_config={"SecurityOpt": [f"seccomp={path}"], "CapAdd": ["SYS_ADMIN"]}, rootfs=rootfs)
    assert "mount" in [n for rule in spec["linux"]["seccomp"]["syscalls"] for n in rule["names"]]


def test_seccomp_profile_errors(rootfs, tmp_path):
    with pytest.raises(InvalidArgument, match="opening seccomp profile"):
        make(host_config={"SecurityOpt": [f"seccomp={tmp_path}/missing.json"]}, rootfs=rootfs)
    with pytest.raises(InvalidArgument, match="decoding seccomp profile failed"):
        make(host_config={"SecurityOpt": ["seccomp={not json"]}, rootfs=rootfs)


def test_security_opt_parsing():
    assert parse_security_opts(["no-new-privileges"]).no_new_privileges
    assert parse_security_opts(["no-new-privileges:true"]).no_new_privileges
    assert not parse_security_opts(["no-new-privileges=false"]).no_new_privileges
    assert parse_security_opts(["apparmor=unconfined"]).apparmor == "unconfined"
    assert parse_security_opts(["label=disable"]).label_disable
    assert parse_security_opts(["label:type:svirt_t"]).labels == ("type:svirt_t",)
    assert parse_security_opts(["systempaths=unconfined"]).unconfined_paths
    for bad in (["bogus"], ["foo=bar"], ["no-new-privileges=maybe"], ["label=what"]):
        with pytest.raises(InvalidArgument, match="invalid --security-opt"):
            normalize_host_config({"SecurityOpt": bad}, HOST)


def test_no_new_privileges_and_systempaths(rootfs):
    spec, _ = make(host_config={"SecurityOpt": ["no-new-privileges", "systempaths=unconfined"]}, rootfs=rootfs)
    assert spec["process"]["noNewPrivileges"] is True
    assert "maskedPaths" not in spec["linux"]


def test_init_binary(rootfs):
    spec, _ = make({"Cmd": ["sleep", "1"]}, {"Init": True}, rootfs=rootfs, init_binary="/usr/bin/tini-static")
    assert spec["process"]["args"] == ["/sbin/docker-init", "--", "sleep", "1"]
    m = mount_at(spec, "/sbin/docker-init")
    assert m["source"] == "/usr/bin/tini-static" and "ro" in m["options"]


def test_sysctls(rootfs):
    spec, _ = make(host_config={"Sysctls": {"net.ipv4.ip_forward": "1", "kernel.shmmax": "1000",
                                            "fs.mqueue.msg_max": "20"}}, rootfs=rootfs)
    assert spec["linux"]["sysctl"]["net.ipv4.ip_forward"] == "1"
    with pytest.raises(InvalidArgument, match="not allowed in host network namespace"):
        normalize_host_config({"NetworkMode": "host", "Sysctls": {"net.ipv4.ip_forward": "1"}}, HOST)
    with pytest.raises(InvalidArgument, match="is not in a separate kernel namespace"):
        normalize_host_config({"Sysctls": {"vm.swappiness": "1"}}, HOST)


def test_devices(rootfs):
    st = os.stat("/dev/null")
    spec, _ = make(host_config={"Devices": [{"PathOnHost": "/dev/null", "PathInContainer": "/dev/mynull",
                                             "CgroupPermissions": "rw"}],
                                "DeviceCgroupRules": ["c 42:* rmw"]}, rootfs=rootfs)
    dev = spec["linux"]["devices"][0]
    assert dev["path"] == "/dev/mynull" and dev["type"] == "c" and dev["major"] == os.major(st.st_rdev)
    rules = spec["linux"]["resources"]["devices"]
    assert {"allow": True, "type": "c", "major": os.major(st.st_rdev), "minor": os.minor(st.st_rdev),
            "access": "rw"} in rules
    assert {"allow": True, "type": "c", "major": 42, "access": "rmw"} in rules
    with pytest.raises(InvalidArgument, match="invalid device cgroup format"):
        normalize_host_config({"DeviceCgroupRules": ["x 1:2 r"]}, HOST)


# ----------------------------------------------------------------- namespaces

def test_namespace_modes(rootfs):
    spec, _ = make(host_config={"NetworkMode": "host", "PidMode": "host", "IpcMode": "host", "UTSMode": "host"},
                   rootfs=rootfs)
    assert set(ns_types(spec)) == {"mount"}
    assert "hostname" not in spec
    assert mount_at(spec, "/dev/shm")["source"] == "/dev/shm"
    spec, _ = make(host_config={"NetworkMode": "container:web", "PidMode": "container:web",
                                "IpcMode": "container:web"}, rootfs=rootfs,
                   namespace_paths={"network": "/proc/1/ns/net", "pid": "/proc/1/ns/pid", "ipc": "/proc/1/ns/ipc"},
                   shm_path=Path("/tmp/shm"))
    types = ns_types(spec)
    assert types["network"] == "/proc/1/ns/net" and types["pid"] == "/proc/1/ns/pid"
    assert types["ipc"] == "/proc/1/ns/ipc"
    assert mount_at(spec, "/dev/shm")["source"] == "/tmp/shm"
    spec, _ = make(host_config={"IpcMode": "none", "NetworkMode": "none"}, rootfs=rootfs)
    assert mount_at(spec, "/dev/shm") is None
    assert ns_types(spec)["network"] is None  # a new, empty namespace


def test_bridge_is_never_host_network(rootfs):
    for mode in (None, "default", "bridge"):
        hc, _ = normalize_host_config({"NetworkMode": mode} if mode else {}, HOST)
        # Kept as asked (dockerd shows "default" in inspect), meaning bridge.
        assert hc["NetworkMode"] == (mode or "default")
        spec, _ = make(host_config=hc, rootfs=rootfs)
        assert "network" in ns_types(spec) and ns_types(spec)["network"] is None


@pytest.mark.parametrize("hc,error,message", [
    ({"IpcMode": "weird"}, InvalidArgument, "invalid IPC mode: weird"),
    ({"PidMode": "private-ish"}, InvalidArgument, "invalid PID mode: private-ish"),
    ({"UTSMode": "container:x"}, InvalidArgument, "invalid UTS mode: container:x"),
    ({"UsernsMode": "private"}, InvalidArgument, "invalid USER mode: private"),
    ({"NetworkMode": "mynet"}, InvalidArgument, "network mynet not found"),
])
def test_mode_errors(hc, error, message):
    with pytest.raises(error, match=message):
        normalize_host_config(hc, HOST)


def test_hostname_conflicts():
    hc, _ = normalize_host_config({"NetworkMode": "container:x"}, HOST)
    with pytest.raises(InvalidArgument, match="conflicting options: hostname and the network mode"):
        validate_config({"Cmd": ["x"], "Hostname": "h"}, hc)
    hc2, _ = normalize_host_config({"NetworkMode": "container:x", "Dns": ["1.1.1.1"]}, HOST)
    with pytest.raises(InvalidArgument, match="conflicting options: dns and the network mode"):
        validate_config({"Cmd": ["x"]}, hc2)


# ----------------------------------------------------------------- policies

@pytest.mark.parametrize("policy,expected", [
    (None, ("no", 0)), ({"Name": ""}, ("no", 0)), ({"Name": "always"}, ("always", 0)),
    ({"Name": "on-failure", "MaximumRetryCount": 3}, ("on-failure", 3)),
    ({"Name": "unless-stopped"}, ("unless-stopped", 0)),
])
def test_restart_policies(policy, expected):
    p = parse_restart_policy(policy)
    assert (p.name, p.maximum_retry_count) == expected


@pytest.mark.parametrize("policy,message", [
    ({"Name": "sometimes"}, "invalid restart policy: unknown policy 'sometimes'"),
    ({"Name": "always", "MaximumRetryCount": 2}, "maximum retry count can only be used with 'on-failure'"),
    ({"Name": "on-failure", "MaximumRetryCount": -1}, "maximum retry count cannot be negative"),
])
def test_restart_policy_errors(policy, message):
    with pytest.raises(InvalidArgument, match=message):
        parse_restart_policy(policy)


def test_autoremove_conflicts_with_restart_policy():
    with pytest.raises(InvalidArgument, match="can't create 'AutoRemove' container with restart policy"):
        normalize_host_config({"AutoRemove": True, "RestartPolicy": {"Name": "always"}}, HOST)


def test_host_config_defaults():
    hc, warnings = normalize_host_config({}, HOST, default_log_driver="local")
    assert hc["NetworkMode"] == "default" and hc["IpcMode"] == "private"
    assert "MemorySwappiness" not in hc or hc["MemorySwappiness"] is None
    unset, _ = normalize_host_config({"MemorySwappiness": -1}, HOST)
    assert unset["MemorySwappiness"] is None  # the CLI's "unset", null as dockerd shows it
    assert hc["ShmSize"] == 64 << 20
    assert hc["RestartPolicy"] == {"Name": "no", "MaximumRetryCount": 0}
    assert hc["LogConfig"] == {"Type": "local", "Config": {}}
    assert hc["CgroupnsMode"] == "host"
    assert warnings == []


def test_unsupported_fields_are_errors_or_warnings():
    with pytest.raises(InvalidArgument, match="VolumesFrom is not supported yet"):
        normalize_host_config({"VolumesFrom": ["other"]}, HOST)
    with pytest.raises(InvalidArgument, match='could not select device driver "nvidia"'):
        normalize_host_config({"DeviceRequests": [{"Driver": "nvidia", "Capabilities": [["gpu"]]}]}, HOST)
    # Port publishing needs bridge networking: refused, never silently ignored.
    for hc in ({"PortBindings": {"80/tcp": [{"HostPort": "8080"}]}}, {"PublishAllPorts": True},
               {"NetworkMode": "none", "PortBindings": {"80/tcp": [{}]}}):
        with pytest.raises(InvalidArgument, match="port publishing needs bridge networking, which this "
                                                  "Dockyard does not have yet"):
            normalize_host_config(dict(hc), HOST)
    # A port named without a binding publishes nothing (docker sends {} for no -p).
    _, warnings = normalize_host_config({"PortBindings": {"80/tcp": []}}, HOST)
    assert not any("port" in w for w in warnings)
    _, warnings = normalize_host_config({"NetworkMode": "host", "PortBindings": {"80/tcp": [{}]}}, HOST)
    assert warnings == ["Published ports are discarded when using host network mode"]
