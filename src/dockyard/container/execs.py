"""Exec instances (``docker exec``): their records, Docker's inspect shape,
the OCI process they run, and detach keys.

An exec is created (validated, given an ID), then started once; its
record lives in memory (as Docker's does).  Once it has finished it can
still be inspected for a while; then the container service drops it (and
every record goes with its container).
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InvalidArgument
from .config import check_env, replace_or_append_env
from .defaults import ALL_CAPABILITIES
from .users import resolve_user_in_rootfs

DEFAULT_DETACH_KEYS = "ctrl-p,ctrl-q"


def parse_detach_keys(text: str | None) -> bytes:
    """Docker's detach key syntax: comma-separated single characters or
    ``ctrl-<x>`` (x in a-z, @, [, \\, ], ^, _)."""
    text = DEFAULT_DETACH_KEYS if not text else text
    out = bytearray()
    for key in text.split(","):
        key = key.strip()
        if len(key) == 1:
            out.append(ord(key))
            continue
        lower = key.lower()
        if lower.startswith("ctrl-") and len(key) == 6:
            ch = key[5].lower()
            if "a" <= ch <= "z":
                out.append(ord(ch) - ord("a") + 1)
                continue
            specials = {"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31}
            if ch in specials:
                out.append(specials[ch])
                continue
        raise InvalidArgument(f"Invalid detach keys ({text}) provided")
    return bytes(out)


class DetachScanner:
    """Finds the detach sequence in a stdin byte stream.  ``feed`` returns
    (bytes to pass on, detached?); a partial match is held back until it
    completes or breaks."""

    def __init__(self, keys: bytes) -> None:
        self.keys = keys
        self.held = b""

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        if not self.keys:
            return data, False
        out = bytearray()
        for byte in data:
            candidate = self.held + bytes([byte])
            if self.keys.startswith(candidate):
                self.held = candidate
                if candidate == self.keys:
                    self.held = b""
                    return bytes(out), True
                continue
            out += self.held
            self.held = b""
            if self.keys.startswith(bytes([byte])):
                self.held = bytes([byte])
            else:
                out.append(byte)
        return bytes(out), False


@dataclass
class ExecRecord:
    id: str
    container_id: str
    config: dict[str, Any]
    running: bool = False
    started: bool = False
    exit_code: int | None = None
    pid: int = 0
    can_remove: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    #: time.monotonic() when it was seen to finish (None: not finished)
    finished_at: float | None = None

    def finish(self, exit_code: int | None) -> None:
        self.running = False
        if exit_code is not None:
            self.exit_code = exit_code
        if self.finished_at is None:
            self.finished_at = time.monotonic()

    def to_json(self) -> dict[str, Any]:
        cmd = list(self.config.get("Cmd") or [])
        return {
            "CanRemove": self.can_remove,
            "ContainerID": self.container_id,
            "DetachKeys": self.config.get("DetachKeys") or "",
            "ExitCode": self.exit_code,
            "ID": self.id,
            "OpenStderr": bool(self.config.get("AttachStderr")),
            "OpenStdin": bool(self.config.get("AttachStdin")),
            "OpenStdout": bool(self.config.get("AttachStdout")),
            "ProcessConfig": {
                "arguments": cmd[1:],
                "entrypoint": cmd[0] if cmd else "",
                "privileged": bool(self.config.get("Privileged")),
                "tty": bool(self.config.get("Tty")),
                # omitted when empty, as dockerd's omitempty does
                **({"user": self.config["User"]} if self.config.get("User") else {}),
            },
            "Running": self.running,
            "Pid": self.pid,
        }

    @property
    def command_line(self) -> str:
        return " ".join(self.config.get("Cmd") or [])


def new_exec_id() -> str:
    return secrets.token_hex(32)


def validate_exec_config(config: Any) -> dict[str, Any]:
    if not isinstance(config, dict):
        raise InvalidArgument("invalid exec config: expected an object")
    cmd = config.get("Cmd")
    if isinstance(cmd, str):
        cmd = [cmd]
    if not cmd or not isinstance(cmd, list) or not all(isinstance(c, str) for c in cmd):
        raise InvalidArgument("No exec command specified")
    out = dict(config)
    out["Cmd"] = cmd
    out["Env"] = check_env(config.get("Env"), "exec Env")
    workdir = config.get("WorkingDir") or ""
    if workdir and not workdir.startswith("/"):
        raise InvalidArgument(f"the working directory '{workdir}' is invalid, it needs to be an absolute path")
    parse_detach_keys(config.get("DetachKeys"))
    size = config.get("ConsoleSize")
    if size is not None and (not isinstance(size, list) or len(size) != 2
                             or not all(isinstance(n, int) and n >= 0 for n in size)):
        raise InvalidArgument("invalid ConsoleSize: expected [height, width]")
    for flag in ("AttachStdin", "AttachStdout", "AttachStderr", "Tty", "Privileged", "Detach"):
        out[flag] = bool(config.get(flag))
    return out


def exec_process(container_process: dict[str, Any], exec_config: dict[str, Any], fs_root: Path,
                 all_capabilities: list[str] | None = None) -> dict[str, Any]:
    """The OCI process of an exec: the container's process settings with
    the exec's command, env, user, working dir and tty."""
    process = {k: v for k, v in container_process.items()
               if k in ("env", "cwd", "user", "capabilities", "noNewPrivileges", "rlimits", "apparmorProfile",
                        "selinuxLabel", "oomScoreAdj")}
    process["args"] = list(exec_config["Cmd"])
    process["terminal"] = bool(exec_config.get("Tty"))
    env = list(process.get("env") or [])
    if exec_config.get("Tty") and not any(e.startswith("TERM=") for e in env):
        env.append("TERM=xterm")
    process["env"] = replace_or_append_env(env, list(exec_config.get("Env") or []))
    if exec_config.get("WorkingDir"):
        process["cwd"] = exec_config["WorkingDir"]
    if exec_config.get("User"):
        user = resolve_user_in_rootfs(fs_root, exec_config["User"])
        process["user"] = {"uid": user.uid, "gid": user.gid}
        if user.additional_gids:
            process["user"]["additionalGids"] = list(user.additional_gids)
        process["env"] = [e for e in process["env"] if not e.startswith("HOME=")] + [f"HOME={user.home}"] \
            if not any(e.startswith("HOME=") for e in exec_config.get("Env") or []) else process["env"]
    if exec_config.get("Privileged"):
        caps = list(all_capabilities or ALL_CAPABILITIES)
        process["capabilities"] = {"bounding": caps, "effective": caps, "permitted": caps}
    return process
