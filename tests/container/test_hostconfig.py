"""HostConfig honoured, seen from inside real containers: limits, isolation,
read-only rootfs, users, mounts, capabilities."""

from __future__ import annotations

import pytest

from dockyard.errors import InvalidArgument
from tests.container.conftest import BOTH_RUNTIMES

pytestmark = pytest.mark.parametrize("env", BOTH_RUNTIMES, indirect=True)


def output(env, cmd, host_config=None, **config) -> tuple[int, str]:
    cid, code = env.run_container(["sh", "-c", cmd], host_config, **config)
    return code, env.logs(cid)


def test_resource_limits_visible_inside(env):
    code, out = output(env, "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max "
                            "/sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us "
                            "/sys/fs/cgroup/cpu/cpu.shares",
                       {"Memory": 64 << 20, "PidsLimit": 42, "NanoCpus": 500_000_000, "CpuShares": 512})
    assert code == 0, out
    assert out.split() == [str(64 << 20), "42", "50000", "100000", "512"]


def test_isolation_probes(env):
    code, out = output(env, "hostname; echo pid1=$(cat /proc/1/comm); ps -o pid | wc -l; "
                            "grep -c ' /work ' /proc/mounts; ip link 2>/dev/null | grep -c '^[0-9]'; "
                            "grep CapEff /proc/self/status; cat /etc/hostname; touch /proc/sys/x 2>&1 | head -c 40",
                       {"NetworkMode": "none"})
    lines = out.splitlines()
    cid_prefix = lines[0]
    assert len(cid_prefix) == 12
    assert lines[1] == "pid1=sh"
    assert int(lines[2]) <= 4   # header + sh + ps + wc: only its own processes
    assert lines[3] == "0"      # no host mounts
    assert lines[4] == "1"      # only loopback
    assert lines[5].split()[1] == "00000000a80425fb"
    assert lines[6] == cid_prefix


def test_hostname_and_env(env):
    code, out = output(env, "hostname; echo $FOO $HOME $HOSTNAME", {}, Hostname="box", Env=["FOO=bar"])
    assert out.split() == ["box", "bar", "/root", "box"]


def test_readonly_rootfs(env):
    code, out = output(env, "touch /x 2>&1; echo ok > /tmp/t 2>&1; touch /etc/hosts 2>&1; echo done",
                       {"ReadonlyRootfs": True, "Tmpfs": {"/tmp": ""}})
    assert "Read-only file system" in out.splitlines()[0]
    assert out.count("Read-only file system") == 2  # /x and /etc/hosts; /tmp is a tmpfs
    assert out.strip().endswith("done")


def test_user_resolution(env):
    code, out = output(env, "id", {"GroupAdd": ["65534"]}, User="nobody")
    assert out.strip().startswith("uid=65534(nobody) gid=65534(")
    code, out = output(env, "id -u; id -g", {}, User="1234:5678")
    assert out.split() == ["1234", "5678"]
    cid = env.create(["id"], User="ghost")
    with pytest.raises(InvalidArgument, match="unable to find user ghost: no matching entries in passwd file"):
        env.run(env.service.start(cid))
    assert env.inspect(cid)["State"]["Error"].startswith("unable to find user ghost")


def test_binds_tmpfs_and_workdir(env, tmp_path):
    src = tmp_path / "share"
    src.mkdir()
    (src / "in.txt").write_text("hello\n")
    created = tmp_path / "made-by-v"
    code, out = output(env, "cat /data/in.txt; echo w > /data/out.txt; touch /ro/x 2>&1 | grep -c Read-only; "
                            "pwd; grep ' /scratch ' /proc/mounts | cut -d' ' -f3",
                       {"Binds": [f"{src}:/data", f"{src}:/ro:ro", f"{created}:/made"],
                        "Mounts": [{"Type": "tmpfs", "Target": "/scratch"}]},
                       WorkingDir="/data")
    assert out.split() == ["hello", "1", "/data", "tmpfs"]
    assert (src / "out.txt").read_text() == "w\n"
    assert created.is_dir()  # -v creates a missing host directory, as Docker does
    with pytest.raises(InvalidArgument, match="bind source path does not exist"):
        env.create(["true"], {"Mounts": [{"Type": "bind", "Source": str(tmp_path / "nope"), "Target": "/x"}]})


def test_capabilities_and_privileged(env):
    code, out = output(env, "grep CapEff /proc/self/status", {"CapDrop": ["ALL"], "CapAdd": ["NET_ADMIN"]})
    assert out.split()[1] == f"{1 << 12:016x}"
    code, out = output(env, "grep CapEff /proc/self/status; mount -t tmpfs none /tmp && echo mounted",
                       {"Privileged": True})
    with open("/proc/self/status") as f:
        bounding = [line.split()[1] for line in f if line.startswith("CapBnd")][0]
    assert out.split()[1] == bounding  # everything the host can give
    assert "mounted" in out


def test_seccomp_default_blocks_unshare(env):
    code, out = output(env, "unshare -m true 2>&1; echo rc=$?")
    assert "rc=0" not in out
    code, out = output(env, "unshare -m true 2>&1; echo rc=$?",
                       {"SecurityOpt": ["seccomp=unconfined"], "CapAdd": ["SYS_ADMIN"]})
    assert "rc=0" in out


def test_shm_size_ulimits_sysctls_init(env):
    code, out = output(env, "df -k /dev/shm | tail -1 | awk '{print $2}'; ulimit -n; "
                            "cat /proc/sys/kernel/shmmax; cat /proc/1/comm",
                       {"ShmSize": 8 << 20, "Ulimits": [{"Name": "nofile", "Soft": 321, "Hard": 321}],
                        "Sysctls": {"kernel.shmmax": "12345678"}, "Init": True})
    lines = out.split()
    assert lines[0] == str(8 << 10)
    assert lines[1] == "321"
    assert lines[2] == "12345678"
    assert lines[3] in ("tini", "docker-init", "tini-static")


def test_network_modes(env):
    code, out = output(env, "cat /proc/net/dev | grep -c :", {"NetworkMode": "host"})
    with open("/proc/net/dev") as f:
        host_ifaces = sum(1 for line in f if ":" in line)
    assert int(out.strip()) == host_ifaces
    result = env.run(env.service.create({"Image": "busybox", "Cmd": ["true"]}, {}))
    assert any("bridge networking is not available yet" in w for w in result["Warnings"])


def test_container_namespace_joins(env):
    donor = env.create(["sleep", "100"], {"IpcMode": "shareable"}, Hostname="donor")
    env.run(env.service.start(donor))
    code, out = output(env, "cat /proc/1/comm; echo x > /dev/shm/f && echo shm-ok; hostname; cat /etc/hostname",
                       {"PidMode": f"container:{donor}", "IpcMode": f"container:{donor}",
                        "NetworkMode": f"container:{donor}"})
    assert out.split() == ["sleep", "shm-ok", "donor", "donor"]
    stopped = env.create(["true"])
    joiner = env.create(["true"], {"NetworkMode": f"container:{stopped}"})
    with pytest.raises(Exception, match="cannot join network of a non running container"):
        env.run(env.service.start(joiner))
