"""Unit tests of the native runtime's pure parts: path resolution inside a
rootfs, the default seccomp profile, capability masks, the `spec` output."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from runtime_testlib import dockyard_runtime_argv

from dockyard.linux import capabilities as caps
from dockyard.linux.seccomp import SeccompError, compile_filter
from dockyard.runtime.native.rootfs import resolve_in_root
from dockyard.runtime.native.seccomp_profile import default_profile
from dockyard.runtime.native.spec import MASKED_PATHS, READONLY_PATHS, default_spec


def test_resolve_in_root_keeps_symlinks_inside(tmp_path: Path):
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "abs").symlink_to("/../../../outside")
    (root / "etc" / "rel").symlink_to("../../../../etc")
    (root / "loop").symlink_to("loop")
    r = str(root)
    assert resolve_in_root(r, "/etc/abs/x") == r + "/outside/x"
    assert resolve_in_root(r, "/etc/rel") == r + "/etc"
    assert resolve_in_root(r, "/../../etc/./missing/y") == r + "/etc/missing/y"
    assert resolve_in_root(r, "/") == r
    with pytest.raises(OSError) as info:
        resolve_in_root(r, "/loop/x")
    assert info.value.errno == errno.ELOOP


def test_docker_default_capability_mask():
    assert caps.mask_of(caps.DOCKER_DEFAULT_CAPS) == 0xA80425FB
    assert set(caps.names_of(0xA80425FB)) == set(caps.DOCKER_DEFAULT_CAPS)
    with pytest.raises(KeyError):
        caps.mask_of(["CAP_NOPE"])


def test_default_seccomp_profile_shape():
    profile = default_profile(caps.DOCKER_DEFAULT_CAPS, machine="x86_64")
    assert profile["defaultAction"] == "SCMP_ACT_ERRNO" and profile["defaultErrnoRet"] == errno.EPERM
    assert profile["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    allowed = set(profile["syscalls"][0]["names"])
    for denied in ("unshare", "mount", "keyctl", "bpf", "setns", "reboot", "init_module", "umount2"):
        assert denied not in allowed
    for needed in ("read", "execve", "wait4", "arch_prctl", "chroot", "ptrace"):
        assert needed in allowed
    rules = {r["names"][0]: r for r in profile["syscalls"][1:]}
    assert rules["clone"]["args"][0]["op"] == "SCMP_CMP_MASKED_EQ"
    assert rules["clone3"]["errnoRet"] == errno.ENOSYS
    admin = default_profile(caps.DOCKER_DEFAULT_CAPS + ("CAP_SYS_ADMIN",), machine="x86_64")
    admin_allowed = set(admin["syscalls"][0]["names"])
    assert {"mount", "unshare", "setns", "clone"} <= admin_allowed
    assert not [r for r in admin["syscalls"] if r["names"] == ["clone3"]]


def test_seccomp_compiles_and_rejects_bad_profiles():
    program = compile_filter(default_profile(caps.DOCKER_DEFAULT_CAPS))
    assert len(program.bpf) % 8 == 0 and len(program.bpf) > 8 * 100
    for bad, where in (({"defaultAction": "NOPE"}, "defaultAction"),
                       ({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_VAX"]}, "architectures"),
                       ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "X"}]},
                        "syscalls[0].action"),
                       ({"defaultAction": "SCMP_ACT_ALLOW",
                         "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO",
                                       "args": [{"index": 9, "value": 1, "op": "SCMP_CMP_EQ"}]}]},
                        "args[0].index")):
        with pytest.raises(SeccompError, match=where.replace("[", r"\[").replace("]", r"\]")):
            compile_filter(bad)
    # Unknown syscall names are skipped, as runc and crun do.
    compile_filter({"defaultAction": "SCMP_ACT_ALLOW",
                    "syscalls": [{"names": ["no_such_syscall"], "action": "SCMP_ACT_ERRNO"}]})


def test_seccomp_filter_denies_in_a_child():
    # Load a real filter in a forked child: mkdir gets ENOSPC, getpid works.
    program = compile_filter({"defaultAction": "SCMP_ACT_ALLOW",
                              "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                                            "errnoRet": errno.ENOSPC}]}).prepare()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            from dockyard.linux.process import set_no_new_privs
            set_no_new_privs()
            program.load()
            try:
                os.mkdir("/tmp/should-not-exist-seccomp")
            except OSError as exc:
                code = 0 if exc.errno == errno.ENOSPC else 2
        finally:
            os._exit(code)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0


def test_spec_command_writes_docker_defaults(tmp_path: Path):
    argv = dockyard_runtime_argv()
    subprocess.run([*argv, "spec", "--bundle", str(tmp_path)], check=True)
    spec = json.loads((tmp_path / "config.json").read_text())
    assert spec["ociVersion"].startswith("1.")
    assert caps.mask_of(spec["process"]["capabilities"]["bounding"]) == 0xA80425FB
    assert spec["linux"]["maskedPaths"] == list(MASKED_PATHS)
    assert spec["linux"]["readonlyPaths"] == list(READONLY_PATHS)
    assert {m["destination"] for m in spec["mounts"]} >= {"/proc", "/dev", "/dev/pts", "/sys", "/dev/shm",
                                                          "/dev/mqueue", "/sys/fs/cgroup"}
    again = subprocess.run([*argv, "spec", "--bundle", str(tmp_path)], capture_output=True)
    assert again.returncode == 1 and b"exists" in again.stderr
    assert spec == default_spec()


def test_cli_errors_exit_1_and_log_json(tmp_path: Path):
    argv = dockyard_runtime_argv()
    log = tmp_path / "log.json"
    proc = subprocess.run([*argv, "--root", str(tmp_path / "state"), "--log", str(log), "--log-format", "json",
                           "state", "nosuch"], capture_output=True)
    assert proc.returncode == 1
    entry = json.loads(log.read_text().splitlines()[-1])
    assert entry["level"] == "error" and "nosuch" in entry["msg"]
    proc = subprocess.run([*argv, "--root", str(tmp_path / "state"), "list"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.split() == ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
    proc = subprocess.run([*argv, "--root", str(tmp_path / "state"), "list", "-f", "json"], capture_output=True)
    assert json.loads(proc.stdout) is None  # runc prints null for no containers


def test_cli_parses_signals():
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
    from dockyard.runtime.cli import parse_signal
    assert parse_signal("KILL") == parse_signal("SIGKILL") == parse_signal("9") == 9
    from dockyard.errors import InvalidArgument
    with pytest.raises(InvalidArgument):
        parse_signal("NOPE")


def test_process_stat_and_read_small(tmp_path):
    import subprocess

    from dockyard.linux.process import process_stat, process_start_time, process_state, read_small

    state, start = process_stat(os.getpid())
    assert state == "R" and start == process_start_time(os.getpid()) > 0
    child = subprocess.Popen(["sleep", "30"])
    try:
        assert process_state(child.pid) in ("S", "R", "D")
    finally:
        child.kill()
        child.wait()
    assert process_stat(child.pid) is None
    big = os.urandom(200_000)
    (tmp_path / "big").write_bytes(big)
    assert read_small(str(tmp_path / "big")) == big
    assert read_small(str(tmp_path / "big"), limit=4096) == big
    (tmp_path / "empty").write_bytes(b"")
    assert read_small(str(tmp_path / "empty")) == b""
