"""``dockyard-runtime``: the native runtime's command line, runc's verbs
and flags, so the same scripts drive runc, crun and dockyard-runtime.

Exit status: 0 on success, 1 on any error (message on stderr, and as a
JSON line in ``--log`` with ``--log-format json``, as runc does); ``run``
and ``exec`` in the foreground exit with the container process's status
(128+N when killed by signal N).
"""

from __future__ import annotations

# Start-up matters here (scripts run this per container, as they run runc):
# only os and sys at the top; argparse, json, the runtime itself are
# imported by the verb that needs them, and only the verb's own sub-parser
# is built.
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import DockyardError, InvalidArgument

if TYPE_CHECKING:
    import argparse

    from .base import State

DEFAULT_ROOT = "/run/dockyard-runtime"
VERSION = "0.1.0"
SPEC_VERSION = "1.0.2"


class _Log:
    def __init__(self, path: str | None, fmt: str, debug: bool) -> None:
        self.path, self.fmt, self.debug_on = path, fmt, debug

    def _write(self, level: str, msg: str) -> None:
        if not self.path:
            return
        import time

        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        if self.fmt == "json":
            import json

            line = json.dumps({"level": level, "msg": msg, "time": now})
        else:
            line = f'time="{now}" level={level} msg="{msg}"'
        try:
            with open(self.path, "a") as f:
                f.write(line + "\n")
        except OSError:
            pass

    def error(self, msg: str) -> None:
        self._write("error", msg)
        print(f"dockyard-runtime: {msg}", file=sys.stderr)

    def warning(self, msg: str) -> None:
        self._write("warning", msg)

    def debug(self, msg: str) -> None:
        if self.debug_on:
            self._write("debug", msg)


def parse_signal(text: str) -> int:
    """"KILL", "SIGKILL" or "9" -> 9."""
    if text.isdigit():
        return int(text)
    import signal

    name = text.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    try:
        return int(getattr(signal.Signals, name))
    except AttributeError:
        raise InvalidArgument(f"unknown signal {text!r}") from None


def _owner(path: Path) -> str:
    try:
        import pwd
        return pwd.getpwuid(path.stat().st_uid).pw_name
    except (KeyError, OSError):
        return ""


def _state_json(rt, state: State) -> dict[str, Any]:
    doc = state.to_json()
    doc["ociVersion"] = SPEC_VERSION
    try:
        doc["rootfs"] = rt._store.load(state.id).get("rootfs", "")
    except DockyardError:
        doc["rootfs"] = ""
    doc.setdefault("created", "")
    doc["owner"] = _owner(rt.root / state.id)
    return doc


def _table(rows: list[list[str]]) -> str:
    """Go tabwriter-like: columns at least 12 wide, 3 spaces of padding."""
    widths = [max(12, max(len(r[i]) for r in rows) + 3) for i in range(len(rows[0]))]
    out = []
    for r in rows:
        out.append("".join(cell.ljust(widths[i]) if i < len(r) - 1 else cell for i, cell in enumerate(r)))
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------
# terminal proxy for foreground run/exec with process.terminal


class _ConsoleListener:
    """A temporary console socket the foreground CLI hands to create/exec."""

    def __init__(self, directory: Path) -> None:
        import socket
        import tempfile
        self._dir = tempfile.mkdtemp(prefix="console-", dir=directory)
        self.path = Path(self._dir) / "sock"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(self.path))
        self.sock.listen(1)

    def receive(self) -> int:
        from ..linux.terminal import recv_fd
        conn, _ = self.sock.accept()
        try:
            fd, _name = recv_fd(conn)
        finally:
            conn.close()
        return fd

    def close(self) -> None:
        import shutil
        self.sock.close()
        shutil.rmtree(self._dir, ignore_errors=True)


def _proxy(master: int, pid: int) -> int:
    """Copy stdin -> pty master -> stdout until ``pid`` exits; its status."""
    import selectors
    import termios
    import tty

    from ..linux.terminal import get_winsize, set_winsize

    stdin_tty = os.isatty(0)
    saved = termios.tcgetattr(0) if stdin_tty else None
    if stdin_tty:
        tty.setraw(0)
        try:
            set_winsize(master, *get_winsize(0))
        except OSError:
            pass
    sel = selectors.DefaultSelector()
    sel.register(master, selectors.EVENT_READ)
    try:
        sel.register(0, selectors.EVENT_READ)
    except (ValueError, PermissionError, OSError):
        pass
    status = None
    try:
        while status is None:
            for key, _ in sel.select(0.1):
                if key.fd == master:
                    try:
                        data = os.read(master, 65536)
                    except OSError:
                        data = b""
                    if not data:
                        sel.unregister(master)
                        continue
                    os.write(1, data)
                else:
                    data = os.read(0, 65536)
                    if not data:
                        sel.unregister(0)
                        continue
                    os.write(master, data)
            done, st = os.waitpid(pid, os.WNOHANG)
            if done:
                status = st
        # drain what is left
        try:
            while True:
                data = os.read(master, 65536)
                if not data:
                    break
                os.write(1, data)
        except OSError:
            pass
    finally:
        if saved is not None:
            termios.tcsetattr(0, termios.TCSADRAIN, saved)
        os.close(master)
    return os.waitstatus_to_exitcode(status)


def _wait_forwarding(pid: int, forward_to) -> int:
    """Wait for ``pid`` (re-parented to us, a subreaper), forwarding
    signals to it; reap any other orphan on the way.  Its exit status."""
    import signal

    forwarded = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
                 signal.SIGUSR2, signal.SIGWINCH)
    for sig in forwarded:
        signal.signal(sig, lambda signum, _frame: forward_to(signum))
    while True:
        try:
            done, status = os.waitpid(-1, 0)
        except ChildProcessError:
            # Not (yet) our child: poll until it is gone.
            from ..linux.process import process_state
            if process_state(pid) in (None, "Z", "X"):
                return 0
            import time

            time.sleep(0.01)
            continue
        if done == pid:
            code = os.waitstatus_to_exitcode(status)
            return code if code >= 0 else 128 - code


# --------------------------------------------------------------------------
# commands


def _runtime(args):
    from .native import NativeRuntime
    return NativeRuntime(Path(args.root), no_pivot=getattr(args, "no_pivot", False))


def cmd_create(args) -> int:
    rt = _runtime(args)
    rt.create(args.id, Path(args.bundle), console_socket=Path(args.console_socket) if args.console_socket else None,
              pid_file=Path(args.pid_file) if args.pid_file else None)
    return 0


def cmd_start(args) -> int:
    _runtime(args).start(args.id)
    return 0


def cmd_run(args) -> int:
    from ..linux.process import set_child_subreaper
    rt = _runtime(args)
    bundle = Path(args.bundle)
    console = Path(args.console_socket) if args.console_socket else None
    pid_file = Path(args.pid_file) if args.pid_file else None
    if args.detach:
        rt.create(args.id, bundle, console_socket=console, pid_file=pid_file)
        try:
            rt.start(args.id)
        except BaseException:
            rt.delete(args.id, force=True)
            raise
        return 0
    set_child_subreaper()
    from .native.config import load_bundle
    wants_tty = load_bundle(bundle).process.terminal and console is None
    listener = _ConsoleListener(Path(rt.root)) if wants_tty else None
    try:
        if listener is not None:
            rt.root.mkdir(parents=True, exist_ok=True)
            pid = rt.create(args.id, bundle, console_socket=listener.path, pid_file=pid_file)
            master = listener.receive()
        else:
            pid = rt.create(args.id, bundle, console_socket=console, pid_file=pid_file)
            master = -1
    finally:
        if listener is not None:
            listener.close()
    try:
        rt.start(args.id)
        if master >= 0:
            return _proxy(master, pid)
        return _wait_forwarding(pid, lambda sig: _safe_kill(pid, sig))
    finally:
        try:
            rt.delete(args.id, force=True)
        except DockyardError:
            pass


def _safe_kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def cmd_state(args) -> int:
    import json

    rt = _runtime(args)
    print(json.dumps(_state_json(rt, rt.state(args.id)), indent=2))
    return 0


def cmd_list(args) -> int:
    import json

    rt = _runtime(args)
    states = rt.list()
    if args.quiet:
        for st in states:
            print(st.id)
        return 0
    docs = [_state_json(rt, st) for st in states]
    if args.format == "json":
        print(json.dumps(docs if docs else None))
        return 0
    rows = [["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]]
    rows += [[d["id"], str(d["pid"] if d["status"] != "stopped" else 0), d["status"], d["bundle"],
              d["created"], d["owner"]] for d in docs]
    sys.stdout.write(_table(rows))
    return 0


def cmd_kill(args) -> int:
    _runtime(args).kill(args.id, parse_signal(args.signal), all=args.all)
    return 0


def cmd_delete(args) -> int:
    _runtime(args).delete(args.id, force=args.force)
    return 0


def cmd_pause(args) -> int:
    _runtime(args).pause(args.id)
    return 0


def cmd_resume(args) -> int:
    _runtime(args).resume(args.id)
    return 0


def cmd_ps(args) -> int:
    import json

    rt = _runtime(args)
    pids = rt.ps(args.id)
    if args.format == "json":
        print(json.dumps(pids))
        return 0
    import subprocess
    out = subprocess.run(["ps", *(args.ps_args or ["-ef"])], capture_output=True, text=True, check=False).stdout
    lines = out.splitlines()
    if not lines:
        return 0
    header = lines[0]
    cols = header.split()
    pid_col = cols.index("PID") if "PID" in cols else 1
    print(header)
    wanted = set(pids)
    for line in lines[1:]:
        fields = line.split()
        if len(fields) > pid_col and fields[pid_col].isdigit() and int(fields[pid_col]) in wanted:
            print(line)
    return 0


def _exec_process(rt, args) -> dict[str, Any]:
    import json

    if args.process:
        try:
            with open(args.process) as f:
                return json.load(f)
        except (OSError, json.JSONDecodeError) as exc:
            raise InvalidArgument(f"--process {args.process}: {exc}") from None
    if not args.command:
        raise InvalidArgument("exec: give the command to run (or --process FILE)")
    base = dict(rt.config(args.id).get("process") or {})
    process: dict[str, Any] = {
        "args": list(args.command),
        "env": list(base.get("env") or []) + list(args.env or []),
        "cwd": args.cwd or base.get("cwd") or "/",
        "terminal": bool(args.tty),
        "user": dict(base.get("user") or {"uid": 0, "gid": 0}),
        "noNewPrivileges": bool(base.get("noNewPrivileges")) or args.no_new_privs,
    }
    if base.get("capabilities") is not None:
        caps = {k: list(v) for k, v in base["capabilities"].items()}
        for cap in args.cap or ():
            for key in ("bounding", "effective", "permitted"):
                caps.setdefault(key, [])
                if cap not in caps[key]:
                    caps[key].append(cap)
        process["capabilities"] = caps
    for key in ("apparmorProfile", "selinuxLabel", "rlimits"):
        if base.get(key):
            process[key] = base[key]
    if args.user:
        uid, _, gid = args.user.partition(":")
        try:
            process["user"] = {"uid": int(uid), "gid": int(gid) if gid else 0}
        except ValueError:
            raise InvalidArgument(f"--user {args.user!r}: want UID[:GID] numbers") from None
    if args.additional_gids:
        process["user"]["additionalGids"] = [int(g) for g in args.additional_gids]
    return process


def cmd_exec(args) -> int:
    from ..linux.process import set_child_subreaper
    rt = _runtime(args)
    process = _exec_process(rt, args)
    console = Path(args.console_socket) if args.console_socket else None
    pid_file = Path(args.pid_file) if args.pid_file else None
    if args.detach:
        rt.exec(args.id, process, console_socket=console, pid_file=pid_file)
        return 0
    set_child_subreaper()
    listener = None
    if process.get("terminal") and console is None:
        listener = _ConsoleListener(Path(rt.root))
        console = listener.path
    try:
        pid = rt.exec(args.id, process, console_socket=console, pid_file=pid_file)
        master = listener.receive() if listener is not None else -1
    finally:
        if listener is not None:
            listener.close()
    if master >= 0:
        return _proxy(master, pid)
    return _wait_forwarding(pid, lambda sig: _safe_kill(pid, sig))


def cmd_spec(args) -> int:
    import json

    from .native.spec import default_spec
    path = Path(args.bundle) / "config.json"
    if path.exists():
        raise InvalidArgument(f"File {path} exists. Remove it first")
    from .native.state import write_atomic
    write_atomic(path, (json.dumps(default_spec(), indent="\t") + "\n").encode(), 0o644)
    return 0


# --------------------------------------------------------------------------


#: global options that take a value (to find the verb before parsing)
_GLOBAL_VALUE_OPTIONS = ("--root", "--log", "--log-format")


def _verb_of(argv: list[str]) -> str | None:
    """The verb in ``argv`` (the first word that is not a global option or
    its value), or None."""
    i = 0
    while i < len(argv):
        word = argv[i]
        if word in _GLOBAL_VALUE_OPTIONS:
            i += 2
            continue
        if word.startswith("-"):
            i += 1
            continue
        return word
    return None


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The command line parser; with ``only`` (a verb), just that verb's
    sub-parser is built (what a run needs; help and errors use them all)."""
    import argparse

    p = argparse.ArgumentParser(prog="dockyard-runtime", description="Dockyard's OCI runtime (runc-compatible CLI)")
    p.add_argument("--root", default=DEFAULT_ROOT, help="state directory (default %(default)s)")
    p.add_argument("--log", default=None, help="log file")
    p.add_argument("--log-format", default="text", choices=("text", "json"))
    p.add_argument("--debug", action="store_true")
    p.add_argument("--systemd-cgroup", action="store_true", help="accepted for compatibility; ignored")
    p.add_argument("--version", "-v", action="version",
                   version=f"dockyard-runtime version {VERSION}\nspec: {SPEC_VERSION}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    def add(name: str, func, help_text: str):
        if only is not None and name != only:
            return None
        sp = sub.add_parser(name, help=help_text)
        sp.set_defaults(func=func)
        return sp

    for name, func in (("create", cmd_create), ("run", cmd_run)):
        if sp := add(name, func, f"{name} a container"):
            sp.add_argument("--bundle", "-b", default=".")
            sp.add_argument("--console-socket", default=None)
            sp.add_argument("--pid-file", default=None)
            sp.add_argument("--no-pivot", action="store_true", help="MS_MOVE+chroot instead of pivot_root")
            sp.add_argument("--preserve-fds", type=int, default=0, help="accepted for compatibility; must be 0")
            if name == "run":
                sp.add_argument("--detach", "-d", action="store_true")
            sp.add_argument("id")
    for name, func in (("start", cmd_start), ("state", cmd_state), ("pause", cmd_pause), ("resume", cmd_resume)):
        if sp := add(name, func, f"{name} a container"):
            sp.add_argument("id")
    if sp := add("list", cmd_list, "list containers"):
        sp.add_argument("--format", "-f", default="table", choices=("table", "json"))
        sp.add_argument("--quiet", "-q", action="store_true")
    if sp := add("kill", cmd_kill, "send a signal to the container's init (or all processes)"):
        sp.add_argument("--all", "-a", action="store_true")
        sp.add_argument("id")
        sp.add_argument("signal", nargs="?", default="SIGTERM")
    if sp := add("delete", cmd_delete, "delete a container"):
        sp.add_argument("--force", "-f", action="store_true")
        sp.add_argument("id")
    if sp := add("ps", cmd_ps, "list the container's processes"):
        sp.add_argument("--format", "-f", default="table", choices=("table", "json"))
        sp.add_argument("id")
        sp.add_argument("ps_args", nargs=argparse.REMAINDER)
    if sp := add("exec", cmd_exec, "run a process in a running container"):
        sp.add_argument("--process", "-p", default=None)
        sp.add_argument("--tty", "-t", action="store_true")
        sp.add_argument("--detach", "-d", action="store_true")
        sp.add_argument("--pid-file", default=None)
        sp.add_argument("--console-socket", default=None)
        sp.add_argument("--cwd", default=None)
        sp.add_argument("--env", "-e", action="append")
        sp.add_argument("--user", "-u", default=None)
        sp.add_argument("--additional-gids", "-g", action="append")
        sp.add_argument("--cap", "-c", action="append")
        sp.add_argument("--no-new-privs", action="store_true")
        sp.add_argument("id")
        sp.add_argument("command", nargs=argparse.REMAINDER)
    if sp := add("spec", cmd_spec, "write a default config.json"):
        sp.add_argument("--bundle", "-b", default=".")
        sp.add_argument("--rootless", action="store_true", help="not supported; accepted for compatibility")
    return p


#: verbs build_parser knows, for building just one
VERBS = ("create", "run", "start", "state", "pause", "resume", "list", "kill", "delete", "ps", "exec", "spec")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    verb = _verb_of(argv)
    # An unknown verb or a help request gets the whole parser (its usage
    # and error list every verb).
    only = verb if verb in VERBS and "-h" not in argv and "--help" not in argv else None
    args = build_parser(only).parse_args(argv)
    log = _Log(args.log, args.log_format, args.debug)
    try:
        code = args.func(args)
    except DockyardError as exc:
        log.error(str(exc))
        return 1
    except KeyboardInterrupt:
        return 130
    sys.stdout.flush()
    return code


if __name__ == "__main__":
    sys.exit(main())
