"""What runs in the forked processes that become a container.

One fork path for ``create`` and ``exec``::

    runtime ──fork──> stage A: setns into given namespaces, unshare(user),
                      (runtime writes uid/gid maps), unshare(the rest)
                 A ──fork──> stage B: first process in the new pid namespace
                      (pid namespaces apply to children, hence the fork);
                      A reports B's pid and exits, so B is re-parented to the
                      caller's nearest child subreaper.
                 B:   rootfs, hooks, pivot_root, hostname, sysctl, masked
                      paths, rlimits, user, capabilities, seccomp; reports
                      "ready"; waits on the exec fifo (create) and execs.

The runtime and the child talk over a SOCK_SEQPACKET socketpair, one
message per send: ``G`` go (runtime: the child is in its cgroup), ``U``/``u``
user namespace made / maps written, ``P<pid>`` B's host pid, ``H``/``h<state>``
hook point / hooks done (with the state JSON for container-side hooks),
``R`` ready, ``E<kind>\\0<message>`` an error the runtime raises as that
DockyardError kind.

Everything here may run in a forked child of a multithreaded process, so it
never imports, logs or takes a lock: plans are computed by the runtime
beforehand (:class:`InitPlan`, :class:`ProcessPlan`), every module is
imported at the top, and processes leave with ``os._exit``.
"""

from __future__ import annotations

import errno
import fcntl
import os
import signal
import stat
from typing import NamedTuple

from ...linux import namespaces as ns
from ...linux import process as lp
from ...linux import terminal
from ...linux.capabilities import CapabilityState, set_keepcaps
from ...linux.seccomp import LoadableProgram
from . import hooks as hook_runner
from .rootfs import RootfsPlan, enter_rootfs, finish_rootfs, make_root_readonly, setup_rootfs

#: Signals the built-in init forwards (everything that can be caught).
FORWARDED_SIGNALS = frozenset(signal.valid_signals()) - {signal.SIGKILL, signal.SIGSTOP}
#: Dispositions reset before exec: Python ignores SIGPIPE and SIGXFSZ, and an
#: ignored signal stays ignored across execve.
RESET_SIGNALS = tuple(sorted(FORWARDED_SIGNALS - {signal.SIGCHLD}))
_MSG_MAX = 1 << 16


class ChildError(Exception):
    """An error raised in the child, reported to the runtime as ``kind``."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


class ProcessPlan(NamedTuple):
    """An OCI process, encoded for the child."""

    argv: tuple[bytes, ...]
    env: dict[bytes, bytes]
    path_dirs: tuple[bytes, ...]
    cwd: bytes
    uid: int
    gid: int
    additional_gids: tuple[int, ...]
    umask: int
    caps: CapabilityState | None
    no_new_privs: bool
    seccomp: LoadableProgram | None
    rlimits: tuple[tuple[int, int, int], ...]
    oom_score_adj: bytes | None
    apparmor: bytes | None
    selinux: bytes | None
    terminal: bool
    console_size: tuple[int, int] | None
    set_groups: bool = True


class InitPlan(NamedTuple):
    sock: int                  # child end of the sync socketpair
    parent_sock: int           # runtime end, closed in the child
    join: tuple[tuple[int, int, str], ...]   # (fd, CLONE_NEW*, name) to setns, in order
    new_user: bool
    user_ns: bool              # ends up in a user namespace (new or joined)
    unshare_flags: int
    rootfs: RootfsPlan | None
    hostname: bytes | None
    domainname: bytes | None
    sysctl: tuple[tuple[bytes, bytes], ...]
    process: ProcessPlan
    stdio: tuple[int, int, int] | None   # -1: inherit
    console_fd: int            # -1 without a terminal
    fifo_fd: int               # -1 for exec
    hooks_sync: bool
    create_container_hooks: tuple = ()
    start_container_hooks: tuple = ()
    init: bool = False
    root_fd: int = -1          # exec: the container's root, to chroot into
    close_fds: tuple[int, ...] = ()   # runtime-side fds the child must not keep


# --------------------------------------------------------------------------
# messaging


def _send(sock: int, msg: bytes) -> None:
    os.write(sock, msg)


def _recv(sock: int) -> bytes:
    msg = os.read(sock, _MSG_MAX)
    if not msg:
        raise ChildError("Internal", "runtime went away during container setup")
    return msg


def _expect(sock: int, tag: bytes) -> bytes:
    msg = _recv(sock)
    if msg[:1] != tag:
        raise ChildError("Internal", f"sync: expected {tag!r}, got {msg[:1]!r}")
    return msg[1:]


def _describe(exc: BaseException) -> tuple[str, str]:
    if isinstance(exc, ChildError):
        return exc.kind, exc.message
    if isinstance(exc, OSError):
        text = exc.strerror or str(exc)
        if exc.filename is not None and str(exc.filename) not in text:
            text = f"{text}: {os.fsdecode(exc.filename)}"
        return "Internal", text
    return "Internal", f"{type(exc).__name__}: {exc}"


def _report(sock: int, step: str, exc: BaseException) -> None:
    kind, message = _describe(exc)
    if step and not isinstance(exc, ChildError):
        message = f"{step}: {message}"
    payload = b"E" + kind.encode() + b"\0" + message.encode("utf-8", "replace")
    try:
        os.write(sock, payload[:_MSG_MAX])
    except OSError:
        _stderr(message)


def _stderr(message: str) -> None:
    try:
        os.write(2, b"dockyard-runtime: " + message.encode("utf-8", "replace") + b"\n")
    except OSError:
        pass


# --------------------------------------------------------------------------
# stages


def run_stage_a(plan: InitPlan) -> None:
    """Namespaces, then fork B.  Never returns."""
    code = 1
    step = "starting"
    try:
        for fd in plan.close_fds:
            os.close(fd)
        os.close(plan.parent_sock)
        _expect(plan.sock, b"G")
        for fd, nstype, name in plan.join:
            step = f"joining {name} namespace"
            ns.setns(fd, nstype)
            os.close(fd)
        if plan.new_user:
            step = "creating user namespace"
            ns.unshare(ns.CLONE_NEWUSER)
            _send(plan.sock, b"U")
            _expect(plan.sock, b"u")
        if plan.user_ns:
            step = "becoming root in the user namespace"
            os.setresgid(0, 0, 0)
            os.setresuid(0, 0, 0)
        if plan.unshare_flags:
            step = "creating namespaces"
            ns.unshare(plan.unshare_flags)
        step = "forking the container process"
        pid = os.fork()
        if pid == 0:
            run_stage_b(plan)  # never returns
        _send(plan.sock, b"P%d" % pid)
        code = 0
    except BaseException as exc:  # noqa: BLE001 - everything goes back to the runtime
        _report(plan.sock, step, exc)
    finally:
        os._exit(code)


def _dup_stdio(fds: tuple[int, int, int]) -> None:
    # Move the sources out of 0-2 first, so a permutation (out<->err) works.
    moved = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3) if fd >= 0 else -1 for fd in fds]
    for target, fd in enumerate(moved):
        if fd >= 0:
            os.dup2(fd, target, inheritable=True)
            os.close(fd)


def _write_file(path: bytes, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def run_stage_b(plan: InitPlan) -> None:
    """The container process: set everything up, wait, exec.  Never returns."""
    sock = plan.sock
    step = "starting"
    state = b""
    try:
        if plan.stdio is not None:
            step = "setting up stdio"
            _dup_stdio(plan.stdio)
        if not plan.process.terminal:
            # As runc: every container process (init or exec) leads a
            # session of its own (ps shows Ss), not one of the host's; with
            # a terminal _setup_console makes the session with its tty.
            step = "creating a session"
            os.setsid()
        rootfs = plan.rootfs
        if rootfs is not None:
            step = "preparing the rootfs"
            setup_rootfs(rootfs)
        if plan.hooks_sync:
            step = "running hooks"
            _send(sock, b"H")
            state = _expect(sock, b"h")
            error = hook_runner.run_all(plan.create_container_hooks, state)
            if error:
                raise ChildError("Internal", error)
        if rootfs is not None:
            step = "entering the rootfs (pivot_root)"
            enter_rootfs(rootfs)
        elif plan.root_fd >= 0:
            step = "entering the container's root"
            os.fchdir(plan.root_fd)
            os.chroot(".")
            os.close(plan.root_fd)
        if plan.process.terminal:
            step = "setting up the terminal"
            _setup_console(plan)
        if plan.hostname is not None:
            step = "setting the hostname"
            lp.sethostname(plan.hostname)
        if plan.domainname is not None:
            step = "setting the domainname"
            lp.setdomainname(plan.domainname)
        for path, value in plan.sysctl:
            step = f"setting sysctl {os.fsdecode(path)}"
            _write_file(path, value)
        if rootfs is not None:
            step = "masking paths"
            finish_rootfs(rootfs)
            cwd = plan.process.cwd
            if not os.path.isdir(cwd):
                step = "creating the working directory"
                os.makedirs(cwd, 0o755, exist_ok=True)
            if rootfs.readonly_root:
                step = "making the root read-only"
                make_root_readonly()
        step = "applying the process settings"
        apply_process(plan.process)
        step = "finding the executable"
        path = lookup_executable(plan.process)
        _send(sock, b"R")
        if plan.fifo_fd < 0:
            # exec: the runtime learns about success by EOF at execve.
            _exec(plan, path, state)
        os.close(sock)
        sock = -1
        step = "waiting for start"
        if not os.read(plan.fifo_fd, 1):
            os._exit(1)
        os.close(plan.fifo_fd)
        _exec(plan, path, state)
    except BaseException as exc:  # noqa: BLE001
        if sock >= 0:
            _report(sock, step, exc)
        else:
            _stderr(f"{step}: {_describe(exc)[1]}")
        os._exit(127 if isinstance(exc, ChildError) and exc.kind == "NotFound" else 1)


def _exec(plan: InitPlan, path: bytes, state: bytes) -> None:
    if plan.start_container_hooks:
        error = hook_runner.run_all(plan.start_container_hooks, state)
        if error:
            raise ChildError("Internal", error)
    proc = plan.process
    for sig in RESET_SIGNALS:
        signal.signal(sig, signal.SIG_DFL)
    if plan.init:
        run_init(plan, path)
    if proc.no_new_privs and proc.seccomp is not None:
        # Last: with no_new_privs the filter needs no privilege, and nothing
        # the runtime still does is subject to it.
        proc.seccomp.load()
    try:
        os.execve(path, list(proc.argv), proc.env)
    except OSError as exc:
        code = 126 if exc.errno in (errno.EACCES, errno.ENOEXEC, errno.EISDIR) else 127
        raise ChildError("NotFound" if code == 127 else "FailedPrecondition",
                         f"exec {os.fsdecode(path)}: {go_strerror(exc.errno)}") from None


def _setup_console(plan: InitPlan) -> None:
    master, slave, name = terminal.open_pty(b"/dev/ptmx")
    try:
        size = plan.process.console_size
        if size and size[0] and size[1]:
            terminal.set_winsize(slave, size[0], size[1])
        os.fchown(slave, plan.process.uid, -1)
        terminal.send_fd(plan.console_fd, master, name)
    finally:
        os.close(master)
        os.close(plan.console_fd)
    terminal.make_controlling(slave)
    if slave > 2:
        os.close(slave)


def apply_process(proc: ProcessPlan) -> None:
    """rlimits, oom_score_adj, LSM labels, no_new_privs, user, capabilities,
    cwd, umask; and seccomp when no_new_privs is off (it needs CAP_SYS_ADMIN
    then, so it goes before the capabilities are dropped)."""
    for resource_id, soft, hard in proc.rlimits:
        lp.setrlimit(resource_id, soft, hard)
    if proc.oom_score_adj is not None:
        _write_file(b"/proc/self/oom_score_adj", proc.oom_score_adj)
    if proc.apparmor is not None:
        try:
            _write_file(b"/proc/self/attr/apparmor/exec", b"exec " + proc.apparmor)
        except FileNotFoundError:
            _write_file(b"/proc/self/attr/exec", b"exec " + proc.apparmor)
    if proc.selinux is not None:
        _write_file(b"/proc/self/attr/exec", proc.selinux)
    if proc.no_new_privs:
        lp.set_no_new_privs()
    elif proc.seccomp is not None:
        proc.seccomp.load()
    if proc.caps is not None:
        proc.caps.drop_bounding()
    set_keepcaps(True)
    if proc.set_groups:
        os.setgroups(list(proc.additional_gids))
    os.setresgid(proc.gid, proc.gid, proc.gid)
    os.setresuid(proc.uid, proc.uid, proc.uid)
    set_keepcaps(False)
    if proc.caps is not None:
        proc.caps.apply()
    try:
        os.chdir(proc.cwd)
    except OSError as exc:
        # runc's words (the docker CLI shows them as they are)
        raise ChildError("NotFound" if exc.errno == errno.ENOENT else "FailedPrecondition",
                         f'chdir to cwd ("{os.fsdecode(proc.cwd)}") set in config.json failed: '
                         f"{go_strerror(exc.errno)}") from None
    os.umask(proc.umask)


def go_strerror(number: int) -> str:
    """An errno worded as Go (and so runc) words it: libc's text with a
    lower-case first letter.  The docker CLI reads "no such file or
    directory" and "permission denied" in a start error to exit 127/126."""
    text = os.strerror(number)
    return text[:1].lower() + text[1:]


def lookup_executable(proc: ProcessPlan) -> bytes:
    """PATH lookup of argv[0] as the container sees it (runc's rules)."""
    name = proc.argv[0]
    shown = os.fsdecode(name)
    if b"/" in name:
        try:
            st = os.stat(name)
        except OSError as exc:
            raise ChildError("NotFound", f'exec: "{shown}": stat {shown}: {go_strerror(exc.errno)}') from None
        if stat.S_ISDIR(st.st_mode) or not os.access(name, os.X_OK):
            raise ChildError("FailedPrecondition", f'exec: "{shown}": permission denied')
        return name
    denied = False
    for directory in proc.path_dirs:
        candidate = (directory or b".") + b"/" + name
        try:
            st = os.stat(candidate)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode):
            if os.access(candidate, os.X_OK):
                return candidate
            denied = True
    if denied:
        raise ChildError("FailedPrecondition", f'exec: "{shown}": permission denied')
    raise ChildError("NotFound", f'exec: "{shown}": executable file not found in $PATH')


# --------------------------------------------------------------------------
# the built-in init


def run_init(plan: InitPlan, path: bytes) -> None:
    """Stay as PID 1: fork the program, forward signals to it, reap every
    zombie, exit with the program's status (128+N if killed by signal N).
    Opted into with the ``org.dockyard.init`` annotation.  Never returns."""
    proc = plan.process
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED_SIGNALS)
    child = os.fork()
    if child == 0:
        try:
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
            if proc.no_new_privs and proc.seccomp is not None:
                proc.seccomp.load()
            os.execve(path, list(proc.argv), proc.env)
        except BaseException as exc:  # noqa: BLE001
            _stderr(f"exec {os.fsdecode(path)}: {_describe(exc)[1]}")
        os._exit(127)
    try:
        lp.set_name(b"dockyard-init")
    except OSError:
        pass
    # Keep nothing of the runtime's: only the container's stdio.
    lp.close_from(3)
    while True:
        info = signal.sigwaitinfo(FORWARDED_SIGNALS)
        if info.si_signo != signal.SIGCHLD:
            try:
                os.kill(child, info.si_signo)
            except ProcessLookupError:
                pass
            continue
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            if pid == child:
                code = os.waitstatus_to_exitcode(status)
                os._exit(code if code >= 0 else 128 - code)
